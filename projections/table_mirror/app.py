"""The faust agent of the mirror read model: decode, then hand batches to the builder."""

from __future__ import annotations

import time

import faust
import structlog

from hub.config import Settings
from hub.errors import ConfigError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import raw_topic
from projections.faust_app import projection_app, run_app
from projections.store import create_read_store
from projections.table_mirror.builder import MirrorBuilder

log = structlog.get_logger(__name__)

BATCH = 1000
WITHIN_S = 0.05


def raw_topics(settings: Settings, prefix: str, wait_s: float = 60.0) -> list[str]:
    """The raw topics of the configured sources (every one under ``prefix`` when none are
    configured) that exist, waiting up to ``wait_s`` for the first to appear."""
    configured = {raw_topic(s.system, t.name) for s in settings.sources for t in s.tables}
    admin = KafkaAdmin(settings.kafka)
    deadline = time.monotonic() + wait_s
    while True:
        names = sorted(
            n for n in admin.topic_names() if n.startswith(prefix) and (not configured or n in configured)
        )
        if names or time.monotonic() > deadline:
            return names
        time.sleep(1.0)


def build_app(settings: Settings, *, prefix: str = "unsilo.raw.", projection: str = "mirror") -> faust.App:
    """The mirror projection over the raw topics that exist at start.

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
    builder = MirrorBuilder(create_read_store(settings.read_store.url), projection)
    return projection_app(settings, projection, topics, builder)


def run_worker(settings: Settings, *, prefix: str = "unsilo.raw.", loglevel: str = "warn") -> None:
    """Run the mirror projection until interrupted."""
    run_app(build_app(settings, prefix=prefix), loglevel)
