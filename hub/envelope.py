"""The change event contract: key and value schemas of a captured table, and its events.

Key: an Avro record of the primary-key columns. Value: an envelope a Debezium consumer
can read: ``before``/``after`` (nullable row records), ``op`` (c, u, d, r, t), ``ts_ms``
(when the hub processed it) and ``source`` (connector, system, db, table, snapshot,
position, txid, ts_ms = commit time in the source). A delete is followed by a tombstone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hub.avro_types import Column, Converter, avro_name, converter_for, field_schema, plain_type_for
from hub.config import SourceSettings, TableSettings
from hub.errors import ConfigError
from hub.masking import hasher, masked_column, redactor

ROW_HASH_FIELD = "_row_hash"

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
        """The Avro ``source`` record (built once: events of a snapshot chunk share one SourceInfo)."""
        cached: dict[str, Any] | None = self.__dict__.get("_avro")
        if cached is not None:
            return cached
        avro = {
            "connector": self.connector,
            "system": self.system,
            "db": self.db,
            "table": self.table,
            "snapshot": self.snapshot,
            "position": self.position,
            "txid": self.txid,
            "ts_ms": self.ts_ms,
        }
        object.__setattr__(self, "_avro", avro)
        return avro


class TableSchema:
    """Key and value Avro schemas of one captured table, with value converters."""

    def __init__(
        self,
        system: str,
        table: str,
        columns: list[Column],
        key: list[str],
        *,
        masks: Mapping[str, str] | None = None,
        mask_key: bytes | None = None,
        row_hash: bool = False,
    ) -> None:
        if not columns:
            raise ConfigError(f"table {table!r} has no columns (does it exist?)")
        masks = dict(masks or {})
        names = {c.name for c in columns}
        missing = [k for k in key if k not in names] + [m for m in masks if m not in names]
        if missing:
            raise ConfigError(f"column(s) {missing} named in the config are not in table {table!r}")
        if not key and not row_hash:
            raise ConfigError(
                f"table {table!r} has no primary key",
                hint=f"declare key columns for it in unsilo.yaml (tables: [{{name: {table}, key: [...]}}]) "
                "or key it by a hash of the whole row (row_hash_key: true)",
            )
        dropped_keys = [k for k in key if masks.get(k) == "drop"]
        if dropped_keys:
            raise ConfigError(f"table {table!r}: key column(s) {dropped_keys} cannot be dropped; use hash")
        self.system = system
        self.table = table
        self.row_hash = not key
        converters = {c.name: converter_for(c) for c in columns}
        self.masks = masks
        self._maskers: dict[str, Converter] = {}  # column -> its hash or redact converter
        kept: list[Column] = []
        for column in columns:
            rule = masks.get(column.name)
            if rule == "drop":
                continue
            if rule in {"hash", "redact"}:
                if rule == "hash" and mask_key is None:
                    raise ConfigError(f"table {table!r}: hashing {column.name!r} needs the source's mask_key")
                converters[column.name] = hasher(mask_key or b"") if rule == "hash" else redactor
                self._maskers[column.name] = converters[column.name]
                column = masked_column(column)
            kept.append(column)
        self.columns = kept
        self.key = key
        self.namespace = f"unsilo.raw.{avro_name(system)}.{avro_name(table)}"
        plain = {c.name: None if c.name in self._maskers else plain_type_for(c) for c in kept}
        self._converters: list[tuple[str, str, Converter, type | None]] = [
            (c.name, c.avro_name, converters[c.name], plain[c.name]) for c in kept
        ]
        by_name = {c.name: c for c in kept}
        self._key_converters = [(k, by_name[k].avro_name, converters[k], plain[k]) for k in key]
        key_fields = [field_schema(by_name[k], force_required=True) for k in key]
        if self.row_hash:
            key_fields = [{"name": ROW_HASH_FIELD, "type": "string", "doc": "SHA-256 of the whole row"}]
        self.key_schema: dict[str, Any] = {
            "type": "record",
            "name": "Key",
            "namespace": self.namespace,
            "fields": key_fields,
        }
        row: dict[str, Any] = {
            "type": "record",
            "name": "Value",
            "namespace": self.namespace,
            "fields": [field_schema(c) for c in kept],
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

    def row(self, values: dict[str, Any] | None, premasked: Collection[str] = ()) -> dict[str, Any] | None:
        """The Avro row record for a source row given as {column name: value}.

        Columns in ``premasked`` already hold their masked value (see :meth:`masked`): a
        column this schema hashes or redacts keeps it as it is instead of masking it twice.
        """
        if values is None:
            return None
        return self._apply(self._converters, values, premasked)

    def masked(self, values: dict[str, Any] | None) -> dict[str, Any] | None:
        """``values`` with this table's masks applied (dropped columns left out), by source
        column name: what may leave the connector outside an event, e.g. in a dead letter."""
        if values is None:
            return None
        return {
            name: self._maskers[name](value) if name in self._maskers else value
            for name, value in values.items()
            if self.masks.get(name) != "drop"
        }

    def _apply(
        self,
        converters: list[tuple[str, str, Converter, type | None]],
        values: dict[str, Any],
        premasked: Collection[str],
    ) -> dict[str, Any]:
        """{avro name: Avro datum}: values already of their plain type pass as they are."""
        if premasked:
            return {
                avro: self._convert(name, convert, premasked)(values.get(name))
                for name, avro, convert, _ in converters
            }
        get = values.get
        return {
            avro: value if type(value := get(name)) is plain else convert(value)
            for name, avro, convert, plain in converters
        }

    def _convert(self, name: str, convert: Converter, premasked: Collection[str]) -> Converter:
        return _as_masked if name in premasked and name in self._maskers else convert

    def event(
        self,
        op: Op,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        source: SourceInfo,
        ts_ms: int | None = None,
    ) -> dict[str, Any]:
        """An envelope datum whose rows name their union branch, so fastavro need not
        search for it (about twice as fast to encode as :func:`envelope`)."""
        datum = envelope(op, before, after, source, ts_ms)
        row_name = f"{self.namespace}.Value"
        if before is not None:
            datum["before"] = (row_name, before)
        if after is not None:
            datum["after"] = (row_name, after)
        return datum

    def key_of(self, values: dict[str, Any], premasked: Collection[str] = ()) -> dict[str, Any]:
        """The Avro key record of a source row (a hash of the whole row for row-hash keys)."""
        if self.row_hash:
            row = self.row(values, premasked) or {}
            text = json.dumps(row, sort_keys=True, default=_canonical)
            return {ROW_HASH_FIELD: hashlib.sha256(text.encode("utf-8")).hexdigest()}
        return self._apply(self._key_converters, values, premasked)


def _as_masked(value: Any) -> str | None:
    """A value masked before (a dead letter's hash or marker), kept as it is."""
    return None if value is None else str(value)


def _canonical(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


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


def table_schema(
    source: SourceSettings, table: TableSettings, columns: list[Column], primary_key: list[str]
) -> TableSchema:
    """The TableSchema of ``table`` with the user's key override, row-hash key and masks."""
    return TableSchema(
        source.system,
        table.name,
        columns,
        table.key or primary_key,
        masks=table.mask,
        mask_key=source.mask_key.get_secret_value().encode("utf-8") if source.mask_key else None,
        row_hash=table.row_hash_key and not (table.key or primary_key),
    )
