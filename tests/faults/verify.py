"""The suite's verdicts: raw topics against the source changes, read models against SQL.

:class:`Tally` counts changes checked, lost, duplicated and otherwise wrong (an event no
source change explains, or a key's changes out of commit order). Raw topics are read to
their end with ``read_committed`` and decoded with the hub's serde.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from hub.config import Settings
from hub.estate import figures
from hub.kafka.consumer import read_to_end
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.faults.audit import Key, normalise


@dataclass
class Tally:
    checked: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0  # events no source change explains
    out_of_order: int = 0  # keys whose changes are not in commit order
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(what)


@dataclass(frozen=True)
class Event:
    op: str
    key: Key
    position: str
    snapshot: bool
    after: dict[str, Any] | None


def topic_events(settings: Settings, topic: str, key_columns: list[str]) -> list[Event]:
    """The change events (no tombstones) of ``topic``, in offset order."""
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    events = []
    for message in read_to_end(settings.kafka, topic):
        value = serde.decode(message.value())
        if value is None:
            continue
        row = value["after"] if value["after"] is not None else value["before"]
        key = normalise([row[c] for c in key_columns]) if row is not None else ()
        source = value["source"]
        events.append(
            Event(value["op"], key, str(source["position"]), bool(source["snapshot"]), value["after"])
        )
    return events


def check_snapshot(tally: Tally, table: str, events: list[Event], keys: set[Key]) -> None:
    """Every key present when the snapshot ran was read exactly once."""
    reads = Counter(e.key for e in events if e.op == "r")
    tally.checked += len(keys)
    for key in keys:
        if reads[key] == 0:
            tally.lost += 1
            tally.note(f"{table} {key}: never read by the snapshot")
        elif reads[key] > 1:
            tally.duplicated += reads[key] - 1
            tally.note(f"{table} {key}: read {reads[key]} times by the snapshot")
    extra = sum(n for key, n in reads.items() if key not in keys)
    if extra:
        tally.unexpected += extra
        tally.note(f"{table}: {extra} snapshot reads of keys that did not exist")


def check_stream(
    tally: Tally, table: str, events: list[Event], expected: Mapping[tuple[str, Key], list[str]]
) -> None:
    """Every change of ``table`` is in its topic exactly once, in commit order per key."""
    seen: dict[Key, list[Event]] = defaultdict(list)
    for event in events:
        if event.op != "r":
            seen[event.key].append(event)
    wanted = {key: ops for (t, key), ops in expected.items() if t == table}
    for key in set(wanted) | set(seen):
        ops = wanted.get(key, [])
        tally.checked += len(ops)
        unique: list[Event] = []
        marks: set[tuple[str, str]] = set()
        for event in seen.get(key, []):
            mark = (event.op, event.position)
            if mark in marks:
                tally.duplicated += 1
                tally.note(f"{table} {key}: {event.op} at position {event.position} published twice")
                continue
            marks.add(mark)
            unique.append(event)
        got = [e.op for e in unique]
        missing = Counter(ops) - Counter(got)
        extra = Counter(got) - Counter(ops)
        tally.lost += sum(missing.values())
        tally.unexpected += sum(extra.values())
        if missing or extra:
            tally.note(f"{table} {key}: expected {ops}, topic has {got}")
        positions = [int(e.position) for e in unique if e.position.isdigit()]
        if (not missing and not extra and got != ops) or positions != sorted(positions):
            tally.out_of_order += 1
            tally.note(f"{table} {key}: out of commit order: {[(e.op, e.position) for e in unique]}")


def check_counters(tally: Tally, events: list[Event], versions: Mapping[int, int]) -> None:
    """The counters table: each row read once by the snapshot, then versions 1..N in order."""
    check_snapshot(tally, "counters", events, {normalise([k]) for k in versions})
    updates: dict[Key, list[int]] = defaultdict(list)
    for event in events:
        if event.op == "u" and event.after is not None:
            updates[event.key].append(int(event.after["version"]))
    for row_id, version in versions.items():
        key = normalise([row_id])
        got = updates.pop(key, [])
        tally.checked += version
        tally.duplicated += len(got) - len(set(got))
        tally.lost += len(set(range(1, version + 1)) - set(got))
        tally.unexpected += len(set(got) - set(range(1, version + 1)))
        if got != sorted(set(got)) and len(got) == len(set(got)):
            tally.out_of_order += 1
        if got != list(range(1, version + 1)):
            tally.note(f"counters {row_id}: versions {got[:12]}... expected 1..{version}")
    tally.unexpected += sum(len(v) for v in updates.values())


# -- read models against the legacy databases ------------------------------------------------


def _sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def read_model_mismatches(urls: Mapping[str, str], read_store_url: str) -> list[str]:
    """What differs between each read model and the same figure computed in SQL (empty: equal)."""
    truth = figures(urls)
    engine = create_engine(read_store_url, connect_args={"timeout": 30})
    problems: list[str] = []
    try:
        with engine.connect() as conn:

            def rows(query: str) -> list[Any]:
                return list(conn.execute(text(query)))

            sales = {
                (r[0], r[1], r[2]): (Decimal(str(r[3])), int(Decimal(str(r[4]))))
                for r in rows("SELECT store_key, period, starts, revenue, tickets FROM store_sales")
            }
            want_sales = {
                (f"sales:{store}", "day", day.isoformat()): (f.revenue, f.tickets)
                for (store, day), f in truth.store_sales_daily.items()
            } | {
                (f"sales:{store}", "hour", hour.strftime("%Y-%m-%dT%H:00")): (f.revenue, f.tickets)
                for (store, hour), f in truth.store_sales_hourly.items()
            }
            _compare(problems, "store_sales", sales, want_sales)

            on_hand = {
                (r[0], r[1]): int(Decimal(str(r[2])))
                for r in rows("SELECT product_key, location_key, on_hand FROM inventory_position")
                if Decimal(str(r[2])) != 0
            }
            want_on_hand = {
                (f"sales:{sku}", f"sales:{loc}"): units
                for (sku, loc), units in truth.on_hand.items()
                if units
            }
            _compare(problems, "inventory_position", on_hand, want_on_hand)

            balances = {}
            want_balances = {}
            for party, keys, cents in rows(
                "SELECT party_id, source_keys, open_balance_cents FROM customer_360"
            ):
                accounts = [k.removeprefix("fin:") for k in str(keys).split() if k.startswith("fin:")]
                if accounts:
                    balances[party] = int(cents)
                    want_balances[party] = sum(int(truth.open_balances[a] * 100) for a in accounts)
                    del_accounts = [a for a in accounts if a not in truth.open_balances]
                    if del_accounts:
                        problems.append(f"customer_360: unknown finance accounts {del_accounts}")
            listed = sorted(
                k.removeprefix("fin:")
                for (keys,) in rows("SELECT source_keys FROM customer_360")
                for k in str(keys).split()
                if k.startswith("fin:")
            )
            if listed != sorted(truth.open_balances):
                problems.append("customer_360: the finance accounts are not each in exactly one party")
            _compare(problems, "customer_360", balances, want_balances)

            directory = {
                int(r[0]): (int(r[1]), r[2])
                for r in rows("SELECT employee_no, salary_cents, department FROM employee_directory")
            }
            _compare(problems, "employee_directory", directory, _employees(urls["hr"]))
    except (SQLAlchemyError, KeyError) as exc:
        problems.append(f"read store not ready: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        engine.dispose()
    return problems


def _employees(hr_url: str) -> dict[int, tuple[int, str]]:
    conn = sqlite3.connect(_sqlite_file(hr_url), timeout=30)
    try:
        query = (
            'SELECT e."EMPNO", CAST(ROUND(e."SAL" * 100) AS INTEGER), d."DNAME" '
            'FROM "EMP" e JOIN "DEPT" d ON d."DEPTNO" = e."DEPTNO"'
        )
        return {int(n): (int(c), str(d)) for n, c, d in conn.execute(query)}
    finally:
        conn.close()


def _compare(problems: list[str], name: str, found: Mapping[Any, Any], wanted: Mapping[Any, Any]) -> None:
    if found == wanted:
        return
    wrong = sorted(
        (str(k), found.get(k), wanted.get(k))
        for k in set(found) | set(wanted)
        if found.get(k) != wanted.get(k)
    )
    problems.append(f"{name}: {len(wrong)} rows differ from SQL, e.g. {wrong[:3]}")
