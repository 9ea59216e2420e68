"""Point-in-time replay: a read model rebuilt as it stood at an instant T, into a throwaway store.

What "as of T" means, per input topic-partition:

- the cut is the first offset whose Kafka timestamp is after T (``offsets_for_times`` asked
  for T + 1 ms; a partition with nothing after T is cut at its end offset). Records before
  the cut are replayed, the cut and everything after it are not. This assumes a partition's
  timestamps do not go backwards, which holds for the hub's topics: each has one
  transactional writer stamping records with its clock (CreateTime);
- and among those, an event committed in the source after T (its envelope's
  ``source.ts_ms`` > T, where the event has one: raw change events do, canonical records
  do not) is left out too, with the tombstone that follows it. Source commit time comes
  before the Kafka timestamp unless the source's clock runs ahead of the hub's; this rule
  keeps "as of T" true in that case as well.

Read committed: a record of a transaction the broker aborted is never replayed.

T is an ISO-8601 instant (``2026-11-27T12:00:00Z``, ``2026-11-27T13:00:00+01:00``; one
without a zone is read as UTC) or milliseconds since the epoch. T in the future, or before
the first record of the input topics, is refused with the reason; so is a target store
that is not empty (unless ``replace``) or that is the live read store.

The replayed tables come from the read model's own builder, so they have the live tables'
shape; the target also gets the positions table (offsets applied, as live stores do).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from sqlalchemy import Engine, MetaData, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hub.config import Settings
from hub.errors import ConfigError
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate
from projections.events import Builder, RawEvent
from projections.read_models import ReadModel, read_model
from projections.replay import Progress, replay
from projections.store import create_read_store

log = structlog.get_logger(__name__)

Partition = tuple[str, int]
PROBE_TIMEOUT_S = 10.0


def parse_instant(value: str) -> int:
    """Milliseconds since the epoch for ``value``: epoch ms, or ISO-8601 (no zone = UTC)."""
    text_value = value.strip()
    if text_value.isdigit():
        return int(text_value)
    try:
        parsed = dt.datetime.fromisoformat(text_value)
    except ValueError as exc:
        raise ConfigError(
            f"cannot read the instant {value!r}",
            hint="write it as ISO-8601 (2026-11-27T12:00:00Z; no zone means UTC) or epoch milliseconds",
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def iso(ms: int) -> str:
    """``ms`` since the epoch as an ISO-8601 UTC instant with milliseconds."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class AsOfFilter:
    """Passes to ``inner`` only the events committed in the source at or before ``as_of_ms``."""

    inner: Builder
    as_of_ms: int
    skipped: int = 0
    _dropped_keys: dict[Partition, Any] = field(default_factory=dict)

    def apply(self, events: Sequence[RawEvent]) -> int:
        kept = []
        for event in events:
            where = (event.topic, event.partition)
            if event.value is None:  # a tombstone goes where the delete before it went
                if where in self._dropped_keys and self._dropped_keys[where] == event.key:
                    self.skipped += 1
                    continue
            elif _source_ts(event.value) > self.as_of_ms:
                self.skipped += 1
                self._dropped_keys[where] = event.key
                continue
            self._dropped_keys.pop(where, None)
            kept.append(event)
        return self.inner.apply(kept) if kept else 0

    def applied_offsets(self) -> dict[Partition, int]:
        return self.inner.applied_offsets()


def _source_ts(value: dict[str, Any]) -> int:
    source = value.get("source")
    if isinstance(source, dict) and isinstance(source.get("ts_ms"), int):
        return int(source["ts_ms"])
    return -1  # no source commit time: the Kafka timestamp cut alone decides


@dataclass(frozen=True)
class ReplayResult:
    read_model: str
    as_of_ms: int
    into: str  # the target URL, password hidden
    read: int  # records read up to the cuts
    skipped: int  # of those, left out as committed in the source after T
    cuts: dict[Partition, int]  # exclusive end offset per input partition

    @property
    def applied(self) -> int:
        return self.read - self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "read_model": self.read_model,
            "as_of": iso(self.as_of_ms),
            "as_of_ms": self.as_of_ms,
            "into": self.into,
            "events_read": self.read,
            "events_applied": self.applied,
            "events_skipped_committed_after_as_of": self.skipped,
            "cuts": [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(self.cuts.items())],
        }


@dataclass(frozen=True)
class PointInTimeReplay:
    """A checked replay request; :meth:`run` does the work (long: run it where that is fine)."""

    settings: Settings
    model: ReadModel
    as_of_ms: int
    into: str
    replace: bool = False

    def cut(self) -> dict[Partition, int]:
        """The exclusive end offset of every input partition (refusing T before the log)."""
        topics = self.model.topics(self.settings)
        if not topics:
            raise ConfigError(f"no topic feeds {self.model.name} yet", hint="start a connector first")
        return cut_offsets(self.settings, topics, self.as_of_ms)

    def run(self, progress: Progress | None = None, cuts: dict[Partition, int] | None = None) -> ReplayResult:
        """Replay up to ``cuts`` (default: :meth:`cut`) into the target."""
        cuts = cuts if cuts is not None else self.cut()
        topics = sorted({topic for topic, _ in cuts})
        engine = open_target(self.into, self.settings.read_store.url, replace=self.replace)
        try:
            builder = AsOfFilter(self.model.builder(engine, self.model.name, ""), self.as_of_ms)
            read = replay(self.settings, topics, builder, until=cuts, progress=progress)
            if progress is not None:  # the estimate counted transaction markers' offsets too
                progress(read, read)
        finally:
            engine.dispose()
        result = ReplayResult(self.model.name, self.as_of_ms, _shown(self.into), read, builder.skipped, cuts)
        log.info(
            "point_in_time_replay_done",
            read_model=self.model.name,
            as_of_ms=self.as_of_ms,
            read=read,
            skipped=builder.skipped,
        )
        return result


def prepare(
    settings: Settings, read_model_name: str, as_of: str, into: str, *, replace: bool = False
) -> PointInTimeReplay:
    """Check what can be checked without Kafka (read model, instant, target); the
    ``unsilo.replay`` entry point, so the HTTP API refuses bad input before starting."""
    model = read_model(read_model_name)
    as_of_ms = parse_instant(as_of)
    now_ms = int(time.time() * 1000)
    if as_of_ms > now_ms:
        raise ConfigError(
            f"{iso(as_of_ms)} is in the future (now is {iso(now_ms)})",
            hint="choose an instant in the past; the live read model already shows the present",
        )
    open_target(into, settings.read_store.url, replace=replace, check_only=True).dispose()
    return PointInTimeReplay(settings, model, as_of_ms, into, replace)


def cut_offsets(settings: Settings, topics: list[str], as_of_ms: int) -> dict[Partition, int]:
    """Per partition of ``topics``, the first offset after ``as_of_ms`` (exclusive end)."""
    bootstrap = settings.kafka.bootstrap_servers
    consumer = Consumer(consumer_config(settings.kafka, f"unsilo-asof-{uuid.uuid4().hex[:8]}"))
    try:
        bounds: dict[Partition, tuple[int, int]] = {}
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=PROBE_TIMEOUT_S).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=PROBE_TIMEOUT_S
                )
                bounds[(topic, partition)] = (low, high)
        _check_history(consumer, bounds, as_of_ms, bootstrap)
        asked = [TopicPartition(t, p, as_of_ms + 1) for (t, p) in bounds]
        found = consumer.offsets_for_times(asked, timeout=PROBE_TIMEOUT_S) if asked else []
        cuts = {}
        for tp in found:
            if tp.error is not None:
                raise translate(tp.error, bootstrap, f"finding the offset at {iso(as_of_ms)}")
            where = (tp.topic, tp.partition)
            cuts[where] = tp.offset if tp.offset >= 0 else bounds[where][1]
        return cuts
    except KafkaException as exc:
        raise translate(exc, bootstrap, "finding the offsets at an instant") from exc
    finally:
        consumer.close()


def _check_history(
    consumer: Consumer, bounds: dict[Partition, tuple[int, int]], as_of_ms: int, bootstrap: str
) -> None:
    """Refuse an instant before the first record of the input topics, or before the first
    record kept of a partition whose older records were deleted (retention)."""
    firsts = _first_timestamps(
        consumer, {tp: low for tp, (low, high) in bounds.items() if high > low}, bootstrap
    )
    if not firsts:
        raise ConfigError("the input topics hold no events yet", hint="start a connector first")
    truncated = [tp for tp in firsts if bounds[tp][0] > 0 and firsts[tp] > as_of_ms]
    earliest = min(firsts, key=lambda tp: (firsts[tp], tp))
    too_early = truncated[0] if truncated else earliest if firsts[earliest] > as_of_ms else None
    if too_early is not None:
        topic, partition = too_early
        raise ConfigError(
            f"history starts at {iso(firsts[too_early])} (topic {topic} partition {partition}): "
            f"choose a later instant than {iso(as_of_ms)}",
            hint=f"the log holds nothing older; replay as of {iso(firsts[too_early])} or later",
        )


def _first_timestamps(
    consumer: Consumer, starts: dict[Partition, int], bootstrap: str
) -> dict[Partition, int]:
    """The Kafka timestamp of the first committed record of each partition in ``starts``."""
    if not starts:
        return {}
    consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
    firsts: dict[Partition, int] = {}
    pending = set(starts)
    deadline = time.monotonic() + PROBE_TIMEOUT_S * 3
    try:
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            where = (message.topic() or "", message.partition() or 0)
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise translate(error, bootstrap, "reading the first records")
            elif where in pending:
                firsts[where] = message.timestamp()[1]
            pending.discard(where)
    finally:
        consumer.unassign()
    return firsts


def open_target(into: str, live_url: str, *, replace: bool, check_only: bool = False) -> Engine:
    """The engine of the throwaway store at ``into``: empty, or emptied when ``replace``."""
    try:
        target = make_url(into)
    except ArgumentError as exc:
        raise ConfigError(
            f"{into!r} is not a SQLAlchemy URL", hint="e.g. sqlite:///pit.db or postgresql://host/db"
        ) from exc
    if _same_store(target.render_as_string(hide_password=False), live_url):
        raise ConfigError(
            "the target is the live read store",
            hint="replay into a throwaway store: a new SQLite file or an empty database",
        )
    engine = create_read_store(into)
    shown = _shown(into)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            names = sorted(inspector.get_table_names()) + sorted(inspector.get_view_names())
        if names and not replace:
            engine.dispose()
            listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise ConfigError(
                f"{shown} is not empty ({len(names)} tables or views: {listed})",
                hint="point --into at a new database, or add --replace to empty it first",
            )
        if names and replace and not check_only:
            _empty(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError(
            f"cannot open {shown}: {exc.__class__.__name__}",
            hint="check the --into URL; the database (or the SQLite file's folder) must exist",
        ) from exc
    return engine


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for view in inspect(conn).get_view_names():
            conn.execute(text(f"DROP VIEW {conn.dialect.identifier_preparer.quote(view)}"))
        reflected = MetaData()
        reflected.reflect(conn)
        reflected.drop_all(conn)


def _same_store(into: str, live_url: str) -> bool:
    return into == live_url or make_url(into) == make_url(live_url)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def replay_as_of(
    settings: Settings,
    read_model_name: str,
    as_of: str,
    into: str,
    *,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Rebuild ``read_model_name`` as of ``as_of`` into the store at ``into``."""
    return prepare(settings, read_model_name, as_of, into, replace=replace).run(progress)
