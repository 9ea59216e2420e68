"""SQL column types to Avro types with logical types, and source values to Avro data.

Money stays exact (``decimal``), dates are ``date``, timestamps ``timestamp-micros``
(values without a zone are taken as UTC), UUIDs ``uuid``. A type we do not know becomes a
string, and the mapping is logged once per type name so the user can override it.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from hub.errors import SourceDataError

log = structlog.get_logger(__name__)

AvroType = str | dict[str, Any]
Converter = Callable[[Any], Any]

_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC|NUMBER|DEC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_AVRO_NAME = re.compile(r"[^A-Za-z0-9_]")
_EPOCH_DATE = dt.date(1970, 1, 1)
_unknown_types_logged: set[str] = set()


@dataclass(frozen=True)
class Column:
    """One source column: its name, declared SQL type, nullability and key role."""

    name: str
    sql_type: str
    nullable: bool = True
    primary_key: bool = False
    avro_name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.avro_name:
            object.__setattr__(self, "avro_name", avro_name(self.name))


def avro_name(name: str) -> str:
    """A valid Avro name for a SQL identifier (invalid characters become ``_``)."""
    cleaned = _AVRO_NAME.sub("_", name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = "_" + cleaned
    return cleaned


def avro_type_for(sql_type: str) -> AvroType:
    """The Avro type (without null) that keeps the meaning of a declared SQL type."""
    declared = sql_type.strip().upper()
    match = _DECIMAL.match(declared)
    if match:
        precision = int(match.group(1))
        scale = int(match.group(2) or 0)
        return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    base = declared.split("(")[0].strip()
    if base in {"MONEY", "SMALLMONEY"}:
        return {"type": "bytes", "logicalType": "decimal", "precision": 19, "scale": 4}
    if base in {"BOOLEAN", "BOOL", "BIT"}:
        return "boolean"
    if base == "DATE":
        return {"type": "int", "logicalType": "date"}
    if base.startswith("TIMESTAMP") or base.startswith("DATETIME"):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if base.startswith("TIME"):
        return {"type": "long", "logicalType": "time-micros"}
    if base == "UUID" or base == "UNIQUEIDENTIFIER":
        return {"type": "string", "logicalType": "uuid"}
    if base in {"SMALLINT", "INT2", "TINYINT", "MEDIUMINT", "INT4"} or base == "INT":
        return "int" if base != "INT" else "long"
    if "INT" in base or base == "SERIAL" or base == "BIGSERIAL":
        return "long"
    if base in {"REAL", "FLOAT4"}:
        return "float" if base == "FLOAT4" else "double"
    if any(word in base for word in ("FLOA", "DOUB", "REAL")):
        return "double"
    if any(word in base for word in ("CHAR", "CLOB", "TEXT", "STRING", "JSON", "ENUM")):
        return "string"
    if any(word in base for word in ("BLOB", "BINARY", "BYTEA", "RAW")):
        return "bytes"
    if base in {"NUMERIC", "DECIMAL", "NUMBER"}:
        # No declared precision: keep every digit as text rather than guess a scale.
        return "string"
    if base not in _unknown_types_logged:
        _unknown_types_logged.add(base)
        log.warning("unknown_sql_type_as_string", sql_type=base)
    return "string"


def field_schema(column: Column, *, force_required: bool = False) -> dict[str, Any]:
    """The Avro field for a column: ``["null", T]`` with default null when nullable."""
    avro_type = avro_type_for(column.sql_type)
    entry: dict[str, Any] = {"name": column.avro_name}
    if column.nullable and not force_required:
        entry["type"] = ["null", avro_type]
        entry["default"] = None
    else:
        entry["type"] = avro_type
    if column.avro_name != column.name:
        entry["unsilo.column"] = column.name
    return entry


def plain_type_for(column: Column) -> type | None:
    """The Python type whose values :func:`converter_for` returns unchanged (None: always convert).

    Rows mostly arrive with these already (drivers type them), so skipping the converter call
    for them saves two function calls per value on the snapshot path.
    """
    avro_type = avro_type_for(column.sql_type)
    if isinstance(avro_type, dict):
        return dt.date if avro_type.get("logicalType") == "date" else None
    return _PLAIN_TYPES.get(str(avro_type))


def converter_for(column: Column) -> Converter:
    """A function turning a source value of ``column`` into its Avro datum."""
    avro_type = avro_type_for(column.sql_type)
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    base = avro_type["type"] if isinstance(avro_type, dict) else avro_type
    convert: Converter
    if logical == "decimal":
        assert isinstance(avro_type, dict)
        convert = _decimal_converter(int(avro_type["scale"]), int(avro_type["precision"]))
    elif logical == "date":
        convert = _to_date
    elif logical == "timestamp-micros":
        convert = _to_timestamp
    elif logical == "time-micros":
        convert = _to_time
    elif logical == "uuid":
        convert = _to_uuid
    else:
        convert = _PLAIN[str(base)]

    def checked(value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise SourceDataError(
                f"column {column.name!r} ({column.sql_type}): cannot convert a "
                f"{type(value).__name__} value: {exc}"
            ) from exc

    return checked


def _decimal_converter(scale: int, precision: int) -> Converter:
    quantum = decimal.Decimal(1).scaleb(-scale)
    # the default context has 28 digits: DECIMAL(65,30) needs the column's own precision
    context = decimal.Context(prec=max(precision, 28) + 2, rounding=decimal.ROUND_HALF_EVEN)

    def convert(value: Any) -> decimal.Decimal:
        number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
        if not number.is_finite():
            raise ValueError(f"{number} is not a finite number")
        return number.quantize(quantum, context=context)

    return convert


def _to_uuid(value: Any) -> str:
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):
        return value  # already what uuid.UUID(...) would print: skip parsing it
    return str(uuid.UUID(str(value)))


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int):
        return _EPOCH_DATE + dt.timedelta(days=value)
    return dt.date.fromisoformat(str(value).strip()[:10])


def _to_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    else:
        moment = dt.datetime.fromisoformat(str(value).strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _to_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, dt.timedelta):
        return (dt.datetime.min + value).time()
    return dt.time.fromisoformat(str(value).strip())


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"1", "t", "true", "y", "yes"}:
            return True
        if lowered in {"0", "f", "false", "n", "no"}:
            return False
        raise ValueError(f"{value!r} is not a boolean")
    return bool(value)


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value) if value else b""
    raise TypeError("expected bytes")


def _to_str(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PLAIN_TYPES: dict[str, type] = {"int": int, "long": int, "double": float, "boolean": bool, "string": str}
_PLAIN: dict[str, Converter] = {
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": _to_bool,
    "string": _to_str,
    "bytes": _to_bytes,
}
