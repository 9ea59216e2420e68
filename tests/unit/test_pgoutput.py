"""pgoutput decoding, LSNs, text values and chunk visibility, without a server."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import pytest

from connectors.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Message,
    ProtocolError,
    Relation,
    RelationColumn,
    Truncate,
    Update,
    decode,
    format_lsn,
    parse_lsn,
    parser_for,
    to_epoch_ms,
)
from connectors.postgres import PostgresConnector, _Chunk, _Visibility, position_order
from hub.config import SourceSettings


def text_tuple(*values: object) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            data = str(value).encode()
            out += b"t" + struct.pack(">i", len(data)) + data
    return out


def test_lsns_format_and_parse_like_postgresql() -> None:
    """LSNs read and write as PostgreSQL's X/Y hex, and change positions sort by LSN then index."""
    assert format_lsn(0x16B3748) == "0/16B3748"
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert sorted(["0/A:2", "0/9:10", "0/A:1"], key=position_order) == ["0/9:10", "0/A:1", "0/A:2"]
    with pytest.raises(ValueError):
        parse_lsn("12345")


def test_begin_and_commit_carry_lsns_xid_and_commit_time() -> None:
    """Begin gives the commit LSN, time and xid; Commit the commit and end LSNs."""
    ts_us = (dt.datetime(2024, 1, 1, tzinfo=dt.UTC) - dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
        microseconds=1
    )
    begin = decode(b"B" + struct.pack(">qqI", 0x100, ts_us, 4242))
    commit = decode(b"C" + struct.pack(">bqqq", 0, 0x100, 0x130, ts_us))

    assert begin == Begin(0x100, 1704067200000, 4242)
    assert commit == Commit(0x100, 0x130, 1704067200000)
    assert to_epoch_ms(0) == 946684800000


def test_relation_and_row_messages_decode() -> None:
    """Relation, Insert, Update with old key or old row, Delete and Truncate decode to their values."""
    relation = (
        b"R" + struct.pack(">I", 16384) + b"\x00customers\x00d" + struct.pack(">h", 2)
        + b"\x01id\x00" + struct.pack(">Ii", 23, -1) + b"\x00name\x00" + struct.pack(">Ii", 25, -1)
    )  # fmt: skip
    oid = struct.pack(">I", 16384)

    assert decode(relation) == Relation(
        16384,
        "pg_catalog",
        "customers",
        "d",
        (RelationColumn("id", True, 23), RelationColumn("name", False, 25)),
    )
    assert decode(b"I" + oid + b"N" + text_tuple("1", None)) == Insert(16384, ["1", None])
    assert decode(b"U" + oid + b"N" + text_tuple("1", UNCHANGED)) == Update(
        16384, None, None, ["1", UNCHANGED]
    )
    assert decode(b"U" + oid + b"K" + text_tuple("1", None) + b"N" + text_tuple("2", "x")) == Update(
        16384, "K", ["1", None], ["2", "x"]
    )
    assert decode(b"D" + oid + b"O" + text_tuple("1", "é")) == Delete(16384, "O", ["1", "é"])
    assert decode(b"T" + struct.pack(">ibII", 2, 0, 1, 2)) == Truncate((1, 2))


def test_logical_messages_and_ignored_kinds() -> None:
    """A logical message gives its prefix and content; Origin and Type are skipped; junk is an error."""
    message = b"M\x01" + struct.pack(">q", 0x200) + b"unsilo.watermark\x00" + struct.pack(">i", 3) + b"abc"

    assert decode(message) == Message(True, 0x200, "unsilo.watermark", b"abc")
    assert decode(b"Y" + b"\x00" * 8) is None
    with pytest.raises(ProtocolError):
        decode(b"Z")
    with pytest.raises(ProtocolError):
        decode(b"B\x00")


def test_text_values_parse_into_what_the_avro_converters_take() -> None:
    """Booleans, bytea hex, numerics, dates and times parse exactly; unreadable text stays text."""
    assert parser_for("bool")("t") is True and parser_for("bool")("f") is False
    assert parser_for("bytea")("\\x00ff") == b"\x00\xff"
    assert parser_for("numeric")("1234567890.12") == Decimal("1234567890.12")
    assert parser_for("int8")("-9223372036854775808") == -(2**63)
    assert parser_for("date")("2024-02-29") == dt.date(2024, 2, 29)
    assert parser_for("timestamptz")("2024-02-29 23:59:59.5+00") == dt.datetime(
        2024, 2, 29, 23, 59, 59, 500000, tzinfo=dt.UTC
    )
    assert parser_for("timestamp")("infinity") == "infinity"
    assert parser_for("interval")("1 day") == "1 day"


def test_chunk_visibility_follows_the_snapshot_with_xid_wraparound() -> None:
    """A snapshot sees xids before xmin and finished ones before xmax; not running or later ones."""
    seen = _Visibility.parse("100:110:103,105")
    wrapped = _Visibility.parse(f"{2**32 - 5}:{2**32 + 5}:{2**32 + 1}")  # 64-bit, across wraparound

    assert [seen.sees(x) for x in (99, 100, 103, 104, 105, 110, 200)] == [
        True,
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    assert [wrapped.sees(x) for x in (2**32 - 10, 2**32 - 1, 0, 1, 4, 5)] == [
        True,
        True,
        True,
        False,
        True,
        False,
    ]


def test_a_chunk_raced_by_an_invisible_commit_is_read_again() -> None:
    """A transaction on the chunk's table committed before the watermark but unseen by it fails the check."""
    connector = PostgresConnector(
        SourceSettings(name="s", system="x", kind="postgres", url="postgresql://u@h/d", tables=["t"])
    )
    chunk = _Chunk("t", "token", _Visibility.parse("100:110:105"), [], None, 0)
    recent = connector._stream.recent

    recent.extend([(101, 0x400, frozenset({"t"})), (105, 0x600, frozenset({"t"}))])
    consistent = connector._consistent(chunk, 0x500)
    recent.append((105, 0x450, frozenset({"t"})))
    raced = connector._consistent(chunk, 0x500)
    recent.pop()
    recent.append((105, 0x450, frozenset({"other"})))

    assert consistent and not raced and connector._consistent(chunk, 0x500)
