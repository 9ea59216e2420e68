"""Consumer lag, evaluated Burrow's way: a sliding window of commits, no thresholds.

Pure code, no I/O: :mod:`hub.lag_source` reads offsets from Kafka, :mod:`hub.lag_history`
keeps the windows, :mod:`hub.lag_monitor` ties them together.

Each partition of each group keeps a window of the last ``window`` observed commits,
``(offset, lag, ts_ms)``. A commit is observed when the committed offset changed since the
last one, or, while a live member owns the partition, as a re-commit of the same offset;
observations closer than ``interval`` are merged into the previous one (Burrow's
min-distance). The status of a partition, worst first (Burrow's rules):

- OK when the current lag is zero, or the lag was zero anywhere in the window (the
  consumer was recently caught up);
- REWIND when a committed offset went backwards;
- STOP when no commit was seen for longer than the window spans (at least ``window``
  intervals, so a young window is not called stopped before it could have filled);
- STALL when a full window holds the same offset (committed again and again, lag > 0);
- WARN when, over a full window, offsets advance but the lag never shrinks;
- OK otherwise.

A group takes its worst partition; STOP, STALL and REWIND show as ERR for the group.
STALL and WARN need a complete window, as one or two samples say nothing of a trend.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Status(StrEnum):
    """Partition and group statuses (Burrow's names)."""

    OK = "OK"
    WARN = "WARN"
    ERR = "ERR"
    STOP = "STOP"
    STALL = "STALL"
    REWIND = "REWIND"


SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.ERR: 2, Status.STOP: 3, Status.STALL: 4, Status.REWIND: 5}

Entry = tuple[int, int, int]  # (committed offset, lag at that commit, observed at ms)
PartitionKey = tuple[str, int]  # (topic, partition)
Window = list[Entry]  # oldest first; marshal stores and loads it as is
Windows = dict[str, dict[PartitionKey, Window]]  # group -> partition -> window


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """How many commits a window keeps and the minimum distance between two of them."""

    window: int = 10
    interval_ms: int = 1000

    @property
    def min_span_ms(self) -> int:
        """The shortest silence that may be called STOP: a full window of intervals."""
        return self.window * self.interval_ms


class Member(NamedTuple):
    """The group member a partition is assigned to (kafka-lag-exporter's labels).

    A named tuple: it is part of the metrics' label-cache key, hashed 100,000s of times per scrape.
    """

    host: str = ""
    consumer_id: str = ""
    client_id: str = ""


@dataclass(slots=True)
class PartitionOffsets:
    """What was read from Kafka for one partition of one group."""

    group: str
    topic: str
    partition: int
    committed: int
    log_start: int
    log_end: int
    oldest_unconsumed_ms: int | None = None  # Kafka timestamp of the first record not consumed
    caught_up: bool = False  # only transaction markers (or aborted records) lie past `committed`
    member: Member | None = None  # None: no live member owns the partition


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group as the broker describes it."""

    group: str
    state: str = "UNKNOWN"
    is_simple: bool = False
    members: int = 0


@dataclass(slots=True)
class PartitionLag:
    """The lag figures and status of one partition of one group."""

    topic: str
    partition: int
    committed: int
    log_start: int
    log_end: int
    lag: int
    lag_seconds: float | None
    status: Status
    complete: float
    member: Member | None

    def to_dict(self) -> dict[str, Any]:
        member = self.member or Member()
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed_offset": self.committed,
            "log_start_offset": self.log_start,
            "log_end_offset": self.log_end,
            "lag": self.lag,
            "lag_seconds": self.lag_seconds,
            "status": self.status.value,
            "complete": round(self.complete, 3),
            "member_host": member.host,
            "consumer_id": member.consumer_id,
            "client_id": member.client_id,
        }


@dataclass(slots=True)
class GroupLag:
    """A group's partitions and its overall status (its worst partition)."""

    group: str
    state: str = "UNKNOWN"
    is_simple: bool = False
    status: Status = Status.OK
    worst: Status = Status.OK
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def max_lag(self) -> int:
        return max((p.lag for p in self.partitions), default=0)

    @property
    def max_lag_seconds(self) -> float:
        return max((p.lag_seconds or 0.0 for p in self.partitions), default=0.0)

    @property
    def complete(self) -> float:
        if not self.partitions:
            return 1.0
        return sum(p.complete for p in self.partitions) / len(self.partitions)

    def summary(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "is_simple_consumer": self.is_simple,
            "status": self.status.value,
            "worst": self.worst.value,
            "partitions": len(self.partitions),
            "total_lag": self.total_lag,
            "max_lag": self.max_lag,
            "max_lag_seconds": round(self.max_lag_seconds, 3),
            "complete": round(self.complete, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "partitions": [p.to_dict() for p in self.partitions]}


@dataclass(slots=True)
class LagReport:
    """Every group's lag at one instant, plus each partition's earliest and latest offsets."""

    taken_ms: int
    groups: dict[str, GroupLag] = field(default_factory=dict)
    partition_ends: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    def to_dict(self, groups: Iterable[str] | None = None, *, partitions: bool = True) -> dict[str, Any]:
        """``partitions=False``: each group's summary only (what the groups table shows)."""
        names = list(groups) if groups is not None else sorted(self.groups)
        if not partitions:
            return {"taken_ms": self.taken_ms, "groups": [self.groups[n].summary() for n in names]}
        return {"taken_ms": self.taken_ms, "groups": [self.groups[n].to_dict() for n in names]}


def effective_lag(offsets: PartitionOffsets) -> int:
    """Records still to consume; 0 when only transaction markers remain past the commit."""
    if offsets.caught_up:
        return 0
    return max(0, offsets.log_end - offsets.committed)


def observe(entries: Window, committed: int, lag: int, now_ms: int, active: bool, cfg: WindowConfig) -> bool:
    """Add what was seen now to a partition's window (in place); True when it changed."""
    if not entries:
        entries.append((committed, lag, now_ms))
        return True
    last_offset, _, last_ts = entries[-1]
    close = now_ms - last_ts < cfg.interval_ms
    if committed == last_offset and (close or not active):
        return False  # no new commit (or a re-commit too soon to count)
    if close:
        entries[-1] = (committed, lag, last_ts)  # min-distance: the newer commit replaces the last
        return True
    entries.append((committed, lag, now_ms))
    if len(entries) > cfg.window:
        del entries[: len(entries) - cfg.window]
    return True


def partition_status(entries: Window, lag: int, now_ms: int, cfg: WindowConfig) -> Status:
    """Burrow's rules over one partition's window (see the module docstring); one pass."""
    if lag <= 0 or not entries:
        return Status.OK
    previous_offset, previous_lag, first_ts = entries[0]
    equal, rewound, shrank = True, False, False
    for offset, entry_lag, _ in entries:
        if entry_lag == 0:
            return Status.OK  # caught up within the window
        if offset != previous_offset:
            equal = False
            if offset < previous_offset:
                rewound = True
        if entry_lag < previous_lag:
            shrank = True
        previous_offset, previous_lag = offset, entry_lag
    if rewound:
        return Status.REWIND
    last_ts = entries[-1][2]
    if now_ms - last_ts > max(last_ts - first_ts, cfg.min_span_ms):
        return Status.STOP
    if len(entries) < cfg.window:
        return Status.OK
    if equal:
        return Status.STALL
    return Status.OK if shrank else Status.WARN


def group_status(worst: Status) -> Status:
    """The group-level status: STOP, STALL and REWIND show as ERR."""
    return Status.ERR if SEVERITY[worst] >= SEVERITY[Status.ERR] else worst


def evaluate(
    partitions: Iterable[PartitionOffsets],
    groups: Mapping[str, GroupInfo],
    windows: Windows,
    now_ms: int,
    cfg: WindowConfig,
) -> tuple[LagReport, set[str]]:
    """Observe ``partitions`` into ``windows`` (in place) and evaluate every group.

    Returns the report and the names of the groups whose windows changed (to persist).
    This runs once per sample over every partition of every group, so it is written flat.
    """
    collecting = gc.isenabled()
    gc.disable()  # 100,000s of short-lived objects and no cycles: collector passes only cost time here
    try:
        return _evaluate(partitions, groups, windows, now_ms, cfg)
    finally:
        if collecting:
            gc.enable()


def _evaluate(
    partitions: Iterable[PartitionOffsets],
    groups: Mapping[str, GroupInfo],
    windows: Windows,
    now_ms: int,
    cfg: WindowConfig,
) -> tuple[LagReport, set[str]]:
    report = LagReport(taken_ms=now_ms)
    changed: set[str] = set()
    results = report.groups
    ends = report.partition_ends
    for info in groups.values():
        results[info.group] = GroupLag(info.group, info.state, info.is_simple)
    window = cfg.window
    ok, severity = Status.OK, SEVERITY
    group_name, group, group_windows = "", GroupLag(""), {}  # the group of the previous partition
    for p in partitions:
        if p.group != group_name:
            group_name = p.group
            group = results.get(group_name) or results.setdefault(group_name, GroupLag(group_name))
            group_windows = windows.setdefault(group_name, {})
        key = (p.topic, p.partition)
        lag = 0 if p.caught_up else max(0, p.log_end - p.committed)
        entries = group_windows.get(key)
        if entries is None:
            entries = group_windows[key] = []
        if observe(entries, p.committed, lag, now_ms, p.member is not None, cfg):
            changed.add(group_name)
        status = partition_status(entries, lag, now_ms, cfg) if lag else ok
        seconds: float | None = 0.0
        if lag:
            ts = p.oldest_unconsumed_ms
            seconds = max(0.0, (now_ms - ts) / 1000.0) if ts is not None else None
            if severity[status] > severity[group.worst]:
                group.worst = status
        complete = len(entries) / window
        group.partitions.append(
            PartitionLag(
                p.topic, p.partition, p.committed, p.log_start, p.log_end, lag, seconds, status,
                complete if complete < 1.0 else 1.0, p.member,
            )
        )  # fmt: skip
        ends[key] = (p.log_start, p.log_end)
    for result in results.values():
        result.status = group_status(result.worst)
        result.partitions.sort(key=_partition_order)
    return report, changed


def _partition_order(item: PartitionLag) -> tuple[str, int]:
    return item.topic, item.partition
