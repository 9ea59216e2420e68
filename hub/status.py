"""Each connector's state, published to the compacted ``_unsilo.status`` topic.

The runner writes its status in the same transaction as every batch (and on its own when
it starts retrying or stops), so ``unsilo connectors`` shows, for each source and table:
snapshotting n/N rows, streaming, retrying (why), or stopped (why, and the fix).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hub.config import KafkaSettings
from hub.kafka.consumer import read_to_end
from hub.kafka.topics import STATUS_TOPIC


@dataclass
class TableStatus:
    state: str = "waiting"  # waiting, snapshotting, streaming, stopped
    rows: int = 0
    total: int | None = None
    reason: str | None = None
    fix: str | None = None


@dataclass
class SourceStatus:
    source: str
    system: str
    kind: str
    state: str = "starting"  # starting, running, retrying, stopped
    reason: str | None = None
    events: int = 0
    dead_lettered: int = 0
    quarantined: int = 0
    position: str | None = None
    updated_ms: int = 0
    tables: dict[str, TableStatus] = field(default_factory=dict)

    def table(self, name: str) -> TableStatus:
        return self.tables.setdefault(name, TableStatus())

    def encode(self) -> bytes:
        self.updated_ms = int(time.time() * 1000)
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")


def decode_status(data: bytes) -> SourceStatus:
    raw: dict[str, Any] = json.loads(data)
    tables = {name: TableStatus(**value) for name, value in raw.pop("tables", {}).items()}
    return SourceStatus(**raw, tables=tables)


def load_statuses(settings: KafkaSettings) -> dict[str, SourceStatus]:
    """The latest status of every source that ever published one."""
    latest: dict[str, SourceStatus] = {}
    for message in read_to_end(settings, STATUS_TOPIC, stable=False):
        key, value = message.key(), message.value()
        if key is None:
            continue
        if value is None:
            latest.pop(key.decode("utf-8"), None)
        else:
            latest[key.decode("utf-8")] = decode_status(value)
    return latest


def describe_table(status: TableStatus) -> str:
    """A short human description: 'snapshotting 2000/10000 rows', 'stopped: ...'."""
    if status.state == "snapshotting":
        total = f"/{status.total}" if status.total is not None else ""
        return f"snapshotting {status.rows}{total} rows"
    if status.state == "stopped":
        return f"stopped: {status.reason}"
    return status.state
