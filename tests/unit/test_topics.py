"""Topic names and the retention policy each kind of topic gets."""

from __future__ import annotations

import re

import pytest

from hub.kafka.topics import OFFSETS_TOPIC, canonical_topic, dlq_topic, raw_topic, spec_for

KAFKA_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def test_raw_topic_is_named_after_system_and_table() -> None:
    """Changes of sales.customers go to unsilo.raw.sales.customers."""
    assert raw_topic("sales", "customers") == "unsilo.raw.sales.customers"


def test_raw_topics_keep_history_forever() -> None:
    """A raw topic is never trimmed by time or size and is not compacted (it is the audit trail)."""
    spec = spec_for(raw_topic("sales", "customers"), partitions=3)

    assert spec.config["retention.ms"] == "-1"
    assert spec.config["retention.bytes"] == "-1"
    assert spec.config["cleanup.policy"] == "delete"
    assert spec.partitions == 3


@pytest.mark.parametrize("name", [canonical_topic("customer"), dlq_topic("shop")])
def test_canonical_and_dead_letter_topics_keep_everything_too(name: str) -> None:
    """Canonical and dead-letter topics are kept forever like raw ones."""
    spec = spec_for(name)

    assert spec.config["retention.ms"] == "-1"
    assert spec.config["cleanup.policy"] == "delete"


def test_offsets_topic_is_compacted_with_one_partition() -> None:
    """_unsilo.offsets keeps only the latest position per connector, in one partition."""
    spec = spec_for(OFFSETS_TOPIC, partitions=6)

    assert spec.name == "_unsilo.offsets"
    assert spec.config["cleanup.policy"] == "compact"
    assert "retention.ms" not in spec.config
    assert spec.partitions == 1


def test_other_topics_get_broker_defaults() -> None:
    """A topic outside the unsilo.* families gets no special configs."""
    assert spec_for("someone.elses.topic").config == {}


def test_specs_do_not_share_their_config_dicts() -> None:
    """Changing one topic's config does not change the policy the next topic gets."""
    first = spec_for(raw_topic("sales", "a"))
    first.config["retention.ms"] = "1000"

    assert spec_for(raw_topic("sales", "b")).config["retention.ms"] == "-1"


@pytest.mark.parametrize(
    ("system", "table", "expected"),
    [
        ("sales", 'odd "name"', "unsilo.raw.sales.odd__name_"),
        ("sales", "dbo.Order Lines", "unsilo.raw.sales.dbo.Order_Lines"),
        ("sales", "kunden/größe", "unsilo.raw.sales.kunden_gr__e"),
    ],
)
def test_topic_names_are_sanitised(system: str, table: str, expected: str) -> None:
    """Characters Kafka does not allow in topic names become underscores."""
    name = raw_topic(system, table)

    assert name == expected
    assert KAFKA_TOPIC_NAME.match(name)
