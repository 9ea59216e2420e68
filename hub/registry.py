"""The hub's side of a Confluent-compatible schema registry.

Speaks only the Confluent REST API (through confluent-kafka's ``SchemaRegistryClient``),
so Confluent, Apicurio's ccompat API, Karapace or Redpanda all work. Subjects follow
TopicNameStrategy: ``<topic>-key`` and ``<topic>-value``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from hub.config import RegistrySettings
from hub.errors import IncompatibleSchemaError, RegistryUnavailableError, SchemaError
from hub.redact import without_password

_HINT_START = "start the local one with `unsilo up`, or set registry.url / UNSILO_REGISTRY__URL"


def key_subject(topic: str) -> str:
    return f"{topic}-key"


def value_subject(topic: str) -> str:
    return f"{topic}-value"


@dataclass(frozen=True)
class SubjectVersion:
    """One version of a subject: its number, the global schema id and the parsed schema."""

    subject: str
    version: int
    schema_id: int
    schema: Any  # a record's dict, or a primitive's name ("string")


class SchemaRegistry(Protocol):
    """What the hub needs from a schema registry."""

    def register(self, subject: str, schema: dict[str, Any]) -> int: ...

    def schema_by_id(self, schema_id: int) -> dict[str, Any]: ...


class ConfluentRegistry:
    """A :class:`SchemaRegistry` over any Confluent-compatible REST endpoint."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.url = without_password(settings.url)  # for messages
        # a timeout: a registry that accepts a request and never answers must not hang a connector
        config: dict[str, Any] = {"url": settings.url, "timeout": 30}
        if settings.username and settings.password is not None:
            secret = settings.password.get_secret_value()
            config["basic.auth.user.info"] = f"{settings.username}:{secret}"
        self.client = SchemaRegistryClient(config)

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent) and return its id."""
        try:
            return int(self.client.register_schema(subject, _avro(schema)))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise IncompatibleSchemaError(
                    f"registry refused a new version of {subject}: {exc.error_message}",
                    hint="make the change compatible (add fields with defaults) "
                    "or change the subject's compatibility level",
                ) from exc
            raise SchemaError(f"registry error for {subject}: {exc.error_message}") from exc
        except Exception as exc:  # httpx/connection errors surface as various types
            raise self._unavailable(exc) from exc

    def is_compatible(self, subject: str, schema: dict[str, Any]) -> bool:
        """Whether ``schema`` may become the next version of ``subject``."""
        try:
            return bool(self.client.test_compatibility(subject, _avro(schema)))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return True  # no subject yet: anything goes
            raise SchemaError(f"registry error for {subject}: {exc.error_message}") from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The parsed schema registered under ``schema_id``."""
        try:
            found = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                # A record's schema id was registered before the record was written: a 404 is a
                # registry that answers before it has loaded its storage (Apicurio after a restart).
                raise RegistryUnavailableError(
                    f"schema id {schema_id} unknown to the registry (still loading after a restart?)",
                    hint="wait for the registry to finish starting; if this lasts, check registry.url",
                ) from exc
            raise SchemaError(f"schema id {schema_id} unknown to the registry") from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc
        parsed: dict[str, Any] = json.loads(found.schema_str or "null")
        return parsed

    def set_compatibility(self, level: str) -> None:
        """Set the registry's global compatibility level."""
        try:
            self.client.set_compatibility(level=level)
        except SchemaRegistryError as exc:
            raise SchemaError(f"registry refused compatibility {level}: {exc}") from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def subjects(self) -> list[str]:
        try:
            return list(self.client.get_subjects())
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def all_subjects(self, page: int = 10_000) -> set[str]:
        """Every subject, asked for in pages: a registry may cap an unpaged list
        (Apicurio's ``GET /subjects`` returns at most 1,000)."""
        found: set[str] = set()
        offset = 0
        while True:
            try:
                batch = list(self.client.get_subjects(offset=offset, limit=page))
            except Exception as exc:
                raise self._unavailable(exc) from exc
            found.update(batch)
            if len(batch) < page:
                return found
            offset += page

    def latest(self, subject: str) -> SubjectVersion | None:
        """The latest version of ``subject`` (None when the subject does not exist)."""
        try:
            found = self.client.get_latest_version(subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise SchemaError(f"registry error for {subject}: {exc.error_message}") from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc
        schema: Any = json.loads(found.schema.schema_str or "null")
        return SubjectVersion(subject, int(found.version or 0), int(found.schema_id or 0), schema)

    def versions(self, subject: str) -> list[int]:
        """The version numbers registered under ``subject``, oldest first ([] when none)."""
        try:
            return sorted(int(v) for v in self.client.get_versions(subject))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return []
            raise SchemaError(f"registry error for {subject}: {exc.error_message}") from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def version(self, subject: str, version: int) -> SubjectVersion:
        """One registered version of ``subject`` (versions never change: cached by the client)."""
        try:
            found = self.client.get_version(subject, version)
        except SchemaRegistryError as exc:
            raise SchemaError(f"registry has no version {version} of {subject}: {exc.error_message}") from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc
        schema: Any = json.loads(found.schema.schema_str or "null")
        return SubjectVersion(subject, int(found.version or version), int(found.schema_id or 0), schema)

    def _unavailable(self, exc: Exception) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"schema registry at {self.url} did not answer ({type(exc).__name__})",
            hint=_HINT_START,
        )


def _avro(schema: dict[str, Any]) -> Schema:
    return Schema(json.dumps(schema, separators=(",", ":")), "AVRO")
