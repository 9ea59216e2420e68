"""Alerts: a webhook on every status transition, de-duplicated, with recovery messages.

Each watched subject (``component:broker``, ``group:<id>``, ``capture:<source>.<table>``,
``read_model:<name>``) has a last known status. Only a change is announced: healthy to
unhealthy fires, one unhealthy status to another (STALL -> STOP) fires again, unhealthy
back to healthy sends a recovery ("resolved"); the same status seen again sends nothing.
Last statuses are kept in the lag-history file, so a restart does not fire again what was
already announced. The JSON body carries ``text`` (Slack/Mattermost-compatible) and fields.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
import structlog

from hub.overview import Snapshot

log = structlog.get_logger(__name__)

HEALTHY = {"OK", "UP", "SNAPSHOT"}
SILENT = {"UNKNOWN"}  # nothing known yet: neither fires nor resolves


@dataclass
class Alert:
    """One announced transition."""

    subject: str
    status: str
    previous: str | None
    state: str  # firing or resolved
    message: str
    at_ms: int
    delivered: bool | None = None  # None: no webhook configured

    def payload(self) -> dict[str, Any]:
        at = dt.datetime.fromtimestamp(self.at_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        kind, _, name = self.subject.partition(":")
        return {"text": self.message, **asdict(self), "kind": kind, "name": name, "at": at}


class AlertStore(Protocol):
    def alert_states(self) -> dict[str, str]: ...

    def save_alert_state(self, subject: str, status: str) -> None: ...


Sender = Callable[[str, dict[str, Any]], None]


class Alerter:
    """Tracks statuses per subject and announces transitions to a webhook."""

    def __init__(
        self,
        webhook_url: str | None,
        *,
        timeout_s: float = 5.0,
        store: AlertStore | None = None,
        send: Sender | None = None,
        keep: int = 200,
    ) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.store = store
        self._send = send or self._post
        self._last: dict[str, str] = store.alert_states() if store is not None else {}
        self.recent: deque[Alert] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unsilo-webhook")

    def observe(self, subject: str, status: str, detail: str, now_ms: int) -> Alert | None:
        """Record ``status`` for ``subject``; the alert it causes, if any."""
        with self._lock:
            previous = self._last.get(subject)
            if status == previous or status in SILENT:
                return None
            self._last[subject] = status
            if self.store is not None:
                self.store.save_alert_state(subject, status)
            healthy = status in HEALTHY
            if healthy and (previous is None or previous in HEALTHY or previous in SILENT):
                return None  # OK after OK-ish: nothing to say
            if healthy:
                alert = Alert(
                    subject,
                    status,
                    previous,
                    "resolved",
                    f"RESOLVED {subject}: back to {status} (was {previous}). {detail}".strip(),
                    now_ms,
                )
            else:
                was = f" (was {previous})" if previous else ""
                alert = Alert(
                    subject, status, previous, "firing", f"{status} {subject}{was}: {detail}".strip(), now_ms
                )
            self.recent.appendleft(alert)
        if self.webhook_url:
            alert.delivered = False
            self._pool.submit(self._deliver, alert)
        log.warning("alert", subject=subject, status=status, previous=previous, state=alert.state)
        return alert

    def observe_snapshot(self, snap: Snapshot) -> list[Alert]:
        """Observe every subject of ``snap``; the alerts caused."""
        fired: list[Alert] = []

        def see(subject: str, status: str, detail: str) -> None:
            alert = self.observe(subject, status, detail, snap.taken_ms)
            if alert is not None:
                fired.append(alert)

        for c in snap.components:
            see(f"component:{c.name}", "UP" if c.up else "DOWN", f"{c.address} {c.detail}".strip())
        broker = snap.component("broker")
        if broker is not None and not broker.up:
            return fired  # nothing else was read: keep the last statuses
        if snap.lag is not None:
            for name, g in snap.lag.groups.items():
                worst = max(g.partitions, key=lambda p: p.lag, default=None)
                where = f"; max lag {worst.lag} on {worst.topic}[{worst.partition}]" if worst else ""
                see(
                    f"group:{name}",
                    g.worst.value,
                    f"group status {g.status.value}, total lag {g.total_lag}{where}",
                )
        for table in snap.capture:
            see(f"capture:{table.source}.{table.table}", table.status, table.reason or table.state)
        for f in snap.freshness:
            see(f"read_model:{f.read_model}", f.status, f"{f.behind} records behind, oldest {f.age_s:.1f}s")
        return fired

    def _deliver(self, alert: Alert) -> None:
        assert self.webhook_url is not None
        try:
            self._send(self.webhook_url, alert.payload())
            alert.delivered = True
        except Exception as exc:  # a webhook that fails must not stop the monitor
            log.warning(
                "alert_webhook_failed", subject=alert.subject, url=self.webhook_url, error=type(exc).__name__
            )

    def _post(self, url: str, body: dict[str, Any]) -> None:
        response = httpx.post(url, json=body, timeout=self.timeout_s)
        response.raise_for_status()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until queued webhook deliveries are done (tests, shutdown)."""
        self._pool.submit(lambda: None).result(timeout=timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=False)
