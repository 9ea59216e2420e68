"""A commit the broker may or may not have completed is fenced before the connector rereads its position."""

from __future__ import annotations

from typing import Any

import pytest

from connectors import runner as runner_module
from connectors.base import Batch, Position
from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings
from hub.errors import LogUnavailableError

calls: list[str] = []


class _Producer:
    """Stands in for TransactionalProducer; the first one loses the broker in its first commit."""

    made = 0

    def __init__(self, *_: Any, **__: Any) -> None:
        _Producer.made += 1
        self.number = _Producer.made

    def init(self) -> None:
        calls.append(f"init producer {self.number}")

    def begin(self) -> None:
        pass

    def send(self, *_: Any, **__: Any) -> None:
        pass

    def send_many(self, *_: Any, **__: Any) -> None:
        pass

    def commit(self, timeout_s: float = 60.0) -> None:
        if self.number == 1:
            raise LogUnavailableError("no Kafka broker answered (broker transport failure)")
        calls.append(f"commit producer {self.number}")

    def abort(self, timeout_s: float = 30.0) -> None:
        pass

    def close(self) -> None:
        calls.append(f"close producer {self.number}")


class _Connector:
    kind, db = "fake", "fake"

    def __init__(self) -> None:
        self.batches = [Batch([], {"id": 1}), Batch([], {"id": 1})]

    def open(self, position: Position | None) -> None:
        calls.append(f"open at {position}")

    def tables(self) -> list[Any]:
        return []

    def poll(self, max_changes: int) -> Batch | None:
        return self.batches.pop(0) if self.batches else None

    def committed(self, position: Position) -> None:
        pass

    def close(self) -> None:
        pass


class _Nothing:
    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *_, **__: [] if name == "poll" else None


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls.clear()
    _Producer.made = 0
    monkeypatch.setattr(runner_module, "TransactionalProducer", _Producer)
    monkeypatch.setattr(runner_module, "KafkaAdmin", _Nothing)
    monkeypatch.setattr(runner_module, "ControlChannel", _Nothing)
    monkeypatch.setattr(runner_module, "load_position", lambda *_: calls.append("load position") or None)
    monkeypatch.setattr(runner_module.time, "sleep", lambda _: None)


def test_broker_lost_mid_commit_starts_a_new_producer_before_reading_the_position() -> None:
    """After a commit fails for want of a broker, a new producer is initialised (fencing that
    transaction, which may still complete) before the position is read again, so the batch
    is not published a second time beside a commit that did land."""
    source = SourceSettings(name="shop", system="shop", kind="sqlite", url="/nowhere.db", tables=["t"])
    runner = ConnectorRunner(Settings(), source, _Connector())  # type: ignore[arg-type]

    runner.run(until_idle=True)

    failed = calls.index("close producer 1")
    assert calls[failed + 1 :][:3] == ["init producer 2", "load position", "open at None"]
    assert "commit producer 2" in calls
