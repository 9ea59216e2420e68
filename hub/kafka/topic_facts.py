"""What the broker knows about many topics at once, in a few batched requests.

One metadata request (partitions, replicas), one DescribeConfigs (retention, cleanup
policy), two ListOffsets (low and high watermarks), and one consumer that reads only the
last few records of every partition to find the time of its last committed record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    OffsetSpec,
)

from hub.config import KafkaSettings
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate

TP = tuple[str, int]
HISTORY_CONFIGS = ("retention.ms", "retention.bytes", "cleanup.policy")


@dataclass(frozen=True)
class TopicShape:
    """A topic's partitions and replication factor, from the cluster metadata."""

    name: str
    partitions: int
    replication_factor: int


class TopicFacts:
    """Batched admin requests over many topics of one cluster."""

    def __init__(self, settings: KafkaSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.client = AdminClient(settings.client_config())

    def shapes(self) -> dict[str, TopicShape]:
        """Every topic of the cluster with its partition count and replication factor."""
        try:
            metadata = self.client.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "listing topics") from exc
        shapes = {}
        for name, topic in metadata.topics.items():
            if topic.error is not None:
                continue
            replicas = max((len(p.replicas) for p in topic.partitions.values()), default=0)
            shapes[name] = TopicShape(name, len(topic.partitions), replicas)
        return shapes

    def configs(self, topics: Iterable[str]) -> dict[str, dict[str, str]]:
        """Topic -> its effective configuration (one DescribeConfigs for all of them)."""
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
        if not resources:
            return {}
        found: dict[str, dict[str, str]] = {}
        futures = self.client.describe_configs(resources, request_timeout=self.timeout_s)
        for resource, future in futures.items():
            try:
                entries = future.result(timeout=self.timeout_s)
            except KafkaException as exc:
                if _gone(exc):
                    continue
                raise translate(exc, self.settings.bootstrap_servers, "describing topic configs") from exc
            found[resource.name] = {key: entry.value for key, entry in entries.items()}
        return found

    def watermarks(self, shapes: Iterable[TopicShape]) -> dict[TP, tuple[int, int]]:
        """(topic, partition) -> (low, high) watermark, in two ListOffsets requests."""
        wanted = list(shapes)
        for attempt in range(3):
            partitions = [TopicPartition(s.name, p) for s in wanted for p in range(s.partitions)]
            if not partitions:
                return {}
            try:
                low = self._offsets(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
                high = self._offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
                return {tp: (low.get(tp, 0), high.get(tp, 0)) for tp in high}
            except KafkaException as exc:
                # one topic deleted since it was listed fails the whole request: list again, retry
                if not _gone(exc) or attempt == 2:
                    raise translate(exc, self.settings.bootstrap_servers, "listing offsets") from exc
                existing = self.shapes()
                wanted = [s for s in wanted if s.name in existing]
        return {}

    def _offsets(self, partitions: list[TopicPartition], spec: OffsetSpec) -> dict[TP, int]:
        futures = self.client.list_offsets({tp: spec for tp in partitions}, request_timeout=self.timeout_s)
        found = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = int(future.result(timeout=self.timeout_s).offset)
            except KafkaException as exc:
                if _gone(exc):
                    continue
                raise
        return found


_GONE = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._NOENT,  # ListOffsets: "Failed to query partition leaders" of a deleted topic
}


def _gone(exc: KafkaException) -> bool:
    """Whether ``exc`` says the topic was deleted after it was listed (skipped, not an error)."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in _GONE


def last_record_times(
    settings: KafkaSettings, ranges: dict[TP, tuple[int, int]], timeout_s: float = 30.0
) -> dict[TP, int]:
    """(topic, partition) -> timestamp (ms) of its last committed record.

    One read_committed consumer reads the last few offsets of every partition at once; a
    partition whose tail holds only transaction markers or aborted records is read again
    with a 32 times wider window, down to its low watermark. Partitions without any
    committed record are absent from the result.
    """
    pending = {tp: bounds for tp, bounds in ranges.items() if bounds[1] > bounds[0]}
    found: dict[TP, int] = {}
    window = 8
    # fetch.wait.max.ms: at a partition's end the broker would hold each fetch 500 ms
    consumer = Consumer({**consumer_config(settings), "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    try:
        while pending:
            starts = {tp: max(low, high - window) for tp, (low, high) in pending.items()}
            consumer.assign([TopicPartition(t, p, start) for (t, p), start in starts.items()])
            waiting = set(pending)
            deadline = time.monotonic() + timeout_s
            while waiting and time.monotonic() < deadline:
                for message in consumer.consume(1000, 0.5):
                    tp = (message.topic() or "", message.partition() or 0)
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF or error.code() in _GONE:
                            waiting.discard(tp)
                            continue
                        raise translate(error, settings.bootstrap_servers, f"reading the tail of {tp[0]}")
                    _kind, stamp = message.timestamp()
                    if stamp >= 0:
                        found[tp] = stamp
            for tp in list(pending):
                if tp in found or starts[tp] == pending[tp][0]:
                    del pending[tp]
            if waiting:  # timed out: leave those partitions without a time rather than hang
                break
            window *= 32
    except KafkaException as exc:
        raise translate(exc, settings.bootstrap_servers, "reading topic tails") from exc
    finally:
        consumer.close()
    return found
