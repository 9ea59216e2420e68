"""A position is never read from behind another writer's open transaction.

A read_committed consumer stops at the last stable offset: a transaction left open in a
partition (its writer killed mid-transaction) hides every record after it until the broker
aborts it, up to a minute later. Connectors of different sources share one partition of
``_unsilo.offsets``; a connector that restarted in that minute read an old position (or
none) and snapshotted or published its changes again. CI caught it: the SQLite crash test
re-snapshotted at every restart after the previous test's connector was killed.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from connectors.offsets import encode_position, load_position, position_key
from hub.config import Settings
from hub.errors import LogUnavailableError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.consumer import read_to_end
from hub.kafka.topics import OFFSETS_TOPIC, spec_for
from tests.support import unique

pytestmark = pytest.mark.integration


def transactional(settings: Settings) -> Producer:
    producer = Producer(
        {
            **settings.kafka.client_config(),
            "transactional.id": f"test-open-{uuid.uuid4().hex[:8]}",
            "transaction.timeout.ms": 60_000,
        }
    )
    producer.init_transactions(30)
    return producer


def committed(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    producer = transactional(settings)
    producer.begin_transaction()
    producer.produce(topic, value, key)
    producer.commit_transaction(30)


def test_a_position_behind_another_writers_open_transaction_is_waited_for(settings: Settings) -> None:
    """The newest position is read once the open transaction ends, never an older one."""
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(OFFSETS_TOPIC)])
    source = unique("src")
    committed(settings, OFFSETS_TOPIC, position_key(source), encode_position({"lsn": "old"}))
    stuck = transactional(settings)  # a writer stopped mid-transaction, as if SIGKILLed
    stuck.begin_transaction()
    stuck.produce(OFFSETS_TOPIC, b"{}", position_key(unique("other")))
    stuck.flush(30)
    committed(settings, OFFSETS_TOPIC, position_key(source), encode_position({"lsn": "new"}))

    started = time.monotonic()
    with pytest.raises(LogUnavailableError, match="held back by a transaction still open"):
        list(read_to_end(settings.kafka, OFFSETS_TOPIC, timeout_s=2.0))
    assert time.monotonic() - started < 15
    readable = [m.value() for m in read_to_end(settings.kafka, OFFSETS_TOPIC, stable=False)]
    assert encode_position({"lsn": "new"}) not in readable  # what the connector used to resume from

    stuck.abort_transaction(30)
    assert load_position(settings.kafka, source) == {"lsn": "new"}
