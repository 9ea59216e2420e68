"""Burrow's lag evaluation over synthetic commit windows: every status, groups, window upkeep."""

from __future__ import annotations

from pathlib import Path

from hub.lag import (
    GroupInfo,
    Member,
    PartitionOffsets,
    Status,
    Window,
    WindowConfig,
    evaluate,
    group_status,
    observe,
    partition_status,
)
from hub.lag_history import LagHistory, decode_windows, encode_windows

CFG = WindowConfig(window=5, interval_ms=1000)
T0 = 1_700_000_000_000


def window(*commits: tuple[int, int], step_ms: int = 1000) -> Window:
    """A window of (offset, lag) commits, one every ``step_ms``, the last at T0."""
    start = T0 - step_ms * (len(commits) - 1)
    return [(offset, lag, start + i * step_ms) for i, (offset, lag) in enumerate(commits)]


def test_zero_current_lag_is_ok_whatever_the_window() -> None:
    """A consumer with no lag now is OK, even after a window that looked stalled."""
    entries = window((10, 5), (10, 5), (10, 5), (10, 5), (10, 5))

    assert partition_status(entries, lag=0, now_ms=T0 + 60_000, cfg=CFG) is Status.OK


def test_lag_zero_anywhere_in_window_means_recently_caught_up() -> None:
    """A window where the lag touched zero is OK even if commits stopped since (recently caught up)."""
    entries = window((10, 0), (12, 3), (12, 3), (12, 3), (12, 3))

    assert partition_status(entries, lag=3, now_ms=T0 + 60_000, cfg=CFG) is Status.OK


def test_advancing_consumer_with_shrinking_lag_is_ok() -> None:
    """Offsets advance and the lag goes down at least once: OK."""
    entries = window((10, 50), (20, 60), (30, 40), (40, 45), (50, 48))

    assert partition_status(entries, lag=48, now_ms=T0 + 500, cfg=CFG) is Status.OK


def test_lag_that_never_shrinks_while_offsets_advance_is_warn() -> None:
    """Offsets advance but the lag grows at every commit of a full window: WARN."""
    entries = window((10, 50), (20, 60), (30, 70), (40, 80), (50, 90))

    assert partition_status(entries, lag=90, now_ms=T0 + 500, cfg=CFG) is Status.WARN


def test_same_offset_committed_across_a_full_window_is_stall() -> None:
    """A consumer committing the same offset while lag > 0, for a whole window: STALL."""
    entries = window((10, 5), (10, 6), (10, 7), (10, 8), (10, 9))

    assert partition_status(entries, lag=9, now_ms=T0 + 500, cfg=CFG) is Status.STALL


def test_no_commit_for_longer_than_the_window_spans_is_stop() -> None:
    """The last commit is older than the window is long, with lag: STOP."""
    entries = window((10, 5), (20, 6), (30, 4), (40, 8), (50, 9), step_ms=2000)  # spans 8 s

    assert partition_status(entries, lag=9, now_ms=T0 + 8_001, cfg=CFG) is Status.STOP
    assert partition_status(entries, lag=9, now_ms=T0 + 7_999, cfg=CFG) is Status.OK


def test_young_window_is_not_called_stopped_before_a_full_window_of_intervals() -> None:
    """One observed commit is STOP only after window x interval of silence, not at once."""
    entries = window((10, 5))

    assert partition_status(entries, lag=5, now_ms=T0 + 4_000, cfg=CFG) is Status.OK
    assert partition_status(entries, lag=5, now_ms=T0 + 5_001, cfg=CFG) is Status.STOP


def test_offset_going_backwards_is_rewind() -> None:
    """A committed offset lower than the one before it: REWIND (worse than STOP)."""
    entries = window((50, 5), (60, 6), (20, 46), (30, 40), (40, 35))

    assert partition_status(entries, lag=35, now_ms=T0 + 60_000, cfg=CFG) is Status.REWIND


def test_incomplete_window_cannot_be_stall_or_warn() -> None:
    """Two equal commits say nothing of a trend yet: OK until the window is full."""
    entries = window((10, 5), (10, 6))

    assert partition_status(entries, lag=6, now_ms=T0 + 500, cfg=CFG) is Status.OK


def test_observe_appends_changes_merges_close_ones_and_keeps_window_size() -> None:
    """New offsets are appended, re-commits only for live members, close ones merged, oldest dropped."""
    entries: Window = []
    assert observe(entries, 10, 5, T0, active=False, cfg=CFG)
    assert not observe(entries, 10, 5, T0 + 2000, active=False, cfg=CFG)  # no member: no commit seen
    assert observe(entries, 10, 5, T0 + 2000, active=True, cfg=CFG)  # a live member re-committed
    assert observe(entries, 12, 3, T0 + 2500, active=True, cfg=CFG)  # within min-distance: replaces
    assert entries == [(10, 5, T0), (12, 3, T0 + 2000)]
    for i in range(10):
        observe(entries, 20 + i, 1, T0 + 4000 + i * 1000, active=False, cfg=CFG)

    assert len(entries) == CFG.window
    assert entries[-1][0] == 29 and entries[0][0] == 25


def test_group_takes_worst_partition_and_errors_show_as_err() -> None:
    """A live member re-committing with lag is STALL, a silent one STOP; the group is ERR, worst STALL."""
    cfg = WindowConfig(window=2, interval_ms=1000)
    windows = {"g": {("t", 0): window((10, 1), (11, 1)), ("t", 1): window((10, 5), (10, 5), step_ms=100)}}
    parts = [
        PartitionOffsets(
            "g", "t", 0, 11, 0, 12, oldest_unconsumed_ms=T0 - 2000, member=Member("/h", "c-1", "c")
        ),
        PartitionOffsets("g", "t", 1, 10, 0, 15, oldest_unconsumed_ms=T0 - 9000),
    ]

    report, changed = evaluate(parts, {"g": GroupInfo("g", "EMPTY")}, windows, T0 + 10_000, cfg)

    group = report.groups["g"]
    assert [p.status for p in group.partitions] == [Status.STALL, Status.STOP]
    assert group.worst is Status.STALL and group.status is Status.ERR
    assert group.total_lag == 6 and group.max_lag == 5
    assert group.max_lag_seconds == 19.0
    assert changed == {"g"}  # the live member's re-commit was observed
    assert len(windows["g"][("t", 0)]) == 2 and windows["g"][("t", 1)][-1][2] == T0  # silent one unchanged
    assert group_status(Status.WARN) is Status.WARN
    assert group_status(Status.REWIND) is Status.ERR


def test_only_transaction_markers_left_counts_as_no_lag() -> None:
    """Past the commit only markers remain (transactional topic): lag 0, OK, 0 seconds."""
    part = PartitionOffsets("g", "t", 0, 10, 0, 11, caught_up=True)

    report, _ = evaluate([part], {}, {}, T0, CFG)

    p = report.groups["g"].partitions[0]
    assert (p.lag, p.lag_seconds, p.status) == (0, 0.0, Status.OK)


def test_windows_survive_a_restart_through_the_history_file(tmp_path: Path) -> None:
    """Windows saved by one monitor are read back by the next, so STOP is still STOP after restart."""
    history = LagHistory(tmp_path / "lag.db")
    windows = {"g": {("t", 0): window((10, 5), (11, 6))}, "other": {("u", 3): window((1, 1))}}
    history.save(windows, ["g", "other"])
    history.close()

    reopened = LagHistory(tmp_path / "lag.db").load(["g"])

    assert reopened == {"g": windows["g"]}
    assert decode_windows(encode_windows(windows["other"])) == windows["other"]
    assert partition_status(reopened["g"][("t", 0)], 6, T0 + 60_000, CFG) is Status.STOP
