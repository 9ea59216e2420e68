"""MySQL/MariaDB column layouts: read from information_schema, mapped to Avro, values normalised.

Kept apart from ``connectors/mysql.py`` (the capture loop) so each stays readable; only
that module imports this one. A :class:`Layout` is the column list of one table as it
stood at some binlog position. Rows from the binlog are mapped onto it by ordinal, never
by the names pymysqlreplication guesses (without ``binlog_row_metadata=FULL`` it names
columns ``UNKNOWN_COL0``...; with its information_schema cache they go stale after an
ALTER). Values from the snapshot (PyMySQL) and from the binlog come out identical: CHAR
padding trimmed, zero dates None (logged once per column), SET as text, BIT as int.
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import structlog

from hub.avro_types import Column
from hub.config import SourceSettings, TableSettings
from hub.envelope import table_schema
from hub.errors import ConfigError

log = structlog.get_logger(__name__)

Normalizer = Callable[[Any], Any]

# MySQL's latin1 is cp1252 whose five undefined bytes map to the C1 controls.
_LATIN1_TABLE = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256))
LATIN1_CODEC = "unsilo_mysql_latin1"


def _search(name: str) -> codecs.CodecInfo | None:
    if name != LATIN1_CODEC:
        return None
    return codecs.CodecInfo(
        name=LATIN1_CODEC,
        encode=lambda text, errors="strict": codecs.charmap_encode(
            text, errors, codecs.charmap_build(_LATIN1_TABLE)
        ),
        decode=lambda data, errors="strict": codecs.charmap_decode(data, errors, _LATIN1_TABLE),
    )


codecs.register(_search)

_INTEGERS = {"tinyint": "SMALLINT", "smallint": "SMALLINT", "mediumint": "SMALLINT", "year": "SMALLINT"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
             "multipolygon", "geometrycollection"}  # fmt: skip
_TEMPORAL = {"date", "datetime", "timestamp"}
# binlog column type codes (pymysqlreplication.constants.FIELD_TYPE) each data type may show
_BINLOG_TYPES: dict[str, frozenset[int]] = {
    "tinyint": frozenset({1}), "smallint": frozenset({2}), "mediumint": frozenset({9}),
    "int": frozenset({3}), "bigint": frozenset({8}), "float": frozenset({4}),
    "double": frozenset({5}), "decimal": frozenset({246, 0}), "date": frozenset({10, 14}),
    "datetime": frozenset({12, 18}), "timestamp": frozenset({7, 17}), "time": frozenset({11, 19}),
    "year": frozenset({13}), "char": frozenset({254}), "binary": frozenset({254}),
    "varchar": frozenset({15, 253}), "varbinary": frozenset({15, 253}), "enum": frozenset({247, 254}),
    "set": frozenset({248, 254}), "bit": frozenset({16}), "json": frozenset({245, 252}),
}  # fmt: skip
_BLOBS = frozenset({249, 250, 251, 252})
_warned: set[tuple[str, str, str]] = set()
_unknown_types: set[str] = set()


_NAME = r"(`(?:[^`]|``)+`|[\w$]+)"
_TRUNCATE = re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:{_NAME}\s*\.\s*)?{_NAME}", re.I)


def quote(identifier: str) -> str:
    """``identifier`` backquoted, with embedded backquotes doubled (never interpolated raw)."""
    return "`" + identifier.replace("`", "``") + "`"


@dataclass(frozen=True)
class MysqlColumn:
    """One column as information_schema describes it."""

    name: str
    column_type: str  # e.g. "decimal(12,2)", "int(10) unsigned", "enum('a','b')"
    charset: str | None
    nullable: bool

    @cached_property
    def data_type(self) -> str:
        return re.split(r"[\s(]", self.column_type.strip().lower(), maxsplit=1)[0]

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def binary(self) -> bool:
        return self.data_type in _BINARY or self.data_type in _GEOMETRY or self.charset == "binary"

    def members(self) -> list[str]:
        """The values of an ENUM or SET, in declaration order."""
        inside = self.column_type[self.column_type.index("(") + 1 : self.column_type.rindex(")")]
        return [m.replace("''", "'").replace("\\\\", "\\") for m in re.findall(r"'((?:[^']|'')*)'", inside)]

    def sql_type(self) -> str:
        """The declared type, spelled so that hub.avro_types picks the Avro type that fits."""
        kind, declared = self.data_type, self.column_type.lower()
        if "bool" in declared:
            return "BOOLEAN"
        if kind in _INTEGERS:
            return _INTEGERS[kind]
        if kind == "int":
            return "BIGINT" if self.unsigned else "INT"
        if kind == "bigint":
            return "DECIMAL(20,0)" if self.unsigned else "BIGINT"
        if kind == "decimal":
            found = re.search(r"\((\d+)\s*(?:,\s*(\d+))?\)", declared)
            precision, scale = (found.group(1), found.group(2) or "0") if found else ("10", "0")
            return f"DECIMAL({precision},{scale})"
        if kind == "bit":
            return "BOOLEAN" if declared.startswith("bit(1)") else "BIGINT"
        simple = {"float": "FLOAT", "double": "DOUBLE", "date": "DATE", "datetime": "DATETIME",
                  "timestamp": "TIMESTAMP", "time": "VARCHAR"}  # fmt: skip
        if kind in simple:
            return simple[kind]
        if self.binary:
            return "BLOB"
        if kind in _TEXT:
            return "VARCHAR"
        if kind not in _unknown_types:
            _unknown_types.add(kind)
            log.warning("mysql_unknown_type_as_string", sql_type=self.column_type)
        return "VARCHAR"

    def encoding(self) -> str:
        """The Python codec for this column's bytes in the binlog ('binary' keeps bytes)."""
        if self.binary or self.charset is None:
            return "binary"
        if self.charset == "latin1":
            return LATIN1_CODEC
        if self.charset.startswith("utf8"):
            return "utf8mb4"
        return self.charset

    def to_json(self) -> list[Any]:
        return [self.name, self.column_type, self.charset, self.nullable]


class Layout:
    """The columns of one captured table at some binlog position, and its Avro schemas."""

    def __init__(
        self, source: SourceSettings, table: TableSettings, columns: list[MysqlColumn], primary_key: list[str]
    ) -> None:
        self.source, self.settings, self.columns = source, table, columns
        self.table, self.system = table.name, source.system
        self.names = [c.name for c in columns]
        self.key = table.key or [k for k in primary_key if k in self.names]
        if not self.key:
            raise ConfigError(
                f"source {source.name}: table {table.name!r} has no primary key",
                hint=f"the mysql connector reads snapshots in key order: declare key columns for it in "
                f"unsilo.yaml (tables: [{{name: {table.name}, key: [...]}}])",
            )
        self.primary_key = primary_key
        hub_columns = [
            Column(
                name=c.name,
                sql_type=c.sql_type(),
                # a NOT NULL date can hold '0000-00-00', which becomes None
                nullable=c.name not in self.key and (c.nullable or c.data_type in _TEMPORAL),
                primary_key=c.name in self.key,
            )
            for c in columns
        ]
        self.schema = table_schema(source, table, hub_columns, self.key)
        self.key_index = [self.names.index(k) for k in self.key]
        self._allowed = [_allowed(c) for c in columns]
        self._patches = [
            (c.name, c.unsigned, c.encoding(), ["", *c.members()] if c.data_type == "enum" else None,
             c.members() if c.data_type == "set" else None)
            for c in columns
        ]  # fmt: skip
        where = [(self.system, self.table, c.name) for c in columns]
        self.snapshot_fixes = [(i, fix) for i, c in enumerate(columns) if (fix := _snapshot_fix(where[i], c))]
        self.binlog_fixes = [
            (c.name, fix) for i, c in enumerate(columns) if (fix := _binlog_fix(where[i], c))
        ]

    def with_columns(self, columns: list[MysqlColumn], primary_key: list[str]) -> Layout:
        return Layout(self.source, self.settings, columns, primary_key)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.primary_key, "columns": [c.to_json() for c in self.columns]}

    @classmethod
    def from_json(cls, source: SourceSettings, table: TableSettings, data: dict[str, Any]) -> Layout:
        return cls(source, table, [MysqlColumn(*c) for c in data["columns"]], list(data["key"]))

    def same_columns(self, other: Layout) -> bool:
        return self.columns == other.columns and self.key == other.key

    def fits(self, binlog_columns: list[Any]) -> bool:
        """Whether a TableMap's columns (count, type codes, names if logged) match this layout."""
        if len(binlog_columns) != len(self.columns):
            return False
        for name, allowed, theirs in zip(self.names, self._allowed, binlog_columns, strict=True):
            if (theirs.name is not None and theirs.name != name) or (allowed and theirs.type not in allowed):
                return False
        return True

    def patch(self, binlog_columns: list[Any]) -> None:
        """Give pymysqlreplication's TableMap columns our names, charsets, members and signs."""
        for (name, unsigned, encoding, enum, members), theirs in zip(
            self._patches, binlog_columns, strict=True
        ):
            theirs.name, theirs.unsigned, theirs.character_set_name = name, unsigned, encoding
            if enum is not None:
                theirs.enum_values = enum
            elif members is not None:
                theirs.set_values = members

    def snapshot_row(self, values: tuple[Any, ...]) -> dict[str, Any]:
        row = list(values)
        for index, fix in self.snapshot_fixes:
            if row[index] is not None:
                row[index] = fix(row[index])
        return dict(zip(self.names, row, strict=True))

    def binlog_row(self, values: dict[str, Any], none_sources: dict[str, str]) -> dict[str, Any]:
        row = dict(zip(self.names, values.values(), strict=True))
        for name, fix in self.binlog_fixes:
            value = row[name]
            if value is not None:
                row[name] = fix(value)
            elif none_sources.get(name, "null").startswith("out of date"):
                row[name] = _zero_date((self.system, self.table, name), None)
        return row

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key)


def _allowed(mine: MysqlColumn) -> frozenset[int] | None:
    """The binlog type codes a column of this declared type may show (None: any)."""
    if mine.data_type in _BINARY or mine.data_type in _TEXT - _BINLOG_TYPES.keys():
        return _BLOBS | {254, 15, 253}
    return _BINLOG_TYPES.get(mine.data_type)


def _fits(mine: MysqlColumn, theirs: Any) -> bool:
    allowed = _allowed(mine)
    return (theirs.name is None or theirs.name == mine.name) and (allowed is None or theirs.type in allowed)


def _zero_date(where: tuple[str, str, str], value: Any) -> Any:
    """None for a zero date ('0000-00-00'), logged once per (system, table, column)."""
    if where not in _warned:
        _warned.add(where)
        system, table, column = where
        log.warning("mysql_zero_date_as_null", system=system, table=table, column=column, value=str(value))
    return None


def _format_time(value: Any) -> str:
    if not isinstance(value, dt.timedelta):
        return str(value)
    micros = abs(value) // dt.timedelta(microseconds=1)
    seconds, fraction = divmod(micros, 1_000_000)
    text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return ("-" if value < dt.timedelta(0) else "") + text + (f".{fraction:06d}" if fraction else "")


def _float32(value: float) -> float:
    """The shortest decimal that reads back as the same 4-byte float (as MySQL prints it)."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def _snapshot_fix(where: tuple[str, str, str], column: MysqlColumn) -> Normalizer | None:
    kind = column.data_type
    if kind == "char" and not column.binary:
        return lambda v: v.rstrip(" ")
    if kind in _TEMPORAL:
        return lambda v: _zero_date(where, v) if isinstance(v, str) else v
    if kind == "time":
        return _format_time
    if kind == "bit":
        return (lambda v: v != b"\x00") if column.sql_type() == "BOOLEAN" else (lambda v: int.from_bytes(v))
    return None


def _binlog_fix(where: tuple[str, str, str], column: MysqlColumn) -> Normalizer | None:
    kind = column.data_type
    if kind == "char" and not column.binary:
        return lambda v: v.rstrip(" ") if isinstance(v, str) else v
    if kind == "set":
        members = column.members()
        return lambda v: ",".join(m for m in members if m in v) if isinstance(v, set) else _text(v)
    if kind in _TEXT and not column.binary:
        return _text
    if kind == "timestamp":  # a zero TIMESTAMP is stored as 0 seconds since the epoch
        epoch = dt.datetime(1970, 1, 1)
        return lambda v: _zero_date(where, v) if v == epoch else v
    if kind in ("date", "datetime"):
        return lambda v: v
    if kind == "time":
        return _format_time
    if kind == "bit":
        return (lambda v: v == "1") if column.sql_type() == "BOOLEAN" else (lambda v: int(v, 2))
    if kind == "float":
        return _float32
    if kind == "year":
        return lambda v: 0 if v == 1900 else v
    return None


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return json.dumps(value, separators=(", ", ": "), default=str)  # MySQL's binary JSON


# -- keys in positions and chunk queries ----------------------------------------------


def encode_key(values: list[Any]) -> list[Any]:
    """Key values as JSON (bytes, decimals and dates tagged so they read back as themselves)."""
    encoded: list[Any] = []
    for value in values:
        if isinstance(value, (bytes, bytearray)):
            encoded.append({"hex": bytes(value).hex()})
        elif isinstance(value, (decimal.Decimal, dt.date, dt.datetime, dt.timedelta)):
            encoded.append({"text": str(value)})
        else:
            encoded.append(value)
    return encoded


def decode_key(values: list[Any]) -> list[Any]:
    """The query parameters for key values stored by :func:`encode_key`."""
    decoded: list[Any] = []
    for value in values:
        if isinstance(value, dict):
            decoded.append(bytes.fromhex(value["hex"]) if "hex" in value else value["text"])
        else:
            decoded.append(value)
    return decoded


def key_after(key: list[str], values: list[Any]) -> tuple[str, list[Any]]:
    """A WHERE clause for rows whose key sorts after ``values`` (expanded, so indexes are used)."""
    clauses, params = [], []
    for depth, column in enumerate(key):
        equal = [f"{quote(k)} = %s" for k in key[:depth]]
        clauses.append("(" + " AND ".join([*equal, f"{quote(column)} > %s"]) + ")")
        params.extend([*values[:depth], values[depth]])
    return " OR ".join(clauses), params


# -- a layout from the binlog's own column names (binlog_row_metadata=FULL) ---------------

_TYPE_NAMES = {1: "tinyint", 2: "smallint", 3: "int", 4: "float", 5: "double", 7: "timestamp",
               8: "bigint", 9: "mediumint", 10: "date", 11: "time", 12: "datetime", 13: "year",
               14: "date", 15: "varchar", 17: "timestamp", 18: "datetime", 19: "time", 245: "json",
               253: "varchar", 254: "char"}  # fmt: skip


def refit(binlog_columns: list[Any], last: Layout, fresh: Layout | None) -> Layout | None:
    """The layout a TableMap describes: information_schema's if it fits, else one from the
    TableMap's own column names (types from what we knew of each name); None without names."""
    if fresh is not None and fresh.fits(binlog_columns):
        return fresh
    if any(c.name is None for c in binlog_columns):
        return None
    known = {c.name: c for c in (fresh.columns if fresh else [])} | {c.name: c for c in last.columns}
    columns = []
    for theirs in binlog_columns:
        mine = known.get(theirs.name)
        columns.append(mine if mine is not None and _fits(mine, theirs) else _from_binlog(theirs))
    return last.with_columns(columns, (fresh or last).primary_key)


def _from_binlog(column: Any) -> MysqlColumn:
    code = column.type
    binary = column.character_set_name in (None, "binary")
    if code == 246:
        column_type = f"decimal({column.precision},{column.decimals})"
    elif code == 16:
        column_type = f"bit({column.bits})"
    elif code in (247, 248):
        members = column.enum_values[1:] if code == 247 else column.set_values
        listed = ",".join(f"'{m}'" for m in members or [])
        column_type = f"{'enum' if code == 247 else 'set'}({listed})"
    elif code in (249, 250, 251, 252, 255):
        column_type = "longblob" if binary else "longtext"
    else:
        column_type = _TYPE_NAMES.get(code, "text")
    if column_type in ("char", "varchar") and binary:
        column_type = "varbinary"
    if getattr(column, "unsigned", False):
        column_type += " unsigned"
    names = {"cp1252": "latin1", "utf8": "utf8mb4"}
    charset = None if binary else names.get(column.character_set_name, column.character_set_name)
    return MysqlColumn(column.name, column_type, charset, True)


def truncated_table(query: str, schema: str, db: str) -> str | None:
    """The table of ``db`` a ``TRUNCATE [TABLE] [db.]table`` empties, if it is one."""
    found = _TRUNCATE.match(query)
    if found is None:
        return None
    names = [unquote(n) for n in found.groups() if n is not None]
    table_db = names[0] if len(names) == 2 else schema
    return names[-1] if table_db == db else None


def unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name
