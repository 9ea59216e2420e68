"""Reading consumer offsets from Kafka: groups, commits, watermarks, and record timestamps.

Groups come from the AdminClient (``list_consumer_groups``, ``describe_consumer_groups``,
``list_consumer_group_offsets``), log start and end offsets from ``list_offsets``. Lag in
seconds is the age of the oldest unconsumed record, read from the log: one read_committed
consumer, assigned to every lagging partition at its committed offset, reads one record
each (seeking forward when several groups wait at different offsets of one partition).
Found timestamps are cached (the log is immutable), so a steady monitor reads little.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from hub.config import KafkaSettings
from hub.kafka.errors import translate, unavailable
from hub.lag import GroupInfo, Member, PartitionOffsets

TP = tuple[str, int]
HeadKey = tuple[str, int, int]  # (topic, partition, offset)
SEEK_GAP = 500  # read through gaps up to this many records rather than seek


def quiet_config(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """librdkafka settings without its connection chatter (errors surface as exceptions).

    librdkafka's own log level is turned down rather than its lines sent to a Python logger:
    an AdminClient calls a Python logger from its background thread, and a CI run crashed
    (SIGSEGV in the lag sampler's list_offsets) with one attached.
    """
    return {**config, **extra, "log_level": 0}


class LagSource:
    """Reads what the lag evaluation needs from one Kafka cluster."""

    def __init__(self, settings: KafkaSettings, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.admin = AdminClient(quiet_config(settings.client_config()))
        self._heads: dict[HeadKey, int] = {}

    # -- groups and offsets
    def groups(self) -> dict[str, GroupInfo]:
        """Every consumer group the cluster knows, by id."""
        listed = self._result(
            self.admin.list_consumer_groups(request_timeout=self.timeout_s), "listing groups"
        )
        return {
            g.group_id: GroupInfo(g.group_id, _state(g.state), bool(g.is_simple_consumer_group))
            for g in listed.valid
        }

    def describe(self, names: list[str]) -> tuple[dict[str, GroupInfo], dict[tuple[str, str, int], Member]]:
        """Group states and which member owns which partition."""
        return self._described(self._describe_requests(names))

    def _describe_requests(self, names: list[str]) -> dict[str, Future[Any]]:
        if not names:
            return {}
        return dict(self.admin.describe_consumer_groups(names, request_timeout=self.timeout_s))

    def _described(
        self, futures: dict[str, Future[Any]]
    ) -> tuple[dict[str, GroupInfo], dict[tuple[str, str, int], Member]]:
        infos: dict[str, GroupInfo] = {}
        owners: dict[tuple[str, str, int], Member] = {}
        for name, future in futures.items():
            try:
                found = future.result(timeout=self.timeout_s)
            except KafkaException as exc:
                if _unavailable_error(exc):
                    raise translate(exc, self.settings.bootstrap_servers, f"describing {name}") from exc
                continue  # a group deleted meanwhile
            infos[name] = GroupInfo(
                name, _state(found.state), bool(found.is_simple_consumer_group), len(found.members)
            )
            for member in found.members:
                assignment = member.assignment.topic_partitions if member.assignment else []
                who = Member(member.host or "", member.member_id or "", member.client_id or "")
                for tp in assignment:
                    owners[(name, tp.topic, tp.partition)] = who
        return infos, owners

    def committed(self, names: list[str]) -> dict[str, dict[TP, int]]:
        """Each group's committed offsets (partitions without a commit left out)."""
        return self._committed(self._commit_requests(names))

    def _commit_requests(self, names: list[str]) -> dict[str, Future[Any]]:
        futures: dict[str, Future[Any]] = {}
        for name in names:  # the API takes one group per request; they all fly at once
            request = [ConsumerGroupTopicPartitions(name)]
            futures.update(self.admin.list_consumer_group_offsets(request, request_timeout=self.timeout_s))
        return futures

    def _committed(self, futures: dict[str, Future[Any]]) -> dict[str, dict[TP, int]]:
        result: dict[str, dict[TP, int]] = {}
        for name, future in futures.items():
            try:
                found = future.result(timeout=self.timeout_s)
            except KafkaException as exc:
                if _unavailable_error(exc):
                    raise translate(exc, self.settings.bootstrap_servers, f"offsets of {name}") from exc
                continue
            result[name] = {
                (tp.topic, tp.partition): offset
                for tp in found.topic_partitions or []
                if (offset := tp.offset) >= 0 and tp.error is None  # OFFSET_INVALID (-1001): no commit
            }
        return result

    def watermarks(self, partitions: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        """Log start and end offsets of ``partitions`` (missing topics left out)."""
        wanted = [TopicPartition(t, p) for t, p in set(partitions)]
        if not wanted:
            return {}
        earliest = self._offsets_request(wanted, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        latest = self._offsets_request(wanted, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts, ends = self._offsets(earliest), self._offsets(latest)
        return {tp: (starts[tp], ends[tp]) for tp in ends if tp in starts}

    def _offsets_request(
        self, partitions: list[TopicPartition], spec: Any
    ) -> dict[TopicPartition, Future[Any]]:
        return dict(
            self.admin.list_offsets(
                dict.fromkeys(partitions, spec),
                isolation_level=IsolationLevel.READ_UNCOMMITTED,
                request_timeout=self.timeout_s,
            )
        )

    def _offsets(self, futures: dict[TopicPartition, Future[Any]]) -> dict[TP, int]:
        found: dict[TP, int] = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = future.result(timeout=self.timeout_s).offset
            except KafkaException as exc:
                if _unavailable_error(exc):
                    raise translate(exc, self.settings.bootstrap_servers, "listing offsets") from exc
        return found

    # -- the oldest unconsumed record
    def heads(self, wanted: Mapping[TP, Iterable[int]], timeout_s: float = 10.0) -> dict[HeadKey, int | None]:
        """Timestamp (ms) of the first committed record at or after each wanted offset.

        None: nothing but transaction markers or aborted records lie past the offset (the
        reader is caught up). Offsets not read within ``timeout_s`` are left out.
        """
        results: dict[HeadKey, int | None] = {}
        cache: dict[HeadKey, int] = {}
        todo: dict[TP, deque[int]] = {}
        for tp, offsets in wanted.items():
            queue: list[int] = []
            for offset in sorted(set(offsets)):
                known = self._heads.get((tp[0], tp[1], offset))
                if known is None:
                    queue.append(offset)
                else:
                    results[(tp[0], tp[1], offset)] = cache[(tp[0], tp[1], offset)] = known
            if queue:
                todo[tp] = deque(queue)
        if todo:
            self._read_heads(todo, results, cache, timeout_s)
        self._heads = cache  # keep what this round used: the cache follows the groups
        return results

    def _read_heads(
        self,
        todo: dict[TP, deque[int]],
        results: dict[HeadKey, int | None],
        cache: dict[HeadKey, int],
        timeout_s: float,
    ) -> None:
        consumer = Consumer(
            quiet_config(
                self.settings.client_config(),
                **{
                    "group.id": "unsilo-lag-reader",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 20,
                    "max.partition.fetch.bytes": 65536,
                },
            )
        )
        try:
            consumer.assign([TopicPartition(t, p, queue[0]) for (t, p), queue in todo.items()])
            deadline = time.monotonic() + timeout_s
            while todo and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=2000, timeout=0.1):
                    tp = (message.topic() or "", message.partition() or 0)
                    queue = todo.get(tp)
                    if queue is None:
                        continue
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            continue
                        for offset in queue:
                            results[(tp[0], tp[1], offset)] = None
                        queue.clear()
                    else:
                        self._take(message, tp, queue, results, cache, consumer)
                    if not queue:
                        del todo[tp]
                        consumer.pause([TopicPartition(tp[0], tp[1])])
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "reading record timestamps") from exc
        finally:
            consumer.close()

    @staticmethod
    def _take(
        message: Any,
        tp: TP,
        queue: deque[int],
        results: dict[HeadKey, int | None],
        cache: dict[HeadKey, int],
        consumer: Consumer,
    ) -> None:
        offset = message.offset() or 0
        if offset < queue[0]:
            return  # fetched before a seek
        stamp = int(message.timestamp()[1])
        while queue and queue[0] <= offset:
            key = (tp[0], tp[1], queue.popleft())
            results[key] = cache[key] = stamp
        if queue and queue[0] > offset + SEEK_GAP:
            consumer.seek(TopicPartition(tp[0], tp[1], queue[0]))

    # -- everything at once
    def read(self, only: list[str] | None = None) -> tuple[list[PartitionOffsets], dict[str, GroupInfo]]:
        """Offsets of every partition of ``only`` (default: every group) and the groups' infos.

        Groups that do not exist are simply absent from the returned infos.
        """
        listed = self.groups()
        names = [g for g in only if g in listed] if only is not None else sorted(listed)
        live = [g for g in names if listed[g].state not in ("EMPTY", "DEAD")]  # only these have members
        described, requested = self._describe_requests(live), self._commit_requests(names)
        infos, owners = self._described(described)
        for name in names:
            infos.setdefault(name, listed[name])
        commits = self._committed(requested)
        ends = self.watermarks(tp for offsets in commits.values() for tp in offsets)
        wanted: dict[TP, list[int]] = {}
        for offsets in commits.values():
            for tp, committed in offsets.items():
                bounds = ends.get(tp)
                if bounds is not None and bounds[1] > committed:
                    wanted.setdefault(tp, []).append(committed)
        heads = self.heads(wanted, timeout_s=self.timeout_s)
        partitions: list[PartitionOffsets] = []
        append, get_head, get_owner = partitions.append, heads.get, owners.get
        for group, offsets in commits.items():
            for tp, committed in offsets.items():
                bounds = ends.get(tp)
                if bounds is None:
                    continue  # the topic is gone
                topic, partition = tp
                head_key = (topic, partition, committed)
                head = get_head(head_key)
                caught_up = head is None and head_key in heads
                member = get_owner((group, topic, partition)) if owners else None
                append(
                    PartitionOffsets(
                        group, topic, partition, committed, bounds[0], bounds[1], head, caught_up, member
                    )
                )
        return partitions, infos

    def ensure_reachable(self) -> None:
        """LogUnavailableError naming the bootstrap address when no broker answers."""
        try:
            metadata = self.admin.list_topics(timeout=min(self.timeout_s, 5.0))
        except KafkaException as exc:
            raise unavailable(self.settings.bootstrap_servers, "metadata request timed out") from exc
        if not metadata.brokers:
            raise unavailable(self.settings.bootstrap_servers)

    def _result(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self.timeout_s + 1)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, what) from exc
        except TimeoutError as exc:
            raise unavailable(self.settings.bootstrap_servers, f"{what} timed out") from exc


def _state(state: Any) -> str:
    return str(getattr(state, "name", state) or "UNKNOWN")


def _unavailable_error(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in (
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
    )
