"""Webhook alerts fire on transitions only, once, and say when things recover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.alerts import Alerter
from hub.health import Component
from hub.lag import GroupInfo, PartitionOffsets, WindowConfig, evaluate
from hub.lag_history import LagHistory
from hub.overview import Snapshot

T0 = 1_700_000_000_000


class Hook:
    """A webhook endpoint that records what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, url: str, body: dict[str, Any]) -> None:
        assert url == "http://hooks.test/unsilo"
        self.bodies.append(body)


def alerter(hook: Hook, store: LagHistory | None = None) -> Alerter:
    return Alerter("http://hooks.test/unsilo", store=store, send=hook)


def test_repeated_status_fires_once_and_recovery_is_announced() -> None:
    """STALL seen three times sends one alert; back to OK sends one RESOLVED message."""
    hook = Hook()
    alerts = alerter(hook)

    for i in range(3):
        alerts.observe("group:orders", "STALL", "lag 10", T0 + i)
    alerts.observe("group:orders", "OK", "lag 0", T0 + 10)
    alerts.observe("group:orders", "OK", "lag 0", T0 + 11)
    alerts.flush()

    assert [(b["status"], b["state"]) for b in hook.bodies] == [("STALL", "firing"), ("OK", "resolved")]
    assert hook.bodies[0]["text"].startswith("STALL group:orders")
    assert "RESOLVED group:orders" in hook.bodies[1]["text"] and hook.bodies[1]["previous"] == "STALL"


def test_first_healthy_status_is_silent_and_escalation_fires_again() -> None:
    """OK at first sight says nothing; STALL then STOP are two alerts (a change of problem)."""
    hook = Hook()
    alerts = alerter(hook)

    alerts.observe("group:g", "OK", "", T0)
    alerts.observe("group:g", "STALL", "", T0 + 1)
    alerts.observe("group:g", "STOP", "", T0 + 2)
    alerts.flush()

    assert [(b["status"], b["previous"]) for b in hook.bodies] == [("STALL", "OK"), ("STOP", "STALL")]


def test_restart_does_not_fire_again_what_was_announced(tmp_path: Path) -> None:
    """The last alerted status survives a restart (kept in the history file): no duplicate alert."""
    hook = Hook()
    first = alerter(hook, LagHistory(tmp_path / "h.db"))
    first.observe("component:registry", "DOWN", "http://127.0.0.1:8081", T0)
    first.flush()

    second = alerter(hook, LagHistory(tmp_path / "h.db"))
    second.observe("component:registry", "DOWN", "http://127.0.0.1:8081", T0 + 1000)
    second.observe("component:registry", "UP", "http://127.0.0.1:8081", T0 + 2000)
    second.flush()

    assert [(b["status"], b["state"]) for b in hook.bodies] == [("DOWN", "firing"), ("UP", "resolved")]


def test_snapshot_subjects_cover_components_groups_capture_and_read_models() -> None:
    """A snapshot with a down registry and a stopped group raises one alert for each."""
    hook = Hook()
    alerts = alerter(hook)
    part = PartitionOffsets("billing", "t", 0, 5, 0, 9, oldest_unconsumed_ms=T0 - 60_000)
    report, _ = evaluate(
        [part],
        {"billing": GroupInfo("billing")},
        {"billing": {("t", 0): [(5, 4, T0 - 60_000)]}},
        T0,
        WindowConfig(),
    )
    snap = Snapshot(
        taken_ms=T0,
        components=[
            Component("broker", "127.0.0.1:9092", True),
            Component("registry", "http://127.0.0.1:1", False, "refused"),
        ],
        lag=report,
    )

    fired = alerts.observe_snapshot(snap)
    again = alerts.observe_snapshot(snap)

    assert sorted(a.subject for a in fired) == ["component:registry", "group:billing"]
    assert again == []
    assert next(a for a in fired if a.subject == "group:billing").status == "STOP"


def test_failing_webhook_is_recorded_not_raised() -> None:
    """A webhook that errors leaves the alert undelivered and the monitor running."""

    def broken(url: str, body: dict[str, Any]) -> None:
        raise ConnectionError("refused")

    alerts = Alerter("http://hooks.test/unsilo", send=broken)
    alert = alerts.observe("group:g", "STOP", "", T0)
    alerts.flush()

    assert alert is not None and alert.delivered is False
    assert list(alerts.recent) == [alert]
