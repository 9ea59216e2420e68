"""Change events encoded straight from the source's row dicts, skipping the row conversion.

On the snapshot path most values already have the Python type their Avro type is written
from (drivers type them), yet :meth:`TableSchema.row` still builds a second dict per row
and converts decimals and uuids. :class:`RawRowEncoder` hands the source rows to the C
encoder with programs whose row and key records are looked up by *source* column name, so
the only dicts built are the envelope's. The C encoder is strict: a decimal not already at
the column's scale, a uuid not in canonical form, a ``memoryview``, a missing column, a
``None`` in a required column... raise :class:`Unencodable`, and the caller takes the full
path (convert, then encode), so the bytes are always those of the full path.
tests/unit/test_raw_rows.py compares both on random rows.

Not used for tables with masked columns or a row-hash key (their values must be computed),
nor where the C extension was not built.
"""

from __future__ import annotations

import copy
from typing import Any

from hub.avro_codec import NativeEncode, Unencodable, native_encoder
from hub.envelope import Op, SourceInfo, TableSchema
from hub.serde import Writer

Record = tuple[bytes | None, bytes | None]


class RawRowEncoder:
    """Encodes c/r/u/d changes of one table from source rows, or raises Unencodable."""

    def __init__(
        self,
        schema: TableSchema,
        key: NativeEncode,
        value: NativeEncode,
        row: NativeEncode,
        headers: tuple[bytes, bytes],
    ):
        self.schema = schema
        self._key = key
        self._value = value
        self._row = row
        self._key_header, self._value_header = headers
        self._no_before = self._value_header + b"\x00"
        self._no_before_then_after = self._no_before + b"\x02"
        self._last_tail: tuple[Op, int, SourceInfo, bytes] | None = None

    @classmethod
    def for_table(cls, schema: TableSchema, key: Writer, value: Writer) -> RawRowEncoder | None:
        """The encoder for ``schema``'s current writers, or None where the full path is needed."""
        if schema.masks or schema.row_hash:
            return None
        key_encode = native_encoder(_by_source_names(schema.key_schema, schema, nested=False))
        value_schema = _by_source_names(schema.value_schema, schema, nested=True)
        value_encode = native_encoder(value_schema)
        row_encode = native_encoder(_row_record(value_schema))
        if key_encode is None or value_encode is None or row_encode is None:
            return None
        return cls(schema, key_encode, value_encode, row_encode, (key.header, value.header))

    def records(
        self,
        op: Op,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        source: SourceInfo,
        ts_ms: int,
    ) -> list[Record]:
        """The records of one change, as the full path writes them; Unencodable otherwise."""
        row = after if after is not None else before
        if row is None or op == "t":
            raise Unencodable("no row image")
        key = self._key(row, self._key_header)
        if (
            op == "u"
            and before is not None
            and after is not None
            and self._key(before, self._key_header) != key
        ):
            raise Unencodable("a primary-key change: delete, tombstone, create")
        value = self._rows(before, after) + self._tail(op, source, ts_ms)
        if op == "d":
            return [(key, value), (key, None)]
        return [(key, value)]

    def reads(
        self, rows: list[dict[str, Any]], source: SourceInfo, ts_ms: int, limit: int
    ) -> list[Record | None]:
        """The record of each snapshot read (op ``r``) of ``rows``, sharing ``source`` and ``ts_ms``.

        None for a row that must take the full path: a value to convert first, or a record
        above ``limit`` bytes (the full path dead-letters it with the reason).
        """
        key_encode, key_header = self._key, self._key_header
        row_encode, prefix = self._row, self._no_before_then_after
        tail = self._tail("r", source, ts_ms)
        records: list[Record | None] = []
        append = records.append
        for row in rows:
            try:
                key = key_encode(row, key_header)
                value = row_encode(row, prefix) + tail
            except Unencodable:
                append(None)
                continue
            append((key, value) if len(key) + len(value) <= limit else None)
        return records

    def _tail(self, op: Op, source: SourceInfo, ts_ms: int) -> bytes:
        """The envelope's fields after the rows (op, ts_ms, source), encoded once for a run.

        The Avro envelope is its fields' encodings one after another (before, after, op,
        ts_ms, source): an envelope with neither row is the header, two null branches, then
        these bytes, the same for every change of a snapshot chunk or transaction.
        """
        tail = self._last_tail
        if tail is None or tail[2] is not source or tail[1] != ts_ms or tail[0] != op:
            empty = self._value(self.schema.event(op, None, None, source, ts_ms), self._value_header)
            tail = self._last_tail = (op, ts_ms, source, empty[len(self._value_header) + 2 :])
        return tail[3]

    def _rows(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
        """The header, then the before and after union branches (0: null, 1: the row)."""
        head = self._no_before if before is None else self._row(before, self._value_header + b"\x02")
        if after is None:
            return head + b"\x00"
        if before is None:
            return self._row(after, self._no_before_then_after)
        return self._row(after, head + b"\x02")


def _row_record(value_schema: dict[str, Any]) -> dict[str, Any]:
    """The row record of an envelope schema (the second branch of its ``before`` field)."""
    record: dict[str, Any] = next(f["type"][1] for f in value_schema["fields"] if f["name"] == "before")
    return record


def _by_source_names(avro_schema: dict[str, Any], schema: TableSchema, *, nested: bool) -> dict[str, Any]:
    """``avro_schema`` with its row (or key) fields named by source column, for lookups in source rows."""
    source_name = {column.avro_name: column.name for column in schema.columns}
    renamed = copy.deepcopy(avro_schema)
    records = [renamed]
    if nested:  # the envelope: the row record is the second branch of "before"
        records = [_row_record(renamed)]
    for record in records:
        for field in record["fields"]:
            field["name"] = source_name[field["name"]]
    return renamed
