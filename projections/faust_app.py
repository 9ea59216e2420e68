"""Builds faust apps for projections: read_committed consumers of raw topics, raw bytes.

Values are decoded with the hub's Avro serde; each projection's logic stays in plain code
(a builder) and the faust agent is a thin adapter that hands it batches of events.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import faust

from hub.config import Settings


def broker_url(bootstrap_servers: str) -> str:
    """faust's broker URL for a librdkafka-style bootstrap list."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(","))


def create_app(settings: Settings, app_id: str, datadir: Path | None = None, **extra: Any) -> faust.App:
    """A faust app that only sees committed transactions and keeps no local state."""
    return faust.App(
        app_id,
        broker=broker_url(settings.kafka.bootstrap_servers),
        store="memory://",
        processing_guarantee="exactly_once",
        topic_disable_leader=True,
        topic_allow_declare=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        datadir=str(datadir or settings.local.data_dir / "faust" / app_id),
        **extra,
    )


def topic_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix) + ".*")
