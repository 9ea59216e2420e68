"""Avro in Confluent wire format against an in-memory schema registry."""

from __future__ import annotations

import datetime as dt
import json
import struct
from decimal import Decimal
from typing import Any

import pytest

from hub.avro_types import Column
from hub.envelope import SourceInfo, TableSchema, envelope
from hub.errors import SerializationError
from hub.serde import AvroSerde, schema_id_of

UTC = dt.UTC
FIRST_ID = 0x01020304  # four distinct bytes, so the byte order shows


class FakeRegistry:
    """A schema registry in a dict: one id per distinct schema, every call counted."""

    def __init__(self) -> None:
        self.by_id: dict[int, dict[str, Any]] = {}
        self.ids: dict[str, int] = {}
        self.register_calls: list[str] = []
        self.lookups: list[int] = []

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        self.register_calls.append(subject)
        text = json.dumps(schema, sort_keys=True)
        if text not in self.ids:
            self.ids[text] = FIRST_ID + len(self.ids)
            self.by_id[self.ids[text]] = json.loads(text)
        return self.ids[text]

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        self.lookups.append(schema_id)
        return self.by_id[schema_id]


def customers() -> TableSchema:
    return TableSchema(
        "sales",
        "customers",
        [
            Column("id", "INTEGER", nullable=False, primary_key=True),
            Column("balance", "DECIMAL(12,2)"),
            Column("born", "DATE"),
            Column("updated", "TIMESTAMP"),
        ],
        ["id"],
    )


def insert_event(schema: TableSchema) -> dict[str, Any]:
    after = schema.row(
        {"id": 1, "balance": "1234567890.12", "born": "1980-02-29", "updated": "2024-05-01 10:00:00.250"}
    )
    source = SourceInfo("sqlite", "sales", "shop.db", "customers", False, "5", 1_714_557_600_000)
    return envelope("c", None, after, source, ts_ms=1_714_557_600_500)


def test_writer_registers_each_subject_and_schema_once() -> None:
    """Asking for the same writer again reuses the registered id instead of calling the registry."""
    registry = FakeRegistry()
    serde = AvroSerde(registry)
    schema = customers()

    first = serde.writer("unsilo.raw.sales.customers-value", schema.value_schema)
    again = serde.writer("unsilo.raw.sales.customers-value", customers().value_schema)
    key = serde.writer("unsilo.raw.sales.customers-key", schema.key_schema)

    assert again is first
    assert registry.register_calls == [
        "unsilo.raw.sales.customers-value",
        "unsilo.raw.sales.customers-key",
    ]
    assert key.schema_id != first.schema_id


def test_encoded_bytes_start_with_magic_byte_and_big_endian_schema_id() -> None:
    """Every message starts 0x00 then the 4-byte big-endian schema id, as Confluent clients expect."""
    serde = AvroSerde(FakeRegistry())
    writer = serde.writer("unsilo.raw.sales.customers-key", customers().key_schema)

    data = writer.encode({"id": 7})

    assert writer.schema_id == FIRST_ID
    assert data[:5] == b"\x00\x01\x02\x03\x04"
    assert struct.unpack(">bI", data[:5]) == (0, FIRST_ID)
    assert schema_id_of(data) == FIRST_ID


def test_decode_returns_the_datum_with_decimal_date_and_datetime() -> None:
    """A reader with its own cache fetches the writer schema by id and gets the exact values back."""
    registry = FakeRegistry()
    schema = customers()
    datum = insert_event(schema)
    data = AvroSerde(registry).writer("customers-value", schema.value_schema).encode(datum)

    decoded = AvroSerde(registry).decode(data)

    assert decoded == datum
    assert decoded["after"]["balance"] == Decimal("1234567890.12")
    assert decoded["after"]["born"] == dt.date(1980, 2, 29)
    assert decoded["after"]["updated"] == dt.datetime(2024, 5, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert registry.lookups == [FIRST_ID]


def test_decode_with_schema_returns_the_writer_schema() -> None:
    """decode_with_schema gives the datum and the schema it was written with."""
    registry = FakeRegistry()
    schema = customers()
    data = AvroSerde(registry).writer("customers-key", schema.key_schema).encode({"id": 9})

    datum, writer_schema = AvroSerde(registry).decode_with_schema(data)

    assert datum == {"id": 9}
    assert writer_schema == schema.key_schema


def test_tombstone_decodes_to_none() -> None:
    """A tombstone (null value) decodes to None without touching the registry."""
    registry = FakeRegistry()

    assert AvroSerde(registry).decode(None) is None
    assert registry.lookups == []


@pytest.mark.parametrize(
    "bad_key",
    [{"id": "seven"}, {}, {"id": None}],
    ids=["wrong-type", "missing-field", "null-in-required"],
)
def test_value_that_does_not_fit_raises_serialization_error(bad_key: dict[str, Any]) -> None:
    """Encoding a value that does not fit the schema raises SerializationError naming the subject."""
    writer = AvroSerde(FakeRegistry()).writer("customers-key", customers().key_schema)

    with pytest.raises(SerializationError, match="customers-key"):
        writer.encode(bad_key)


def test_decimal_too_wide_for_its_precision_raises_serialization_error() -> None:
    """A balance with more digits than DECIMAL(12,2) allows is refused, not silently cut."""
    schema = customers()
    datum = insert_event(schema)
    datum["after"]["balance"] = Decimal("12345678901.00")
    writer = AvroSerde(FakeRegistry()).writer("customers-value", schema.value_schema)

    with pytest.raises(SerializationError):
        writer.encode(datum)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01", b"\x01\x01\x02\x03\x04\x02", b'{"id": 7}'],
    ids=["empty", "short", "wrong-magic", "json"],
)
def test_bytes_that_are_not_wire_format_raise_serialization_error(data: bytes) -> None:
    """Bytes without the 0x00 magic byte and a schema id are refused with SerializationError."""
    with pytest.raises(SerializationError, match="not Confluent wire format"):
        AvroSerde(FakeRegistry()).decode(data)


def test_truncated_avro_payload_raises_serialization_error() -> None:
    """A message cut short after its header raises SerializationError, not EOFError."""
    registry = FakeRegistry()
    schema = customers()
    data = AvroSerde(registry).writer("customers-value", schema.value_schema).encode(insert_event(schema))

    with pytest.raises(SerializationError, match=str(FIRST_ID)):
        AvroSerde(registry).decode(data[:12])
