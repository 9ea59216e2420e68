"""Topic administration: create topics by policy, idempotently; list what exists."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from hub.config import KafkaSettings
from hub.errors import LogError
from hub.kafka.errors import ErrorWatch, translate, unavailable
from hub.kafka.topics import TopicSpec

log = structlog.get_logger(__name__)


class KafkaAdmin:
    """Creates and inspects topics."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.errors = ErrorWatch(settings.security_protocol)
        config: dict[str, Any] = {**settings.client_config(), "error_cb": self.errors}
        self.client = AdminClient(config)

    def ensure_reachable(self, timeout_s: float = 10.0) -> None:
        """Raise LogUnavailableError naming the bootstrap address if no broker answers."""
        try:
            metadata = self.client.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            self.client.poll(0)  # serves error_cb: a refused login shows only there
            self.errors.raise_refusal(self.settings.bootstrap_servers)
            raise unavailable(self.settings.bootstrap_servers, "metadata request timed out") from exc
        if not metadata.brokers:
            self.client.poll(0)
            self.errors.raise_refusal(self.settings.bootstrap_servers)
            raise unavailable(self.settings.bootstrap_servers)

    def topic_names(self, timeout_s: float = 10.0) -> set[str]:
        try:
            return set(self.client.list_topics(timeout=timeout_s).topics)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "listing topics") from exc

    def ensure_topics(self, specs: Iterable[TopicSpec], timeout_s: float = 30.0) -> None:
        """Create the topics that do not exist yet (existing ones are left alone)."""
        wanted = list(specs)
        if not wanted:
            return
        existing = self.topic_names()
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=self.settings.replication_factor,
                config=s.config,
            )
            for s in wanted
            if s.name not in existing
        ]
        if not new:
            return
        futures = self.client.create_topics(new, operation_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                log.info("topic_created", topic=name)
            except KafkaException as exc:
                error = exc.args[0]
                if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise translate(exc, self.settings.bootstrap_servers, f"creating {name}") from exc

    def topic_config(self, name: str) -> dict[str, str]:
        """The effective configuration of topic ``name``."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            result = self.client.describe_configs([resource])[resource].result(timeout=10)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, f"describing {name}") from exc
        return {key: entry.value for key, entry in result.items()}

    def delete_topics(self, names: list[str]) -> None:
        if not names:
            return
        for name, future in self.client.delete_topics(names, operation_timeout=30).items():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                raise LogError(f"cannot delete topic {name}: {exc}") from exc
