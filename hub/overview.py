"""One picture of the hub: components, sources, consumer lag, capture lag, freshness, DLQs.

``Observer.snapshot()`` gathers it for `unsilo status` and for each tick of the API's
sampler. A part that cannot be read (broker down, registry down, read store missing) is
left empty and named in ``errors``; the picture is never an exception.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from hub.config import Settings
from hub.errors import UnsiloError
from hub.health import Component, check_all
from hub.lag import LagReport
from hub.lag_monitor import LagMonitor, now_ms
from hub.lag_source import LagSource
from hub.pipeline import CaptureLag, Freshness, PipelineReader
from hub.retention_guard import RetentionCheck, check_retention
from hub.status import SourceStatus, load_statuses

log = structlog.get_logger(__name__)
RETENTION_EVERY_S = 60.0


@dataclass
class Snapshot:
    """Everything an operator looks at, as of ``taken_ms``."""

    taken_ms: int
    components: list[Component] = field(default_factory=list)
    lag: LagReport | None = None
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    capture: list[CaptureLag] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)
    retention: RetentionCheck | None = None  # history topics whose config would delete history
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken_ms": self.taken_ms,
            "duration_ms": self.duration_ms,
            "components": [c.to_dict() for c in self.components],
            "sources": [_source_dict(s) for s in sorted(self.sources.values(), key=lambda s: s.source)],
            "groups": [g.summary() for _, g in sorted(self.lag.groups.items())] if self.lag else [],
            "capture": [c.to_dict() for c in self.capture],
            "read_models": [f.to_dict() for f in self.freshness],
            "dead_letters": [{"topic": t, "records": n} for t, n in sorted(self.dead_letters.items())],
            "retention": _retention_dict(self.retention),
            "errors": list(self.errors),
        }


def _retention_dict(check: RetentionCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "status": check.status,
        "summary": check.summary(),
        "findings": [f.to_dict() for f in check.findings],
    }


def _source_dict(status: SourceStatus) -> dict[str, Any]:
    data = asdict(status)
    data["tables"] = [{"table": name, **value} for name, value in sorted(data["tables"].items())]
    return data


class Observer:
    """Gathers snapshots; keeps its Kafka clients and caches between calls."""

    def __init__(self, settings: Settings, monitor: LagMonitor | None = None) -> None:
        self.settings = settings
        self.source = LagSource(settings.kafka, timeout_s=max(2.0, settings.api.check_timeout_s * 2))
        self.monitor = monitor or LagMonitor(settings, source=self.source)
        self.pipeline = PipelineReader(settings, self.source, self.monitor)
        self._retention: tuple[float, RetentionCheck] | None = None

    def snapshot(self, *, lag: bool = True) -> Snapshot:
        started = time.monotonic()
        snap = Snapshot(taken_ms=now_ms(), components=check_all(self.settings))
        broker = snap.component("broker")
        if broker is None or not broker.up:
            snap.errors.append(
                f"broker down at {self.settings.kafka.bootstrap_servers}: lag and topics not read"
            )
            snap.duration_ms = _ms(started)
            return snap
        if lag:
            snap.lag = self._part(snap, "consumer lag", lambda: self.monitor.sample())
        snap.sources = (
            self._part(snap, "connector statuses", lambda: load_statuses(self.settings.kafka)) or {}
        )
        topics = self._part(snap, "topics", self.pipeline.topics) or set()
        registry = snap.component("registry")
        decode = registry is not None and registry.up
        snap.capture = (
            self._part(
                snap, "capture lag", lambda: self.pipeline.capture(snap.sources, topics, decode=decode)
            )
            or []
        )
        snap.freshness = self._part(snap, "read-model freshness", self.pipeline.freshness) or []
        snap.dead_letters = self._part(snap, "dead letters", lambda: self.pipeline.dead_letters(topics)) or {}
        snap.retention = self._part(snap, "retention", self._retention_check)
        snap.duration_ms = _ms(started)
        return snap

    def _retention_check(self) -> RetentionCheck:
        """The retention guard's findings, read at most every RETENTION_EVERY_S (topic configs
        change rarely; the API samples every second)."""
        now = time.monotonic()
        if self._retention is None or now - self._retention[0] >= RETENTION_EVERY_S:
            self._retention = (now, check_retention(self.settings))
        return self._retention[1]

    @staticmethod
    def _part(snap: Snapshot, what: str, read: Any) -> Any:
        try:
            return read()
        except UnsiloError as exc:
            snap.errors.append(f"{what}: {exc.message}")
            log.warning("snapshot_part_failed", part=what, error=exc.message)
            return None

    def close(self) -> None:
        self.monitor.close()


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
