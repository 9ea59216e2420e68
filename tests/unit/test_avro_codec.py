"""Both hub Avro encoders (C and Python) write exactly fastavro's bytes, and hand anything unusual back."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import os
import random
import uuid
from typing import Any

import fastavro
import pytest

from hub.avro_codec import Unencodable, Unsupported, compile_encoder, native_encoder, varint
from hub.avro_types import Column
from hub.envelope import SourceInfo, TableSchema
from hub.serde import Writer

COLUMNS = [
    Column("id", "bigint", nullable=False, primary_key=True),
    Column("name", "text"),
    Column("amount", "numeric(12,2)"),
    Column("born", "date"),
    Column("seen", "timestamptz"),
    Column("qty", "integer"),
    Column("score", "double precision"),
    Column("ok", "boolean"),
    Column("ref", "uuid"),
    Column("at", "time"),
    Column("blob", "bytea"),
]


def fastavro_bytes(schema: Any, datum: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), datum)
    return buffer.getvalue()


@pytest.fixture(params=["c", "python"])
def encode(request: pytest.FixtureRequest) -> Any:
    """``encode(schema, datum) -> bytes`` with one of the two encoders."""
    if request.param == "python":

        def python(schema: Any, datum: Any) -> bytes:
            out: list[bytes] = []
            compile_encoder(fastavro.parse_schema(schema))(datum, out)
            return b"".join(out)

        return python
    if native_encoder("null") is None:
        if os.environ.get("CI"):
            pytest.fail("hub/_avro_native.c was not built: `pip install -e .` needs gcc and Python's headers")
        pytest.skip("the C encoder was not built here (no compiler at install time)")

    def native(schema: Any, datum: Any) -> bytes:
        encoder = native_encoder(fastavro.parse_schema(schema))
        assert encoder is not None
        return encoder(datum, b"")

    return native


def random_row(rng: random.Random) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.15 else value

    return {
        "id": rng.randrange(-(2**63), 2**63),
        "name": maybe("".join(rng.choice("aé€😀 z\n\"'") for _ in range(rng.randrange(0, 40)))),
        "amount": maybe(decimal.Decimal(rng.randrange(-(10**12), 10**12)).scaleb(-2)),
        "born": maybe(dt.date(1, 1, 1) + dt.timedelta(days=rng.randrange(0, 3_000_000))),
        "seen": maybe(
            dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
            + dt.timedelta(microseconds=rng.randrange(0, 2**62 // 1000))
        ),
        "qty": maybe(rng.randrange(-(2**63), 2**63)),
        "score": maybe(rng.uniform(-1e300, 1e300)),
        "ok": maybe(rng.random() < 0.5),
        "ref": maybe(str(uuid.UUID(int=rng.getrandbits(128)))),
        "at": maybe(dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(10**6))),
        "blob": maybe(rng.randbytes(rng.randrange(0, 50))),
    }


def test_change_events_are_byte_identical_to_fastavro(encode: Any) -> None:
    """2,000 random rows of every column type, as the envelope of c/u/d/r events."""
    table = TableSchema("crm", "orders", COLUMNS, ["id"])
    rng = random.Random(42)
    info = SourceInfo("postgres", "crm", "db", "orders", False, "0/16B3748", 1_700_000_000_000, 7)
    for i in range(2000):
        before, after = table.row(random_row(rng)), table.row(random_row(rng))
        op = "cudr"[i % 4]
        datum = table.event(op, None if op in "cr" else before, None if op == "d" else after, info, i)
        assert encode(table.value_schema, datum) == fastavro_bytes(table.value_schema, datum)
        key = table.key_of(random_row(rng))
        assert encode(table.key_schema, key) == fastavro_bytes(table.key_schema, key)


@pytest.mark.parametrize(
    ("schema", "datum"),
    [
        ({"type": "array", "items": "long"}, [1, -2, 300, 2**40]),
        ({"type": "array", "items": "string"}, []),
        ({"type": "map", "values": ["null", "double"]}, {"a": 1.5, "b": None}),
        ({"type": "enum", "name": "Op", "symbols": ["c", "u", "d"]}, "d"),
        ({"type": "fixed", "name": "F", "size": 3}, b"abc"),
        ("float", 1.25),
        ("int", -(2**31)),
        ({"type": "long", "logicalType": "timestamp-millis"}, dt.datetime(1960, 5, 1, 3, 4, 5, 678_901)),
        ({"type": "long", "logicalType": "timestamp-micros"}, dt.datetime(2024, 2, 29, 23, 59, 59, 999_999)),
        (
            {"type": "long", "logicalType": "timestamp-micros"},
            dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        ),
        ({"type": "string", "logicalType": "uuid"}, uuid.UUID(int=12345)),
        ({"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 0}, decimal.Decimal("-128")),
        ({"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 3}, decimal.Decimal("0.000")),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 0},
            decimal.Decimal("-999999999999999999"),
        ),
        (
            {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "v", "type": "long"}, {"name": "next", "type": ["null", "Node"]}],
            },
            {"v": 1, "next": {"v": 2, "next": {"v": 3, "next": None}}},
        ),
        ({"type": "map", "values": {"type": "array", "items": "int"}}, {"a": [1, 2], "b": []}),
        (["null", {"type": "enum", "name": "E", "symbols": ["x", "y"]}], "y"),
        (["null", "string"], ("string", "named branch")),
        (["string", "null"], None),
        ("double", 3),
        ("string", "ascii, latin1 é, BMP €, astral 😀"),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            dt.datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=dt.UTC),
        ),
        ({"type": "int", "logicalType": "date"}, dt.date(1, 1, 1)),
        ({"type": "long", "logicalType": "time-micros"}, dt.time(23, 59, 59, 999_999)),
    ],
)
def test_other_types_are_byte_identical(encode: Any, schema: Any, datum: Any) -> None:
    assert encode(schema, datum) == fastavro_bytes(schema, datum)


@pytest.mark.parametrize(
    ("schema", "datum"),
    [
        ("long", "12"),  # fastavro decides (and words the error)
        ("long", 1.5),
        ("long", True),
        ("long", 2**63),
        ("int", 2**31),
        ("string", 12),
        ("boolean", 1),
        ({"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}, decimal.Decimal("1.5")),
        ({"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 0}, decimal.Decimal("1234")),
        ({"type": "int", "logicalType": "date"}, dt.datetime(2024, 1, 1)),
        ({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}, {"b": 1}),
        (["null", "long"], "x"),
        (["null", "long"], ("string", "x")),
        ("string", "lone surrogate \udc80"),
        ("float", 1e300),
    ],
)
def test_anything_not_plain_is_left_to_fastavro(encode: Any, schema: Any, datum: Any) -> None:
    with pytest.raises((Unencodable, KeyError, ValueError, OverflowError)):  # what hub.serde.Writer catches
        encode(schema, datum)


@pytest.mark.parametrize(("precision", "scale"), [(1, 0), (5, 2), (12, 2), (18, 5), (25, 10)])
def test_decimals_in_every_written_form_are_byte_identical(encode: Any, precision: int, scale: int) -> None:
    """Plain, exponent, zero, negative zero and out-of-range decimals: fastavro's bytes or a fallback.

    The C encoder reads plain decimals from their str() and leaves other forms to as_tuple().
    """
    schema = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    rng = random.Random(precision * 100 + scale)
    values = [
        decimal.Decimal(rng.randrange(-(10**digits), 10**digits)).scaleb(-scale)
        for digits in (min(precision, 17), min(precision, 22))
        for _ in range(300)
    ]
    values += [decimal.Decimal(10**k).scaleb(-scale) for k in range(20)]
    values += [
        decimal.Decimal(text) for text in ("0", "-0", "0.00", "-0.00", "1E+2", "1E-7", "0.05", "-0.05", "100")
    ]
    encoded = 0
    for value in values:
        try:
            expected = fastavro_bytes(schema, value)
        except (ValueError, OverflowError):
            expected = None
        try:
            got = encode(schema, value)
        except (Unencodable, ValueError, OverflowError):
            continue
        assert got == expected, value
        encoded += 1
    assert encoded >= 250


def test_unions_of_several_types_are_not_compiled() -> None:
    with pytest.raises(Unsupported):
        compile_encoder(["null", "long", "string"])


def test_varint_is_zigzag() -> None:
    assert [varint(n) for n in (0, -1, 1, -64, 64)] == [b"\x00", b"\x01", b"\x02", b"\x7f", b"\x80\x01"]


def test_the_writer_falls_back_for_what_the_encoders_leave() -> None:
    """Decimals beyond 18 digits, and values fastavro converts, still come out as fastavro's."""
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {
                    "name": "big",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2},
                },
                {"name": "n", "type": "long"},
            ],
        }
    )
    writer = Writer("s-value", 7, schema)
    for datum in (
        {"big": decimal.Decimal("-123456789012345678901234567.89"), "n": 1},
        {"big": decimal.Decimal("1.00"), "n": 2},
    ):
        assert writer.encode(datum) == b"\x00\x00\x00\x00\x07" + fastavro_bytes(schema, datum)
