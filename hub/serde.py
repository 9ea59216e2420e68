"""Confluent wire format: byte 0x00, a 4-byte big-endian schema id, then Avro binary.

Encoding registers a schema once per subject and caches the id and the parsed schema;
decoding caches parsed writer schemas by id.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from fastavro.types import Schema as ParsedSchema

from hub.avro_codec import Encode, NativeEncode, Unencodable, Unsupported, compile_encoder, native_encoder
from hub.errors import SerializationError
from hub.registry import SchemaRegistry

MAGIC = 0
_HEADER = struct.Struct(">bI")


class Writer:
    """A registered schema ready to encode data: its id and the parsed schema.

    Data is written by the encoders of :mod:`hub.avro_codec` (same bytes: the C one, else
    the Python one); a datum they do not take as it is, and schemas they do not compile,
    are written by fastavro, whose errors are the ones reported.
    """

    def __init__(self, subject: str, schema_id: int, parsed: ParsedSchema) -> None:
        self.subject = subject
        self.schema_id = schema_id
        self.parsed = parsed
        self.header = _HEADER.pack(MAGIC, schema_id)
        try:
            self._compiled: Encode | None = compile_encoder(parsed)
            self._native: NativeEncode | None = native_encoder(parsed)
        except Unsupported:
            self._compiled = self._native = None

    def encode(self, datum: Any) -> bytes:
        """``datum`` in Confluent wire format; SerializationError when it does not fit."""
        if self._native is not None:
            try:
                return self._native(datum, self.header)
            except Unencodable:
                pass  # the Python encoder takes decimals beyond 18 digits and uuids in other spellings
        if self._compiled is not None:
            out = [self.header]
            try:
                self._compiled(datum, out)
                return b"".join(out)
            except (Unencodable, KeyError, TypeError, ValueError, AttributeError, OverflowError):
                pass  # fastavro decides: it may fill defaults, convert, or explain the error
        buffer = io.BytesIO()
        buffer.write(self.header)
        try:
            fastavro.schemaless_writer(buffer, self.parsed, datum)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerializationError(f"value does not fit {self.subject}: {exc}") from exc
        return buffer.getvalue()


class AvroSerde:
    """Encodes and decodes Avro data in Confluent wire format against a registry."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._writers: dict[tuple[str, str], Writer] = {}
        self._readers: dict[int, ParsedSchema] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def writer(self, subject: str, schema: dict[str, Any]) -> Writer:
        """A :class:`Writer` for ``schema`` under ``subject``, registering it once."""
        cache_key = (subject, canonical_text(schema))
        found = self._writers.get(cache_key)
        if found is None:
            schema_id = self.registry.register(subject, schema)
            found = Writer(subject, schema_id, fastavro.parse_schema(schema))
            self._writers[cache_key] = found
            self._readers.setdefault(schema_id, found.parsed)
            self._schemas.setdefault(schema_id, schema)
        return found

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema registered under ``schema_id`` (fetched once)."""
        found = self._schemas.get(schema_id)
        if found is None:
            found = self.registry.schema_by_id(schema_id)
            self._schemas[schema_id] = found
        return found

    def decode_with_schema(self, data: bytes) -> tuple[Any, dict[str, Any]]:
        """The datum in ``data`` and its writer schema."""
        return self.decode(data), self.schema(schema_id_of(data))

    def decode(self, data: bytes | None) -> Any:
        """The datum in ``data`` (None for a tombstone)."""
        if data is None:
            return None
        schema_id = schema_id_of(data)
        parsed = self._readers.get(schema_id)
        if parsed is None:
            parsed = fastavro.parse_schema(self.schema(schema_id))
            self._readers[schema_id] = parsed
        try:
            return fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed, None)
        except (ValueError, EOFError, IndexError, TypeError) as exc:
            raise SerializationError(f"cannot decode Avro for schema id {schema_id}") from exc


def schema_id_of(data: bytes) -> int:
    """The schema id in a Confluent wire-format message."""
    if len(data) < 5 or data[0] != MAGIC:
        raise SerializationError("not Confluent wire format (no 0x00 magic byte)")
    return int(_HEADER.unpack_from(data)[1])


def canonical_text(schema: dict[str, Any]) -> str:
    """A stable text for a schema, to use as a cache key."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
