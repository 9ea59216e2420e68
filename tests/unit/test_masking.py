"""Sensitive columns are dropped, hashed or redacted before an event is built."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest
from pydantic import ValidationError

from hub.avro_types import Column
from hub.config import SourceSettings, TableSettings
from hub.envelope import ROW_HASH_FIELD, table_schema
from hub.errors import ConfigError
from hub.masking import REDACTED

COLUMNS = [
    Column("emp_no", "INTEGER", nullable=False, primary_key=True),
    Column("name", "TEXT"),
    Column("salary", "DECIMAL(10,2)"),
    Column("national_id", "TEXT"),
    Column("notes", "TEXT"),
]
ROW = {"emp_no": 7, "name": "KING", "salary": "5000.00", "national_id": "1-85-12", "notes": "x"}


def source(table: TableSettings, key: str | None = "s3cret") -> SourceSettings:
    return SourceSettings(name="hr", system="hr", kind="sqlite", url="hr.db", tables=[table], mask_key=key)


def test_drop_hash_and_redact_shape_schema_and_values() -> None:
    """A dropped column leaves the schema, a hashed one becomes its keyed HMAC, a redacted one a marker."""
    table = TableSettings(name="emp", mask={"salary": "drop", "national_id": "hash", "notes": "redact"})
    schema = table_schema(source(table), table, COLUMNS, ["emp_no"])

    row = schema.row(ROW)

    fields = [f["name"] for f in schema.value_schema["fields"][0]["type"][1]["fields"]]
    assert fields == ["emp_no", "name", "national_id", "notes"]
    assert row is not None and "salary" not in row
    expected = hmac.new(b"s3cret", b"1-85-12", hashlib.sha256).hexdigest()
    assert row["national_id"] == expected
    assert row["notes"] == REDACTED
    assert row["name"] == "KING"


def test_hash_needs_a_key() -> None:
    """Masking a column with hash but giving the source no mask_key is a config error naming the column."""
    with pytest.raises(ValidationError, match=r"emp\.national_id"):
        source(TableSettings(name="emp", mask={"national_id": "hash"}), key=None)


def test_key_columns_cannot_be_dropped() -> None:
    """Dropping a key column is refused: the events could not be keyed."""
    table = TableSettings(name="emp", mask={"emp_no": "drop"})
    with pytest.raises(ConfigError, match="emp_no"):
        table_schema(source(table), table, COLUMNS, ["emp_no"])


def test_masking_an_unknown_column_names_it() -> None:
    """A mask on a column the table lacks fails with that column's name."""
    table = TableSettings(name="emp", mask={"salery": "drop"})
    with pytest.raises(ConfigError, match="salery"):
        table_schema(source(table), table, COLUMNS, ["emp_no"])


def test_row_hash_keys_a_table_without_primary_key() -> None:
    """With row_hash_key, a table without a primary key is keyed by a hash that follows the row's content."""
    table = TableSettings(name="emp", row_hash_key=True)
    schema = table_schema(source(table), table, COLUMNS, [])

    first = schema.key_of(ROW)
    same = schema.key_of(dict(ROW))
    other = schema.key_of({**ROW, "salary": Decimal("5000.01")})

    assert schema.key_schema["fields"] == [
        {"name": ROW_HASH_FIELD, "type": "string", "doc": "SHA-256 of the whole row"}
    ]
    assert first == same and first != other


def test_no_primary_key_without_a_choice_is_a_config_error_with_both_fixes() -> None:
    """A table with neither a primary key, a declared key nor row_hash_key says how to fix it."""
    table = TableSettings(name="emp")
    with pytest.raises(ConfigError) as raised:
        table_schema(source(table), table, COLUMNS, [])
    assert "row_hash_key" in (raised.value.hint or "") and "key" in (raised.value.hint or "")
