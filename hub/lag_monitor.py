"""Consumer lag end to end: read offsets, update the durable windows, evaluate.

Used by ``unsilo lag`` (one sample per run) and by the API's sampler (one per
``api.lag_interval_s``); both write the same window history, so either sees the other's
observations, and a restart carries on where it stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from hub.config import Settings
from hub.errors import UnknownGroupError
from hub.lag import GroupInfo, LagReport, PartitionOffsets, WindowConfig, Windows, evaluate
from hub.lag_history import LagHistory, history_path
from hub.lag_source import LagSource


def window_config(settings: Settings) -> WindowConfig:
    return WindowConfig(window=settings.api.lag_window, interval_ms=int(settings.api.lag_interval_s * 1000))


class LagMonitor:
    """Samples consumer groups and keeps their windows (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: LagSource | None = None,
        history: LagHistory | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = window_config(settings)
        self.source = source or LagSource(settings.kafka)
        self.history = history or LagHistory(history_path(settings))
        self._windows: Windows = {}
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    def sample(self, groups: list[str] | None = None) -> LagReport:
        """Read every group (or only ``groups``), observe and evaluate.

        UnknownGroupError (exit 2) names any of ``groups`` the broker does not know.
        """
        partitions, infos = self.source.read(groups)
        if groups is not None:
            missing = [g for g in groups if g not in infos]
            if missing:
                raise unknown_groups(missing, self.settings.kafka.bootstrap_servers)
        return self.evaluate(partitions, infos)

    def evaluate(self, partitions: Iterable[PartitionOffsets], infos: Mapping[str, GroupInfo]) -> LagReport:
        """Observe already-read offsets (consumer groups or read models) and evaluate them."""
        with self._lock:
            self._load(infos)
            report, changed = evaluate(partitions, infos, self._windows, now_ms(), self.cfg)
            self.history.save(self._windows, changed)
        return report

    def _load(self, infos: Mapping[str, GroupInfo]) -> None:
        new = [name for name in infos if name not in self._loaded]
        if new:
            self._windows.update(self.history.load(new))
            self._loaded.update(new)

    def close(self) -> None:
        self.history.close()


def unknown_groups(missing: list[str], bootstrap: str) -> UnknownGroupError:
    names = ", ".join(repr(g) for g in missing)
    return UnknownGroupError(
        f"unknown consumer group {names}: the broker at {bootstrap} has no such group",
        hint="run `unsilo lag` without arguments to list the groups it knows",
    )


def now_ms() -> int:
    return int(time.time() * 1000)
