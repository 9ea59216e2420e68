"""Raw change events to canonical records: plain code, no Kafka client (the loop does I/O).

For each raw event (an envelope, see :mod:`hub.envelope`) and each mapping of its table:
``c``/``u``/``r`` produce the mapped record under its canonical key, ``d`` a tombstone
under the key of the ``before`` row. A raw tombstone (the null value after a delete) is
skipped: the canonical tombstone was made from the ``d`` before it. A row no mapping can
accept, a record that does not fit its schema, or a truncate (no rows to map) becomes one
record in the canonical DLQ with the reason, the mapping and the source topic/offset in
headers, and is counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from hub.errors import MappingError, SerializationError, UnsiloError
from hub.kafka.topics import raw_topic
from hub.mapping import EntityMapping, apply_mapping
from hub.registry import key_subject, value_subject
from hub.serde import AvroSerde, Writer
from projections.canonical.contract import (
    ENTITY_KEY_SCHEMA,
    HEADER_ERROR,
    HEADER_ERROR_CLASS,
    HEADER_MAPPING,
    HEADER_OP,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_TS,
    CanonicalTopics,
)
from projections.canonical.loop import Out

log = structlog.get_logger(__name__)


class Record(Protocol):
    """What the transform needs of a consumed record (a confluent_kafka Message fits)."""

    def topic(self) -> str | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...


@dataclass
class Counts:
    """Records mapped and dead-lettered, in all and per mapping (with the last reason)."""

    mapped: int = 0
    dead_lettered: int = 0
    per_mapping: dict[str, int] = field(default_factory=dict)
    dead_per_mapping: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)


class Canonicalizer:
    """Maps raw change events of the configured tables to canonical records."""

    def __init__(
        self,
        mappings: Sequence[EntityMapping],
        serde: AvroSerde,
        topics: CanonicalTopics,
        schemas: Mapping[str, dict[str, Any]],
    ) -> None:
        self.topics = topics
        self.serde = serde
        self.schemas = schemas
        self.counts = Counts()
        self.by_topic: dict[str, list[EntityMapping]] = {}
        for mapping in mappings:
            self.by_topic.setdefault(raw_topic(mapping.system, mapping.table), []).append(mapping)
        self._writers: dict[str, tuple[Writer, Writer]] = {}

    def inputs(self) -> list[str]:
        return sorted(self.by_topic)

    def writers(self, entity: str) -> tuple[Writer, Writer]:
        """Key and value writers of ``entity``'s canonical topic (registered once)."""
        found = self._writers.get(entity)
        if found is None:
            topic = self.topics.entity(entity)
            found = (
                self.serde.writer(key_subject(topic), ENTITY_KEY_SCHEMA),
                self.serde.writer(value_subject(topic), self.schemas[entity]),
            )
            self._writers[entity] = found
        return found

    def transform(self, records: Sequence[Record]) -> list[Out]:
        """The canonical (and DLQ) records for a batch of raw records, in input order."""
        outputs: list[Out] = []
        for record in records:
            outputs.extend(self.transform_one(record))
        return outputs

    def transform_one(self, record: Record) -> list[Out]:
        topic, offset, data = record.topic() or "", record.offset() or 0, record.value()
        if data is None:
            return []
        provenance = [(HEADER_SOURCE_TOPIC, topic.encode()), (HEADER_SOURCE_OFFSET, str(offset).encode())]
        try:
            event = self.serde.decode(data)
        except UnsiloError as exc:
            if exc.retriable:  # the registry is away: the batch is retried, a good record never dead-lettered
                raise
            return [self._dead_letter(record, None, None, exc, provenance)]
        op = str(event.get("op", ""))
        source_ts = str((event.get("source") or {}).get("ts_ms", 0)).encode()
        headers = [(HEADER_OP, op.encode()), (HEADER_SOURCE_TS, source_ts), *provenance]
        outputs: list[Out] = []
        for mapping in self.by_topic.get(topic, []):
            try:
                outputs.append(self._map(mapping, op, event, headers))
            except (MappingError, SerializationError) as exc:
                outputs.append(self._dead_letter(record, mapping, event, exc, headers))
                continue
            self.counts.mapped += 1
            self.counts.per_mapping[mapping.name] = self.counts.per_mapping.get(mapping.name, 0) + 1
        return outputs

    def _map(self, mapping: EntityMapping, op: str, event: dict[str, Any], headers: list[Any]) -> Out:
        key_writer, value_writer = self.writers(mapping.entity)
        topic = self.topics.entity(mapping.entity)
        if op == "d":
            before = event.get("before")
            if before is None:
                raise MappingError("a delete without its before image", mapping=mapping.name)
            return Out(topic, key_writer.encode({"key": canonical_key(mapping, before)}), None, headers)
        if op not in ("c", "u", "r"):
            raise MappingError(f"operation {op!r} has no row to map (a truncate?)", mapping=mapping.name)
        after = event.get("after")
        if after is None:
            raise MappingError(f"a {op!r} event without its after image", mapping=mapping.name)
        mapped = apply_mapping(mapping, after)
        return Out(topic, key_writer.encode({"key": mapped["key"]}), value_writer.encode(mapped), headers)

    def _dead_letter(
        self,
        record: Record,
        mapping: EntityMapping | None,
        event: dict[str, Any] | None,
        exc: UnsiloError,
        headers: list[Any],
    ) -> Out:
        name = mapping.name if mapping is not None else "?"
        self.counts.dead_lettered += 1
        self.counts.dead_per_mapping[name] = self.counts.dead_per_mapping.get(name, 0) + 1
        self.counts.last_error[name] = exc.message
        log.warning(
            "canonical_dead_lettered",
            mapping=name,
            topic=record.topic(),
            offset=record.offset(),
            error=exc.message,
        )
        body = (
            json.dumps({k: event.get(k) for k in ("op", "before", "after")}, default=str).encode()
            if event is not None
            else record.value()
        )
        dead_headers = [
            (HEADER_ERROR, exc.message.encode()),
            (HEADER_ERROR_CLASS, type(exc).__name__.encode()),
            (HEADER_MAPPING, name.encode()),
            *headers,
        ]
        return Out(self.topics.dlq, record.key(), body, dead_headers)


def canonical_key(mapping: EntityMapping, row: Mapping[str, Any]) -> str:
    """The canonical key of ``row`` under ``mapping`` (as :func:`apply_mapping` makes it)."""
    parts = []
    for column in mapping.key:
        value = row.get(column)
        text = "" if value is None else str(value).strip()
        if not text:
            raise MappingError(
                "key column is null or blank", mapping=mapping.name, field="key", column=column
            )
        parts.append(text)
    return f"{mapping.prefix}:{'/'.join(parts)}"
