"""The canonical layer: raw change events mapped to canonical entities, exactly once.

Contract (read models build on it; change it only on purpose, and say so)
--------------------------------------------------------------------------

**Entity topics** ``unsilo.canonical.<entity in snake_case>``: customer, invoice, payment,
employee, department, order, order_line, product, store, sale, stock_movement. Key: Avro
record ``io.unsilo.canonical.EntityKey`` ``{"key": string}``, the entity's canonical key
(``fin:000042``, ``sales:C-00042``, ``hr:7839``). Value: the entity record of
``schemas/<entity>.avsc``; a source delete becomes a tombstone (null value). Headers on
every record: ``unsilo.op`` (c, u, d, r), ``unsilo.source.ts_ms`` (the source commit time,
decimal ms as ASCII), ``unsilo.source.topic`` and ``unsilo.source.offset`` (provenance: the
raw record it was made from). Subjects by TopicNameStrategy (``<topic>-key``/``-value``).
Topics keep history forever (``retention.ms=-1``, cleanup ``delete``).

**Dead letters** ``unsilo.dlq.canonical``: a raw event that cannot be mapped (a bad date, an
unknown code, a required field null, a truncate), kept with the raw key; value the JSON of
``{op, before, after}``; headers ``unsilo.error`` (the reason), ``unsilo.error.class``,
``unsilo.mapping`` (``system.table->Entity``) and the provenance headers above. Counted in
``_unsilo.status`` under the key ``canonical`` (see :mod:`projections.canonical.app`).

**Identity** ``unsilo.canonical.identity`` (kept forever, not compacted: the history is the
audit): key EntityKey ``{"key": source key}``; value ``io.unsilo.canonical.IdentityLink``
``{source_key, entity ("Customer"/"Employee"), party_id ("party:" + the smallest member
key), rule ("reference" | "tax_id" | "email" | "manual" | "self"), members (sorted source
keys of the party), ts_ms (time of the input that caused it)}``. A link is (re-)emitted for
every source key whose party changed (merge or split); a tombstone when its record was
deleted. Manual corrections: ``unsilo link A B`` / ``unsilo unlink A`` append
``io.unsilo.canonical.IdentityCommand`` ``{command, keys, by, ts_ms}`` to
``unsilo.canonical.identity_commands`` (one partition); a manual link wins over the rules,
an unlink splits a key out and keeps it out of rule-based merges. Rules: see
:mod:`projections.identity.resolver`.

Exactly once
------------

Both stages run :class:`~projections.canonical.loop.TransactionalLoop`: a read_committed
confluent-kafka consumer, and a ``TransactionalProducer`` that commits each batch's records
with the consumer's offsets (``send_offsets_to_transaction``). Not faust: faust's
``exactly_once`` processing guarantee is broken with aiokafka 0.14 (its transactional
producer fails at shutdown), so these stages use confluent-kafka transactions directly.

Modules: ``contract`` (names, schemas), ``transform`` (plain mapping code), ``loop`` (the
transactional loop), ``app`` (the canonicalizer stage: validation, status).
"""
