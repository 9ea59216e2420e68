"""A transactional producer: records and the source position commit together, or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from hub.chain import ChainLinker, is_chained
from hub.config import AuditSettings, KafkaSettings
from hub.errors import ChainMovedError, DeliveryError, LogError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.chain import KafkaHeads, chain_linker
from hub.kafka.errors import translate
from hub.kafka.topics import CHAIN_TOPIC, spec_for

log = structlog.get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]


class TransactionalProducer:
    """Wraps a confluent-kafka producer with ``transactional.id`` set.

    ``begin()``, ``send(...)`` any number of times, then ``commit()``; on any error
    ``abort()``. A second instance with the same id fences this one (FencedError).

    With ``audit`` (and ``audit.chain`` on), records sent to chained topics carry the hash
    chain of ``hub.chain``: the producer picks their partition itself (the one librdkafka's
    default partitioner would), links them to the partition's head and, with
    ``audit.hmac_key``, adds the signed checkpoints that are due to the transaction before it
    commits. The heads assume this transactional id is the only writer of those topics; when
    another writer appended since, ``commit()`` raises ChainMovedError (retriable) instead.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        transactional_id: str,
        *,
        extra: dict[str, Any] | None = None,
        audit: AuditSettings | None = None,
    ) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        config: dict[str, Any] = {
            **settings.client_config(),
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
            "message.max.bytes": 1_000_000,
            "transaction.timeout.ms": 60_000,
        }
        config.update(extra or {})
        self._producer = Producer(config)
        self._failed: KafkaError | None = None
        self._in_transaction = False
        # Chained partitions written in the open transaction: records sent, and the offset
        # of the first (the only one of them with a delivery report; see ``send``)
        self._sent: dict[tuple[str, int], int] = {}
        self._first_offsets: dict[tuple[str, int], int] = {}
        chain = chain_linker(settings, audit, transactional_id) if audit is not None else None
        self.chain: ChainLinker | None = chain[0] if chain else None
        self._heads: KafkaHeads | None = chain[1] if chain else None

    def init(self, timeout_s: float = 30.0) -> None:
        """Register the transactional id with the coordinator, fencing older instances."""
        try:
            self._producer.init_transactions(timeout_s)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "initialising transactions") from exc
        if self.chain is not None and self.chain.hmac_key is not None:
            KafkaAdmin(self.settings).ensure_topics([spec_for(CHAIN_TOPIC)])

    def begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "beginning a transaction") from exc
        self._failed = None
        self._in_transaction = True
        self._sent, self._first_offsets = {}, {}
        if self.chain is not None:
            self.chain.begin()

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        """Queue one record in the open transaction (linked to its chain if the topic is chained).

        Of a chained partition's records only the first asks for a delivery report: its
        offset is all the chain needs (the rest follow it), and a record the broker refuses
        fails the transaction's commit anyway. A report per record cost 8% of a snapshot.
        """
        record_headers: list[tuple[str, str | bytes | None]] = list(headers or [])
        options: dict[str, Any] = {"on_delivery": self._on_delivery}
        if self.chain is not None and is_chained(topic):
            partition, links = self.chain.link(topic, key, value)
            record_headers += links
            options["partition"] = partition
            tp = (topic, partition)
            sent = self._sent.get(tp, 0)
            self._sent[tp] = sent + 1
            if sent:
                options = {"partition": partition}
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=record_headers, **options)
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise translate(exc, self.settings.bootstrap_servers, f"producing to {topic}") from exc

    def send_many(self, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        """:meth:`send` for each of ``records`` in turn (no headers of their own), linked in one go."""
        if self.chain is None or not is_chained(topic):
            for key, value in records:
                self.send(topic, key, value)
            return
        produce: Any = self._producer.produce  # headers as the linker builds them: (str, bytes) pairs
        sent, on_delivery = self._sent, self._on_delivery
        for (key, value), (partition, headers) in zip(
            records, self.chain.link_many(topic, list(records)), strict=True
        ):
            tp = (topic, partition)
            count = sent.get(tp, 0)
            sent[tp] = count + 1
            while True:
                try:
                    if count:
                        produce(topic, value, key, partition, headers=headers)
                    else:
                        produce(topic, value, key, partition, on_delivery, headers=headers)
                    break
                except BufferError:
                    self._producer.poll(0.05)
                except KafkaException as exc:
                    raise translate(exc, self.settings.bootstrap_servers, f"producing to {topic}") from exc

    def send_offsets(
        self, consumer: Consumer, offsets: Sequence[TopicPartition], timeout_s: float = 30.0
    ) -> None:
        """Commit ``consumer``'s group ``offsets`` (next offsets to read) with the open transaction."""
        try:
            self._producer.send_offsets_to_transaction(
                list(offsets), consumer.consumer_group_metadata(), timeout_s
            )
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "sending offsets to a transaction") from exc

    def commit(self, timeout_s: float = 60.0) -> None:
        """Flush and commit the open transaction; raises if any record was rejected.

        When the commit fails its outcome may be unknown: the chain heads are dropped and
        reloaded from the log at the next send.
        """
        try:
            if self.chain is not None:
                for key, value in self.chain.due_checkpoints():
                    self.send(CHAIN_TOPIC, key, value)
            remaining = self._producer.flush(timeout_s)
            if remaining:
                raise DeliveryError(f"{remaining} records not delivered within {timeout_s}s")
            if self._failed is not None:
                raise translate(self._failed, self.settings.bootstrap_servers, "delivering a record")
            if self._heads is not None:
                for (topic, partition), offset in self._first_offsets.items():
                    self._heads.delivered(topic, partition, offset, self._sent[(topic, partition)])
            moved = self._heads.moved() if self._heads is not None else []
            if moved:
                raise ChainMovedError(
                    "another writer appended to "
                    + ", ".join(f"{topic}[{partition}]" for topic, partition in moved)
                    + " since this one last did: the batch is retried on the new chain head",
                    hint="each chained topic should have one writer (its connector or canonicalizer)",
                )
            self._producer.commit_transaction(timeout_s)
        except BaseException as exc:
            if self.chain is not None and self._heads is not None:
                self.chain.forget()
                self._heads.settled(known=False)
            if isinstance(exc, KafkaException):
                raise translate(exc, self.settings.bootstrap_servers, "committing a transaction") from exc
            raise
        finally:
            self._in_transaction = False
        if self.chain is not None and self._heads is not None:
            self.chain.commit()
            self._heads.settled()

    def abort(self, timeout_s: float = 30.0) -> None:
        """Abort the open transaction, if any; errors are logged, not raised."""
        try:
            self._producer.abort_transaction(timeout_s)
        except KafkaException as exc:
            log.warning("transaction_abort_failed", error=str(exc.args[0]))
        self._in_transaction = False
        if self.chain is not None and self._heads is not None:
            self.chain.abort()
            self._heads.settled(known=False)

    def close(self) -> None:
        if self._in_transaction:
            self.abort()
        self._producer.flush(5)
        if self._heads is not None:
            self._heads.close()

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            if self._failed is None:
                self._failed = error
        elif self._heads is not None and is_chained(topic := message.topic() or ""):
            self._first_offsets[(topic, message.partition() or 0)] = message.offset() or 0


def is_retriable(error: LogError) -> bool:
    return error.retriable
