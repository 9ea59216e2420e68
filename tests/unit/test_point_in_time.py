"""Point-in-time replay: reading the instant, refusing bad requests, leaving out later source commits."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hub.config import KafkaSettings, ReadStoreSettings, RegistrySettings, Settings
from hub.errors import ConfigError
from projections.events import RawEvent
from projections.point_in_time import AsOfFilter, iso, open_target, parse_instant, prepare


def settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        registry=RegistrySettings(url="http://127.0.0.1:1/apis/ccompat/v7"),
        read_store=ReadStoreSettings(url=f"sqlite:///{tmp_path / 'read.db'}"),
    )


NOON_UTC = int(dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    "written",
    [
        "2026-11-27T12:00:00Z",
        "2026-11-27T13:00:00+01:00",
        "2026-11-27T12:00:00",
        "2026-11-27 12:00",
        str(NOON_UTC),
    ],
)
def test_instants_are_read_as_iso_8601_or_epoch_milliseconds(written: str) -> None:
    """ISO-8601 with a zone, without one (UTC), or epoch milliseconds all name the same instant."""
    assert parse_instant(written) == NOON_UTC


def test_an_unreadable_instant_says_how_to_write_one() -> None:
    """A malformed instant is a ConfigError whose hint shows the accepted forms."""
    with pytest.raises(ConfigError) as caught:
        parse_instant("yesterday noon")
    assert "yesterday noon" in caught.value.message
    assert caught.value.hint is not None and "ISO-8601" in caught.value.hint


def test_unknown_read_model_lists_the_known_ones(tmp_path: Path) -> None:
    """Replaying a read model that does not exist names the ones that do."""
    with pytest.raises(ConfigError) as caught:
        prepare(settings(tmp_path), "nope", "2026-01-01T00:00:00Z", f"sqlite:///{tmp_path / 'pit.db'}")
    assert "nope" in caught.value.message
    assert (
        caught.value.hint is not None and "mirror" in caught.value.hint and "store_sales" in caught.value.hint
    )


def test_an_instant_in_the_future_is_refused(tmp_path: Path) -> None:
    """As of a moment that has not happened yet is an error that gives the current time."""
    tomorrow = iso(int(time.time() * 1000) + 86_400_000)
    with pytest.raises(ConfigError) as caught:
        prepare(settings(tmp_path), "mirror", tomorrow, f"sqlite:///{tmp_path / 'pit.db'}")
    assert "is in the future" in caught.value.message and tomorrow in caught.value.message


def test_a_non_empty_target_is_refused_unless_replace(tmp_path: Path) -> None:
    """A target holding tables is refused with a hint about --replace; with replace it is emptied."""
    target = tmp_path / "busy.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE important (x INTEGER)")
    conn.execute("CREATE VIEW important_view AS SELECT x FROM important")
    conn.close()
    url = f"sqlite:///{target}"

    with pytest.raises(ConfigError) as caught:
        prepare(settings(tmp_path), "mirror", "2026-01-01T00:00:00Z", url)
    open_target(url, settings(tmp_path).read_store.url, replace=True).dispose()

    assert "is not empty" in caught.value.message and "important" in caught.value.message
    assert caught.value.hint is not None and "--replace" in caught.value.hint
    assert sqlite3.connect(target).execute("SELECT name FROM sqlite_master").fetchall() == []


def test_the_live_read_store_is_never_a_target(tmp_path: Path) -> None:
    """Replaying into the live read store is refused, even with replace."""
    live = settings(tmp_path)
    with pytest.raises(ConfigError) as caught:
        prepare(live, "mirror", "2026-01-01T00:00:00Z", live.read_store.url, replace=True)
    assert "live read store" in caught.value.message


class Recorder:
    def __init__(self) -> None:
        self.seen: list[RawEvent] = []

    def apply(self, events: Sequence[RawEvent]) -> int:
        self.seen.extend(events)
        return len(events)

    def applied_offsets(self) -> dict[tuple[str, int], int]:
        return {}


def change(offset: int, key: int, source_ts: int | None, op: str = "c") -> RawEvent:
    value: dict[str, Any] | None = {"op": op, "after": {"id": key}}
    if source_ts is not None:
        assert value is not None
        value["source"] = {"ts_ms": source_ts}
    return RawEvent("t", 0, offset, {"id": key}, value, None, None)


def tombstone(offset: int, key: int) -> RawEvent:
    return RawEvent("t", 0, offset, {"id": key}, None, None, None)


def test_events_committed_in_the_source_after_the_instant_are_left_out() -> None:
    """An event whose source commit time is after T is skipped, and so is the tombstone after its delete."""
    inner = Recorder()
    as_of = AsOfFilter(inner, as_of_ms=1_000)
    events = [
        change(0, 1, 900),
        change(1, 2, 1_000),  # committed exactly at T: kept
        change(2, 1, 1_001, op="d"),  # committed after T
        tombstone(3, 1),
        change(4, 3, None),  # no source block (a canonical record): the offset cut alone decides
    ]

    as_of.apply(events)

    assert [e.offset for e in inner.seen] == [0, 1, 4]
    assert as_of.skipped == 2
