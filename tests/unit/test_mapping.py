"""Declarative mappings from raw tables to canonical entities: the estate's file, conversions, errors."""

from __future__ import annotations

import copy
import datetime as dt
import io
import sqlite3
from decimal import Decimal
from typing import Any

import fastavro
import pytest
import yaml

from hub.avro_types import Column
from hub.canonical_schemas import canonical_schemas, parse
from hub.envelope import TableSchema
from hub.errors import ConfigError, MappingError, SourceDataError
from hub.estate import SYSTEMS, TABLES, create_estate, estate_columns
from hub.estate.database import connect, read_tables, reflect
from hub.mapping import (
    CONVERSIONS,
    DEMO_MAPPINGS,
    EntityMapping,
    apply_mapping,
    load_mappings,
    mappings_for,
    validate_mapping,
)

INVOICE = {
    "INV_NO": 240001,
    "CUST_NO": "000042",
    "INV_DATE": dt.date(2024, 1, 2),
    "AMOUNT": 12.3,
    "STATUS": "V",
}
EMPLOYEE = {
    "EMPNO": 7499,
    "ENAME": "JEAN MARTIN ",
    "JOB": "SALESMAN",
    "MGR": None,
    "HIREDATE": "20190301",
    "SAL": Decimal("2450.00"),
    "DEPTNO": 20,
    "EMAIL": "  ",
}


@pytest.fixture(scope="module")
def mappings() -> list[EntityMapping]:
    return load_mappings(DEMO_MAPPINGS)


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A freshly seeded estate with one dirty HR row, shared read-only by this module's tests."""
    return create_estate(tmp_path_factory.mktemp("estate"), 42, dirty=True)


def only(mappings: list[EntityMapping], system: str, table: str) -> EntityMapping:
    [found] = mappings_for(mappings, system, table)
    return found


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DEMO_MAPPINGS.read_text(encoding="utf-8"))
    return loaded


def test_every_demo_mapping_validates_against_the_estate_columns(
    mappings: list[EntityMapping], estate: dict[str, str]
) -> None:
    """Each mapping in mappings.yaml reads only columns the created estate really has."""
    columns = estate_columns(estate)

    for mapping in mappings:
        validate_mapping(mapping, columns)
    mapped = {(m.system, m.table) for m in mappings}
    assert {(s, t) for s in SYSTEMS for t in TABLES[s]} - mapped == {("finance", "GL_ACCOUNT")}
    assert {m.entity for m in mappings} == set(canonical_schemas())


def test_every_seeded_row_maps_to_a_record_its_schema_accepts(
    mappings: list[EntityMapping], estate: dict[str, str]
) -> None:
    """Every clean row of the seeded estate maps, and the canonical record encodes with its Avro schema."""
    schemas = {name: parse(schema) for name, schema in canonical_schemas().items()}
    mapped = 0
    for system in SYSTEMS:
        engine = connect(estate[system])
        with engine.connect() as conn:
            for table_name, table in reflect(engine, system).items():
                for mapping in mappings_for(mappings, system, table_name):
                    for row in conn.execute(table.select()).mappings():
                        if row.get("HIREDATE") == "20230229":
                            continue  # the dirty row, see the MappingError test
                        fastavro.schemaless_writer(
                            io.BytesIO(), schemas[mapping.entity], apply_mapping(mapping, dict(row))
                        )
                        mapped += 1
        engine.dispose()
    assert mapped > 1500


@pytest.mark.parametrize(
    ("system", "table"),
    [
        ("sales", "sales_order"),
        ("sales", "pos_ticket"),
        ("sales", "stock_movement"),
        ("finance", "AR_INVOICE"),
    ],
)
def test_rows_as_captured_on_the_raw_topic_map_like_rows_read_through_sql(
    mappings: list[EntityMapping], estate: dict[str, str], system: str, table: str
) -> None:
    """A row encoded as the SQLite connector does (declared types, Avro) maps as its SQL row does."""
    mapping = only(mappings, system, table)
    typed = {row[0]: row for row in read_tables(estate[system], system)[table]}
    conn = sqlite3.connect(estate[system].removeprefix("sqlite:///"))
    try:
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        raw_rows = conn.execute(f'SELECT * FROM "{table}" LIMIT 100').fetchall()
    finally:
        conn.close()
    columns = [Column(row[1], row[2], nullable=not row[3], primary_key=bool(row[5])) for row in info]
    names = [column.name for column in columns]
    captured = TableSchema(system, table, columns, [c.name for c in columns if c.primary_key])
    row_schema = parse(captured.value_schema["fields"][0]["type"][1])

    for values in raw_rows:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, row_schema, captured.row(dict(zip(names, values, strict=True))))
        decoded: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(buffer.getvalue()), row_schema, None)  # type: ignore[assignment]
        by_sql = dict(zip(names, typed[values[0]], strict=True))
        assert apply_mapping(mapping, decoded) == apply_mapping(mapping, by_sql)


def test_a_mapping_naming_a_missing_column_fails_with_that_name(mappings: list[EntityMapping]) -> None:
    """Validating against a table without TAX_ID fails with a ConfigError that names TAX_ID."""
    customer = only(mappings, "finance", "AR_CUSTOMER")
    columns = {"finance.AR_CUSTOMER": ["CUST_NO", "NAME", "EMAIL", "CRM_REF"]}

    with pytest.raises(ConfigError, match=r"column 'TAX_ID' not in finance\.AR_CUSTOMER") as caught:
        validate_mapping(customer, columns)
    assert caught.value.hint is not None and "CRM_REF" in caught.value.hint
    with pytest.raises(ConfigError, match="'AR_CUSTOMER' is not captured"):
        validate_mapping(customer, {"finance.AR_INVOICE": ["INV_NO"]})


@pytest.mark.parametrize(
    ("conversion", "value", "expected"),
    [
        ("yyyymmdd", "20240131", dt.date(2024, 1, 31)),
        ("yyyymmdd", 20240131, dt.date(2024, 1, 31)),
        ("date", dt.datetime(2024, 1, 31, 23, 59), dt.date(2024, 1, 31)),
        ("date", "2024-01-31", dt.date(2024, 1, 31)),
        ("timestamp", dt.datetime(2024, 3, 4, 9, 5), dt.datetime(2024, 3, 4, 9, 5, tzinfo=dt.UTC)),
        ("timestamp", "2024-03-04 09:05:08.474012", dt.datetime(2024, 3, 4, 9, 5, 8, 474012, tzinfo=dt.UTC)),
        ("cents", 1234, Decimal("12.34")),
        ("cents", -5, Decimal("-0.05")),
        ("decimal", 12.3, Decimal("12.30")),
        ("decimal", 0.1 + 0.2, Decimal("0.30")),
        ("decimal", Decimal("2450"), Decimal("2450.00")),
        ("int", Decimal("42"), 42),
        ("strip", "  A B  ", "A B"),
        ("upper", "abc", "ABC"),
        ("lower", "Contact@Cafe.EXAMPLE", "contact@cafe.example"),
        ("title", "JEAN MARTIN", "Jean Martin"),
        ("compact", "fr 12 345.678-901", "FR12345678901"),
        ("blank_as_null", "   ", None),
        ("blank_as_null", "x", "x"),
        ("str", 42, "42"),
    ],
)
def test_conversions(conversion: str, value: Any, expected: Any) -> None:
    """Each named conversion turns a legacy value into its canonical form."""
    assert CONVERSIONS[conversion](value) == expected


@pytest.mark.parametrize(
    ("conversion", "value", "reason"),
    [
        ("yyyymmdd", "20230229", "not a YYYYMMDD date"),
        ("yyyymmdd", "2024-01-31", "not a YYYYMMDD date"),
        ("yyyymmdd", "00000000", "not a YYYYMMDD date"),
        ("date", "31/01/2024", "not a date"),
        ("timestamp", "yesterday", "not a timestamp"),
        ("cents", 12.5, "not a whole number"),
        ("cents", True, "not a whole number"),
        ("decimal", "12.345", "more than 2 decimal places"),
        ("decimal", "NaN", "not an amount"),
        ("upper", 42, "expected text"),
    ],
)
def test_conversions_refuse_values_they_cannot_convert(conversion: str, value: Any, reason: str) -> None:
    """A value a conversion cannot handle raises ValueError with the reason."""
    with pytest.raises(ValueError, match=reason):
        CONVERSIONS[conversion](value)


def test_a_row_maps_with_renames_code_tables_and_keys(mappings: list[EntityMapping]) -> None:
    """An invoice row becomes an Invoice: prefixed keys, STATUS V -> VOID, a REAL amount as exact decimal."""
    assert apply_mapping(only(mappings, "finance", "AR_INVOICE"), INVOICE) == {
        "key": "fin:240001",
        "system": "finance",
        "invoice_no": 240001,
        "customer_key": "fin:000042",
        "invoice_date": dt.date(2024, 1, 2),
        "amount": Decimal("12.30"),
        "status": "VOID",
    }


def test_references_composite_keys_blanks_and_defaults(mappings: list[EntityMapping]) -> None:
    """Keys join columns with '/', refs take a system's prefix, blanks become null, gaps get defaults."""
    line = apply_mapping(only(mappings, "sales", "order_line"), {
        "order_no": 5001, "line_no": 2, "sku": "SKU10007", "qty": 3, "unit_price_cents": 1999,
    })  # fmt: skip
    linked = {
        "CUST_NO": "000042",
        "NAME": " CAFE ",
        "TAX_ID": "FR 12 345678901",
        "EMAIL": None,
        "CRM_REF": "C-00042",
    }
    customer = apply_mapping(only(mappings, "finance", "AR_CUSTOMER"), linked)
    unlinked = apply_mapping(only(mappings, "finance", "AR_CUSTOMER"), {**linked, "CRM_REF": " "})
    employee = apply_mapping(only(mappings, "hr", "EMP"), EMPLOYEE)

    assert (line["key"], line["order_key"], line["unit_price"]) == (
        "sales:5001/2",
        "sales:5001",
        Decimal("19.99"),
    )
    assert customer["reference_key"] == "sales:C-00042" and customer["tax_id"] == "FR12345678901"
    assert customer["name"] == "CAFE" and customer["sales_rep_key"] is None  # not mapped: the default
    assert unlinked["reference_key"] is None
    assert (employee["name"], employee["manager_key"], employee["email"]) == ("Jean Martin", None, None)
    assert employee["hire_date"] == dt.date(2019, 3, 1)


def test_an_unknown_code_raises_mapping_error_with_the_reason(mappings: list[EntityMapping]) -> None:
    """STATUS 'X' is not in the code table: MappingError names the column, the code and the known codes."""
    with pytest.raises(MappingError) as caught:
        apply_mapping(only(mappings, "finance", "AR_INVOICE"), {**INVOICE, "STATUS": "X"})

    error = caught.value
    assert isinstance(error, SourceDataError)
    assert (error.mapping, error.field, error.column) == ("finance.AR_INVOICE->Invoice", "status", "STATUS")
    assert error.reason == "unknown code 'X' (known: O, P, V)"
    assert "STATUS -> status" in str(error)


def test_the_dirty_estate_row_raises_mapping_error_for_its_date(
    mappings: list[EntityMapping], estate: dict[str, str]
) -> None:
    """The seeded employee hired on 2023-02-29 cannot be mapped: the reason names the bad YYYYMMDD value."""
    employees = read_tables(estate["hr"], "hr")["EMP"]
    dirty = [row for row in employees if row[4] == "20230229"]
    columns = ["EMPNO", "ENAME", "JOB", "MGR", "HIREDATE", "SAL", "DEPTNO", "EMAIL"]

    with pytest.raises(MappingError, match=r"HIREDATE -> hire_date.*'20230229' is not a YYYYMMDD date"):
        apply_mapping(only(mappings, "hr", "EMP"), dict(zip(columns, dirty[0], strict=True)))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({**EMPLOYEE, "EMPNO": None}, "key column is null or blank"),
        ({**EMPLOYEE, "DEPTNO": None}, "is null, and the canonical field is required"),
        ({k: v for k, v in EMPLOYEE.items() if k != "SAL"}, "the row has no such column"),
        ({**EMPLOYEE, "SAL": "lots"}, "'lots' is not an amount"),
    ],
)
def test_rows_missing_what_the_entity_needs_raise_mapping_error(
    mappings: list[EntityMapping], row: dict[str, Any], reason: str
) -> None:
    """A null key or required field, a dropped column or a bad amount raise MappingError with the reason."""
    with pytest.raises(MappingError, match=reason):
        apply_mapping(only(mappings, "hr", "EMP"), row)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["fields"].update(segment="NAME"), "no field 'segment'"),
        (lambda m: m["fields"].pop("name"), "field 'name' is not mapped and has no default"),
        (
            lambda m: m["fields"].update(code={"column": "CUST_NO", "convert": "soundex"}),
            "unknown conversion",
        ),
        (lambda m: m["fields"].update(code={"column": "CUST_NO", "ref": ["CUST_NO"]}), "exactly one of"),
        (lambda m: m.update(entity="Client"), "no canonical schema 'Client'"),
        (lambda m: m.update(system="crm"), "system 'crm' has no prefix"),
    ],
)
def test_load_mappings_checks_them_against_the_canonical_schemas(edit: Any, message: str) -> None:
    """A mapping that misfits its entity's schema, or names unknown things, is a ConfigError saying so."""
    broken = copy.deepcopy(document())
    edit(broken["mappings"][0])

    with pytest.raises(ConfigError, match=message):
        load_mappings(broken)


def test_a_logical_type_needs_its_conversion() -> None:
    """Mapping a date field straight from a text column is refused: it must end with date or yyyymmdd."""
    broken = copy.deepcopy(document())
    employee = next(m for m in broken["mappings"] if m["table"] == "EMP")
    employee["fields"]["hire_date"] = "HIREDATE"

    with pytest.raises(ConfigError, match="'hire_date' is a date: end its conversions with date or yyyymmdd"):
        load_mappings(broken)
