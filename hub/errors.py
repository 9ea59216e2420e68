"""Every error Unsilo raises on purpose, as one rooted tree.

::

    UnsiloError
    ├── ConfigError                 settings missing or inconsistent (fatal, exit 2)
    │   └── MissingToolError        Java, Maven or another program is not installed
    ├── SourceError
    │   ├── SourceUnavailableError  database unreachable (retriable)
    │   └── SourceDataError         a row cannot become an event (to the DLQ)
    │       ├── MappingError        a raw row cannot become a canonical entity (to the DLQ)
    │       └── RecordTooLargeError an event above the broker's maximum message size (to the DLQ)
    ├── LogError
    │   ├── LogUnavailableError     no broker reachable (retriable)
    │   ├── DeliveryError           broker rejected a record
    │   ├── FencedError             another instance took over this transactional id
    │   ├── ChainMovedError         another writer appended to a chained partition (retriable)
    │   ├── AuthenticationError     the broker refused our credentials or security protocol (exit 2)
    │   ├── AuthorizationError      the broker's ACLs deny our principal an operation (exit 2)
    │   ├── UnknownGroupError       no consumer group of that name on the broker (exit 2)
    │   ├── UnknownTopicError       no topic, table or entity of that name (exit 2)
    │   └── UnknownRecordError      no record with that key in a topic
    ├── SchemaError
    │   ├── RegistryUnavailableError  schema registry unreachable (retriable)
    │   ├── IncompatibleSchemaError   registry refused a new version
    │   └── SerializationError        a value does not fit its schema
    ├── ServiceError                a local broker or registry failed to start or stop
    └── ReadModelError              a read model could not apply an event

Each class says whether retrying may help (``retriable``) and, where the user can act,
carries a ``hint`` saying what to do. Foreign errors (confluent-kafka, SQLAlchemy,
fastavro, httpx) are translated only at those boundaries, always with ``raise ... from``.
"""

from __future__ import annotations


class UnsiloError(Exception):
    """Root of every error Unsilo raises on purpose."""

    retriable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(UnsiloError):
    """Settings are missing, malformed or inconsistent; fatal, exit status 2."""

    exit_code = 2


class MissingToolError(ConfigError):
    """A program Unsilo needs (Java 17, Maven) is not installed."""


class SourceError(UnsiloError):
    """Something went wrong reading a legacy source database."""


class SourceUnavailableError(SourceError):
    """The source database cannot be reached; retried with backoff."""

    retriable = True


class SourceDataError(SourceError):
    """A row cannot become an event; it goes to the dead-letter topic."""


class MappingError(SourceDataError):
    """A raw row cannot become a canonical entity (a bad date, an unknown code); to the DLQ.

    ``mapping`` names the mapping (``system.table->Entity``), ``field`` and ``column`` where
    it failed (when one did), ``reason`` the cause without the mapping's name around it.
    """

    def __init__(
        self, reason: str, *, mapping: str, field: str | None = None, column: str | None = None
    ) -> None:
        where = f" ({column} -> {field})" if column and field else f" ({field})" if field else ""
        super().__init__(f"cannot map a row of {mapping}{where}: {reason}")
        self.reason = reason
        self.mapping = mapping
        self.field = field
        self.column = column


class RecordTooLargeError(SourceDataError):
    """A row's event is larger than the broker's maximum message size; to the DLQ."""


class LogError(UnsiloError):
    """Something went wrong talking to the Kafka log."""


class LogUnavailableError(LogError):
    """No broker is reachable; retried with backoff."""

    retriable = True


class DeliveryError(LogError):
    """The broker rejected a record or a transaction."""


class FencedError(LogError):
    """Another instance took over this transactional id; this one must stop."""


class AuthenticationError(LogError):
    """The broker refused our SASL credentials, or speaks another security protocol; exit 2."""

    exit_code = 2


class AuthorizationError(LogError):
    """The broker's ACLs do not allow our principal an operation on a topic, group or id; exit 2."""

    exit_code = 2


class ChainMovedError(LogError):
    """Another writer appended to a partition this writer's hash chain continues; the batch is
    aborted and retried from the log's new chain head."""

    retriable = True


class UnknownGroupError(LogError):
    """No consumer group of that name exists on the broker; exit status 2."""

    exit_code = 2


class UnknownTopicError(LogError):
    """No topic, ``system.table`` or entity of that name exists; exit status 2."""

    exit_code = 2


class UnknownRecordError(LogError):
    """No record with the given key was found in a topic."""


class SchemaError(UnsiloError):
    """Something went wrong with a schema or the schema registry."""


class RegistryUnavailableError(SchemaError):
    """The schema registry cannot be reached; retried with backoff."""

    retriable = True


class IncompatibleSchemaError(SchemaError):
    """The registry refused a new schema version under its compatibility rule."""


class SerializationError(SchemaError):
    """A value does not fit its Avro schema, or bytes are not Confluent wire format."""


class ServiceError(UnsiloError):
    """A local service (broker, registry) failed to start, answer or stop."""


class ReadModelError(UnsiloError):
    """A read model could not apply an event or reach its SQL store."""
