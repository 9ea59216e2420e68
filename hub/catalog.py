"""The topic catalog: what a downstream system needs to find and read a topic.

For each of the hub's topics (``unsilo.raw.*``, ``unsilo.canonical.*``, ``unsilo.outbox.*``,
``unsilo.dlq.*``, ``unsilo.quarantine.*``; every topic with ``include_all``): the owning
system and source table (from the configured sources, else from the name), the entity
and the read models that consume it, the key and value schemas (TopicNameStrategy
subjects, latest version and all version numbers), partitions, retention, the offset
count and the time of the last committed record, and the retention guard's findings.

Broker facts come from a handful of batched requests (:mod:`hub.kafka.topic_facts`);
registry lookups run on a small thread pool, as the registry answers one subject per call
(one call per subject in the common case of a single version).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

from hub.config import Settings
from hub.kafka.topic_facts import TopicFacts, TopicShape, last_record_times
from hub.kafka.topics import quarantine_topic, raw_topic
from hub.registry import ConfluentRegistry, SubjectVersion, key_subject, value_subject
from hub.retention_guard import Finding, findings_for

KINDS = {
    "unsilo.raw.": "raw",
    "unsilo.canonical.": "canonical",
    "unsilo.outbox.": "outbox",
    "unsilo.dlq.": "dlq",
    "unsilo.quarantine.": "quarantine",
}
REGISTRY_WORKERS = 16


@dataclass(frozen=True)
class SchemaInfo:
    """A subject's latest schema and every version number registered under it."""

    subject: str
    version: int
    schema_id: int
    versions: list[int]
    schema: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "latest_version": self.version,
            "schema_id": self.schema_id,
            "versions": self.versions,
            "schema": self.schema,
        }


@dataclass(frozen=True)
class Owner:
    """Who writes a topic: the legacy system, source and table, or the canonical entity."""

    system: str | None = None
    source: str | None = None
    table: str | None = None
    entity: str | None = None


@dataclass(frozen=True)
class TopicEntry:
    """One topic of the catalog.

    ``offsets`` is the sum over partitions of high minus low watermark: the records plus the
    transaction markers Kafka writes at every commit, so an upper bound of the record count
    (cheap for any size of topic; counting exactly would mean reading it all).
    """

    topic: str
    kind: str
    owner: Owner
    read_models: list[str]
    key: SchemaInfo | None
    value: SchemaInfo | None
    partitions: int
    replication_factor: int
    retention_ms: int | None
    retention_bytes: int | None
    cleanup_policy: str | None
    offsets: int
    last_event_ms: int | None
    retention_risk: list[Finding] = field(default_factory=list)

    @property
    def last_event_time(self) -> str | None:
        if self.last_event_ms is None:
            return None
        return datetime.fromtimestamp(self.last_event_ms / 1000, UTC).isoformat(timespec="milliseconds")

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "kind": self.kind,
            "system": self.owner.system,
            "source": self.owner.source,
            "table": self.owner.table,
            "entity": self.owner.entity,
            "read_models": self.read_models,
            "key_schema": self.key.to_dict() if self.key else None,
            "value_schema": self.value.to_dict() if self.value else None,
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "retention_ms": self.retention_ms,
            "retention_bytes": self.retention_bytes,
            "cleanup_policy": self.cleanup_policy,
            "offsets": self.offsets,
            "last_event_ms": self.last_event_ms,
            "last_event_time": self.last_event_time,
            "retention_risk": [f.to_dict() for f in self.retention_risk],
        }


def topic_kind(topic: str) -> str:
    """raw, canonical, outbox, dlq or quarantine by prefix; internal or other otherwise."""
    for prefix, kind in KINDS.items():
        if topic.startswith(prefix):
            return kind
    return "internal" if topic.startswith("_") else "other"


def is_listed(topic: str, include_all: bool) -> bool:
    """The hub's topics always; internal (``_unsilo.*``) and foreign ones only with ``include_all``."""
    return include_all or topic_kind(topic) not in ("internal", "other")


def owner_of(topic: str, settings: Settings) -> Owner:
    """The owner of ``topic``: from the configured sources, else parsed from its name."""
    for source in settings.sources:
        if topic == quarantine_topic(source.name):
            return Owner(system=source.system, source=source.name)
        for captured in source.tables:
            if topic == raw_topic(source.system, captured.name):
                return Owner(system=source.system, source=source.name, table=captured.name)
    kind = topic_kind(topic)
    rest = topic.split(".", 2)[2] if topic.count(".") >= 2 else ""
    if kind == "raw":
        system, _, table = rest.partition(".")
        return Owner(system=system or None, table=table or None)
    if kind == "canonical":
        return Owner(entity=rest)
    if kind == "outbox":
        outboxes = [s for s in settings.sources if s.kind == "outbox"]
        systems = {s.system for s in outboxes}
        name = outboxes[0].name if len(outboxes) == 1 else None
        return Owner(system=systems.pop() if len(systems) == 1 else None, source=name, entity=rest)
    return Owner()


def read_model_inputs() -> dict[str, list[str]]:
    """Read model name -> the topic patterns (fnmatch) it reads, from the installed plugins."""
    found: dict[str, list[str]] = {}
    for entry in entry_points(group="unsilo.read_model_inputs"):
        found.update(entry.load()())
    return found


def consumers_of(topic: str, inputs: dict[str, list[str]]) -> list[str]:
    """The read models among ``inputs`` that read ``topic``."""
    return sorted(n for n, patterns in inputs.items() if any(fnmatch.fnmatchcase(topic, p) for p in patterns))


def build_catalog(
    settings: Settings, *, include_all: bool = False, topics: Iterable[str] | None = None
) -> list[TopicEntry]:
    """The catalog of the cluster's topics (or just ``topics``), sorted by name."""
    facts = TopicFacts(settings.kafka)
    shapes = facts.shapes()
    wanted = set(topics) if topics is not None else {t for t in shapes if is_listed(t, include_all)}
    chosen = [shapes[t] for t in sorted(wanted) if t in shapes]
    configs = facts.configs(s.name for s in chosen)
    ranges = facts.watermarks(chosen)
    times = last_record_times(settings.kafka, ranges)
    schemas = subject_infos(ConfluentRegistry(settings.registry), [s.name for s in chosen])
    inputs = read_model_inputs()
    return [
        _entry(shape, settings, configs.get(shape.name, {}), ranges, times, schemas, inputs)
        for shape in chosen
    ]


def subject_infos(registry: ConfluentRegistry, topics: list[str]) -> dict[str, SchemaInfo]:
    """Subject -> its latest schema and versions, for the key and value subjects of ``topics``.

    One call per existing subject (its latest version); the version list is asked for only
    when there is more than one version.
    """
    existing = registry.all_subjects()
    subjects = [s for t in topics for s in (key_subject(t), value_subject(t)) if s in existing]

    def describe(subject: str) -> SchemaInfo | None:
        latest: SubjectVersion | None = registry.latest(subject)
        if latest is None:
            return None
        versions = [latest.version] if latest.version == 1 else registry.versions(subject)
        return SchemaInfo(subject, latest.version, latest.schema_id, versions, latest.schema)

    with ThreadPoolExecutor(max_workers=REGISTRY_WORKERS) as pool:
        described = list(pool.map(describe, subjects))
    return {info.subject: info for info in described if info is not None}


def _entry(
    shape: TopicShape,
    settings: Settings,
    config: dict[str, str],
    ranges: dict[tuple[str, int], tuple[int, int]],
    times: dict[tuple[str, int], int],
    schemas: dict[str, SchemaInfo],
    inputs: dict[str, list[str]],
) -> TopicEntry:
    name = shape.name
    partitions = range(shape.partitions)
    stamps = [times[(name, p)] for p in partitions if (name, p) in times]
    return TopicEntry(
        topic=name,
        kind=topic_kind(name),
        owner=owner_of(name, settings),
        read_models=consumers_of(name, inputs),
        key=schemas.get(key_subject(name)),
        value=schemas.get(value_subject(name)),
        partitions=shape.partitions,
        replication_factor=shape.replication_factor,
        retention_ms=_int(config.get("retention.ms")),
        retention_bytes=_int(config.get("retention.bytes")),
        cleanup_policy=config.get("cleanup.policy"),
        offsets=sum(high - low for low, high in (ranges.get((name, p), (0, 0)) for p in partitions)),
        last_event_ms=max(stamps) if stamps else None,
        retention_risk=findings_for(name, config),
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
