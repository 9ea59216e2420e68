"""Identity resolution: one canonical party id per real customer and employee.

``resolver`` is the plain-code logic (rules, union-find, manual overrides); ``app`` its Kafka
adapter on the canonical layer's transactional loop. The topics and record schemas are part
of the canonical contract (:mod:`projections.canonical`).
"""
