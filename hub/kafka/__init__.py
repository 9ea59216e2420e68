"""Small typed wrappers over confluent-kafka: admin, transactional producer, consumer."""
