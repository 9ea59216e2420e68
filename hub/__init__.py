"""The shared core of Unsilo: config, errors, logging, Avro serde, Kafka and registry clients."""

__version__ = "0.1.0"
