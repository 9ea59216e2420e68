"""The raw-event-to-canonical-record path: mapped records, tombstones, headers, and the DLQ."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from hub.canonical_schemas import canonical_schemas
from hub.errors import RegistryUnavailableError
from hub.kafka.topics import raw_topic
from hub.mapping import DEMO_MAPPINGS, load_mappings, mappings_for
from hub.serde import AvroSerde, canonical_text
from projections.canonical.app import row_columns
from projections.canonical.contract import CanonicalTopics, snake_case
from projections.canonical.transform import Canonicalizer

ROW = {
    "type": "record",
    "name": "Value",
    "namespace": "unsilo.raw.hr.EMP",
    "fields": [
        {"name": name, "type": ["null", "string"], "default": None}
        for name in ("EMPNO", "ENAME", "JOB", "MGR", "HIREDATE", "SAL", "DEPTNO", "EMAIL")
    ],
}
ENVELOPE = {
    "type": "record",
    "name": "Envelope",
    "namespace": "unsilo.raw.hr.EMP",
    "fields": [
        {"name": "before", "type": ["null", ROW], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "op", "type": "string"},
        {
            "name": "source",
            "type": {"type": "record", "name": "Source", "fields": [{"name": "ts_ms", "type": "long"}]},
        },
    ],
}
EMP = {
    "EMPNO": "7499",
    "ENAME": " JEAN MARTIN ",
    "JOB": "salesman",
    "MGR": "7001",
    "HIREDATE": "20190301",
    "SAL": "2500.5",
    "DEPTNO": "20",
    "EMAIL": "Jean.Martin@retail.example",
}


class FakeRegistry:
    """An in-memory schema registry: ids by schema text."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.schemas: dict[int, dict[str, Any]] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = canonical_text(schema)
        if text not in self.ids:
            self.ids[text] = len(self.ids) + 1
            self.schemas[self.ids[text]] = schema
        return self.ids[text]

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        return self.schemas[schema_id]


@dataclass
class FakeMessage:
    """Stands in for confluent_kafka.Message."""

    _topic: str
    _offset: int
    _key: bytes | None
    _value: bytes | None

    def topic(self) -> str:
        return self._topic

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


@pytest.fixture
def setup() -> tuple[Canonicalizer, AvroSerde, CanonicalTopics]:
    serde = AvroSerde(FakeRegistry())
    mappings = mappings_for(load_mappings(DEMO_MAPPINGS), "hr", "EMP")
    topics = CanonicalTopics()
    return Canonicalizer(mappings, serde, topics, canonical_schemas()), serde, topics


def raw(
    serde: AvroSerde, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, offset: int = 7
) -> FakeMessage:
    value = serde.writer("raw-value", ENVELOPE).encode(
        {"before": before, "after": after, "op": op, "source": {"ts_ms": 1700000000123}}
    )
    return FakeMessage(raw_topic("hr", "EMP"), offset, b"raw-key", value)


def test_topic_names_follow_the_contract() -> None:
    """Canonical topics are unsilo.canonical.<entity in snake_case>; a namespace moves them all aside."""
    assert CanonicalTopics().entity("StockMovement") == "unsilo.canonical.stock_movement"
    assert CanonicalTopics().identity == "unsilo.canonical.identity"
    assert CanonicalTopics().dlq == "unsilo.dlq.canonical" and CanonicalTopics().status_key == "canonical"
    assert CanonicalTopics("t1").entity("OrderLine") == "unsilo.canonical.t1.order_line"
    assert snake_case("Customer") == "customer"


def test_snapshot_row_becomes_a_canonical_record_with_headers(
    setup: tuple[Canonicalizer, AvroSerde, CanonicalTopics],
) -> None:
    """A snapshot EMP row becomes an Employee keyed hr:7499 with op, source time and provenance headers."""
    canonicalizer, serde, topics = setup

    (out,) = canonicalizer.transform([raw(serde, "r", None, EMP)])

    assert out.topic == topics.entity("Employee") == "unsilo.canonical.employee"
    assert serde.decode(out.key) == {"key": "hr:7499"}
    record = serde.decode(out.value)
    assert record["name"] == "Jean Martin" and record["salary"] == Decimal("2500.50")
    assert record["manager_key"] == "hr:7001" and record["email"] == "jean.martin@retail.example"
    assert dict(out.headers) == {
        "unsilo.op": b"r",
        "unsilo.source.ts_ms": b"1700000000123",
        "unsilo.source.topic": b"unsilo.raw.hr.EMP",
        "unsilo.source.offset": b"7",
    }
    assert canonicalizer.counts.mapped == 1


def test_delete_becomes_a_tombstone_and_raw_tombstone_is_skipped(
    setup: tuple[Canonicalizer, AvroSerde, CanonicalTopics],
) -> None:
    """A delete becomes a tombstone under the before row's key; the raw tombstone after it adds nothing."""
    canonicalizer, serde, _ = setup

    outs = canonicalizer.transform(
        [raw(serde, "d", EMP, None), FakeMessage(raw_topic("hr", "EMP"), 8, b"k", None)]
    )

    assert len(outs) == 1 and outs[0].value is None
    assert serde.decode(outs[0].key) == {"key": "hr:7499"} and dict(outs[0].headers)["unsilo.op"] == b"d"


def test_unmappable_row_goes_to_the_dlq_with_reason(
    setup: tuple[Canonicalizer, AvroSerde, CanonicalTopics],
) -> None:
    """A HIREDATE no calendar has goes to the DLQ with the reason, mapping and provenance, counted."""
    canonicalizer, serde, topics = setup

    (out,) = canonicalizer.transform([raw(serde, "c", None, {**EMP, "HIREDATE": "20230229"}, offset=11)])

    headers = dict(out.headers)
    assert out.topic == topics.dlq == "unsilo.dlq.canonical" and out.key == b"raw-key"
    assert b"HIREDATE" in headers["unsilo.error"] and b"20230229" in headers["unsilo.error"]
    assert headers["unsilo.error.class"] == b"MappingError"
    assert headers["unsilo.mapping"] == b"hr.EMP->Employee"
    assert headers["unsilo.source.offset"] == b"11" and headers["unsilo.source.topic"] == b"unsilo.raw.hr.EMP"
    assert json.loads(out.value or b"")["after"]["HIREDATE"] == "20230229"
    assert canonicalizer.counts.dead_lettered == 1 and canonicalizer.counts.mapped == 0
    assert "20230229" in canonicalizer.counts.last_error["hr.EMP->Employee"]


def test_truncate_goes_to_the_dlq(setup: tuple[Canonicalizer, AvroSerde, CanonicalTopics]) -> None:
    """A truncate has no row to map, so it is dead-lettered rather than dropped."""
    canonicalizer, serde, topics = setup

    (out,) = canonicalizer.transform([raw(serde, "t", None, None)])

    assert out.topic == topics.dlq and b"truncate" in dict(out.headers)["unsilo.error"]


def test_row_columns_reads_the_envelope_row() -> None:
    """The columns a mapping is validated against are the envelope's row fields."""
    assert row_columns(ENVELOPE)[:2] == ["EMPNO", "ENAME"]


class AwayRegistry(FakeRegistry):
    """A registry that cannot be reached (restarting, say)."""

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        raise RegistryUnavailableError("schema registry at http://registry did not answer (ConnectError)")


def test_registry_outage_is_retried_not_dead_lettered(
    setup: tuple[Canonicalizer, AvroSerde, CanonicalTopics],
) -> None:
    """While the registry is away a good raw event raises a retriable error: nothing goes to the DLQ."""
    _, serde, topics = setup
    mappings = mappings_for(load_mappings(DEMO_MAPPINGS), "hr", "EMP")
    blind = Canonicalizer(mappings, AvroSerde(AwayRegistry()), topics, canonical_schemas())

    with pytest.raises(RegistryUnavailableError):
        blind.transform([raw(serde, "c", None, EMP)])

    assert blind.counts.dead_lettered == 0
