"""Events encoded from source rows are byte for byte those of the full path (convert, then encode)."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import uuid
from typing import Any

import fastavro
import pytest

from hub.avro_codec import Unencodable, native_encoder
from hub.avro_types import Column
from hub.envelope import SourceInfo, TableSchema
from hub.raw_rows import RawRowEncoder
from hub.serde import Writer

if native_encoder("null") is None:
    pytest.skip("the C encoder was not built here", allow_module_level=True)

COLUMNS = [
    Column("order id", "bigint", nullable=False, primary_key=True),  # not an Avro name: renamed
    Column("Customer", "varchar(40)"),
    Column("amount", "numeric(12,2)"),
    Column("placed", "timestamptz"),
    Column("due", "date"),
    Column("qty", "integer"),
    Column("ok", "boolean"),
    Column("ref", "uuid"),
    Column("ratio", "double precision"),
    Column("note", "text", nullable=False),
]
INFO = SourceInfo("postgres", "crm", "db", "orders", True, "0/16B3748", 1_700_000_000_000, 7)


def table(**kwargs: Any) -> TableSchema:
    return TableSchema("crm", "orders", COLUMNS, ["order id"], **kwargs)


def writers(schema: TableSchema) -> tuple[Writer, Writer]:
    return (
        Writer("k", 3, fastavro.parse_schema(schema.key_schema)),
        Writer("v", 4, fastavro.parse_schema(schema.value_schema)),
    )


def full_path(
    schema: TableSchema, op: str, before: Any, after: Any, info: SourceInfo = INFO, ts_ms: int = 99
) -> list[tuple[bytes | None, bytes | None]]:
    key, value = writers(schema)
    row = after if after is not None else before
    event = schema.event(op, schema.row(before), schema.row(after), info, ts_ms)  # type: ignore[arg-type]
    records = [(key.encode(schema.key_of(row)), value.encode(event))]
    return [*records, (records[0][0], None)] if op == "d" else records


def source_row(rng: random.Random) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.2 else value

    return {
        "order id": rng.randrange(-(2**63), 2**63),
        "Customer": maybe("".join(rng.choice("abcé€😀 ") for _ in range(rng.randrange(0, 30)))),
        "amount": maybe(decimal.Decimal(rng.randrange(-(10**12), 10**12)).scaleb(-2)),
        "placed": maybe(
            dt.datetime(1950, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=rng.randrange(-12, 13))))
            + dt.timedelta(seconds=rng.randrange(0, 3_000_000_000), microseconds=rng.randrange(10**6))
        ),
        "due": maybe(dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(-5000, 5000))),
        "qty": maybe(rng.randrange(-(2**31), 2**31)),
        "ok": maybe(rng.random() < 0.5),
        "ref": maybe(str(uuid.UUID(int=rng.getrandbits(128)))),
        "ratio": maybe(rng.uniform(-1e9, 1e9)),
        "note": "n" * rng.randrange(0, 5),
    }


def test_source_rows_encode_as_the_full_path_does() -> None:
    schema = table()
    encoder = RawRowEncoder.for_table(schema, *writers(schema))
    assert encoder is not None
    rng = random.Random(7)
    for i in range(1500):
        op = "crud"[i % 4]
        before, after = source_row(rng), source_row(rng)
        before["order id"] = after["order id"]
        before, after = (None if op in "cr" else before), (None if op == "d" else after)
        assert encoder.records(op, before, after, INFO, 99) == full_path(schema, op, before, after)  # type: ignore[arg-type]


def test_changes_sharing_a_source_block_and_time_encode_as_the_full_path_does() -> None:
    """Runs of one op under one source block reuse its encoded tail (op, ts_ms, source)."""
    schema = table()
    encoder = RawRowEncoder.for_table(schema, *writers(schema))
    assert encoder is not None
    rng = random.Random(11)
    other = SourceInfo("postgres", "crm", "db", "orders", False, "0/16B3750", 1_700_000_000_001, 8)
    for i in range(600):
        op = "crud"[(i // 7) % 4]
        info = INFO if (i // 50) % 2 == 0 else other
        ts_ms = 99 + i // 30
        before, after = source_row(rng), source_row(rng)
        before["order id"] = after["order id"]
        before, after = (None if op in "cr" else before), (None if op == "d" else after)
        got = encoder.records(op, before, after, info, ts_ms)  # type: ignore[arg-type]
        assert got == full_path(schema, op, before, after, info, ts_ms)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("amount", decimal.Decimal("1.5")),  # converted to the column's scale first
        ("amount", 12),
        ("ref", "6F9619FF-8B86-D011-B42D-00CF4FC964FF"),  # canonicalised first
        ("ref", uuid.UUID(int=5).bytes),
        ("qty", True),
        ("placed", dt.date(2024, 1, 1)),
        ("due", dt.datetime(2024, 1, 1, 5)),
        ("Customer", b"bytes"),
        ("note", None),  # required: the full path words the error
        ("ratio", decimal.Decimal("1.25")),
    ],
)
def test_values_needing_conversion_take_the_full_path(column: str, value: Any) -> None:
    schema = table()
    encoder = RawRowEncoder.for_table(schema, *writers(schema))
    assert encoder is not None
    row = source_row(random.Random(1)) | {column: value}
    with pytest.raises(Unencodable):
        encoder.records("r", None, row, INFO, 99)


def test_a_key_change_or_a_missing_column_takes_the_full_path() -> None:
    schema = table()
    encoder = RawRowEncoder.for_table(schema, *writers(schema))
    assert encoder is not None
    before, after = source_row(random.Random(2)), source_row(random.Random(3))
    with pytest.raises(Unencodable):
        encoder.records("u", before, after, INFO, 99)
    del after["qty"]
    with pytest.raises(Unencodable):
        encoder.records("c", None, after, INFO, 99)


def test_tables_with_masks_or_a_row_hash_key_always_take_the_full_path() -> None:
    masked = table(masks={"Customer": "redact"})
    assert RawRowEncoder.for_table(masked, *writers(masked)) is None
    hashed = TableSchema("crm", "orders", COLUMNS, [], row_hash=True)
    assert RawRowEncoder.for_table(hashed, *writers(hashed)) is None
