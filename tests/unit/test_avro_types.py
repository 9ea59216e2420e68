"""SQL column types become Avro types that keep their meaning; source values become Avro data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from hub.avro_types import Column, avro_name, avro_type_for, converter_for, field_schema
from hub.errors import SourceDataError

UTC = dt.UTC


@pytest.mark.parametrize(
    ("sql_type", "expected"),
    [
        ("DECIMAL(12,2)", {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}),
        ("numeric(10, 4)", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 4}),
        ("DECIMAL(7)", {"type": "bytes", "logicalType": "decimal", "precision": 7, "scale": 0}),
        ("DATE", {"type": "int", "logicalType": "date"}),
        ("TIMESTAMP", {"type": "long", "logicalType": "timestamp-micros"}),
        ("DATETIME", {"type": "long", "logicalType": "timestamp-micros"}),
        ("INTEGER", "long"),
        ("BIGINT", "long"),
        ("TEXT", "string"),
        ("VARCHAR(40)", "string"),
        ("BLOB", "bytes"),
        ("BOOLEAN", "boolean"),
        ("DOUBLE PRECISION", "double"),
        ("GEOMETRY", "string"),
    ],
)
def test_declared_sql_type_maps_to_avro_type(sql_type: str, expected: Any) -> None:
    """Each declared SQL type gets the Avro type (and logical type) that keeps its meaning."""
    assert avro_type_for(sql_type) == expected


def test_nullable_column_is_an_optional_field_with_default_null() -> None:
    """A nullable column becomes ["null", T] with default null; a NOT NULL one is just T."""
    nullable = field_schema(Column("note", "TEXT"))
    required = field_schema(Column("id", "INTEGER", nullable=False, primary_key=True))

    assert nullable == {"name": "note", "type": ["null", "string"], "default": None}
    assert required == {"name": "id", "type": "long"}


def test_column_name_that_is_not_an_avro_name_is_cleaned_and_remembered() -> None:
    """A column like ``unit price`` becomes field ``unit_price`` that still records the SQL name."""
    field = field_schema(Column("unit price", "TEXT"))

    assert field["name"] == "unit_price"
    assert field["unsilo.column"] == "unit price"
    assert avro_name("2nd") == "_2nd"


def test_decimal_text_is_converted_exactly_at_the_declared_scale() -> None:
    """'12.3' in a DECIMAL(12,2) column becomes Decimal('12.30') exactly, with no float on the way."""
    convert = converter_for(Column("balance", "DECIMAL(12,2)"))

    value = convert("12.3")

    assert value == Decimal("12.30")
    assert value.as_tuple() == Decimal("12.30").as_tuple()


def test_decimal_from_a_float_keeps_the_written_digits() -> None:
    """A float 0.1 read from SQLite becomes Decimal('0.10'), not 0.1000000000000000055..."""
    convert = converter_for(Column("balance", "DECIMAL(12,2)"))

    assert convert(0.1).as_tuple() == Decimal("0.10").as_tuple()


@pytest.mark.parametrize(
    ("sql_type", "bad_value"),
    [
        ("DECIMAL(12,2)", "twelve"),
        ("DECIMAL(12,2)", "NaN"),
        ("DATE", "31/12/2024"),
        ("TIMESTAMP", "yesterday"),
        ("INTEGER", "abc"),
        ("BOOLEAN", "maybe"),
        ("BLOB", 42),
    ],
)
def test_bad_value_raises_source_data_error_naming_the_column(sql_type: str, bad_value: Any) -> None:
    """A value that cannot become its column's Avro type raises SourceDataError naming the column."""
    convert = converter_for(Column("amount_due", sql_type))

    with pytest.raises(SourceDataError, match="amount_due"):
        convert(bad_value)


def test_date_text_becomes_a_date() -> None:
    """'YYYY-MM-DD' text in a DATE column becomes that date."""
    convert = converter_for(Column("born", "DATE"))

    assert convert("1980-02-29") == dt.date(1980, 2, 29)


def test_naive_timestamp_is_taken_as_utc() -> None:
    """A timestamp without a zone is read as UTC; one with a zone keeps its instant."""
    convert = converter_for(Column("updated", "TIMESTAMP"))

    naive = convert("2024-05-01 10:00:00")
    zoned = convert("2024-05-01T12:00:00+02:00")

    assert naive == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert naive.tzinfo is not None
    assert zoned == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_null_stays_null_for_every_type() -> None:
    """A SQL NULL becomes an Avro null whatever the column's type."""
    for sql_type in ("DECIMAL(12,2)", "DATE", "TIMESTAMP", "INTEGER", "TEXT", "BLOB", "BOOLEAN"):
        assert converter_for(Column("c", sql_type))(None) is None, sql_type


def test_plain_values_convert_to_their_avro_types() -> None:
    """Integers, booleans stored as 0/1, text and blobs arrive as int, bool, str and bytes."""
    assert converter_for(Column("n", "INTEGER"))("42") == 42
    assert converter_for(Column("flag", "BOOLEAN"))(1) is True
    assert converter_for(Column("flag", "BOOLEAN"))("false") is False
    assert converter_for(Column("name", "TEXT"))(7) == "7"
    assert converter_for(Column("photo", "BLOB"))(memoryview(b"\x00\xff")) == b"\x00\xff"


def test_wide_decimal_keeps_every_digit() -> None:
    """A DECIMAL(65,30) value with more than 28 significant digits converts exactly."""
    from decimal import Decimal

    from hub.avro_types import Column, converter_for

    value = "12345678901234567890123456789012345.123456789012345678901234567890"
    assert converter_for(Column("x", "DECIMAL(65,30)"))(value) == Decimal(value)
