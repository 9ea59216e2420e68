"""Keys typed by a user, for `unsilo history`: parsed by the topic's key schema, encoded as written.

A single-column key is given as its value (``42``; an int column parses as an int), a
composite key as ``col=value,col=value`` or a JSON object, a key whose schema is a
primitive (outbox aggregate ids) as the text itself. Encoded with each registered key
schema version in Confluent's wire format, the key's bytes find its records without
decoding every key, and its partition the way librdkafka's default partitioner
(``consistent_random``: CRC-32 of the key bytes) placed it.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import fastavro

from hub.errors import SerializationError
from hub.registry import SubjectVersion
from hub.serde import MAGIC

_HEADER = struct.Struct(">bI")  # Confluent wire format: magic byte, schema id
_FORMAT_HINT = "give a single-column key as its value, a composite one as col=value,col=value or JSON"


def parse_key(text: str, schema: Any) -> Any:
    """The key datum ``text`` stands for under the Avro key ``schema``."""
    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        return coerce(text, schema, "key")
    fields = {f["name"]: f["type"] for f in schema.get("fields", [])}
    given = _pairs(text, fields)
    unknown = sorted(set(given) - set(fields))
    missing = sorted(set(fields) - set(given))
    if unknown or missing:
        problem = f"unknown column(s) {unknown}" if unknown else f"missing column(s) {missing}"
        raise SerializationError(
            f"key {text!r}: {problem}; the key columns are {', '.join(fields)}", hint=_FORMAT_HINT
        )
    return {name: coerce(given[name], fields[name], name) for name in fields}


def _pairs(text: str, fields: dict[str, Any]) -> dict[str, Any]:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise SerializationError(f"key {text!r} is not valid JSON: {exc.msg}", hint=_FORMAT_HINT) from exc
        if not isinstance(loaded, dict):
            raise SerializationError(f"key {text!r} must be a JSON object", hint=_FORMAT_HINT)
        return loaded
    first = stripped.split("=", 1)[0].strip()
    if "=" in stripped and (len(fields) > 1 or first in fields):
        pairs = {}
        for part in stripped.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise SerializationError(f"key {text!r}: {part!r} is not col=value", hint=_FORMAT_HINT)
            pairs[name.strip()] = value.strip()
        return pairs
    if len(fields) == 1:
        return {next(iter(fields)): stripped}
    raise SerializationError(
        f"key {text!r}: this topic's key has {len(fields)} columns ({', '.join(fields)})", hint=_FORMAT_HINT
    )


def coerce(value: Any, avro: Any, name: str) -> Any:
    """``value`` (text or a JSON value) as the Python value fastavro writes for ``avro``."""
    if isinstance(avro, list):
        if value is None or value == "null":
            return None
        branches = [b for b in avro if b != "null"]
        return coerce(value, branches[0], name) if branches else None
    kind, logical = (avro.get("type"), avro.get("logicalType")) if isinstance(avro, dict) else (avro, None)
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        if logical == "decimal":
            return Decimal(text)
        if logical == "date":
            return date.fromisoformat(text)
        if logical in ("timestamp-micros", "timestamp-millis"):
            return datetime.fromisoformat(text)
        if kind in ("int", "long"):
            return value if isinstance(value, int) else int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean":
            return value if isinstance(value, bool) else text.lower() in ("true", "1", "yes")
        if kind == "bytes":
            return bytes.fromhex(text)
    except (ValueError, InvalidOperation) as exc:
        raise SerializationError(f"key column {name}: {value!r} is not a {logical or kind}") from exc
    return value if isinstance(value, str) else text


def encodings(datum: Any, versions: list[SubjectVersion]) -> set[bytes]:
    """``datum`` in Confluent wire format under each key schema version it fits."""
    found = set()
    for version in versions:
        buffer = io.BytesIO()
        buffer.write(_HEADER.pack(MAGIC, version.schema_id))
        try:
            fastavro.schemaless_writer(buffer, fastavro.parse_schema(version.schema), datum)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        found.add(buffer.getvalue())
    return found


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``) gives ``key``."""
    return zlib.crc32(key) % partitions if key else 0


def same_key(decoded: Any, wanted: Any) -> bool:
    """Whether a decoded key equals the parsed one (compared as text, column by column)."""
    if isinstance(decoded, dict) and isinstance(wanted, dict):
        return decoded.keys() == wanted.keys() and all(str(decoded[k]) == str(wanted[k]) for k in wanted)
    return str(decoded) == str(wanted)


def key_text(datum: Any) -> str:
    """A key as a user writes it: the value of a single column, else col=value pairs."""
    if isinstance(datum, dict):
        if len(datum) == 1:
            return str(next(iter(datum.values())))
        return ",".join(f"{k}={v}" for k, v in datum.items())
    return str(datum)
