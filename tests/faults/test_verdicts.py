"""The suite's checker itself: a lost, duplicated or reordered change is counted (no I/O)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.faults.audit import current_keys, expected_changes, install_audit
from tests.faults.verify import Event, Tally, check_counters, check_snapshot, check_stream


def _event(op: str, key: str, position: int, version: int | None = None) -> Event:
    after = None if op == "d" else {"id": key, "version": version}
    return Event(op, (key,), str(position), op == "r", after)


def _audited(tmp_path: Path) -> Path:
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE item (code TEXT PRIMARY KEY, qty INTEGER)")
    conn.execute("INSERT INTO item VALUES ('A', 1)")
    conn.commit()
    conn.close()
    install_audit(db, ["item"])
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO item VALUES ('B', 2)")
        conn.execute("UPDATE item SET qty = 3 WHERE code = 'A'")
        conn.execute("UPDATE item SET code = 'C' WHERE code = 'B'")  # a key change: d on B, c on C
        conn.execute("DELETE FROM item WHERE code = 'A'")
    return db


def test_audit_records_each_committed_change_in_order(tmp_path: Path) -> None:
    """The audit triggers record every change per key in commit order; a key change is a d and a c."""
    db = _audited(tmp_path)

    expected = expected_changes(db)

    assert expected == {("item", ("A",)): ["u", "d"], ("item", ("B",)): ["c", "d"], ("item", ("C",)): ["c"]}
    assert current_keys(db, ["item"]) == {"item": {("C",)}}


def test_exact_stream_passes_and_each_fault_is_counted() -> None:
    """The exact stream checks clean; a lost, a doubled and a swapped change are each counted."""
    expected = {("item", ("A",)): ["c", "u", "u"], ("item", ("B",)): ["c", "d"]}
    exact = [
        _event("c", "A", 1),
        _event("c", "B", 2),
        _event("u", "A", 3),
        _event("d", "B", 4),
        _event("u", "A", 5),
    ]
    clean = Tally()
    check_stream(clean, "item", exact, expected)

    faulty = Tally()
    lost_and_doubled = [e for e in exact if e.position != "4"] + [exact[0]]
    check_stream(faulty, "item", lost_and_doubled, expected)
    swapped = Tally()
    check_stream(swapped, "item", [exact[0], exact[4], exact[2], exact[1], exact[3]], expected)

    assert (clean.checked, clean.lost, clean.duplicated, clean.out_of_order) == (5, 0, 0, 0)
    assert (faulty.lost, faulty.duplicated) == (1, 1)
    assert swapped.out_of_order == 1 and swapped.lost == swapped.duplicated == 0


def test_snapshot_and_counters_count_missing_and_repeated_reads() -> None:
    """A row the snapshot never read is lost, one read twice is duplicated; counter versions likewise."""
    tally = Tally()
    check_snapshot(tally, "item", [_event("r", "A", 0), _event("r", "A", 0)], {("A",), ("B",)})
    counters = Tally()
    events = [_event("r", "1", 0, 0), *(_event("u", "1", n, v) for n, v in enumerate([1, 2, 2, 4], 1))]
    check_counters(counters, events, {1: 4})

    assert (tally.lost, tally.duplicated) == (1, 1)
    assert (counters.lost, counters.duplicated) == (1, 1)
