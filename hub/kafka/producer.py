"""A transactional producer: records and the source position commit together, or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from hub.config import KafkaSettings
from hub.errors import DeliveryError, LogError
from hub.kafka.errors import translate

log = structlog.get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]


class TransactionalProducer:
    """Wraps a confluent-kafka producer with ``transactional.id`` set.

    ``begin()``, ``send(...)`` any number of times, then ``commit()``; on any error
    ``abort()``. A second instance with the same id fences this one (FencedError).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        transactional_id: str,
        *,
        extra: dict[str, Any] | None = None,
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

    def init(self, timeout_s: float = 30.0) -> None:
        """Register the transactional id with the coordinator, fencing older instances."""
        try:
            self._producer.init_transactions(timeout_s)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "initialising transactions") from exc

    def begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "beginning a transaction") from exc
        self._failed = None
        self._in_transaction = True

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        """Queue one record in the open transaction."""
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers or []), on_delivery=self._on_delivery
                )
                return
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
        """Flush and commit the open transaction; raises if any record was rejected."""
        try:
            remaining = self._producer.flush(timeout_s)
            if remaining:
                raise DeliveryError(f"{remaining} records not delivered within {timeout_s}s")
            if self._failed is not None:
                raise translate(self._failed, self.settings.bootstrap_servers, "delivering a record")
            self._producer.commit_transaction(timeout_s)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "committing a transaction") from exc
        finally:
            self._in_transaction = False

    def abort(self, timeout_s: float = 30.0) -> None:
        """Abort the open transaction, if any; errors are logged, not raised."""
        try:
            self._producer.abort_transaction(timeout_s)
        except KafkaException as exc:
            log.warning("transaction_abort_failed", error=str(exc.args[0]))
        self._in_transaction = False

    def close(self) -> None:
        if self._in_transaction:
            self.abort()
        self._producer.flush(5)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and self._failed is None:
            self._failed = error


def is_retriable(error: LogError) -> bool:
    return error.retriable
