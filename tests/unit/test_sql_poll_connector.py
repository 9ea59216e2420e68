"""Query-based capture through SQLAlchemy, against SQLite files in tmp_path (no Kafka)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Batch, Change
from connectors.sql_poll import SqlPollConnector
from hub.config import SourceSettings, TableSettings
from hub.errors import ConfigError, SourceUnavailableError
from tests.connector_contract import changes_of
from tests.support import run_sql

BASE = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
BATCH = 2
HOSTILE = 'odd "orders"; drop'


def stamp(seconds: float) -> str:
    """The SQLite text of BASE + ``seconds``, as CURRENT_TIMESTAMP would write it."""
    return (BASE + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


class Clock:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self, seconds: float = 3600) -> None:
        self.seconds = seconds

    def now(self) -> dt.datetime:
        return BASE + dt.timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds


class Harness:
    """An ``orders`` table in a SQLite file and the connectors opened over it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "shop.db"
        self.clock = Clock()
        self.opened: list[SqlPollConnector] = []
        run_sql(
            self.db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, updated TIMESTAMP)"
        )

    def insert(self, row_id: int, item: str, updated: float | None = 0) -> None:
        run_sql(
            self.db,
            "INSERT INTO orders VALUES (?, ?, ?)",
            (row_id, item, None if updated is None else stamp(updated)),
        )

    def update(self, row_id: int, item: str, updated: float) -> None:
        run_sql(
            self.db, "UPDATE orders SET item = ?, updated = ? WHERE id = ?", (item, stamp(updated), row_id)
        )

    def delete(self, row_id: int) -> None:
        run_sql(self.db, "DELETE FROM orders WHERE id = ?", (row_id,))

    def settings(self, tables: list[str | TableSettings] | None = None, **extra: Any) -> SourceSettings:
        url = extra.pop("url", f"sqlite:///{self.db}")
        values: dict[str, Any] = {
            "poll_mode": "timestamp+incrementing",
            "timestamp_column": "updated",
            "lag_s": 5.0,
            **extra,
        }
        return SourceSettings(
            name="shop",
            system="sales",
            kind="sql_poll",
            url=url,
            tables=tables or ["orders"],
            batch_size=BATCH,
            state_dir=self.tmp_path / "state",
            **values,
        )

    def connector(self, tables: list[str | TableSettings] | None = None, **extra: Any) -> SqlPollConnector:
        connector = SqlPollConnector(
            self.settings(tables, **extra), clock=self.clock.now, monotonic=self.clock.monotonic
        )
        self.opened.append(connector)
        return connector


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    for connector in harness.opened:
        connector.close()


def drain(connector: SqlPollConnector, max_changes: int = BATCH, commit: bool = True) -> list[Batch]:
    """Every batch until poll has nothing new, each committed as the runner would."""
    batches: list[Batch] = []
    for _ in range(100):
        batch = connector.poll(max_changes)
        if batch is None:
            return batches
        if commit:
            connector.committed(batch.position)
        batches.append(batch)
    raise AssertionError("poll still returned batches after 100 calls")


def ops(changes: list[Change]) -> list[tuple[str, int, str | None]]:
    """(op, id, item) of each change."""
    result: list[tuple[str, int, str | None]] = []
    for change in changes:
        row = change.after if change.after is not None else change.before
        assert row is not None
        result.append((change.op, row["id"], row.get("item")))
    return result


# -- modes -------------------------------------------------------------------------


def test_bulk_publishes_the_whole_table_every_pass(shop: Harness) -> None:
    """Bulk mode reads every row as 'r' in key-order chunks, and again once bulk_interval_s has passed."""
    for row_id in (1, 2, 3):
        shop.insert(row_id, f"item {row_id}")
    connector = shop.connector(poll_mode="bulk", bulk_interval_s=60)
    connector.open(None)

    first = drain(connector)
    shop.update(2, "changed", 1)
    shop.clock.seconds += 30
    too_early = connector.poll(BATCH)
    shop.clock.seconds += 31
    second = changes_of(drain(connector))

    assert [len(b.changes) for b in first] == [2, 1]
    assert ops(changes_of(first)) == [("r", 1, "item 1"), ("r", 2, "item 2"), ("r", 3, "item 3")]
    assert all(c.snapshot and c.before is None for c in changes_of(first))
    assert too_early is None
    assert ops(second) == [("r", 1, "item 1"), ("r", 2, "changed"), ("r", 3, "item 3")]


def test_incrementing_publishes_new_ids_as_creates(shop: Harness) -> None:
    """Incrementing mode publishes rows above the last id as 'c', and nothing for an unchanged table."""
    shop.insert(1, "one")
    shop.insert(2, "two")
    connector = shop.connector(poll_mode="incrementing")
    connector.open(None)
    initial = changes_of(drain(connector))

    shop.insert(3, "three")
    later = changes_of(drain(connector))

    assert ops(initial) == [("c", 1, "one"), ("c", 2, "two")]
    assert ops(later) == [("c", 3, "three")]
    assert [c.position for c in later] == ["[3]"]
    assert connector.poll(BATCH) is None


def test_timestamp_mode_publishes_new_and_modified_rows(shop: Harness) -> None:
    """Timestamp mode publishes a row again when its timestamp moves: 'c' the first time, 'u' after."""
    shop.insert(1, "one", 0)
    shop.insert(2, "two", 1)
    connector = shop.connector(poll_mode="timestamp")
    connector.open(None)
    initial = changes_of(drain(connector))

    shop.update(1, "one again", 10)
    shop.insert(3, "three", 11)
    later = changes_of(drain(connector))

    assert ops(initial) == [("c", 1, "one"), ("c", 2, "two")]
    assert ops(later) == [("u", 1, "one again"), ("c", 3, "three")]
    assert later[0].before is None
    assert later[0].ts_ms == int((BASE + dt.timedelta(seconds=10)).timestamp() * 1000)


def test_timestamp_mode_never_cuts_a_batch_inside_a_tie(shop: Harness) -> None:
    """Rows sharing a timestamp come together: a trailing tie waits a batch, a batch-wide one comes whole."""
    shop.insert(1, "a", 0)
    for row_id in (2, 3, 4):
        shop.insert(row_id, f"tie {row_id}", 1)
    connector = shop.connector(poll_mode="timestamp")
    connector.open(None)

    batches = drain(connector)

    assert [ops(b.changes) for b in batches] == [
        [("c", 1, "a")],
        [("c", 2, "tie 2"), ("c", 3, "tie 3"), ("c", 4, "tie 4")],
    ]


def test_timestamp_incrementing_orders_ties_by_id_across_batches(shop: Harness) -> None:
    """Five rows on one timestamp, read two at a time by (ts, id), each arrive exactly once in id order."""
    for row_id in (5, 1, 4, 2, 3):
        shop.insert(row_id, f"tie {row_id}", 7)
    connector = shop.connector()
    connector.open(None)

    batches = drain(connector)

    assert [[c.after["id"] for c in b.changes if c.after] for b in batches] == [[1, 2], [3, 4], [5]]
    assert batches[0].position["tables"]["orders"]["cursor"] == [stamp(7), 2]


def test_first_catch_up_is_reported_as_snapshot_progress(shop: Harness) -> None:
    """On first start a table's catch-up carries snapshot progress until a poll returns short, then none."""
    for row_id in (1, 2, 3):
        shop.insert(row_id, f"item {row_id}", row_id)
    connector = shop.connector()
    connector.open(None)
    catch_up = drain(connector)

    shop.insert(4, "item 4", 4)
    later = drain(connector)

    assert [b.progress for b in catch_up] == [
        {"table": "orders", "rows": 2, "done": False},
        {"table": "orders", "rows": 1, "done": True},
    ]
    assert catch_up[0].position["snapshot"] == {"pending": ["orders"]}
    assert catch_up[-1].position["snapshot"] == {"pending": []}
    assert [b.progress for b in later] == [{}]


# -- the JDBC source's losses --------------------------------------------------------


def late_commit(shop: Harness, lag_s: float) -> list[tuple[str, int, str | None]]:
    """A transaction stamps its row at T+4 but commits after a row stamped T+8 was polled."""
    shop.clock.seconds = 10  # now = T+10
    connector = shop.connector(lag_s=lag_s)
    connector.open(None)
    shop.insert(2, "committed first", 8)
    first = changes_of(drain(connector))
    shop.insert(1, "committed late", 4)  # older timestamp, committed after the poll
    shop.clock.seconds = 20
    return ops(first + changes_of(drain(connector)))


def test_plain_jdbc_polling_loses_a_row_committed_late(shop: Harness) -> None:
    """Without a lag window (lag_s 0, as the JDBC source polls) the late row is behind the cursor: lost."""
    published = late_commit(shop, lag_s=0)

    assert published == [("c", 2, "committed first")]


def test_lag_window_keeps_a_row_committed_late(shop: Harness) -> None:
    """With lag_s 5 the row stamped T+8 waits until T+13, so the late row (T+4) is published too, first."""
    published = late_commit(shop, lag_s=5)

    assert published == [("c", 1, "committed late"), ("c", 2, "committed first")]


def test_incrementing_waits_for_a_gap_in_the_ids(shop: Harness) -> None:
    """An id committed after a higher one is published; a gap nobody fills is passed once lag_s went by."""
    shop.insert(1, "one")
    connector = shop.connector(poll_mode="incrementing", lag_s=5)
    connector.open(None)
    drain(connector)

    shop.insert(2, "two")
    shop.insert(4, "four")  # 3 is still in a slow transaction
    before_gap = changes_of(drain(connector))
    shop.insert(3, "three")
    filled = changes_of(drain(connector))
    shop.insert(6, "six")  # 5 was rolled back: it never comes
    waiting = changes_of(drain(connector))
    shop.clock.seconds += 6
    passed = changes_of(drain(connector))

    assert ops(before_gap) == [("c", 2, "two")]
    assert ops(filled) == [("c", 3, "three"), ("c", 4, "four")]
    assert waiting == []
    assert ops(passed) == [("c", 6, "six")]


def test_rows_without_a_timestamp_are_not_captured_by_timestamp_modes(shop: Harness) -> None:
    """A NULL timestamp keeps a row out of the timestamp modes (as in Kafka Connect) until it is stamped."""
    shop.insert(1, "unstamped", None)
    connector = shop.connector()
    connector.open(None)
    unstamped = changes_of(drain(connector))

    shop.update(1, "stamped", 3)
    stamped = changes_of(drain(connector))

    assert unstamped == []
    assert ops(stamped) == [("c", 1, "stamped")]


# -- creates, updates and deletes ----------------------------------------------------


def test_update_of_a_row_in_an_uncommitted_batch_is_still_an_update(shop: Harness) -> None:
    """A key handed out in a batch not yet committed to Kafka counts as known: its next version is 'u'."""
    shop.insert(1, "one", 0)
    connector = shop.connector()
    connector.open(None)
    first = connector.poll(BATCH)
    shop.update(1, "one again", 3)

    second = connector.poll(BATCH)

    assert first is not None and second is not None
    assert ops(first.changes + second.changes) == [("c", 1, "one"), ("u", 1, "one again")]


def test_delete_detection_emits_key_only_deletes(shop: Harness) -> None:
    """A published row that disappears comes out as 'd' with only its key as before; back again, it is 'c'."""
    for row_id in (1, 2, 3):
        shop.insert(row_id, f"item {row_id}", row_id)
    connector = shop.connector(detect_deletes=True, delete_check_interval_s=60)
    connector.open(None)
    drain(connector)

    shop.delete(2)
    not_due = changes_of(drain(connector))
    shop.clock.seconds += 61
    deleted = changes_of(drain(connector))
    shop.insert(2, "back", 20)
    shop.clock.seconds += 30
    back = changes_of(drain(connector))

    assert not_due == []
    assert [(c.op, c.before, c.after) for c in deleted] == [("d", {"id": 2}, None)]
    assert ops(back) == [("c", 2, "back")]
    schema = connector.tables()[0]
    assert schema.row(deleted[0].before) == {"id": 2, "item": None, "updated": None}


def test_deletes_made_while_stopped_are_found_at_restart(shop: Harness) -> None:
    """Rows deleted while the connector was stopped are reported by the first check after it reopens."""
    for row_id in range(1, 6):
        shop.insert(row_id, f"item {row_id}", row_id)
    connector = shop.connector(detect_deletes=True)
    connector.open(None)
    resume_at = drain(connector)[-1].position
    connector.close()
    shop.delete(1)
    shop.delete(4)

    restarted = shop.connector(detect_deletes=True)
    restarted.open(resume_at)
    deleted = changes_of(drain(restarted))

    assert [(c.op, c.before) for c in deleted] == [("d", {"id": 1}), ("d", {"id": 4})]


# -- positions -----------------------------------------------------------------------


def test_new_instance_resumes_after_the_committed_position(shop: Harness) -> None:
    """A connector opened at the last committed position publishes only later rows, and updates stay 'u'."""
    shop.insert(1, "one", 0)
    shop.insert(2, "two", 1)
    first = shop.connector()
    first.open(None)
    resume_at = drain(first)[-1].position
    first.close()
    shop.update(1, "one again", 5)
    shop.insert(3, "three", 6)

    second = shop.connector()
    second.open(resume_at)
    later = changes_of(drain(second))

    assert ops(later) == [("u", 1, "one again"), ("c", 3, "three")]


def test_reopening_at_an_earlier_position_replays_the_same_changes(shop: Harness) -> None:
    """Rewinding to a position handed out earlier (not the last committed) yields the same changes again."""
    shop.insert(1, "one", 0)
    connector = shop.connector()
    connector.open(None)
    resume_at = drain(connector)[-1].position
    shop.insert(2, "two", 1)
    shop.update(1, "one again", 2)
    first_time = changes_of(drain(connector, commit=False))

    connector.open(resume_at)
    second_time = changes_of(drain(connector, commit=False))

    assert ops(first_time) == [("c", 2, "two"), ("u", 1, "one again")]
    assert second_time == first_time


def test_lost_key_state_is_rebuilt_from_the_rows_already_passed(shop: Harness) -> None:
    """Without its key state file a connector rebuilds it from the rows its position passed; updates: 'u'."""
    shop.insert(1, "one", 0)
    connector = shop.connector()
    connector.open(None)
    resume_at = drain(connector)[-1].position
    connector.close()
    for path in (shop.tmp_path / "state").iterdir():
        path.unlink()

    restarted = shop.connector()
    restarted.open(resume_at)
    shop.update(1, "one again", 4)
    shop.insert(2, "two", 4)
    later = changes_of(drain(restarted))

    assert ops(later) == [("u", 1, "one again"), ("c", 2, "two")]


# -- names and settings --------------------------------------------------------------


def test_hostile_table_and_column_names_are_quoted(shop: Harness) -> None:
    """Table ``odd "orders"; drop`` with columns ``order id``, ``it's``, ``changed;at`` is polled, diffed."""
    run_sql(
        shop.db,
        'CREATE TABLE "odd ""orders""; drop" '
        '("order id" INTEGER PRIMARY KEY, "it\'s" TEXT, "changed;at" TIMESTAMP)',
    )
    run_sql(shop.db, 'INSERT INTO "odd ""orders""; drop" VALUES (1, \'x\', ?)', (stamp(1),))
    run_sql(shop.db, 'INSERT INTO "odd ""orders""; drop" VALUES (2, \'y\', ?)', (stamp(1),))
    table = TableSettings(name=HOSTILE, incrementing_column="order id", timestamp_column="changed;at")
    connector = shop.connector([table], detect_deletes=True)
    connector.open(None)
    first = changes_of(drain(connector))
    run_sql(shop.db, 'DELETE FROM "odd ""orders""; drop" WHERE "order id" = 1')
    shop.clock.seconds += 400
    deleted = changes_of(drain(connector))

    assert [(c.table, c.op, c.after) for c in first] == [
        (HOSTILE, "c", {"order id": 1, "it's": "x", "changed;at": stamp(1)}),
        (HOSTILE, "c", {"order id": 2, "it's": "y", "changed;at": stamp(1)}),
    ]
    assert [(c.op, c.before) for c in deleted] == [("d", {"order id": 1})]
    assert connector.tables()[0].row(first[0].after) == {
        "order_id": 1,
        "it_s": "x",
        "changed_at": BASE + dt.timedelta(seconds=1),
    }


def test_epoch_millisecond_timestamps_respect_the_lag(shop: Harness) -> None:
    """An INTEGER column of epoch milliseconds works as the timestamp; rows younger than lag_s wait."""
    run_sql(shop.db, "CREATE TABLE events (id INTEGER PRIMARY KEY, at_ms INTEGER)")
    now_ms = int(shop.clock.now().timestamp() * 1000)
    run_sql(shop.db, "INSERT INTO events VALUES (1, ?)", (now_ms - 10_000,))
    run_sql(shop.db, "INSERT INTO events VALUES (2, ?)", (now_ms - 1_000,))
    connector = shop.connector(["events"], timestamp_column="at_ms")
    connector.open(None)

    now = changes_of(drain(connector))
    shop.clock.seconds += 5
    later = changes_of(drain(connector))

    assert [c.after["id"] for c in now if c.after] == [1]
    assert [c.after["id"] for c in later if c.after] == [2]
    assert now[0].ts_ms == now_ms - 10_000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"poll_mode": None}, "no poll_mode"),
        ({"timestamp_column": None}, "no timestamp_column"),
        ({"timestamp_column": "nowhere"}, "'nowhere' is not in table"),
    ],
)
def test_incomplete_poll_settings_are_config_errors(
    shop: Harness, extra: dict[str, Any], message: str
) -> None:
    """A missing mode, a missing or unknown timestamp column is refused with a ConfigError naming it."""
    with pytest.raises(ConfigError, match=message):
        shop.connector(**extra).open(None)


def test_table_without_a_key_is_refused_with_a_hint(shop: Harness) -> None:
    """Polling a keyless table without declared key columns is a ConfigError that says how to declare them."""
    run_sql(shop.db, "CREATE TABLE ledger (account TEXT, at TIMESTAMP)")

    with pytest.raises(ConfigError, match="no primary key") as raised:
        shop.connector(["ledger"], poll_mode="timestamp", timestamp_column="at").open(None)

    assert raised.value.hint is not None and "key" in raised.value.hint


def test_missing_table_and_missing_file_are_reported(shop: Harness) -> None:
    """An unknown table is a ConfigError naming it; a missing SQLite file is retriable and not created."""
    with pytest.raises(ConfigError, match="'custmers' not found"):
        shop.connector(["custmers"]).open(None)
    missing = shop.tmp_path / "nowhere.db"
    connector = SqlPollConnector(shop.settings(url=f"sqlite:///{missing}"))

    with pytest.raises(SourceUnavailableError, match="does not exist") as raised:
        connector.open(None)

    assert raised.value.retriable and not missing.exists()
