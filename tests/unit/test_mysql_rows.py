"""Rows decoded in C equal the rows PyMySQL's own reader gives, for every kind of field."""

from __future__ import annotations

import decimal
import random
import struct
from typing import Any

import pymysql
import pytest
from pymysql.protocol import MysqlPacket

from connectors import mysql_rows, mysql_server
from connectors.mysql_rows import DATE, DATETIME, plan_for

if not mysql_rows.available():
    pytest.skip("the C row decoder was not built here", allow_module_level=True)


iso_datetime, iso_date = mysql_server._datetime, mysql_server._date  # the connector's own decoders
FAST_KINDS = {int: mysql_rows.INT, float: mysql_rows.FLOAT, **mysql_server._Connection.fast_kinds}
CONVERTERS: list[tuple[str | None, Any]] = [
    ("ascii", int),
    ("utf8", None),
    ("ascii", decimal.Decimal),
    ("ascii", float),
    ("ascii", iso_datetime),
    ("ascii", iso_date),
    (None, None),  # binary
    ("latin1", None),
    ("ascii", pymysql.converters.convert_timedelta),
]


def length_coded(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    n = len(value)
    if n < 251:
        return bytes([n]) + value
    if n < 2**16:
        return b"\xfc" + struct.pack("<H", n) + value
    if n < 2**24:
        return b"\xfd" + struct.pack("<I", n)[:3] + value
    return b"\xfe" + struct.pack("<Q", n) + value


def random_fields(rng: random.Random) -> list[bytes | None]:
    def maybe(value: str | bytes) -> bytes | None:
        if rng.random() < 0.1:
            return None
        return value if isinstance(value, bytes) else value.encode("utf-8")

    text = "".join(rng.choice("aZ é€😀\n'") for _ in range(rng.choice([0, 5, 300, 70_000])))
    stamp = rng.choice(
        ["2024-02-29 23:59:59", "2024-06-01 00:00:01.123", "1999-12-31 10:00:00.000001",
         "0000-00-00 00:00:00", "2023-02-30 01:02:03", "2024-01-01 00:00:01.5",
         "9999-12-31 23:59:59.999999", "2024-01-01T00:00:00"]
    )  # fmt: skip
    day = rng.choice(["2024-02-29", "0000-00-00", "2023-02-29", "1970-01-01", "2024-1-01"])
    number = rng.choice([str(rng.randrange(-(2**63), 2**63)), "-0", "0", "12345678901234567890", "7"])
    double = rng.choice([repr(rng.uniform(-1e300, 1e300)), "1e-320", "-0", "3.5", "1e308", "12"])
    return [
        maybe(number),
        maybe(text),
        maybe(f"{rng.randrange(-(10**12), 10**12)}.{rng.randrange(100):02d}"),
        maybe(double),
        maybe(stamp),
        maybe(day),
        maybe(rng.randbytes(rng.randrange(0, 40))),
        maybe("café".encode("latin1")),
        maybe(rng.choice(["838:59:59", "-01:00:00.5", "12:00:00"])),
    ]


def pymysql_row(data: bytes) -> tuple[Any, ...]:
    result = pymysql.connections.MySQLResult(None)
    result.converters = CONVERTERS
    return result._read_row_from_packet(MysqlPacket(data, "utf8"))


def test_rows_equal_pymysqls() -> None:
    rng = random.Random(11)
    plan = plan_for(CONVERTERS, FAST_KINDS)
    assert [kind for kind, _, _ in plan][:6] == [
        mysql_rows.INT,
        mysql_rows.UTF8,
        0,
        mysql_rows.FLOAT,
        DATETIME,
        DATE,
    ]
    for _ in range(600):
        data = b"".join(length_coded(value) for value in random_fields(rng))
        expected = pymysql_row(data)
        got = mysql_rows.decode_row(data, 0, plan)
        assert got == expected
        assert [type(v) for v in got] == [type(v) for v in expected]


def test_a_short_row_stops_where_pymysql_stops() -> None:
    plan = plan_for(CONVERTERS, FAST_KINDS)
    data = length_coded(b"42") + length_coded(b"x")
    assert mysql_rows.decode_row(data, 0, plan) == pymysql_row(data) == (42, "x")


def test_bad_utf8_fails_as_in_pymysql() -> None:
    plan = plan_for(CONVERTERS, FAST_KINDS)
    data = length_coded(b"1") + length_coded(b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        pymysql_row(data)
    with pytest.raises(UnicodeDecodeError):
        mysql_rows.decode_row(data, 0, plan)


def test_a_truncated_packet_is_an_error_not_a_crash() -> None:
    plan = plan_for(CONVERTERS, FAST_KINDS)
    with pytest.raises(AssertionError):
        mysql_rows.decode_row(b"\x05ab", 0, plan)
    with pytest.raises(AssertionError):
        mysql_rows.decode_row(b"\xfc\x01", 0, plan)
