"""What really changed in the legacy SQLite databases, recorded by the databases themselves.

:func:`install_audit` adds AFTER INSERT/UPDATE/DELETE triggers of our own to every captured
table; each writes one row into ``fault_audit`` in the changing transaction (the table, the
operation, the old and new primary key), so a rolled-back change leaves no trace and a
committed one exactly one. Nothing of the connector is involved (it has its own triggers
and prunes its own changelog). :func:`expected_changes` turns the audit into the change
events each key must show in its raw topic, in commit order.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

from connectors.sqlite import quote

AUDIT = "fault_audit"
Key = tuple[str, ...]


def primary_key(conn: sqlite3.Connection, table: str) -> list[str]:
    """The table's primary-key columns, in key order."""
    rows = conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    return [name for _, name, _, _, _, pk in sorted(rows, key=lambda r: r[5]) if pk]


def _key_json(prefix: str, columns: list[str]) -> str:
    parts = ", ".join(f"{prefix}.{quote(c)}" for c in columns)
    return f"json_array({parts})"


def install_audit(db: Path, tables: list[str]) -> None:
    """Create ``fault_audit`` and the triggers that fill it (idempotent)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {AUDIT} (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " tbl TEXT NOT NULL, op TEXT NOT NULL, old_key TEXT, new_key TEXT)"
            )
            for table in tables:
                pk = primary_key(conn, table)
                for op, when, old, new in (
                    ("c", "INSERT", "NULL", _key_json("NEW", pk)),
                    ("u", "UPDATE", _key_json("OLD", pk), _key_json("NEW", pk)),
                    ("d", "DELETE", _key_json("OLD", pk), "NULL"),
                ):
                    conn.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {quote(f'fault_audit_{table}_{op}')} AFTER {when} "
                        f"ON {quote(table)} BEGIN INSERT INTO {AUDIT} (tbl, op, old_key, new_key) "
                        f"VALUES ('{table}', '{op}', {old}, {new}); END"
                    )
    finally:
        conn.close()


def normalise(values: list[object] | tuple[object, ...]) -> Key:
    """A key as comparable text: SQLite gives ints and padded CHARs, Avro ints and strings."""
    return tuple(str(v).strip() for v in values)


def expected_changes(db: Path) -> dict[tuple[str, Key], list[str]]:
    """Per (table, key): the ops its raw topic must hold, in commit order.

    A primary-key change is published as a delete of the old key and a create of the new.
    """
    import json

    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute(f"SELECT tbl, op, old_key, new_key FROM {AUDIT} ORDER BY id").fetchall()
    finally:
        conn.close()
    changes: dict[tuple[str, Key], list[str]] = defaultdict(list)
    for table, op, old_key, new_key in rows:
        old = normalise(json.loads(old_key)) if old_key else None
        new = normalise(json.loads(new_key)) if new_key else None
        if op == "u" and old != new:
            changes[(table, old)].append("d")  # type: ignore[index]
            changes[(table, new)].append("c")  # type: ignore[index]
        else:
            changes[(table, new or old)].append(op)  # type: ignore[index]
    return dict(changes)


def current_keys(db: Path, tables: list[str]) -> dict[str, set[Key]]:
    """Every key of every table now (what a snapshot taken now must read exactly once)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        found = {}
        for table in tables:
            pk = primary_key(conn, table)
            columns = ", ".join(quote(c) for c in pk)
            found[table] = {normalise(row) for row in conn.execute(f"SELECT {columns} FROM {quote(table)}")}
        return found
    finally:
        conn.close()
