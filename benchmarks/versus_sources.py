"""The two source databases of ``benchmarks/versus_debezium.py``, and the fixed-rate update workload.

Each is a throwaway server (PostgreSQL 15 with fsync on; MariaDB with the redo log flushed once a
second) holding the 10-column ``orders`` table of ``benchmarks/postgres_snapshot.py`` /
``benchmarks/mysql_snapshot.py`` (built the same way, by the same code) and a small ``pulse``
table the streaming workload updates: every update stamps ``written_us`` with the server's own
clock in microseconds, so a change's latency is measured from inside the source for both tools.

MariaDB reports its version as ``5.5.5-<version>`` (what its handshake already says): Debezium
3.6's MySQL connector asks any server of version 8.4 or later for ``SHOW BINARY LOG STATUS``,
which MariaDB does not know (Debezium moved MariaDB to ``debezium-connector-mariadb``, which
Maven Central does not serve here); below 8.4 it uses ``SHOW MASTER STATUS``, which MariaDB has.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2

from benchmarks import debezium_connect as dbz
from benchmarks import mysql_snapshot, postgres_snapshot
from tests.fixtures_mysql import server_connection, start_mariadb, stop_mariadb
from tests.fixtures_postgres import LocalPostgres, with_database

PULSE_ROWS = 1000
ORDERS, PULSE = "orders", "pulse"


class BenchDatabase(ABC):
    """One source server with ``orders`` and ``pulse``, as Unsilo and Debezium are pointed at it."""

    kind: str

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.name = f"vs_{uuid.uuid4().hex[:8]}"

    @abstractmethod
    def start(self) -> str:
        """Start the server; returns its version."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def build(self, rows: int) -> float:
        """Create and fill ``orders`` (``rows`` rows) and ``pulse``; returns seconds taken."""

    @abstractmethod
    def connect(self) -> Any:
        """An autocommit DB-API connection to the database (``%s`` placeholders)."""

    @abstractmethod
    def update_statement(self) -> str:
        """One UPDATE of ``pulse`` rows ``id BETWEEN %s AND %s``, stamping ``written_us``."""

    @abstractmethod
    def unsilo_source(self, name: str, table: str) -> dict[str, Any]:
        """The unsilo.yaml source entry capturing ``table``."""

    @abstractmethod
    def debezium_connector(self, name: str, table: str, *, snapshot: bool) -> dict[str, object]:
        """Debezium's connector properties capturing ``table`` (topics with LogAppendTime)."""

    @abstractmethod
    def release(self, name: str) -> None:
        """Drop what a finished capture named ``name`` keeps on the server (a replication slot)."""

    def mark(self, row: int, marker: int) -> None:
        """Stamp ``pulse`` row ``row`` with ``written_us = marker`` (the warm-up probe)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"UPDATE {PULSE} SET n = n + 1, written_us = %s WHERE id = %s", (marker, row))
        finally:
            conn.close()


class PostgresBench(BenchDatabase):
    kind = "postgres"

    def start(self) -> str:
        self.server = LocalPostgres(fsync=True).start()
        admin = psycopg2.connect(self.server.url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.name}")
            cur.execute("SHOW server_version")
            version = str((cur.fetchone() or ("?",))[0])
        admin.close()
        self.url = with_database(self.server.url, self.name)
        return f"PostgreSQL {version}"

    def stop(self) -> None:
        self.server.stop()

    def build(self, rows: int) -> float:
        seconds = postgres_snapshot.make_table(self.url, rows)
        started = time.monotonic()
        conn = self.connect()
        with conn.cursor() as cur:
            columns = "id integer PRIMARY KEY, n bigint NOT NULL, written_us bigint NOT NULL"
            cur.execute(f"CREATE TABLE {PULSE} ({columns})")
            cur.execute(f"INSERT INTO {PULSE} SELECT i, 0, 0 FROM generate_series(1, %s) i", (PULSE_ROWS,))
        conn.close()
        return seconds + time.monotonic() - started

    def connect(self) -> Any:
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        return conn

    def update_statement(self) -> str:
        return (
            f"UPDATE {PULSE} SET n = n + 1, "
            "written_us = (extract(epoch from clock_timestamp()) * 1000000)::bigint "
            "WHERE id BETWEEN %s AND %s"
        )

    def unsilo_source(self, name: str, table: str) -> dict[str, Any]:
        return {"name": name, "system": name, "kind": "postgres", "url": self.url, "tables": [table]}

    def debezium_connector(self, name: str, table: str, *, snapshot: bool) -> dict[str, object]:
        props = dbz.postgres_connector(name, self.url, table, snapshot=snapshot, log_append_time=True)
        return {**props, "poll.interval.ms": dbz.POLL_INTERVAL_MS}

    def release(self, name: str) -> None:
        """Drop the slot a stopped capture left (Unsilo's is ``unsilo_<name>``, Debezium's ``<name>``)."""
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name IN (%s, %s) AND NOT active",
                (name, f"unsilo_{name}"),
            )
        conn.close()


class MariadbBench(BenchDatabase):
    kind = "mariadb"

    def start(self) -> str:
        found = re.search(r"Ver\s+(\S+)", subprocess.run(
            [shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--version"], capture_output=True, text=True
        ).stdout)  # fmt: skip
        real = found.group(1) if found else "10.11.0-MariaDB"
        self.process, self.server_url = start_mariadb(
            self.workdir / "mariadb",
            f"--version=5.5.5-{real}",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=1G",
        )
        return f"MariaDB {real}"

    def stop(self) -> None:
        stop_mariadb(self.process)

    def build(self, rows: int) -> float:
        seconds = mysql_snapshot.make_table(self.server_url, self.name, rows)
        started = time.monotonic()
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {PULSE} (id INT PRIMARY KEY, n BIGINT NOT NULL, written_us BIGINT NOT NULL)"
            )
            cur.execute(f"INSERT INTO {PULSE} SELECT seq, 0, 0 FROM seq_1_to_{PULSE_ROWS}")
        conn.close()
        return seconds + time.monotonic() - started

    def connect(self) -> Any:
        return server_connection(self.server_url, database=self.name)

    def update_statement(self) -> str:
        return (
            f"UPDATE {PULSE} SET n = n + 1, written_us = CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) "
            "WHERE id BETWEEN %s AND %s"
        )

    def unsilo_source(self, name: str, table: str) -> dict[str, Any]:
        url = f"{self.server_url.rstrip('/')}/{self.name}"
        return {"name": name, "system": name, "kind": "mysql", "url": url, "tables": [table]}

    def debezium_connector(self, name: str, table: str, *, snapshot: bool) -> dict[str, object]:
        props = dbz.mysql_connector(
            name, self.server_url, self.name, table, server_id=5000 + secrets.randbelow(50_000),
            history=self.workdir / f"{name}.history", snapshot=snapshot, log_append_time=True,
        )  # fmt: skip
        return {**props, "poll.interval.ms": dbz.POLL_INTERVAL_MS}

    def release(self, name: str) -> None:
        """Nothing: a binlog reader keeps nothing on the server."""


def write_at_rate(
    connect: Callable[[], Any], statement: str, rate: int, per_txn: int, seconds: float
) -> dict[str, Any]:
    """``rate`` changes/s for ``seconds``: one UPDATE of ``per_txn`` pulse rows per transaction,
    on an absolute schedule (a late transaction is not made up by a burst, it is counted)."""
    conn = connect()
    interval = per_txn / rate
    txns = max(1, int(seconds * rate / per_txn))
    late = 0
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            for n in range(txns):
                pause = started + n * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                elif pause < -interval:
                    late += 1
                first = 1 + (n * per_txn) % (PULSE_ROWS - per_txn + 1)
                cur.execute(statement, (first, first + per_txn - 1))
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    changes = txns * per_txn
    return {
        "changes": changes,
        "seconds": round(elapsed, 2),
        "achieved_per_s": round(changes / elapsed, 1),
        "late_txns": late,
    }


def make_database(kind: str, workdir: Path) -> BenchDatabase:
    databases: dict[str, type[BenchDatabase]] = {"postgres": PostgresBench, "mariadb": MariadbBench}
    if kind not in databases:
        raise ValueError(f"unknown database {kind!r}: choose from {', '.join(databases)}")
    return databases[kind](workdir)
