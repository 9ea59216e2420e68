"""The canonical entities' Avro schemas: shipped, valid, documented, and evolvable under BACKWARD."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from hub.canonical_schemas import (
    CANONICAL_NAMESPACE,
    backward_problems,
    canonical_schema,
    canonical_schemas,
    list_schemas,
    parse,
    schema_files,
    undocumented,
)
from hub.errors import SchemaError

ENTITIES = {
    "Customer", "Invoice", "Payment", "Employee", "Department", "Order", "OrderLine", "Product", "Store",
    "Sale", "StockMovement",
}  # fmt: skip

CUSTOMER = {
    "key": "fin:000042",
    "system": "finance",
    "code": "000042",
    "name": "CAFE MARTIN SARL",
    "email": "contact@cafe-martin.example",
    "tax_id": "FR12345678901",
    "reference_key": "sales:C-00042",
    "sales_rep_key": None,
}


def with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    evolved = copy.deepcopy(schema)
    evolved["fields"].append(field)
    return evolved


def write(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parse(schema), datum)
    return buffer.getvalue()


def read(data: bytes, writer: dict[str, Any], reader: dict[str, Any]) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), parse(writer), parse(reader))


def test_every_entity_of_the_issue_is_shipped_in_the_schemas_package() -> None:
    """The installed `schemas` package holds one .avsc per canonical entity, found via importlib.resources."""
    names = {entry.name for entry in schema_files()}

    assert set(canonical_schemas()) == ENTITIES
    assert {"customer.avsc", "order_line.avsc", "stock_movement.avsc", "unsilo_source.avsc"} <= names
    assert f"{CANONICAL_NAMESPACE}.OrderLine" in list_schemas()


def test_every_canonical_schema_parses_and_documents_every_field() -> None:
    """Each canonical schema parses, sits in io.unsilo.canonical, and has a doc on it and every field."""
    for name, schema in canonical_schemas().items():
        parse(schema)
        assert schema["namespace"] == CANONICAL_NAMESPACE, name
        assert undocumented(schema) == [], name
        assert [f["name"] for f in schema["fields"][:2]] == ["key", "system"], name


def test_undocumented_names_the_fields_without_doc() -> None:
    """A record whose field lacks a doc is reported with the field's path."""
    schema = with_field(canonical_schema("Store"), {"name": "opened_on", "type": "string"})

    assert undocumented(schema) == [f"{CANONICAL_NAMESPACE}.Store.opened_on"]


def test_money_dates_and_times_use_logical_types() -> None:
    """Money fields are decimal(…, 2), *_date fields are date, *_at fields are timestamp-micros."""
    for name, schema in canonical_schemas().items():
        for field in schema["fields"]:
            avro_type = field["type"]
            if field["name"] in {"amount", "salary", "unit_price"}:
                assert avro_type["logicalType"] == "decimal" and avro_type["scale"] == 2, (name, field)
            if field["name"].endswith("_date"):
                assert avro_type == {"type": "int", "logicalType": "date"}, (name, field)
            if field["name"].endswith("_at"):
                assert avro_type == {"type": "long", "logicalType": "timestamp-micros"}, (name, field)


def test_a_canonical_record_round_trips_with_its_logical_types() -> None:
    """A Sale with a decimal amount and a UTC timestamp reads back equal from Avro binary."""
    schema = canonical_schema("Sale")
    sale = {
        "key": "sales:100001",
        "system": "sales",
        "ticket_no": 100001,
        "store_key": "sales:S001",
        "product_key": "sales:SKU10001",
        "quantity": 2,
        "amount": Decimal("40.26"),
        "sold_at": dt.datetime(2024, 3, 4, 9, 5, 8, 474012, tzinfo=dt.UTC),
    }

    assert read(write(schema, sale), schema, schema) == sale


def test_adding_an_optional_field_with_a_default_is_backward_compatible() -> None:
    """Customer v2 with an optional field reads v1 data (the field takes its default) and passes the check."""
    old = canonical_schema("Customer")
    new = with_field(
        old, {"name": "segment", "type": ["null", "string"], "default": None, "doc": "Market segment."}
    )

    assert backward_problems(new, old) == []
    assert read(write(old, CUSTOMER), old, new) == {**CUSTOMER, "segment": None}


def test_adding_a_required_field_is_not_backward_compatible() -> None:
    """A field added without a default is refused by the check, by name, and fastavro cannot read v1."""
    old = canonical_schema("Customer")
    new = with_field(old, {"name": "segment", "type": "string", "doc": "Market segment."})

    [problem] = backward_problems(new, old)
    assert problem.startswith(f"{CANONICAL_NAMESPACE}.Customer.segment: added without a default")
    with pytest.raises(fastavro.read.SchemaResolutionError):
        read(write(old, CUSTOMER), old, new)


@pytest.mark.parametrize(
    ("change", "compatible"),
    [
        ("drop_field", True),
        ("widen_int_to_long", True),
        ("make_nullable", True),
        ("string_to_long", False),
        ("narrow_long_to_int", False),
        ("decimal_scale", False),
    ],
)
def test_the_check_follows_avro_resolution(change: str, compatible: bool) -> None:
    """Dropping or widening a field passes; changing a type incompatibly or a decimal's scale is refused."""
    old = canonical_schema("OrderLine")
    new = copy.deepcopy(old)
    fields = {field["name"]: field for field in new["fields"]}
    if change == "drop_field":
        new["fields"] = [f for f in new["fields"] if f["name"] != "line_no"]
    elif change == "widen_int_to_long":
        fields["quantity"]["type"] = "long"
    elif change == "make_nullable":
        fields["quantity"]["type"] = ["null", "int"]
    elif change == "string_to_long":
        fields["order_key"]["type"] = "long"
    elif change == "narrow_long_to_int":
        old, new = new, old
        fields = {field["name"]: field for field in old["fields"]}
        fields["quantity"]["type"] = "long"
    elif change == "decimal_scale":
        fields["unit_price"]["type"] = {**fields["unit_price"]["type"], "scale": 3}

    assert (backward_problems(new, old) == []) is compatible


def test_the_check_agrees_with_apache_avro_on_field_changes() -> None:
    """For adding, dropping and retyping fields, the hub's check gives Apache Avro's reference verdict."""
    compatibility = pytest.importorskip("avro.compatibility")
    avro_schema = pytest.importorskip("avro.schema")
    old = canonical_schema("Product")
    variants = [
        with_field(old, {"name": "ean", "type": ["null", "string"], "default": None, "doc": "Barcode."}),
        with_field(old, {"name": "ean", "type": "string", "doc": "Barcode."}),
        {**old, "fields": old["fields"][:-1]},
        {**old, "fields": [*old["fields"][:2], {**old["fields"][2], "type": "int"}, *old["fields"][3:]]},
    ]
    checker = compatibility.ReaderWriterCompatibilityChecker()
    for new in variants:
        reference = checker.get_compatibility(
            avro_schema.parse(json.dumps(new)), avro_schema.parse(json.dumps(old))
        )
        expected = reference.compatibility is compatibility.SchemaCompatibilityType.compatible
        assert (backward_problems(new, old) == []) is expected, new["fields"][-1]


def test_an_invalid_schema_or_unknown_entity_is_a_schema_error() -> None:
    """Parsing a schema with an unknown type, or asking for an unknown entity, raises SchemaError."""
    broken = {"type": "record", "name": "Broken", "fields": [{"name": "a", "type": "strng"}]}

    with pytest.raises(SchemaError, match="Broken"):
        parse(broken)
    with pytest.raises(SchemaError, match="Invoice"):
        canonical_schema("Invoices")


def test_the_schema_files_are_valid_json_on_disk() -> None:
    """Every shipped .avsc file is plain JSON whose record name matches its file name."""
    for entry in schema_files():
        schema = json.loads(entry.read_text(encoding="utf-8"))
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in schema["name"]).lstrip("_")
        assert Path(entry.name).stem in {snake, f"unsilo_{snake}"}, entry.name
