"""Builds faust apps for projections: read_committed consumers of raw topics, raw bytes.

Values are decoded with the hub's Avro serde; each projection's logic stays in plain code
(a builder) and the faust agent is a thin adapter that hands it batches of events.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from hub.config import KafkaSettings, Settings
from hub.errors import UnsiloError
from hub.kafka.errors import translate
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from projections.events import Builder, RawEvent, decode

log = structlog.get_logger(__name__)

SESSION_TIMEOUT_S = 10.0
_GROUP_BUSY = {
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
}


def _read_committed_consumers() -> None:
    """Make faust's consumers read only committed transactions, without its exactly_once mode.

    faust enables ``read_committed`` only with ``processing_guarantee="exactly_once"``,
    whose transactional producer fails on shutdown with aiokafka 0.14 ("Not in the middle
    of a transaction"). Our projections get exactly-once from the read store (rows and
    offsets in one SQL transaction) and need only the isolation level.
    """
    original = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_unsilo_read_committed", False):
        return

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._isolation_level = "read_committed"  # read by AIOKafkaConsumer.start()
        return consumer

    create._unsilo_read_committed = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


_read_committed_consumers()


def broker_url(bootstrap_servers: str) -> str:
    """faust's broker URL for a librdkafka-style bootstrap list."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(","))


def create_app(settings: Settings, app_id: str, datadir: Path | None = None, **extra: Any) -> faust.App:
    """A faust app that only sees committed transactions and keeps no local state."""
    directory = datadir or settings.local.data_dir / "faust" / app_id
    directory.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        broker=broker_url(settings.kafka.bootstrap_servers),
        store="memory://",
        topic_disable_leader=True,
        topic_allow_declare=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=3.0,
        datadir=str(directory),
        **extra,
    )


def align_group_offsets(
    settings: KafkaSettings,
    group: str,
    topics: list[str],
    applied: dict[tuple[str, int], int],
    wait_s: float = SESSION_TIMEOUT_S * 3,
) -> None:
    """Commit, for consumer group ``group``, the offset after the last applied one.

    Called before the worker joins its group: faust then starts each partition where the
    read store left off, whatever the group had committed (a crash can leave the group's
    offsets ahead of or behind the read store; the read store is the truth).
    """
    consumer = Consumer({**settings.client_config(), "group.id": group, "enable.auto.commit": False})
    deadline = time.monotonic() + wait_s
    try:
        offsets = []
        for topic in topics:
            described = consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in described.partitions:
                done = applied.get((topic, partition))
                offsets.append(TopicPartition(topic, partition, 0 if done is None else done + 1))
        while True:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                break
            except KafkaException as exc:
                # A member of a killed worker stays in the group until its session expires.
                error = exc.args[0]
                busy = error.code() in _GROUP_BUSY if isinstance(error, KafkaError) else False
                if not busy or time.monotonic() > deadline:
                    raise
                log.info("projection_group_busy", group=group, error=error.name())
                time.sleep(1.0)
        log.info("projection_offsets_aligned", group=group, partitions=len(offsets))
    except KafkaException as exc:
        raise translate(exc, settings.bootstrap_servers, f"aligning offsets of {group}") from exc
    finally:
        consumer.close()


BATCH = 1000
WITHIN_S = 0.05


def projection_app(
    settings: Settings, projection: str, topics: list[str], builder: Builder, *, group: str | None = None
) -> faust.App:
    """A faust app whose single agent decodes batches of ``topics`` and hands them to ``builder``.

    The read store, not the group's committed offsets, says what was applied: the group is
    aligned to it before the worker joins. The consumer group (and faust app id) is
    ``unsilo-projection-<projection>`` unless ``group`` names another: a second deployment
    on the same cluster needs its own, or the two workers share (and fight over) one group.
    """
    app_id = group or f"unsilo-projection-{projection}"
    align_group_offsets(settings.kafka, app_id, topics, builder.applied_offsets())
    app = create_app(settings, app_id)
    topic = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    serde = AvroSerde(ConfluentRegistry(settings.registry))

    @app.agent(topic)
    async def apply(stream: faust.StreamT[Any]) -> None:
        try:
            async for events in stream.take_events(BATCH, within=WITHIN_S):  # type: ignore[attr-defined]
                batch = await decode_batch(serde, projection, [event.message for event in events])
                applied = builder.apply(batch)
                log.debug(
                    "projection_batch_applied", projection=projection, events=len(batch), applied=applied
                )
        except Exception as exc:  # a dead agent must stop the worker, not idle silently
            log.error("projection_crashed", projection=projection, error=str(exc))
            await app.crash(exc)
            raise

    return app


async def decode_batch(serde: AvroSerde, projection: str, messages: list[Any]) -> list[RawEvent]:
    """The batch decoded; while the registry is away (restarting) wait for it, never crash."""
    backoff = 0.5
    while True:
        try:
            return [decode(serde, m.topic, m.partition, m.offset, m.key, m.value) for m in messages]
        except UnsiloError as exc:
            if not exc.retriable:
                raise
            log.warning("projection_waiting", projection=projection, error=exc.message, backoff_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def run_app(app: faust.App, loglevel: str = "warn") -> None:
    """Run a projection app until interrupted."""
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
