"""An exactly-once consume-transform-produce loop on confluent-kafka transactions.

Each batch consumed (read_committed) becomes one Kafka transaction holding the records the
stage produced for it and the consumer's next offsets (``send_offsets_to_transaction``):
after a crash the aborted batch is invisible downstream and is consumed again from the
committed offsets. A stage whose state lives only in memory can ask to be rebuilt first:
its input topics are replayed from the beginning up to the committed offsets (nothing is
produced for them), then the loop continues from there.

Partitions are assigned, not subscribed: one instance per stage (a second one with the same
transactional id fences the first), and no rebalance can interrupt a transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from hub.config import Settings
from hub.errors import FencedError, UnsiloError
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate
from hub.kafka.producer import Headers, TransactionalProducer

log = structlog.get_logger(__name__)

TP = tuple[str, int]


@dataclass(frozen=True)
class Out:
    """One record a stage produces."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


class Stage(Protocol):
    """The plain-code part of a loop: what to read, and what to write for a batch."""

    name: str
    rebuild_from_log: bool

    def inputs(self) -> list[str]: ...

    def start(self) -> None:
        """Called before every (re)start, before any replay: reset in-memory state."""

    def replay(self, messages: Sequence[Message]) -> None:
        """Apply already-processed input records to the state, producing nothing."""

    def process(self, messages: Sequence[Message]) -> list[Out]:
        """The records to produce for a batch (state updated as a side effect)."""
        ...


@dataclass
class LoopStats:
    batches: int = 0
    consumed: int = 0
    produced: int = 0
    started: float = field(default_factory=time.monotonic)


class TransactionalLoop:
    """Drives one :class:`Stage` exactly once against Kafka."""

    def __init__(self, settings: Settings, stage: Stage, group_id: str, *, batch_size: int = 2000) -> None:
        self.settings = settings
        self.stage = stage
        self.group_id = group_id
        self.batch_size = batch_size
        self.stats = LoopStats()
        self._producer: TransactionalProducer | None = None
        self._consumer: Consumer | None = None
        self._eof: dict[TP, int] = {}
        self._partitions: list[TP] = []

    def start(self) -> None:
        """Fence older instances, read the committed offsets, rebuild the stage, assign."""
        self.close()
        self._producer = TransactionalProducer(self.settings.kafka, self.group_id, audit=self.settings.audit)
        self._producer.init()
        config = consumer_config(self.settings.kafka, self.group_id)
        config["fetch.max.bytes"] = 16 * 1024 * 1024
        self._consumer = consumer = Consumer(config)
        try:
            self._partitions = [
                (topic, partition)
                for topic in self.stage.inputs()
                for partition in sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
            ]
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed([TopicPartition(t, p) for t, p in self._partitions], timeout=10)
            }
        except KafkaException as exc:
            raise translate(exc, self.settings.kafka.bootstrap_servers, "reading committed offsets") from exc
        self.stage.start()
        if self.stage.rebuild_from_log:
            self._replay({tp: offset for tp, offset in committed.items() if offset > 0})
        self._eof = {}
        consumer.assign(
            [
                TopicPartition(t, p, committed[(t, p)] if committed[(t, p)] >= 0 else OFFSET_BEGINNING)
                for t, p in self._partitions
            ]
        )
        log.info("stage_started", stage=self.stage.name, partitions=len(self._partitions))

    def _replay(self, until: dict[TP, int]) -> None:
        consumer = self._require_consumer()
        pending = set(until)
        if not pending:
            return
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in pending])
        replayed = 0
        while pending:
            batch: list[Message] = []
            for message in consumer.consume(num_messages=self.batch_size, timeout=1.0):
                tp = (message.topic() or "", message.partition() or 0)
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(tp)
                        continue
                    raise translate(error, self.settings.kafka.bootstrap_servers, "replaying inputs")
                offset = message.offset() or 0
                if tp in pending and offset < until[tp]:
                    batch.append(message)
                if offset + 1 >= until[tp]:
                    pending.discard(tp)
            self.stage.replay(batch)
            replayed += len(batch)
        consumer.unassign()
        log.info("stage_rebuilt", stage=self.stage.name, events=replayed)

    def step(self, timeout_s: float = 0.2) -> int:
        """Process one batch in one transaction; the number of input records consumed."""
        consumer, producer = self._require_consumer(), self._require_producer()
        messages: list[Message] = []
        try:
            polled = consumer.consume(num_messages=self.batch_size, timeout=timeout_s)
        except KafkaException as exc:
            raise translate(exc, self.settings.kafka.bootstrap_servers, "consuming") from exc
        for message in polled:
            tp = (message.topic() or "", message.partition() or 0)
            error = message.error()
            if error is None:
                self._eof.pop(tp, None)
                messages.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                self._eof[tp] = message.offset() or 0
            else:
                raise translate(error, self.settings.kafka.bootstrap_servers, f"consuming {tp[0]}")
        if not messages:
            return 0
        next_offsets: dict[TP, int] = {}
        for message in messages:
            next_offsets[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        producer.begin()
        try:
            outputs = self.stage.process(messages)
            for out in outputs:
                producer.send(out.topic, out.key, out.value, out.headers)
            producer.send_offsets(consumer, [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()])
            producer.commit()
        except BaseException:
            producer.abort()
            raise
        self.stats.batches += 1
        self.stats.consumed += len(messages)
        self.stats.produced += len(outputs)
        return len(messages)

    def caught_up(self) -> bool:
        """Whether every input partition was read to its last committed record."""
        consumer = self._consumer
        if consumer is None:
            return False
        for tp in self._partitions:
            if tp not in self._eof:
                return False
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10, cached=False)
            except KafkaException as exc:
                raise translate(exc, self.settings.kafka.bootstrap_servers, "reading end offsets") from exc
            if self._eof[tp] < high:
                return False
        return True

    def safe_step(self, timeout_s: float = 0.2) -> int:
        """:meth:`step`, restarting from the committed offsets after a retriable error."""
        try:
            if self._consumer is None:
                self.start()
            return self.step(timeout_s)
        except FencedError:
            raise
        except UnsiloError as exc:
            if not exc.retriable:
                raise
            log.warning("stage_retrying", stage=self.stage.name, error=exc.message)
            self.close()
            time.sleep(1.0)
            return 0

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise UnsiloError(f"{self.stage.name}: the loop is not started")
        return self._consumer

    def _require_producer(self) -> TransactionalProducer:
        if self._producer is None:
            raise UnsiloError(f"{self.stage.name}: the loop is not started")
        return self._producer
