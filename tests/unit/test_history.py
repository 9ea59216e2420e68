"""`unsilo history`: naming a topic, typing a key, and the versions with their diffs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hub.errors import SerializationError, UnknownTopicError
from hub.history import Record, resolve_topic, versions_of
from hub.history_keys import encodings, parse_key
from hub.registry import SubjectVersion

TOPICS = {"unsilo.raw.sales.customers", "unsilo.raw.sales.orders", "unsilo.canonical.order_line"}
INT_KEY = {"type": "record", "name": "Key", "fields": [{"name": "id", "type": "long"}]}
PAIR_KEY = {
    "type": "record",
    "name": "Key",
    "fields": [{"name": "order_id", "type": "int"}, {"name": "line", "type": "string"}],
}


def envelope(
    op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, pos: str
) -> dict[str, Any]:
    source = {"position": pos, "ts_ms": 1_700_000_000_000 + int(pos), "system": "sales", "table": "customers"}
    return {"op": op, "before": before, "after": after, "ts_ms": 0, "source": source}


def test_a_topic_a_table_and_an_entity_resolve_to_their_topics() -> None:
    """The full name, system.table and an entity (either case) each find their topic."""
    assert resolve_topic("unsilo.raw.sales.orders", TOPICS) == "unsilo.raw.sales.orders"
    assert resolve_topic("sales.customers", TOPICS) == "unsilo.raw.sales.customers"
    assert resolve_topic("order_line", TOPICS) == "unsilo.canonical.order_line"
    assert resolve_topic("OrderLine", TOPICS) == "unsilo.canonical.order_line"


def test_an_unknown_name_suggests_close_ones() -> None:
    """A misspelt table is refused with the near names as the hint."""
    with pytest.raises(UnknownTopicError) as caught:
        resolve_topic("sales.customer", TOPICS)

    assert "sales.customer" in caught.value.message
    assert "unsilo.raw.sales.customers" in (caught.value.hint or "")


def test_a_single_column_key_is_typed_by_the_key_schema() -> None:
    """'42' for a long column is the int 42, with or without the column name."""
    assert parse_key("42", INT_KEY) == {"id": 42}
    assert parse_key("id=42", INT_KEY) == {"id": 42}
    assert parse_key('{"id": 42}', INT_KEY) == {"id": 42}


def test_a_composite_key_is_given_as_pairs_or_json() -> None:
    """order_id=7,line=A and the same JSON give one key; a missing column is refused by name."""
    assert parse_key("order_id=7,line=A", PAIR_KEY) == {"order_id": 7, "line": "A"}
    assert parse_key('{"line": "A", "order_id": 7}', PAIR_KEY) == {"order_id": 7, "line": "A"}
    with pytest.raises(SerializationError, match="missing column"):
        parse_key("order_id=7", PAIR_KEY)
    with pytest.raises(SerializationError, match="2 columns"):
        parse_key("7", PAIR_KEY)


def test_a_non_numeric_value_for_an_int_column_is_refused() -> None:
    """'abc' for a long key column says which column and type."""
    with pytest.raises(SerializationError, match="id"):
        parse_key("abc", INT_KEY)


def test_a_decimal_key_and_a_primitive_key_are_parsed() -> None:
    """A decimal column parses as Decimal; a string-schema key (outbox) is the text itself."""
    decimal_key = {
        "type": "record",
        "name": "K",
        "fields": [
            {"name": "code", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}}
        ],
    }
    assert parse_key("12.50", decimal_key) == {"code": Decimal("12.50")}
    assert parse_key("order-17", "string") == "order-17"


def test_key_bytes_are_the_confluent_encoding_under_each_fitting_version() -> None:
    """The key encodes as magic byte, schema id and Avro, once per key schema version it fits."""
    versions = [
        SubjectVersion("t-key", 1, 5, INT_KEY),
        SubjectVersion("t-key", 2, 9, PAIR_KEY),
        SubjectVersion("t-key", 3, 12, INT_KEY),
    ]

    found = encodings({"id": 1}, versions)

    assert found == {b"\x00\x00\x00\x00\x05\x02", b"\x00\x00\x00\x00\x0c\x02"}  # long 1 zig-zags to 2


def test_versions_diff_each_after_image_with_the_previous() -> None:
    """Create, two updates, delete and tombstone: diffs show exactly what changed each time."""
    row1 = {"id": 7, "name": "ada", "balance": Decimal("10.50")}
    row2 = {**row1, "balance": Decimal("11.00")}
    row3 = {**row2, "name": "ada lovelace"}
    records = [
        Record(0, 0, 1, {}, envelope("c", None, row1, "1")),
        Record(0, 3, 2, {}, envelope("u", row1, row2, "2")),
        Record(0, 5, 3, {}, envelope("u", row2, row3, "3")),
        Record(0, 6, 4, {}, envelope("d", row3, None, "4")),
        Record(0, 7, 4, {}, None),
    ]

    versions = versions_of(records)

    assert [v.op for v in versions] == ["c", "u", "u", "d", "tombstone"]
    assert versions[0].diff == {"id": [None, 7], "name": [None, "ada"], "balance": [None, Decimal("10.50")]}
    assert versions[1].diff == {"balance": [Decimal("10.50"), Decimal("11.00")]}
    assert versions[2].diff == {"name": ["ada", "ada lovelace"]}
    assert versions[3].diff == {
        "id": [7, None],
        "name": ["ada lovelace", None],
        "balance": [Decimal("11.00"), None],
    }
    assert versions[4].diff == {} and versions[4].tombstone
    assert [v.position for v in versions[:4]] == ["1", "2", "3", "4"]
    assert versions[1].source_ts_ms == 1_700_000_000_002


def test_canonical_versions_take_op_and_provenance_from_headers() -> None:
    """On a canonical topic op, source commit time and position come from the unsilo.* headers."""
    headers = {
        "unsilo.op": "u",
        "unsilo.source.ts_ms": "1700000000123",
        "unsilo.source.topic": "unsilo.raw.s.t",
    }
    records = [
        Record(
            1, 0, 1, {**headers, "unsilo.op": "r", "unsilo.source.offset": "4"}, {"key": "s:1", "name": "A"}
        ),
        Record(1, 1, 2, {**headers, "unsilo.source.offset": "9"}, {"key": "s:1", "name": "B"}),
        Record(1, 2, 3, {**headers, "unsilo.op": "d", "unsilo.source.offset": "12"}, None),
    ]

    versions = versions_of(records)

    assert [v.op for v in versions] == ["r", "u", "d"]
    assert versions[1].diff == {"name": ["A", "B"]}
    assert versions[2].diff == {"key": ["s:1", None], "name": ["B", None]} and versions[2].tombstone
    assert versions[1].position == "unsilo.raw.s.t@9"
    assert versions[1].source_ts_ms == 1_700_000_000_123
