"""Consumers that only see committed transactions, and a helper to read a topic to its end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from hub.config import KafkaSettings
from hub.errors import LogUnavailableError
from hub.kafka.errors import translate


def consumer_config(settings: KafkaSettings, group_id: str | None = None) -> dict[str, Any]:
    """librdkafka settings for a read_committed consumer without auto commit."""
    return {
        **settings.client_config(),
        "group.id": group_id or f"unsilo-reader-{uuid.uuid4().hex[:12]}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }


def read_to_end(
    settings: KafkaSettings, topic: str, timeout_s: float = 30.0, *, stable: bool = True
) -> Iterator[Message]:
    """Every committed record of ``topic`` from the beginning to the current end.

    A read_committed consumer stops at the last stable offset: a transaction still open in
    the partition (a writer killed mid-transaction, until the broker aborts it after its
    transaction.timeout.ms) holds back every record after it, committed or not. With
    ``stable`` the read waits until the records written before it started are readable, so a
    connector's position is never an old one (that would publish changes twice or skip
    them); after ``timeout_s`` without progress it fails, retriably. Without, it returns
    what is readable now (status views, where a moment-old state will do).
    """
    consumer = Consumer(consumer_config(settings))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in described.partitions]
        ends = _ends(settings, consumer, partitions, timeout_s, stable=stable)
        pending = {p for p, high in ends.items() if high > 0}
        if not pending:
            return
        consumer.assign(partitions)
        deadline = time.monotonic() + timeout_s
        held: dict[int, int] = {}  # partition: the last stable offset, where it is before the end
        while pending:
            if time.monotonic() > deadline:
                if held:
                    raise LogUnavailableError(
                        f"reading {topic} to its end: records from offset "
                        + ", ".join(f"{offset} of partition {p}" for p, offset in sorted(held.items()))
                        + " on are held back by a transaction still open (its writer may have stopped"
                        " mid-transaction; the broker aborts it after the writer's transaction.timeout.ms)",
                        hint="retried until it is aborted (60 s for Unsilo's own writers); "
                        "a writer restarted under the same transactional id aborts it at once",
                    )
                raise translate(None, settings.bootstrap_servers, f"reading {topic} to its end")
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    partition, at = message.partition() or 0, message.offset() or 0
                    if not stable or at >= ends[partition]:
                        pending.discard(partition)
                        held.pop(partition, None)
                    else:
                        held[partition] = at
                    continue
                raise translate(error, settings.bootstrap_servers, f"reading {topic}")
            deadline = time.monotonic() + timeout_s
            yield message
            offset, partition = message.offset() or 0, message.partition() or 0
            if offset + 1 >= ends[partition]:
                pending.discard(partition)
    except KafkaException as exc:
        raise translate(exc, settings.bootstrap_servers, f"reading {topic}") from exc
    finally:
        consumer.close()


_ELECTING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


def _ends(
    settings: KafkaSettings,
    consumer: Consumer,
    partitions: list[TopicPartition],
    timeout_s: float,
    *,
    stable: bool,
) -> dict[int, int]:
    """Where each partition ends: its high watermark, or (not ``stable``) its last stable offset.

    A read_committed consumer's watermark query answers with the last stable offset, so the
    high watermark takes a read_uncommitted one.
    """
    if not stable:
        return {tp.partition: _high_watermark(consumer, tp, timeout_s) for tp in partitions}
    uncommitted = Consumer({**consumer_config(settings), "isolation.level": "read_uncommitted"})
    try:
        return {tp.partition: _high_watermark(uncommitted, tp, timeout_s) for tp in partitions}
    finally:
        uncommitted.close()


def _high_watermark(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> int:
    """The partition's high watermark, waiting out the leader election of a new topic."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=timeout_s)[1])
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            electing = isinstance(error, KafkaError) and error.code() in _ELECTING
            if not electing or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
