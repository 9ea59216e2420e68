"""``unsilo verify``: recompute the hash chain of topic-partitions and name the first broken link.

Each partition is read read_committed from its start (or ``--from``) to its end (or ``--to``)
and every record is checked against the one before: its ``unsilo.chain.seq`` follows on, and
its ``unsilo.chain.hash`` is SHA-256 of the previous hash, its key, its value and its seq (see
``hub.chain``). Signed checkpoints from ``_unsilo.chain`` whose HMAC verifies under
``audit.hmac_key`` are compared with the records of their seq, and vouch for the start of a
range that begins mid-log, so an auditor holding the key need not trust the hub's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hub.chain import (
    GENESIS_HEAD,
    Checkpoint,
    Head,
    MalformedLinkError,
    link_hash,
    read_checkpoint,
    read_link,
)
from hub.config import KafkaSettings
from hub.errors import ConfigError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.chain import WINDOW, last_link_before, read_window, scan_config, watermarks
from hub.kafka.consumer import read_to_end
from hub.kafka.errors import translate
from hub.kafka.topics import CHAIN_TOPIC

log = structlog.get_logger(__name__)

UNCHAINED = (
    "no chain headers: written before the chain was enabled (audit.chain) or by a producer outside Unsilo"
)
Bound = int | datetime
Progress = Callable[[str, int, int, int], None]  # topic, partition, records done, records in range


def parse_bound(text: str) -> Bound:
    """An offset (digits) or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.strip().isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{text!r} is neither an offset nor an ISO time",
            hint="give an offset like 1200 or a time like 2026-11-27T09:30:00Z",
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class BrokenLink:
    """The first record whose link does not hold, and why."""

    offset: int
    reason: str
    seq: int | None = None
    expected_seq: int | None = None
    expected_hash: str | None = None
    found_hash: str | None = None


@dataclass
class PartitionReport:
    """What verifying one topic-partition found."""

    topic: str
    partition: int
    records: int = 0  # chained records whose link was checked
    first_offset: int | None = None
    last_offset: int | None = None
    anchor: str = "genesis"
    chain_starts_at: int | None = None  # offset of seq 0 when records before it have no headers
    unchained: int = 0  # records before the chain starts, without headers
    checkpoints_verified: int = 0
    checkpoints_rejected: list[str] = field(default_factory=list)
    checkpoints_unchecked: int = 0  # no hmac key to check them with
    broken: BrokenLink | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.checkpoints_rejected

    @property
    def status(self) -> str:
        if self.broken is not None:
            return "broken"
        if self.checkpoints_rejected:
            return "bad checkpoint"
        if self.records == 0:
            return "unchained" if self.unchained else "empty"
        return "ok"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "status": self.status, "ok": self.ok}


class Verifier:
    """Verifies chained topics against the records themselves and the signed checkpoints."""

    def __init__(
        self, settings: KafkaSettings, hmac_key: bytes | None, *, progress: Progress | None = None
    ) -> None:
        self.settings = settings
        self.hmac_key = hmac_key
        self.progress = progress
        self.admin = KafkaAdmin(settings)
        self._consumer = Consumer(scan_config(settings))
        self._checkpoints: dict[tuple[str, int], list[tuple[Checkpoint, bool | None]]] | None = None
        self._bad_checkpoints: dict[str, list[str]] = {}

    def close(self) -> None:
        self._consumer.close()

    # -- what to read -------------------------------------------------------------------------

    def partitions(self, topic: str) -> list[int]:
        try:
            described = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, f"describing {topic}") from exc
        if described is None or described.error is not None:
            raise ConfigError(
                f"no topic named {topic} on the broker", hint="check the name (`kcat -L` lists the topics)"
            )
        return sorted(described.partitions)

    def checkpoints(self, topic: str, partition: int) -> list[tuple[Checkpoint, bool | None]]:
        """Every checkpoint of the partition still in ``_unsilo.chain``, with its HMAC verdict."""
        if self._checkpoints is None:
            self._checkpoints = {}
            if CHAIN_TOPIC in self.admin.topic_names():
                for message in read_to_end(self.settings, CHAIN_TOPIC):
                    self._add_checkpoint(message)
        return self._checkpoints.get((topic, partition), [])

    def _add_checkpoint(self, message: Message) -> None:
        assert self._checkpoints is not None
        value, key = message.value(), (message.key() or b"").decode("utf-8", "replace")
        if value is None:
            return
        try:
            checkpoint, valid = read_checkpoint(value, self.hmac_key)
        except (ValueError, KeyError, TypeError) as exc:
            self._bad_checkpoints.setdefault(key, []).append(
                f"offset {message.offset()}: not a checkpoint ({exc})"
            )
            return
        if f"{checkpoint.topic}/{checkpoint.partition}" != key:
            valid = False if self.hmac_key is not None else None
        self._checkpoints.setdefault((checkpoint.topic, checkpoint.partition), []).append((checkpoint, valid))

    # -- one partition ------------------------------------------------------------------------

    def verify(self, topic: str, partition: int, start: Bound | None, end: Bound | None) -> PartitionReport:
        report = PartitionReport(topic, partition)
        tp = TopicPartition(topic, partition)
        bootstrap = self.settings.bootstrap_servers
        what = f"verifying {topic}[{partition}]"
        low, high = watermarks(self._consumer, tp, 30.0, bootstrap, what)
        first = low if start is None else max(low, self._offset(tp, start, low, high, inclusive_end=False))
        last = high if end is None else min(high, self._offset(tp, end, low, high, inclusive_end=True))
        checkpoints = self.checkpoints(topic, partition)
        trusted: dict[int, list[Checkpoint]] = {}
        for checkpoint, valid in checkpoints:
            if valid is None:
                report.checkpoints_unchecked += 1
            elif not valid:
                report.checkpoints_rejected.append(
                    f"checkpoint seq {checkpoint.seq} ({checkpoint.written_at}, {checkpoint.writer}): "
                    "HMAC does not match (a forged checkpoint, or audit.hmac_key is not the writers' key)"
                )
            else:
                trusted.setdefault(checkpoint.seq, []).append(checkpoint)
        report.checkpoints_rejected += self._bad_checkpoints.get(f"{topic}/{partition}", [])
        if first >= last:
            return report
        previous = self._anchor(report, tp, first, low, trusted)
        if report.broken is not None:
            return report
        if report.first_offset is not None:  # the anchor moved the start back to a checkpoint
            first = report.first_offset
        head = self._walk(report, tp, first, last, previous, trusted)
        if report.broken is None and last == high and trusted:
            self._check_not_truncated(report, trusted, head)
        return report

    def _offset(self, tp: TopicPartition, bound: Bound, low: int, high: int, *, inclusive_end: bool) -> int:
        """The offset where a range starts (``bound`` included) or ends (exclusive)."""
        if isinstance(bound, int):
            return bound + 1 if inclusive_end else bound
        ms = int(bound.timestamp() * 1000) + (1 if inclusive_end else 0)
        try:
            found = self._consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, ms)], timeout=10)
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, "finding offsets by time") from exc
        offset = found[0].offset
        return high if offset < 0 else max(low, offset)

    def _anchor(
        self,
        report: PartitionReport,
        tp: TopicPartition,
        first: int,
        low: int,
        trusted: dict[int, list[Checkpoint]],
    ) -> Head | None:
        """The link before ``first`` (None: the chain has not started before it)."""
        what = f"verifying {tp.topic}[{tp.partition}]"
        before = last_link_before(self._consumer, tp, first, low, what, self.settings.bootstrap_servers)
        if before is None:
            return None
        offset, head = before
        signed = [seq for seq in trusted if seq <= head.seq]
        if not signed:
            report.anchor = (
                f"record at offset {offset} (seq {head.seq}), trusted: no signed checkpoint before it"
            )
            return head
        seq = max(signed)
        checkpoint = trusted[seq][0]
        at = offset if seq == head.seq else self._find_seq(tp, seq, low, offset)
        if at is None:
            report.anchor = (
                f"record at offset {offset} (seq {head.seq}), trusted: checkpoint seq {seq} not found"
            )
            return head
        record = self._link_at(tp, at)
        if record is None or record.hash.hex() != checkpoint.hash:
            report.broken = BrokenLink(
                at,
                f"the record of seq {seq} differs from its signed checkpoint ({checkpoint.written_at})",
                seq=seq,
                expected_hash=checkpoint.hash,
                found_hash=None if record is None else record.hash.hex(),
            )
            return None
        report.checkpoints_verified += 1
        report.anchor = f"signed checkpoint seq {seq} ({checkpoint.written_at}) at offset {at}"
        report.first_offset = at + 1
        return record

    def _link_at(self, tp: TopicPartition, offset: int) -> Head | None:
        found = self._first_link(tp, offset, offset + 1)
        return None if found is None or found[0] != offset else found[1]

    def _first_link(self, tp: TopicPartition, start: int, end: int) -> tuple[int, Head] | None:
        """The first chained record at an offset in [start, end)."""
        what = f"verifying {tp.topic}[{tp.partition}]"
        while start < end:
            stop = min(end, start + WINDOW)
            for message in read_window(
                self._consumer, tp, start, stop, what, self.settings.bootstrap_servers
            ):
                try:
                    link = read_link(message.headers())
                except MalformedLinkError:
                    continue
                if link is not None:
                    return message.offset() or 0, link
            start = stop
        return None

    def _find_seq(self, tp: TopicPartition, seq: int, low: int, high: int) -> int | None:
        """The offset of the chained record with ``seq``, at or before offset ``high`` (binary search)."""
        lo, hi = low, high
        while lo < hi:
            mid = (lo + hi) // 2
            found = self._first_link(tp, mid, high + 1)
            if found is not None and found[1].seq >= seq:
                hi = mid
            else:
                lo = mid + 1
        found = self._first_link(tp, lo, high + 1)
        return found[0] if found is not None and found[1].seq == seq else None

    def _walk(
        self,
        report: PartitionReport,
        tp: TopicPartition,
        first: int,
        last: int,
        previous: Head | None,
        trusted: dict[int, list[Checkpoint]],
    ) -> Head | None:
        """Check every record in [first, last) against the one before it; the last good link."""
        consumer = self._consumer
        consumer.assign([TopicPartition(tp.topic, tp.partition, first)])
        report.first_offset = first
        done, total, reported = 0, last - first, time.monotonic()
        try:
            while True:
                messages = consumer.consume(num_messages=1000, timeout=0.05)  # see read_window
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            return previous
                        raise translate(error, self.settings.bootstrap_servers, f"reading {tp.topic}")
                    offset = message.offset() or 0
                    if offset >= last:
                        return previous
                    previous = self._check(report, message, offset, previous, trusted)
                    done += 1
                    if report.broken is not None or offset + 1 >= last:
                        return previous
                if self.progress is not None and (time.monotonic() - reported > 0.5 or not messages):
                    self.progress(tp.topic, tp.partition, done, total)
                    reported = time.monotonic()
        except KafkaException as exc:
            raise translate(exc, self.settings.bootstrap_servers, f"reading {tp.topic}") from exc
        finally:
            consumer.unassign()
            if self.progress is not None:
                self.progress(tp.topic, tp.partition, done, total)

    def _check(
        self,
        report: PartitionReport,
        message: Message,
        offset: int,
        previous: Head | None,
        trusted: dict[int, list[Checkpoint]],
    ) -> Head | None:
        """Check one record; the new head (or sets ``report.broken``)."""
        expected = None if previous is None else previous.seq + 1
        try:
            link = read_link(message.headers())
        except MalformedLinkError as exc:
            report.broken = BrokenLink(offset, f"unreadable chain headers: {exc}", expected_seq=expected)
            return previous
        if link is None:
            if previous is None:  # the chain has not started yet
                report.unchained += 1
                return None
            report.broken = BrokenLink(offset, "missing chain headers", expected_seq=expected)
            return previous
        if previous is None:
            previous = GENESIS_HEAD
            if report.unchained:
                report.chain_starts_at = offset
        expected_seq = previous.seq + 1
        if link.seq != expected_seq:
            kind = "seq gap" if link.seq > expected_seq else "seq repeat"
            report.broken = BrokenLink(
                offset, f"{kind}: seq {link.seq} after seq {previous.seq}", link.seq, expected_seq
            )
            return previous
        computed = link_hash(previous.hash, message.key(), message.value(), link.seq)
        if computed != link.hash:
            report.broken = BrokenLink(
                offset,
                "hash mismatch: the key, the value or an earlier record was changed",
                link.seq,
                expected_seq,
                computed.hex(),
                link.hash.hex(),
            )
            return previous
        for checkpoint in trusted.get(link.seq, []):
            if checkpoint.hash != link.hash.hex():
                report.broken = BrokenLink(
                    offset,
                    f"differs from the signed checkpoint of seq {link.seq} ({checkpoint.written_at}): "
                    "the chain was rewritten from here or before",
                    link.seq,
                    expected_seq,
                    checkpoint.hash,
                    link.hash.hex(),
                )
                return previous
            report.checkpoints_verified += 1
        report.records += 1
        report.last_offset = offset
        return link

    def _check_not_truncated(
        self, report: PartitionReport, trusted: dict[int, list[Checkpoint]], head: Head | None
    ) -> None:
        """A signed checkpoint past the last record means records were removed from the end."""
        last_seq = max(trusted)
        end_seq = -1 if head is None else head.seq
        if last_seq > end_seq:
            checkpoint = trusted[last_seq][0]
            report.broken = BrokenLink(
                report.last_offset if report.last_offset is not None else -1,
                f"the log ends at seq {end_seq} but a signed checkpoint ({checkpoint.written_at}) "
                f"has seq {last_seq}: records were removed",
                expected_seq=last_seq,
                expected_hash=checkpoint.hash,
            )
