"""The faust agent of the mirror read model: decode, then hand batches to the builder."""

from __future__ import annotations

from typing import Any

import faust
import structlog
from sqlalchemy import create_engine

from hub.config import Settings
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from projections.faust_app import create_app, topic_pattern
from projections.table_mirror.builder import MirrorBuilder, RawEvent

log = structlog.get_logger(__name__)

BATCH = 1000
WITHIN_S = 0.05


def decode_event(serde: AvroSerde, message: Any) -> RawEvent:
    """A RawEvent from a faust/aiokafka message of a raw topic."""
    key, key_schema = serde.decode_with_schema(message.key) if message.key else (None, None)
    value, value_schema = serde.decode_with_schema(message.value) if message.value else (None, None)
    return RawEvent(
        message.topic, message.partition, message.offset, key, value, key_schema, value_schema
    )


def build_app(settings: Settings, *, prefix: str = "unsilo.raw.", projection: str = "mirror") -> faust.App:
    """The mirror projection over every raw topic under ``prefix``."""
    app = create_app(settings, f"unsilo-projection-{projection}")
    topic = app.topic(pattern=topic_pattern(prefix), key_serializer="raw", value_serializer="raw")
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    builder = MirrorBuilder(create_engine(settings.read_store.url), projection)

    @app.agent(topic)
    async def apply(stream: faust.StreamT[Any]) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            batch = [decode_event(serde, event.message) for event in events]
            applied = builder.apply(batch)
            log.debug("mirror_batch_applied", events=len(batch), applied=applied)

    return app


def run_worker(settings: Settings, *, prefix: str = "unsilo.raw.", loglevel: str = "warn") -> None:
    """Run the mirror projection until interrupted."""
    app = build_app(settings, prefix=prefix)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
