"""PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1), decoded.

A pure parser, no I/O: :func:`decode` turns one ``XLogData`` payload into a message object
(Begin, Commit, Relation, Insert, Update, Delete, Truncate, Message; Origin and Type are
returned as None). Column values arrive in PostgreSQL's text output format; :func:`parser_for`
gives the function that turns such a text into the Python value the Avro converters accept.
LSNs are 64-bit integers here and ``X/Y`` hex strings at the edges (:func:`format_lsn`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: A tuple column's value as sent: None (SQL NULL), UNCHANGED (a TOASTed value the update
#: did not touch, not sent) or its text.
UNCHANGED = object()
TupleValue = str | object | None
Parser = Callable[[str], Any]

_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01 in ms since the Unix epoch
_I16, _I32, _I64, _U32 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q"), struct.Struct(">I")
_BEGIN = struct.Struct(">qqI")
_COMMIT = struct.Struct(">bqqq")


@dataclass(frozen=True)
class Begin:
    final_lsn: int  # the LSN of the commit record
    commit_ts_ms: int
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # the end of the commit record: streaming from here skips this transaction
    commit_ts_ms: int


@dataclass(frozen=True)
class RelationColumn:
    name: str
    key: bool  # part of the replica identity
    type_oid: int


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str  # d default, f full, i index, n nothing
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True)
class Insert:
    oid: int
    new: list[TupleValue]


@dataclass(frozen=True)
class Update:
    oid: int
    old_kind: str | None  # 'O' full old row, 'K' old key only, None: key unchanged, not sent
    old: list[TupleValue] | None
    new: list[TupleValue]


@dataclass(frozen=True)
class Delete:
    oid: int
    old_kind: str
    old: list[TupleValue]


@dataclass(frozen=True)
class Truncate:
    oids: tuple[int, ...]


@dataclass(frozen=True)
class Message:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Decoded = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Message


class ProtocolError(ValueError):
    """A payload that is not a pgoutput message we understand."""


def decode(payload: bytes) -> Decoded | None:
    """The message in one pgoutput payload; None for the ones we do not use (Origin, Type)."""
    kind = payload[:1]
    try:
        if kind == b"B":
            final_lsn, ts, xid = _BEGIN.unpack_from(payload, 1)
            return Begin(final_lsn, to_epoch_ms(ts), xid)
        if kind == b"C":
            _, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(payload, 1)
            return Commit(commit_lsn, end_lsn, to_epoch_ms(ts))
        if kind == b"I":
            oid = _U32.unpack_from(payload, 1)[0]
            new, _ = _tuple(payload, 6)  # skip the 'N'
            return Insert(oid, new)
        if kind == b"U":
            return _update(payload)
        if kind == b"D":
            oid = _U32.unpack_from(payload, 1)[0]
            old, _ = _tuple(payload, 6)
            return Delete(oid, chr(payload[5]), old)
        if kind == b"R":
            return _relation(payload)
        if kind == b"T":
            count = _I32.unpack_from(payload, 1)[0]
            oids = struct.unpack_from(f">{count}I", payload, 6)
            return Truncate(tuple(oids))
        if kind == b"M":
            transactional = bool(payload[1] & 1)
            lsn = _I64.unpack_from(payload, 2)[0]
            prefix, offset = _string(payload, 10)
            length = _I32.unpack_from(payload, offset)[0]
            content = bytes(payload[offset + 4 : offset + 4 + length])
            return Message(transactional, lsn, prefix, content)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed pgoutput {kind!r} message: {exc}") from exc
    if kind in (b"O", b"Y"):
        return None
    raise ProtocolError(f"unknown pgoutput message type {kind!r}")


def _update(payload: bytes) -> Update:
    oid = _U32.unpack_from(payload, 1)[0]
    marker = chr(payload[5])
    old: list[TupleValue] | None = None
    old_kind: str | None = None
    offset = 6
    if marker in ("K", "O"):
        old_kind = marker
        old, offset = _tuple(payload, 6)
        offset += 1  # the 'N' of the new tuple
    new, _ = _tuple(payload, offset)
    return Update(oid, old_kind, old, new)


def _relation(payload: bytes) -> Relation:
    oid = _U32.unpack_from(payload, 1)[0]
    namespace, offset = _string(payload, 5)
    name, offset = _string(payload, offset)
    identity = chr(payload[offset])
    count = _I16.unpack_from(payload, offset + 1)[0]
    offset += 3
    columns = []
    for _ in range(count):
        flags = payload[offset]
        column, offset = _string(payload, offset + 1)
        type_oid = _U32.unpack_from(payload, offset)[0]
        offset += 8  # type oid and type modifier
        columns.append(RelationColumn(column, bool(flags & 1), type_oid))
    return Relation(oid, namespace or "pg_catalog", name, identity, tuple(columns))


def _string(payload: bytes, offset: int) -> tuple[str, int]:
    end = payload.index(b"\x00", offset)
    return bytes(payload[offset:end]).decode("utf-8"), end + 1


def _tuple(payload: bytes, offset: int) -> tuple[list[TupleValue], int]:
    count = _I16.unpack_from(payload, offset)[0]
    offset += 2
    values: list[TupleValue] = []
    for _ in range(count):
        kind = payload[offset]
        offset += 1
        if kind == 0x74:  # 't' text
            length = _I32.unpack_from(payload, offset)[0]
            offset += 4
            values.append(bytes(payload[offset : offset + length]).decode("utf-8"))
            offset += length
        elif kind == 0x6E:  # 'n' null
            values.append(None)
        elif kind == 0x75:  # 'u' unchanged TOASTed value
            values.append(UNCHANGED)
        else:
            raise ProtocolError(f"unsupported tuple column kind {chr(kind)!r} (binary mode is off)")
    return values, offset


# -- LSNs and times --------------------------------------------------------------------


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL writes it: ``16/B374D848``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """The 64-bit value of an ``X/Y`` LSN."""
    high, _, low = text.partition("/")
    if not low:
        raise ValueError(f"{text!r} is not an LSN like 0/16B3748")
    return (int(high, 16) << 32) | int(low, 16)


def to_epoch_ms(pg_timestamp_us: int) -> int:
    """A pgoutput timestamp (microseconds since 2000-01-01 UTC) in ms since the Unix epoch."""
    return _PG_EPOCH_MS + pg_timestamp_us // 1000


# -- values ----------------------------------------------------------------------------


def _bool(text: str) -> bool:
    return text == "t"


def _bytea(text: str) -> bytes:
    return bytes.fromhex(text[2:])  # bytea_output = hex: \x0a0b...


_PARSERS: dict[str, Parser] = {
    "int2": int,
    "int4": int,
    "int8": int,
    "oid": int,
    "float4": float,
    "float8": float,
    "numeric": decimal.Decimal,
    "bool": _bool,
    "bytea": _bytea,
    "date": dt.date.fromisoformat,
    "timestamp": dt.datetime.fromisoformat,
    "timestamptz": dt.datetime.fromisoformat,  # the session runs in UTC: ...+00
    "time": dt.time.fromisoformat,
}

#: Type names whose values keep their own Avro type; every other type is captured as text.
TYPED = frozenset(_PARSERS) | {"text", "varchar", "bpchar", "char", "uuid", "json", "jsonb"}


def parser_for(type_name: str) -> Parser:
    """Text-to-value for a base type name (``pg_type.typname``); text stays text otherwise.

    A text the parser cannot read (``infinity`` dates, ``NaN``) is kept as it is, so the
    Avro converter reports it as a data error and the row goes to the dead-letter topic.
    """
    parse = _PARSERS.get(type_name)
    if parse is None:
        return str

    def lenient(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, ArithmeticError):
            return text

    return lenient
