"""Reading many topics to their end with one consumer (``read_to_end`` opens one per topic)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from hub.config import KafkaSettings
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate


def read_topics_to_end(
    settings: KafkaSettings, topics: Sequence[str], timeout_s: float = 30.0
) -> Iterator[Message]:
    """Every committed record of ``topics`` up to their current ends (offset order per partition)."""
    if not topics:
        return
    consumer = Consumer(consumer_config(settings))
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                continue
            for partition in described.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                if high > low:
                    ends[(topic, partition)] = int(high)
        if not ends:
            return
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise translate(
                    None, settings.bootstrap_servers, f"reading {len(pending)} partitions to their end"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            where = (message.topic() or "", message.partition() or 0)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(where)
                    continue
                raise translate(error, settings.bootstrap_servers, f"reading {where[0]}")
            deadline = time.monotonic() + timeout_s
            yield message
            if (message.offset() or 0) + 1 >= ends[where]:
                pending.discard(where)
    except KafkaException as exc:
        raise translate(exc, settings.bootstrap_servers, "reading topics") from exc
    finally:
        consumer.close()
