"""The change event contract: key and value schemas of a captured table, and its events.

Key: an Avro record of the primary-key columns. Value: an envelope a Debezium consumer
can read: ``before``/``after`` (nullable row records), ``op`` (c, u, d, r, t), ``ts_ms``
(when the hub processed it) and ``source`` (connector, system, db, table, snapshot,
position, txid, ts_ms = commit time in the source). A delete is followed by a tombstone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from hub.avro_types import Column, Converter, avro_name, converter_for, field_schema
from hub.errors import ConfigError

Op = Literal["c", "u", "d", "r", "t"]
OPS: frozenset[str] = frozenset({"c", "u", "d", "r", "t"})

SOURCE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Source",
    "namespace": "io.unsilo",
    "doc": "Where and when the change happened in the legacy source.",
    "fields": [
        {"name": "connector", "type": "string", "doc": "capture method, e.g. sqlite"},
        {"name": "system", "type": "string", "doc": "owning legacy system"},
        {"name": "db", "type": "string", "doc": "database name or file"},
        {"name": "table", "type": "string", "doc": "source table"},
        {"name": "snapshot", "type": "boolean", "doc": "true for snapshot reads"},
        {"name": "position", "type": "string", "doc": "LSN, binlog file:pos or changelog id"},
        {"name": "txid", "type": ["null", "long"], "default": None, "doc": "source txn id"},
        {"name": "ts_ms", "type": "long", "doc": "commit time in the source, ms since epoch"},
    ],
}


@dataclass(frozen=True)
class SourceInfo:
    """The ``source`` block of one event."""

    connector: str
    system: str
    db: str
    table: str
    snapshot: bool
    position: str
    ts_ms: int
    txid: int | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "system": self.system,
            "db": self.db,
            "table": self.table,
            "snapshot": self.snapshot,
            "position": self.position,
            "txid": self.txid,
            "ts_ms": self.ts_ms,
        }


class TableSchema:
    """Key and value Avro schemas of one captured table, with value converters."""

    def __init__(self, system: str, table: str, columns: list[Column], key: list[str]) -> None:
        if not columns:
            raise ConfigError(f"table {table!r} has no columns (does it exist?)")
        names = {c.name for c in columns}
        missing = [k for k in key if k not in names]
        if missing:
            raise ConfigError(f"key column(s) {missing} not in table {table!r}")
        if not key:
            raise ConfigError(
                f"table {table!r} has no primary key",
                hint=f"declare key columns for it in unsilo.yaml: tables: [{{name: {table}, key: [...]}}]",
            )
        self.system = system
        self.table = table
        self.columns = columns
        self.key = key
        self.namespace = f"unsilo.raw.{avro_name(system)}.{avro_name(table)}"
        self._converters: list[tuple[str, str, Converter]] = [
            (c.name, c.avro_name, converter_for(c)) for c in columns
        ]
        by_name = {c.name: c for c in columns}
        self._key_converters = [(k, by_name[k].avro_name, converter_for(by_name[k])) for k in key]
        self.key_schema: dict[str, Any] = {
            "type": "record",
            "name": "Key",
            "namespace": self.namespace,
            "fields": [field_schema(by_name[k], force_required=True) for k in key],
        }
        row: dict[str, Any] = {
            "type": "record",
            "name": "Value",
            "namespace": self.namespace,
            "fields": [field_schema(c) for c in columns],
        }
        self.value_schema: dict[str, Any] = {
            "type": "record",
            "name": "Envelope",
            "namespace": self.namespace,
            "connect.name": f"{self.namespace}.Envelope",
            "fields": [
                {"name": "before", "type": ["null", row], "default": None},
                {"name": "after", "type": ["null", "Value"], "default": None},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": "long"},
                {"name": "source", "type": SOURCE_SCHEMA},
            ],
        }

    def row(self, values: dict[str, Any] | None) -> dict[str, Any] | None:
        """The Avro row record for a source row given as {column name: value}."""
        if values is None:
            return None
        return {avro: convert(values.get(name)) for name, avro, convert in self._converters}

    def key_of(self, values: dict[str, Any]) -> dict[str, Any]:
        """The Avro key record of a source row."""
        return {avro: convert(values.get(name)) for name, avro, convert in self._key_converters}


def envelope(
    op: Op,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    source: SourceInfo,
    ts_ms: int | None = None,
) -> dict[str, Any]:
    """A change envelope datum (rows already converted with :meth:`TableSchema.row`)."""
    return {
        "before": before,
        "after": after,
        "op": op,
        "ts_ms": ts_ms if ts_ms is not None else int(time.time() * 1000),
        "source": source.to_avro(),
    }
