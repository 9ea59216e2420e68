"""Replaying topics into a builder with a plain consumer: for rebuilds (and audits).

Reads every partition from the builder's applied offsets (or the beginning) up to the end
offsets taken when the replay starts, in batches, reporting progress as it goes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from hub.config import Settings
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from projections.events import Builder, RawEvent, decode

log = structlog.get_logger(__name__)

Progress = Callable[[int, int], None]  # (events read so far, events to read in all)


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """The current log-end offset of every partition of ``topics``."""
    consumer = Consumer(consumer_config(settings.kafka, f"unsilo-probe-{uuid.uuid4().hex[:8]}"))
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                ends[(topic, partition)] = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )[1]
        return ends
    except KafkaException as exc:
        raise translate(exc, settings.kafka.bootstrap_servers, "reading end offsets") from exc
    finally:
        consumer.close()


def replay(
    settings: Settings,
    topics: list[str],
    builder: Builder,
    *,
    until: dict[tuple[str, int], int] | None = None,
    batch: int = 2000,
    progress: Progress | None = None,
) -> int:
    """Apply every record after the builder's offsets up to ``until`` (default: now's end)."""
    until = until if until is not None else end_offsets(settings, topics)
    done = builder.applied_offsets()
    starts = {tp: done.get(tp, -1) + 1 for tp in until}
    pending = {tp for tp, end in until.items() if starts[tp] < end}
    total = sum(max(until[tp] - starts[tp], 0) for tp in until)
    if not pending:
        return 0
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    consumer = Consumer(consumer_config(settings.kafka, f"unsilo-replay-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in pending])
    read = 0
    try:
        while pending:
            events: list[RawEvent] = []
            for message in consumer.consume(num_messages=batch, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic() or "", message.partition() or 0))
                        continue
                    raise translate(error, settings.kafka.bootstrap_servers, "replaying")
                tp = (message.topic() or "", message.partition() or 0)
                offset = message.offset() or 0
                if tp not in pending or offset >= until[tp]:
                    pending.discard(tp)
                    continue
                events.append(decode(serde, tp[0], tp[1], offset, message.key(), message.value()))
                if offset + 1 >= until[tp]:
                    pending.discard(tp)
            if events:
                builder.apply(events)
                read += len(events)
                if progress is not None:
                    progress(read, total)
    finally:
        consumer.close()
    log.info("replay_done", topics=len(topics), events=read)
    return read
