"""The chain on the wire: a writer's heads loaded from Kafka, and scans the verifier shares."""

from __future__ import annotations

import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hub.chain import GENESIS_HEAD, ChainLinker, Head, MalformedLinkError, read_link
from hub.config import AuditSettings, KafkaSettings
from hub.errors import LogError
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate, unavailable

log = structlog.get_logger(__name__)

WINDOW = 256  # records read per step when scanning a partition backwards


def read_window(
    consumer: Consumer, tp: TopicPartition, start: int, end: int, what: str, bootstrap: str = ""
) -> list[Message]:
    """The committed records of ``tp`` with offsets in [start, end), read_committed.

    ``consumer`` must have ``enable.partition.eof`` set; ``what`` names the read in errors.
    """
    consumer.assign([TopicPartition(tp.topic, tp.partition, start)])
    found: list[Message] = []
    deadline = time.monotonic() + 30.0
    try:
        while time.monotonic() < deadline:
            # consume() waits out its timeout unless it fills the batch: short waits, many calls
            messages = consumer.consume(num_messages=min(max(end - start, 1), 1000), timeout=0.05)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return found
                    raise translate(error, bootstrap, what)
                offset = message.offset() or 0
                if offset >= end:
                    return found
                found.append(message)
                if offset + 1 >= end:
                    return found
    except KafkaException as exc:
        raise translate(exc, bootstrap, what) from exc
    finally:
        consumer.unassign()
    raise unavailable(bootstrap, f"{what}: no answer within 30 s")


def scan_config(settings: KafkaSettings) -> dict[str, Any]:
    """A read_committed consumer for short reads to a partition's end.

    The broker answers a fetch at the end of a partition only after ``fetch.wait.max.ms``
    (500 ms by default): each partition read to its end would cost that.
    """
    return {**consumer_config(settings), "fetch.wait.max.ms": 10}


_ELECTING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


def watermarks(
    consumer: Consumer, tp: TopicPartition, timeout_s: float, bootstrap: str, what: str
) -> tuple[int, int]:
    """The low and high watermarks of ``tp``, waiting out the leader election of a new topic."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            electing = isinstance(error, KafkaError) and error.code() in _ELECTING
            if not electing or time.monotonic() > deadline:
                raise translate(exc, bootstrap, what) from exc
            time.sleep(0.2)


def last_link_before(
    consumer: Consumer, tp: TopicPartition, end: int, low: int, what: str, bootstrap: str = ""
) -> tuple[int, Head] | None:
    """The offset and link of the last chained record before offset ``end`` (None: there is none).

    Scans backwards in growing windows: aborted records and transaction markers take offsets
    but are never returned, so a window can come back empty. A record with unreadable chain
    headers is skipped (the verifier reports it when it reaches it).
    """
    window = WINDOW
    while end > low:
        start = max(low, end - window)
        for message in reversed(read_window(consumer, tp, start, end, what, bootstrap)):
            try:
                link = read_link(message.headers())
            except MalformedLinkError:
                continue
            if link is not None:
                return message.offset() or 0, link
        end, window = start, min(window * 4, 65_536)
    return None


class KafkaHeads:
    """Loads chain heads and partition counts for a :class:`ChainLinker` (one consumer, reused).

    It also knows where each partition's log should continue if this writer was the last to
    write there: after its last record in a transaction and that transaction's marker
    (``delivered`` then ``settled``), or at the end found when the head was loaded. ``moved``,
    asked before a commit, names the partitions whose first record of the transaction landed
    elsewhere: someone else wrote in between, and the links just written are wrong. This costs
    no request; the delivery reports carry the offsets.
    """

    def __init__(self, settings: KafkaSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._consumer: Consumer | None = None
        self._partitions: dict[str, int] = {}
        self._ends: dict[tuple[str, int], int] = {}  # the high watermark expected
        self._pending: dict[tuple[str, int], int] = {}  # in the open transaction
        self._first: dict[tuple[str, int], int] = {}  # first offset written in the open transaction

    def delivered(self, topic: str, partition: int, offset: int, count: int = 1) -> None:
        """``count`` records of the open transaction were written from ``offset`` on.

        A transaction's records in one partition take consecutive offsets unless another
        writer appends in between: then the end expected here falls short of the real one,
        and the next transaction's first record is seen to have ``moved``.
        """
        tp = (topic, partition)
        self._pending[tp] = max(self._pending.get(tp, 0), offset + count + 1)  # the records, the marker
        self._first[tp] = min(self._first.get(tp, offset), offset)

    def moved(self) -> list[tuple[str, int]]:
        """Partitions where another writer appended since this one last wrote or loaded the head."""
        return [tp for tp, first in self._first.items() if tp in self._ends and first != self._ends[tp]]

    def settled(self, *, known: bool = True) -> None:
        """The open transaction committed or aborted (``known``: every delivery was reported)."""
        if known:
            self._ends.update(self._pending)
        else:
            for tp in self._pending:
                self._ends.pop(tp, None)
        self._pending, self._first = {}, {}

    def is_current(self, topic: str, partition: int) -> bool:
        """Whether the held head can be trusted: False after an abort left the log's end unknown."""
        return (topic, partition) in self._ends

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(scan_config(self.settings))
        return self._consumer

    def partitions(self, topic: str) -> int:
        """The partition count of ``topic`` (cached for this writer's life)."""
        count = self._partitions.get(topic)
        deadline = 0.0 if count is not None else time.monotonic() + self.timeout_s
        while count is None:
            try:
                metadata = self._require_consumer().list_topics(topic, timeout=self.timeout_s)
            except KafkaException as exc:
                raise translate(exc, self.settings.bootstrap_servers, f"describing {topic}") from exc
            described = metadata.topics.get(topic)
            if described is not None and described.error is None and described.partitions:
                count = self._partitions[topic] = len(described.partitions)
            elif time.monotonic() > deadline:  # a topic created a moment ago may not be listed yet
                raise LogError(
                    f"topic {topic} does not exist, so its chain cannot be continued",
                    hint="create it first (the runner and the canonicalizer do when they start)",
                )
            else:
                time.sleep(0.2)
        return count

    def load(self, topic: str, partition: int) -> Head:
        """The last committed link of the partition, or the genesis for a chain not started yet."""
        consumer = self._require_consumer()
        tp = TopicPartition(topic, partition)
        what = f"loading the chain head of {topic}[{partition}]"
        bootstrap = self.settings.bootstrap_servers
        low, high = watermarks(consumer, tp, self.timeout_s, bootstrap, what)
        found = last_link_before(consumer, tp, high, low, what, bootstrap)
        self._ends[(topic, partition)] = high
        head = GENESIS_HEAD if found is None else found[1]
        offset = None if found is None else found[0]
        log.info("chain_head_loaded", topic=topic, partition=partition, seq=head.seq, offset=offset)
        return head

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def chain_linker(
    kafka: KafkaSettings, audit: AuditSettings, writer: str
) -> tuple[ChainLinker, KafkaHeads] | None:
    """The linker of a transactional writer, or None when ``audit.chain`` is off."""
    if not audit.chain:
        return None
    heads = KafkaHeads(kafka)
    key = audit.hmac_key.get_secret_value().encode("utf-8") if audit.hmac_key is not None else None
    linker = ChainLinker(
        heads.load,
        heads.partitions,
        is_current=heads.is_current,
        writer=writer,
        hmac_key=key,
        checkpoint_every=audit.checkpoint_every,
        checkpoint_interval_s=audit.checkpoint_interval_s,
    )
    return linker, heads
