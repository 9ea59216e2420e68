"""The change event contract: key and value schemas of a table, and envelopes that fit them."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import fastavro
import pytest

from hub.avro_types import Column
from hub.envelope import SOURCE_SCHEMA, SourceInfo, TableSchema, envelope
from hub.errors import ConfigError

UTC = dt.UTC

COLUMNS = [
    Column("id", "INTEGER", nullable=False, primary_key=True),
    Column("name", "TEXT", nullable=False),
    Column("balance", "DECIMAL(12,2)"),
    Column("born", "DATE"),
    Column("updated", "TIMESTAMP"),
]


def customers() -> TableSchema:
    return TableSchema("sales", "customers", COLUMNS, ["id"])


def source_info(snapshot: bool = False) -> SourceInfo:
    return SourceInfo(
        connector="sqlite",
        system="sales",
        db="shop.db",
        table="customers",
        snapshot=snapshot,
        position="17",
        ts_ms=1_714_557_600_000,
    )


def field_names(schema: dict[str, object]) -> list[str]:
    fields = schema["fields"]
    assert isinstance(fields, list)
    return [f["name"] for f in fields]


def test_key_schema_holds_the_primary_key_columns() -> None:
    """The key record has exactly the primary-key columns, none of them nullable."""
    schema = TableSchema(
        "sales",
        "order_lines",
        [Column("order_no", "INTEGER"), Column("line", "INTEGER"), Column("sku", "TEXT")],
        ["order_no", "line"],
    )

    assert schema.key_schema["name"] == "Key"
    assert schema.key_schema["namespace"] == "unsilo.raw.sales.order_lines"
    assert schema.key_schema["fields"] == [
        {"name": "order_no", "type": "long"},
        {"name": "line", "type": "long"},
    ]
    assert schema.key_of({"order_no": 7, "line": 2, "sku": "A-1"}) == {"order_no": 7, "line": 2}


def test_table_without_primary_key_is_a_config_error_with_a_hint() -> None:
    """A table with no primary key is refused, and the hint says how to declare key columns."""
    with pytest.raises(ConfigError, match="no primary key") as raised:
        TableSchema("sales", "audit_log", [Column("msg", "TEXT")], [])

    assert raised.value.hint is not None
    assert "key:" in raised.value.hint
    assert "audit_log" in raised.value.hint


def test_key_column_that_does_not_exist_is_a_config_error() -> None:
    """Declaring a key column the table lacks names the missing column."""
    with pytest.raises(ConfigError, match="customer_no"):
        TableSchema("sales", "customers", COLUMNS, ["customer_no"])


def test_value_schema_is_a_debezium_style_envelope() -> None:
    """The value record has before, after, op, ts_ms and source, as a Debezium consumer expects."""
    schema = customers().value_schema

    assert schema["name"] == "Envelope"
    assert field_names(schema) == ["before", "after", "op", "ts_ms", "source"]
    before, after = schema["fields"][0], schema["fields"][1]
    assert before["type"][0] == "null"
    assert before["default"] is None
    assert field_names(before["type"][1]) == ["id", "name", "balance", "born", "updated"]
    assert after["type"] == ["null", "Value"]
    assert field_names(SOURCE_SCHEMA) == [
        "connector",
        "system",
        "db",
        "table",
        "snapshot",
        "position",
        "txid",
        "ts_ms",
    ]


def test_fastavro_accepts_key_and_value_schemas() -> None:
    """Both schemas of a table parse as valid Avro."""
    schema = customers()

    fastavro.parse_schema(schema.key_schema)
    parsed = fastavro.parse_schema(schema.value_schema)

    assert parsed["name"] == "unsilo.raw.sales.customers.Envelope"


def test_update_envelope_round_trips_through_avro() -> None:
    """An update event written with fastavro reads back with the same decimals, dates and times."""
    schema = customers()
    source_row = {
        "id": 1,
        "name": "Ada",
        "balance": "12.3",
        "born": "1980-02-29",
        "updated": "2024-05-01 10:00:00",
    }
    datum = envelope(
        "u",
        schema.row(source_row),
        schema.row({**source_row, "balance": 99.5}),
        source_info(),
        ts_ms=1_714_557_600_123,
    )
    parsed = fastavro.parse_schema(schema.value_schema)
    buffer = io.BytesIO()

    fastavro.schemaless_writer(buffer, parsed, datum)
    buffer.seek(0)
    read = fastavro.schemaless_reader(buffer, parsed, None)

    assert read == datum
    assert read["before"]["balance"] == Decimal("12.30")
    assert read["after"]["balance"] == Decimal("99.50")
    assert read["after"]["born"] == dt.date(1980, 2, 29)
    assert read["after"]["updated"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert read["source"]["position"] == "17"
    assert read["source"]["txid"] is None


def test_delete_envelope_has_no_after_image() -> None:
    """A delete carries the old row in before and null in after."""
    schema = customers()
    row = schema.row({"id": 3, "name": "Bob"})

    datum = envelope("d", row, schema.row(None), source_info())

    assert datum["op"] == "d"
    assert datum["before"] == {"id": 3, "name": "Bob", "balance": None, "born": None, "updated": None}
    assert datum["after"] is None
    assert datum["ts_ms"] > 0
