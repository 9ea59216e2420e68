"""The faust agent of the mirror read model: decode, then hand batches to the builder."""

from __future__ import annotations

import time
from typing import Any

import faust
import structlog
from sqlalchemy import create_engine

from hub.config import Settings
from hub.errors import ConfigError
from hub.kafka.admin import KafkaAdmin
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from projections.events import decode
from projections.faust_app import align_group_offsets, create_app
from projections.table_mirror.builder import MirrorBuilder

log = structlog.get_logger(__name__)

BATCH = 1000
WITHIN_S = 0.05


def raw_topics(settings: Settings, prefix: str, wait_s: float = 60.0) -> list[str]:
    """The raw topics under ``prefix``, waiting up to ``wait_s`` for the first to appear."""
    admin = KafkaAdmin(settings.kafka)
    deadline = time.monotonic() + wait_s
    while True:
        names = sorted(n for n in admin.topic_names() if n.startswith(prefix))
        if names or time.monotonic() > deadline:
            return names
        time.sleep(1.0)


def build_app(settings: Settings, *, prefix: str = "unsilo.raw.", projection: str = "mirror") -> faust.App:
    """The mirror projection over the raw topics under ``prefix`` that exist at start.

    aiokafka 0.14 cannot subscribe faust to a topic pattern, so topics are listed once;
    a raw topic created later is picked up when the worker restarts.
    """
    topics = raw_topics(settings, prefix)
    if not topics:
        raise ConfigError(
            f"no topic starting with {prefix!r} exists yet",
            hint="start a connector first (`unsilo run <source>`)",
        )
    log.info("mirror_topics", topics=topics)
    builder = MirrorBuilder(create_engine(settings.read_store.url), projection)
    app_id = f"unsilo-projection-{projection}"
    # The read store, not the group's committed offsets, says what was applied.
    align_group_offsets(settings.kafka, app_id, topics, builder.applied_offsets())
    app = create_app(settings, app_id)
    topic = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    serde = AvroSerde(ConfluentRegistry(settings.registry))

    @app.agent(topic)
    async def apply(stream: faust.StreamT[Any]) -> None:
        try:
            async for events in stream.take_events(BATCH, within=WITHIN_S):  # type: ignore[attr-defined]
                batch = [
                    decode(serde, m.topic, m.partition, m.offset, m.key, m.value)
                    for m in (event.message for event in events)
                ]
                applied = builder.apply(batch)
                log.debug("mirror_batch_applied", events=len(batch), applied=applied)
        except Exception as exc:  # a dead agent must stop the worker, not idle silently
            log.error("projection_crashed", projection=projection, error=str(exc))
            await app.crash(exc)
            raise

    return app


def run_worker(settings: Settings, *, prefix: str = "unsilo.raw.", loglevel: str = "warn") -> None:
    """Run the mirror projection until interrupted."""
    app = build_app(settings, prefix=prefix)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
