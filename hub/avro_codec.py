"""Avro binary encoders for the schemas the hub writes, byte for byte what fastavro writes.

fastavro's ``schemaless_writer`` spends most of its time per call, not per field (about
5 us for an empty record on this 2-core machine), which dominated snapshot publishing.
Two encoders run the same :mod:`hub.avro_program` program with no per-call setup:

- :func:`native_encoder`, the C extension hub/_avro_native.c (about 1 us for a change event);
- :func:`compile_encoder`, nested Python closures (about 12 us): the fallback, and the
  encoder used where the extension was not built.

Both are strict: any value whose Python type is not the plain one for its Avro type (``int``
for long, ``str`` for string, an aware or naive ``datetime`` for timestamps, a ``Decimal``
already at the schema's scale, ...) raises :class:`Unencodable`, and the caller falls back
(C, then Python, then fastavro), so what is accepted and every error message stay
fastavro's. Schemas with constructs they do not compile raise :class:`Unsupported` and are
written by fastavro throughout. tests/unit/test_avro_codec.py checks both encoders' bytes
equal fastavro's for every type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import struct
import uuid
from collections.abc import Callable
from typing import Any

from hub.avro_program import Node, Unsupported, program

__all__ = [
    "Encode",
    "NativeEncode",
    "Unencodable",
    "Unsupported",
    "compile_encoder",
    "compile_program",
    "native_encoder",
    "varint",
]

try:
    from hub import _avro_native as _native  # type: ignore[attr-defined]  # built from hub/_avro_native.c
except ImportError:  # pragma: no cover - the install had no C compiler
    _native = None

Out = list[bytes]
Encode = Callable[[Any, Out], None]
NativeEncode = Callable[[Any, bytes], bytes]

_DOUBLE = struct.Struct("<d").pack
_FLOAT = struct.Struct("<f").pack
_SMALL = [bytes([i]) for i in range(128)]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_NULL, _ONE = b"\x00", b"\x02"  # union branch 0 and 1, zigzag-encoded


class Unencodable(Exception):
    """This datum is not of the plain type expected: let fastavro decide (and explain)."""


def varint(n: int) -> bytes:
    """Zigzag varint of a signed 64-bit integer."""
    n = (n << 1) ^ (n >> 63)
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def compile_encoder(schema: Any) -> Encode:
    """An encoder for ``schema`` (as ``fastavro.parse_schema`` returns it, or plain JSON)."""
    return compile_program(program(schema))


def native_encoder(schema: Any) -> NativeEncode | None:
    """The C encoder (hub/_avro_native.c) for ``schema``: ``encode(datum, prefix) -> bytes``.

    None when the extension was not built (no compiler at install time), or when
    UNSILO_AVRO_ENCODER=python asks for the Python encoder. Raises :class:`Unsupported`.
    """
    if _native is None or os.environ.get("UNSILO_AVRO_ENCODER") == "python":
        return None
    encode: NativeEncode = _native.Encoder(program(schema), Unencodable, decimal.Decimal, uuid.UUID).encode
    return encode


def compile_program(node: Node) -> Encode:
    """Closures running ``node`` (a :mod:`hub.avro_program` program)."""
    return _Compiler().build(node)


class _Compiler:
    def __init__(self) -> None:
        self.records: dict[int, list[Encode]] = {}  # a box per record slot, filled once built

    def build(self, node: Node) -> Encode:
        op = node[0]
        simple = _SIMPLE.get(op)
        if simple is not None:
            return simple
        if op == "record":
            return self._record(node[1], node[2])
        if op == "ref":
            box = self.records[node[1]]

            def ref(datum: Any, out: Out) -> None:
                box[0](datum, out)

            return ref
        if op == "union":
            return self._union(node[1], node[2], self.build(node[3]), node[4])
        if op == "enum":
            return _enum(node[1])
        if op == "fixed":
            return _fixed(node[1])
        if op == "array":
            return _array(self.build(node[1]))
        if op == "map":
            return _map(self.build(node[1]))
        if op == "decimal":
            return _decimal(node[1], node[2])
        raise Unsupported(f"program node {op}")

    def _record(self, slot: int, spec: tuple[tuple[str, Node], ...]) -> Encode:
        box: list[Encode] = []
        self.records[slot] = box
        fields = [(name, self.build(node)) for name, node in spec]

        def record(datum: Any, out: Out) -> None:
            if type(datum) is not dict:
                raise Unencodable("a record is written from a dict")
            for name, encode in fields:
                encode(datum[name], out)  # a missing field: KeyError -> fastavro (defaults)

        box.append(record)
        return record

    def _union(self, null: int, other: int, only: Encode, hints: dict[str, tuple[int, Node]]) -> Encode:
        by_name = {name: (varint(i), self.build(n)) for name, (i, n) in hints.items()}
        null_tag = varint(null) if null >= 0 else None
        only_tag = varint(other)

        def union(datum: Any, out: Out) -> None:
            if datum is None:
                if null_tag is None:
                    raise Unencodable("null for a union without null")
                out.append(null_tag)
                return
            if type(datum) is tuple and len(datum) == 2 and datum[0] in by_name:
                tag, encode = by_name[datum[0]]  # fastavro's (name, value) branch hint
                out.append(tag)
                encode(datum[1], out)
                return
            out.append(only_tag)
            only(datum, out)

        return union


def _enum(symbols: dict[str, int]) -> Encode:
    index = {symbol: varint(i) for symbol, i in symbols.items()}

    def enum(datum: Any, out: Out) -> None:
        tag = index.get(datum) if type(datum) is str else None
        if tag is None:
            raise Unencodable("not a symbol of the enum")
        out.append(tag)

    return enum


def _null(datum: Any, out: Out) -> None:
    if datum is not None:
        raise Unencodable("not null")


def _boolean(datum: Any, out: Out) -> None:
    if type(datum) is not bool:
        raise Unencodable("not a bool")
    out.append(b"\x01" if datum else b"\x00")


def _long(datum: Any, out: Out) -> None:
    if type(datum) is not int or not -(2**63) <= datum < 2**63:
        raise Unencodable("not a 64-bit int")
    out.append(varint(datum))


def _int(datum: Any, out: Out) -> None:
    if type(datum) is not int or not -(2**31) <= datum < 2**31:
        raise Unencodable("not a 32-bit int")
    out.append(varint(datum))


def _double(datum: Any, out: Out) -> None:
    if type(datum) is not float and type(datum) is not int:
        raise Unencodable("not a number")
    out.append(_DOUBLE(datum))


def _float(datum: Any, out: Out) -> None:
    if type(datum) is not float and type(datum) is not int:
        raise Unencodable("not a number")
    out.append(_FLOAT(datum))


def _string(datum: Any, out: Out) -> None:
    if type(datum) is not str:
        raise Unencodable("not a str")
    data = datum.encode("utf-8")
    out.append(varint(len(data)))
    out.append(data)


def _bytes(datum: Any, out: Out) -> None:
    if type(datum) is not bytes:
        raise Unencodable("not bytes")
    out.append(varint(len(datum)))
    out.append(datum)


def _fixed(size: int) -> Encode:
    def fixed(datum: Any, out: Out) -> None:
        if type(datum) is not bytes or len(datum) != size:
            raise Unencodable(f"not {size} bytes")
        out.append(datum)

    return fixed


def _array(items: Encode) -> Encode:
    def array(datum: Any, out: Out) -> None:
        if type(datum) is not list:
            raise Unencodable("not a list")
        if datum:
            out.append(varint(len(datum)))
            for item in datum:
                items(item, out)
        out.append(b"\x00")

    return array


def _map(values: Encode) -> Encode:
    def mapping(datum: Any, out: Out) -> None:
        if type(datum) is not dict:
            raise Unencodable("not a dict")
        if datum:
            out.append(varint(len(datum)))
            for key, value in datum.items():
                _string(key, out)
                values(value, out)
        out.append(b"\x00")

    return mapping


def _decimal(scale: int, precision: int) -> Encode:
    def encode(datum: Any, out: Out) -> None:
        if type(datum) is not decimal.Decimal:
            raise Unencodable("not a Decimal")
        sign, digits, exponent = datum.as_tuple()
        if exponent != -scale or len(digits) > precision:
            raise Unencodable("not at the schema's scale and precision")
        unscaled = int("".join(map(str, digits)) or "0")
        if sign:
            unscaled = -unscaled
        data = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)  # as fastavro
        out.append(varint(len(data)))
        out.append(data)

    return encode


def _date(datum: Any, out: Out) -> None:
    if type(datum) is not dt.date:
        raise Unencodable("not a date")
    out.append(varint(datum.toordinal() - _EPOCH_DAY))


def _since_epoch(datum: Any) -> dt.timedelta:
    if type(datum) is not dt.datetime:
        raise Unencodable("not a datetime")
    return datum - (_EPOCH if datum.tzinfo is not None else _EPOCH_NAIVE)


def _timestamp_micros(datum: Any, out: Out) -> None:
    delta = _since_epoch(datum)
    out.append(varint((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds))


def _timestamp_millis(datum: Any, out: Out) -> None:
    delta = _since_epoch(datum)
    out.append(varint((delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000))


def _time_micros(datum: Any, out: Out) -> None:
    if type(datum) is not dt.time:
        raise Unencodable("not a time")
    out.append(varint(((datum.hour * 60 + datum.minute) * 60 + datum.second) * 1_000_000 + datum.microsecond))


def _uuid(datum: Any, out: Out) -> None:
    if type(datum) is uuid.UUID:
        datum = str(datum)
    _string(datum, out)


_SIMPLE: dict[str, Encode] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": _long,
    "float": _float,
    "double": _double,
    "bytes": _bytes,
    "string": _string,
    "date": _date,
    "timestamp-micros": _timestamp_micros,
    "timestamp-millis": _timestamp_millis,
    "time-micros": _time_micros,
    "uuid": _uuid,
}
