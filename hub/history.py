"""`unsilo history`: every version of one record, oldest first, read from the log.

The argument names a topic (``unsilo.raw.sales.customers``), a captured table
(``sales.customers`` -> its raw topic) or a canonical entity (``customer`` or ``Customer``
-> ``unsilo.canonical.customer``). Only the partition the key was written to is scanned
(the others too when the key is not there, in case another partitioner wrote it).

Each version: partition and offset, op (c, u, d, r, t; ``tombstone`` for the null value
after a delete), the source position and commit time (the envelope's ``source`` block on
raw topics, the provenance headers on canonical ones), the Kafka timestamp and a
field-level diff ``{field: [old, new]}`` against the previous version's after-image: every
field for the first version, every field of the deleted row for a delete.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from hub.config import Settings
from hub.errors import SchemaError, UnknownRecordError, UnknownTopicError
from hub.history_keys import encodings, key_text, parse_key, partition_for, same_key
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate
from hub.kafka.topic_facts import TopicFacts
from hub.kafka.topics import canonical_topic, raw_topic
from hub.registry import ConfluentRegistry, key_subject
from hub.serde import AvroSerde

Progress = Callable[[int, int], None]  # (records scanned, records to scan)
ENVELOPE_FIELDS = {"before", "after", "op", "source"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class Record:
    """One record of the scanned key, as read: where, when, headers and the decoded value."""

    partition: int
    offset: int
    timestamp_ms: int | None
    headers: dict[str, str]
    value: Any  # None for a tombstone


@dataclass(frozen=True)
class Version:
    """One version of the record, with the fields that changed since the previous one."""

    partition: int
    offset: int
    op: str
    tombstone: bool
    position: str | None
    source_ts_ms: int | None
    kafka_ts_ms: int | None
    after: dict[str, Any] | None
    diff: dict[str, list[Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "op": self.op,
            "tombstone": self.tombstone,
            "source_position": self.position,
            "source_ts_ms": self.source_ts_ms,
            "source_time": _iso(self.source_ts_ms),
            "kafka_ts_ms": self.kafka_ts_ms,
            "kafka_time": _iso(self.kafka_ts_ms),
            "after": jsonable(self.after),
            "diff": {k: [jsonable(old), jsonable(new)] for k, (old, new) in self.diff.items()},
        }


@dataclass(frozen=True)
class History:
    topic: str
    key: Any
    scanned: int
    versions: list[Version] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "key": jsonable(self.key),
            "records_scanned": self.scanned,
            "versions": [v.to_dict() for v in self.versions],
        }


def resolve_topic(name: str, topics: set[str]) -> str:
    """The topic ``name`` stands for: a topic, ``system.table`` or an entity; else a list of near names."""
    candidates = [name]
    if "." in name and not name.startswith("unsilo."):
        system, _, table = name.partition(".")
        candidates.append(raw_topic(system, table))
    candidates.append(canonical_topic(_CAMEL.sub("_", name).lower()))
    for candidate in candidates:
        if candidate in topics:
            return candidate
    short = {t.removeprefix("unsilo.raw.").removeprefix("unsilo.canonical."): t for t in topics}
    close = difflib.get_close_matches(name, list(short) + list(topics), n=5, cutoff=0.6)
    suggestions = sorted({short.get(c, c) for c in close})
    raise UnknownTopicError(
        f"no topic, table or entity called {name!r}",
        hint=f"did you mean: {', '.join(suggestions)}"
        if suggestions
        else "see `unsilo topics` for the topics",
    )


def versions_of(records: list[Record]) -> list[Version]:
    """The versions ``records`` (one key's records, oldest first) make, each diffed with the previous."""
    found: list[Version] = []
    previous: dict[str, Any] | None = None
    for record in records:
        value = record.value
        headers = record.headers
        source_ts = _int(headers.get("unsilo.source.ts_ms"))
        position = None
        if "unsilo.source.topic" in headers:
            position = f"{headers['unsilo.source.topic']}@{headers.get('unsilo.source.offset', '?')}"
        if value is None:
            op = headers.get("unsilo.op") or "tombstone"
            after, old = None, previous or {}
        elif isinstance(value, dict) and value.keys() >= ENVELOPE_FIELDS:
            op = str(value["op"])
            source = value.get("source") or {}
            position = str(source.get("position")) if source.get("position") is not None else position
            source_ts = _int(source.get("ts_ms")) if source.get("ts_ms") is not None else source_ts
            after = value.get("after")
            old = (value.get("before") or previous or {}) if after is None else (previous or {})
        else:
            op = headers.get("unsilo.op") or "event"
            after = value if isinstance(value, dict) else {"value": value}
            old = previous or {}
        found.append(
            Version(
                record.partition,
                record.offset,
                op,
                value is None,
                position,
                source_ts,
                record.timestamp_ms,
                after,
                diff(old, after or {}),
            )
        )
        previous = after
    return found


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field whose value differs (absent counts as None)."""
    names = list(old) + [n for n in new if n not in old]
    return {n: [old.get(n), new.get(n)] for n in names if old.get(n) != new.get(n)}


def history(settings: Settings, name: str, key: str, progress: Progress | None = None) -> History:
    """Every version of the record ``key`` in the topic ``name`` resolves to, oldest first."""
    facts = TopicFacts(settings.kafka)
    shapes = facts.shapes()
    topic = resolve_topic(name, set(shapes))
    registry = ConfluentRegistry(settings.registry)
    subject = key_subject(topic)
    numbers = registry.versions(subject)
    if not numbers:
        raise SchemaError(f"{topic} has no key schema ({subject} is not in the registry)")
    versions = [registry.version(subject, n) for n in numbers]
    wanted = parse_key(key, versions[-1].schema)
    expected = encodings(wanted, versions)
    serde = AvroSerde(registry)

    def matches(raw: bytes | None) -> bool:
        if raw is None:
            return False
        if expected:
            return raw in expected
        return same_key(serde.decode(raw), wanted)

    shape = shapes[topic]
    ranges = facts.watermarks([shape])
    likely = sorted({partition_for(k, shape.partitions) for k in expected}) or list(range(shape.partitions))
    found, scanned = _scan(settings, topic, likely, ranges, matches, progress)
    rest = [p for p in range(shape.partitions) if p not in likely]
    if not found and rest:
        more, extra = _scan(settings, topic, rest, ranges, matches, progress)
        found, scanned = more, scanned + extra
    if not found:
        raise UnknownRecordError(
            f"no record with key {key_text(wanted)} in {topic} ({scanned:,} records scanned)",
            hint="check the key's value and type; `unsilo topics` shows the key schema",
        )
    records = [
        Record(
            m.partition() or 0,
            m.offset() or 0,
            _stamp(m),
            _headers(m),
            serde.decode(m.value()),
        )
        for m in found
    ]
    return History(topic, wanted, scanned, versions_of(records))


def _scan(
    settings: Settings,
    topic: str,
    partitions: list[int],
    ranges: dict[tuple[str, int], tuple[int, int]],
    matches: Callable[[bytes | None], bool],
    progress: Progress | None,
    idle_timeout_s: float = 30.0,
) -> tuple[list[Message], int]:
    """The committed records of ``partitions`` whose key ``matches``, and how many were read."""
    bounds = {p: ranges.get((topic, p), (0, 0)) for p in partitions}
    pending = {p for p, (low, high) in bounds.items() if high > low}
    total = sum(high - low for low, high in bounds.values())
    found: list[Message] = []
    scanned = 0
    if not pending:
        return found, 0
    # fetch.wait.max.ms: at a partition's end the broker would hold each fetch 500 ms
    config = {**consumer_config(settings.kafka), "enable.partition.eof": True, "fetch.wait.max.ms": 10}
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + idle_timeout_s
        while pending:
            batch = consumer.consume(2000, 0.5)
            if not batch and time.monotonic() > deadline:
                raise translate(None, settings.kafka.bootstrap_servers, f"reading {topic} to its end")
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition() or 0)
                        continue
                    raise translate(error, settings.kafka.bootstrap_servers, f"reading {topic}")
                scanned += 1
                if matches(message.key()):
                    found.append(message)
            if batch:
                deadline = time.monotonic() + idle_timeout_s
                if progress is not None:
                    progress(scanned, total)
    except KafkaException as exc:
        raise translate(exc, settings.kafka.bootstrap_servers, f"reading {topic}") from exc
    finally:
        consumer.close()
    found.sort(key=lambda m: (m.timestamp()[1], m.partition() or 0, m.offset() or 0))
    return found, scanned


def jsonable(value: Any) -> Any:
    """``value`` with Decimal, dates, bytes and UUIDs as text, for JSON and tables."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def _headers(message: Message) -> dict[str, str]:
    found = {}
    for header in message.headers() or []:
        name, value = header[0], header[1]
        if isinstance(value, bytes):
            found[str(name)] = value.decode("utf-8", "replace")
    return found


def _stamp(message: Message) -> int | None:
    stamp = message.timestamp()[1]
    return stamp if stamp >= 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
