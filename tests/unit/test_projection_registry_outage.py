"""A projection worker waits out a registry outage instead of crashing (no I/O)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from hub.errors import RegistryUnavailableError, SchemaError
from projections.faust_app import decode_batch


@dataclass
class _Message:
    topic: str = "unsilo.canonical.sale"
    partition: int = 0
    offset: int = 41
    key: bytes | None = None
    value: bytes | None = b"v"


class _FlakySerde:
    """Answers only after ``outages`` failed attempts, as a registry coming back from a restart."""

    def __init__(self, outages: int, error: Exception) -> None:
        self.outages = outages
        self.error = error

    def decode_with_schema(self, data: bytes) -> tuple[Any, Any]:
        if self.outages:
            self.outages -= 1
            raise self.error
        return {"op": "c"}, {"type": "record"}


@pytest.fixture(autouse=True)
def _no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return slept


def test_batch_is_decoded_once_the_registry_is_back(_no_real_sleep: list[float]) -> None:
    """Two failed attempts while the registry restarts, then the batch decodes: waits 0.5 s, then 1 s."""
    serde = _FlakySerde(2, RegistryUnavailableError("schema registry did not answer (ConnectError)"))

    (event,) = asyncio.run(decode_batch(serde, "store_sales", [_Message()]))  # type: ignore[arg-type]

    assert event.value == {"op": "c"} and event.offset == 41
    assert _no_real_sleep == [0.5, 1.0]


def test_a_schema_error_still_stops_the_worker() -> None:
    """An error retrying cannot cure (not retriable) still raises."""
    serde = _FlakySerde(1, SchemaError("schema id 7 unknown to the registry"))

    with pytest.raises(SchemaError):
        asyncio.run(decode_batch(serde, "store_sales", [_Message()]))  # type: ignore[arg-type]
