"""Tamper evidence on the real broker: a connector's chain, forgeries caught, ``unsilo verify``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message, Producer
from pydantic import SecretStr

from connectors.runner import ConnectorRunner
from hub.chain import SEQ_HEADER, partition_for, read_link
from hub.config import AuditSettings, KafkaSettings, Settings, TableSettings
from hub.errors import ChainMovedError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import raw_topic, spec_for
from tests.support import run_sql, sqlite_source, topic_messages, unique, write_config

pytestmark = pytest.mark.integration

KEY = "the auditors' key"


class Shop:
    """A SQLite shop captured by a real connector with the chain and signed checkpoints on."""

    def __init__(self, settings: Settings, tmp_path: Path, *, partitions: int = 1) -> None:
        self.db = tmp_path / "shop.db"
        run_sql(self.db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        self.system = unique("audit")
        self.source = sqlite_source(unique("shop"), self.system, self.db, ["customers"], batch_size=4)
        self.settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(update={"topic_partitions": partitions}),
                "audit": AuditSettings(hmac_key=SecretStr(KEY), checkpoint_every=3),
                "sources": [self.source],
            }
        )
        self.topic = raw_topic(self.system, "customers")
        # the key reaches `unsilo verify` as a user gives it: UNSILO_AUDIT__HMAC_KEY, not the file
        keyless = self.settings.model_copy(update={"audit": AuditSettings(checkpoint_every=3)})
        self.config = write_config(keyless, tmp_path / "unsilo.yaml")

    def insert(self, first: int, count: int) -> None:
        for i in range(first, first + count):
            run_sql(self.db, "INSERT INTO customers (id, name) VALUES (?, ?)", (i, f"customer {i}"))

    def capture(self) -> None:
        ConnectorRunner(self.settings, self.source).run(until_idle=True)

    def verify(self, *args: str, key: str | None = KEY) -> tuple[int, dict[str, Any], str]:
        """``unsilo verify --json ...`` in a subprocess: exit code, the JSON report, stderr."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNSILO_")}
        if key is not None:
            env["UNSILO_AUDIT__HMAC_KEY"] = key
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "-c", str(self.config), "verify", "--json", *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
        body = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
        return done.returncode, body, done.stdout + done.stderr


def plain_produce(kafka: KafkaSettings, topic: str, records: list[tuple[Any, Any, Any]]) -> list[Message]:
    """Produce ``(key, value, headers)`` records with a plain producer; their delivery reports."""
    delivered: list[Message] = []
    # idempotent, so that a retry under load neither duplicates nor reorders the copy
    producer = Producer({**kafka.client_config(), "enable.idempotence": True})
    for key, value, headers in records:
        producer.produce(
            topic, key=key, value=value, headers=headers, on_delivery=lambda e, m: delivered.append(m)
        )
        producer.poll(0)
    producer.flush(30)
    assert all(m.error() is None for m in delivered)
    return delivered


@pytest.fixture
def shop(settings: Settings, tmp_path: Path) -> Shop:
    shop = Shop(settings, tmp_path)
    shop.insert(1, 6)
    shop.capture()
    run_sql(shop.db, "UPDATE customers SET name = 'renamed' WHERE id = 2")
    run_sql(shop.db, "DELETE FROM customers WHERE id = 3")  # a delete and its tombstone
    shop.capture()
    return shop


def test_a_clean_log_verifies_and_counts_every_record(settings: Settings, tmp_path: Path) -> None:
    """Every record a connector wrote over three partitions is checked, and the signed checkpoints hold."""
    shop = Shop(settings, tmp_path, partitions=3)
    shop.insert(1, 20)
    shop.capture()
    run_sql(shop.db, "DELETE FROM customers WHERE id = 7")
    shop.capture()
    records = topic_messages(shop.settings.kafka, shop.topic)

    code, report, output = shop.verify("--topic", shop.topic)

    assert code == 0, output
    partitions = report["partitions"]
    assert [p["partition"] for p in partitions] == [0, 1, 2]
    assert sum(p["records"] for p in partitions) == len(records) == 22
    assert all(p["status"] == "ok" for p in partitions)
    assert sum(p["checkpoints_verified"] for p in partitions) >= 3
    for message in records:  # each key sits where librdkafka's own partitioner puts it
        assert message.partition() == partition_for(message.key(), 3)


def test_topic_patterns_select_the_topics_to_verify(shop: Shop) -> None:
    """--topic takes shell-style patterns: the shop's system pattern verifies its raw topic."""
    code, report, output = shop.verify("--topic", f"unsilo.raw.{shop.system}.*")

    assert code == 0, output
    assert [p["topic"] for p in report["partitions"]] == [shop.topic]


def test_a_record_appended_by_a_plain_producer_is_caught_at_its_offset(shop: Shop) -> None:
    """A forged event without chain headers, and one replaying the last record's headers, are named."""
    last = topic_messages(shop.settings.kafka, shop.topic)[-1]
    (forged,) = plain_produce(shop.settings.kafka, shop.topic, [(last.key(), b"forged", None)])

    code, report, output = shop.verify("--topic", shop.topic)

    assert code == 1
    broken = report["partitions"][0]["broken"]
    assert broken["offset"] == forged.offset()
    assert broken["reason"] == "missing chain headers"
    assert f"BROKEN {shop.topic}[0] at offset {forged.offset()}" in output


def test_a_forged_record_with_copied_headers_is_caught_at_its_offset(shop: Shop) -> None:
    """Copying the last record's chain headers onto a forged value repeats a seq: caught there."""
    last = topic_messages(shop.settings.kafka, shop.topic)[-1]
    (forged,) = plain_produce(shop.settings.kafka, shop.topic, [(last.key(), b"forged", last.headers())])

    code, report, _ = shop.verify("--topic", shop.topic)

    assert code == 1
    broken = report["partitions"][0]["broken"]
    assert (broken["offset"], broken["seq"]) == (forged.offset(), read_link(last.headers()).seq)  # type: ignore[union-attr]
    assert broken["reason"].startswith("seq repeat")


def test_a_record_rewritten_in_a_copy_of_the_topic_is_caught_at_its_offset(shop: Shop) -> None:
    """A copy made record by record with one value altered (headers kept) breaks at that record."""
    original = topic_messages(shop.settings.kafka, shop.topic)
    altered = 4
    assert original[altered].value() is not None
    copy = unique("unsilo.raw.copy.")
    KafkaAdmin(shop.settings.kafka).ensure_topics([spec_for(copy)])
    delivered = plain_produce(
        shop.settings.kafka,
        copy,
        [
            (m.key(), m.value()[:-1] + b"\x01" if i == altered else m.value(), m.headers())  # type: ignore[index]
            for i, m in enumerate(original)
        ],
    )

    code, report, output = shop.verify("--topic", copy)

    assert code == 1, output
    broken = report["partitions"][0]["broken"]
    assert broken["offset"] == delivered[altered].offset()
    assert broken["reason"].startswith("hash mismatch")
    assert broken["found_hash"] == read_link(original[altered].headers()).hash.hex()  # type: ignore[union-attr]
    assert broken["expected_hash"] != broken["found_hash"]
    assert report["partitions"][0]["records"] == altered


def test_a_restarted_connector_continues_the_chain(shop: Shop) -> None:
    """A second connector run picks the chain up where the first left it: one unbroken chain."""
    before = topic_messages(shop.settings.kafka, shop.topic)
    shop.insert(100, 5)
    shop.capture()
    after = topic_messages(shop.settings.kafka, shop.topic)

    code, report, output = shop.verify("--topic", shop.topic)

    assert code == 0, output
    assert report["partitions"][0]["records"] == len(after) == len(before) + 5
    seqs = [int(dict(m.headers() or [])[SEQ_HEADER]) for m in after]
    assert seqs == list(range(len(after)))


def test_checkpoints_verify_with_the_right_key_and_are_rejected_with_a_wrong_one(shop: Shop) -> None:
    """The writers' key verifies the signed checkpoints; another key reports each as rejected."""
    good_code, good, _ = shop.verify("--topic", shop.topic)
    bad_code, bad, output = shop.verify("--topic", shop.topic, key="not the key")
    _, keyless, _ = shop.verify("--topic", shop.topic, key=None)

    assert good_code == 0 and good["partitions"][0]["checkpoints_verified"] >= 2
    assert bad_code == 1
    assert bad["partitions"][0]["checkpoints_rejected"]
    assert "HMAC does not match" in output and f"REJECTED {shop.topic}[0]" in output
    assert keyless["partitions"][0]["checkpoints_unchecked"] >= 2
    assert any("set audit.hmac_key" in m for m in keyless["messages"])


def test_verify_from_mid_log_starts_from_a_signed_checkpoint(shop: Shop) -> None:
    """--from in the middle anchors on the last signed checkpoint before it, not on the hub's word."""
    records = topic_messages(shop.settings.kafka, shop.topic)
    start = records[-2].offset()

    code, report, output = shop.verify("--topic", shop.topic, "--from", str(start))

    assert code == 0, output
    partition = report["partitions"][0]
    assert partition["anchor"].startswith("signed checkpoint seq")
    assert partition["first_offset"] <= start
    assert partition["last_offset"] == records[-1].offset()


def test_a_topic_without_chain_headers_is_explained(settings: Settings, tmp_path: Path) -> None:
    """A topic written by a plain producer is not verified: verify says why (exit 2)."""
    shop = Shop(settings, tmp_path)
    topic = unique("unsilo.raw.plain.")
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(topic)])
    plain_produce(settings.kafka, topic, [(b"k%d" % i, b"v", None) for i in range(3)])

    code, report, output = shop.verify("--topic", topic)

    assert code == 2
    assert report["partitions"][0]["status"] == "unchained"
    assert (
        "no chain headers: written before the chain was enabled (audit.chain) "
        "or by a producer outside Unsilo" in output
    )


def test_a_chain_started_mid_topic_is_verified_from_its_first_link(
    settings: Settings, tmp_path: Path
) -> None:
    """Records written before the chain are named, and the chain is verified from the offset it starts."""
    shop = Shop(settings, tmp_path)
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(shop.topic)])
    plain_produce(settings.kafka, shop.topic, [(b"old-%d" % i, b"before the chain", None) for i in range(3)])
    shop.insert(1, 4)
    shop.capture()

    code, report, output = shop.verify("--topic", shop.topic)

    assert code == 0, output
    assert report["partitions"][0]["chain_starts_at"] == 3
    assert report["partitions"][0]["records"] == 4
    assert "the chain starts at offset 3" in output


def test_bad_input_is_refused_with_exit_2(shop: Shop) -> None:
    """An unknown topic or an unreadable --from is a user's mistake: a message, exit status 2."""
    code, _, output = shop.verify("--topic", unique("unsilo.raw.missing."))
    bad_from, _, from_output = shop.verify("--topic", shop.topic, "--from", "yesterday")

    assert code == 2 and "no topic named" in output
    assert bad_from == 2 and "neither an offset nor an ISO time" in from_output


def test_a_dlq_replay_between_two_batches_of_a_running_connector_keeps_one_chain(
    settings: Settings, tmp_path: Path
) -> None:
    """`unsilo dlq replay` appends to a raw topic while its connector runs: the connector's next
    batch is aborted and retried on the new head, so both stay on one chain."""
    shop = Shop(settings, tmp_path)
    run_sql(shop.db, "ALTER TABLE customers ADD COLUMN born DATE")
    shop.insert(1, 2)
    run_sql(shop.db, "UPDATE customers SET born = 'soon' WHERE id = 2")  # Avro's date cannot take it
    runner = ConnectorRunner(shop.settings, shop.source)
    runner.start()
    try:
        while runner.step():
            pass
        assert runner.stats.dead_lettered == 1
        fixed = shop.source.model_copy(
            update={"tables": [TableSettings(name="customers", mask={"born": "drop"})]}
        )
        config = write_config(
            shop.settings.model_copy(update={"sources": [fixed], "audit": AuditSettings()}),
            tmp_path / "fixed.yaml",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNSILO_")}
        replayed = subprocess.run(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "-c",
                str(config),
                "dlq",
                "replay",
                "--stage",
                shop.source.name,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        shop.insert(10, 2)
        with pytest.raises(ChainMovedError):  # the same runner, its heads in memory: it notices
            runner.step()
    finally:
        runner.close()
    shop.capture()  # what `unsilo run` does on that retriable error: retry the batch
    records = topic_messages(shop.settings.kafka, shop.topic)

    code, report, output = shop.verify("--topic", shop.topic)

    assert code == 0, output
    assert report["partitions"][0]["records"] == len(records) == 4
