"""The canonicalizer stage: mappings validated at start, then the exactly-once loop.

At start every mapping is checked against its raw topic's registered value schema (the
``after`` row's fields): a mapping that reads a column the table lacks is a ConfigError
naming the column (exit 2). A raw topic not captured yet is created empty and its mapping
checked row by row (a row lacking a column goes to the DLQ).

Counts are published to ``_unsilo.status`` under the key ``canonical`` in the same
transaction as each batch, in :class:`hub.status.SourceStatus` form (so ``load_statuses``
reads them): ``events`` raw events consumed, ``dead_lettered`` rows sent to the DLQ, and
one ``tables`` entry per mapping (``finance.AR_INVOICE->Invoice``) whose ``rows`` counts
the canonical records produced and whose ``reason`` holds the last DLQ reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from confluent_kafka import Message
from confluent_kafka.schema_registry.error import SchemaRegistryError

from hub.canonical_schemas import canonical_schemas
from hub.config import Settings
from hub.errors import ConfigError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.consumer import read_to_end
from hub.kafka.topics import STATUS_TOPIC, raw_topic, spec_for
from hub.mapping import DEMO_MAPPINGS, EntityMapping, load_mappings, validate_mapping
from hub.registry import ConfluentRegistry, value_subject
from hub.serde import AvroSerde
from hub.status import SourceStatus, decode_status
from projections.canonical.contract import CanonicalTopics
from projections.canonical.loop import Out, TransactionalLoop
from projections.canonical.transform import Canonicalizer

log = structlog.get_logger(__name__)


def row_columns(value_schema: dict[str, Any]) -> list[str]:
    """The row fields of a raw envelope schema (its ``before`` record)."""
    for field in value_schema.get("fields", []):
        if field.get("name") != "before":
            continue
        for branch in field["type"] if isinstance(field["type"], list) else [field["type"]]:
            if isinstance(branch, dict) and branch.get("type") == "record":
                return [str(f["name"]) for f in branch.get("fields", [])]
    raise ConfigError("not a change envelope schema: it has no 'before' row record")


def registered_columns(registry: ConfluentRegistry, topic: str) -> list[str] | None:
    """The row columns of ``topic``'s latest registered value schema; None if none yet."""
    try:
        latest = registry.client.get_latest_version(value_subject(topic))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise ConfigError(f"registry error for {value_subject(topic)}: {exc.error_message}") from exc
    except Exception as exc:  # connection errors surface as various httpx types
        raise registry._unavailable(exc) from exc
    return row_columns(json.loads(latest.schema.schema_str or "{}"))


def validate_against_registry(registry: ConfluentRegistry, mappings: Sequence[EntityMapping]) -> list[str]:
    """Check each mapping against its raw table's columns; the raw topics not registered yet."""
    missing: list[str] = []
    for mapping in mappings:
        topic = raw_topic(mapping.system, mapping.table)
        columns = registered_columns(registry, topic)
        if columns is None:
            missing.append(topic)
            continue
        validate_mapping(mapping, {f"{mapping.system}.{mapping.table}": columns})
    return sorted(set(missing))


class CanonicalStage:
    """The canonicalizer as a :class:`~projections.canonical.loop.Stage`, with its status."""

    name = "canonicalizer"
    rebuild_from_log = False

    def __init__(
        self, settings: Settings, mappings: Sequence[EntityMapping], topics: CanonicalTopics
    ) -> None:
        self.settings = settings
        self.mappings = list(mappings)
        self.topics = topics
        self.serde = AvroSerde(ConfluentRegistry(settings.registry))
        self.transform = Canonicalizer(mappings, self.serde, topics, canonical_schemas())
        self.status = SourceStatus(topics.status_key, "canonical", "canonicalizer")

    def inputs(self) -> list[str]:
        return self.transform.inputs()

    def start(self) -> None:
        """Fresh counts, continued from the last committed status."""
        self.transform = Canonicalizer(self.mappings, self.serde, self.topics, canonical_schemas())
        self.status = load_status(self.settings, self.topics.status_key)
        counts = self.transform.counts
        counts.dead_lettered = self.status.dead_lettered
        counts.mapped = sum(t.rows for t in self.status.tables.values())
        for name, table in self.status.tables.items():
            counts.per_mapping[name] = table.rows
            if table.reason:
                counts.last_error[name] = table.reason

    def replay(self, messages: Sequence[Message]) -> None:
        return None

    def process(self, messages: Sequence[Message]) -> list[Out]:
        outputs = self.transform.transform(messages)
        counts = self.transform.counts
        self.status.state, self.status.events = "running", self.status.events + len(messages)
        self.status.dead_lettered = counts.dead_lettered
        for name, rows in counts.per_mapping.items():
            table = self.status.table(name)
            table.state, table.rows, table.reason = "streaming", rows, counts.last_error.get(name)
        for name, reason in counts.last_error.items():
            self.status.table(name).reason = reason
        key = self.topics.status_key.encode()
        return [*outputs, Out(STATUS_TOPIC, key, self.status.encode())]


def load_status(settings: Settings, key: str) -> SourceStatus:
    """The last committed status under ``key`` (a fresh one when there is none)."""
    found = SourceStatus(key, "canonical", "canonicalizer")
    for message in read_to_end(settings.kafka, STATUS_TOPIC, stable=False):
        if (message.key() or b"").decode() == key and message.value() is not None:
            found = decode_status(message.value() or b"")
    return found


def prepare(
    settings: Settings, mappings_path: Path | None, topics: CanonicalTopics, *, batch_size: int = 2000
) -> TransactionalLoop:
    """Load and validate the mappings, create the topics, and build the canonicalizer's loop."""
    mappings = load_mappings(mappings_path or DEMO_MAPPINGS)
    registry = ConfluentRegistry(settings.registry)
    not_yet = validate_against_registry(registry, mappings)
    if not_yet:
        log.warning("raw_topics_not_captured_yet", topics=not_yet)
    admin = KafkaAdmin(settings.kafka)
    admin.ensure_reachable()
    partitions = settings.kafka.topic_partitions
    names = {raw_topic(m.system, m.table) for m in mappings} | {topics.entity(m.entity) for m in mappings}
    admin.ensure_topics(
        [spec_for(name, partitions) for name in sorted(names)]
        + [spec_for(topics.dlq), spec_for(STATUS_TOPIC)]
    )
    stage = CanonicalStage(settings, mappings, topics)
    return TransactionalLoop(settings, stage, topics.group("canonicalizer"), batch_size=batch_size)
