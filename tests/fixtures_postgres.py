"""PostgreSQL for the connector tests: a session-wide server and a fresh database per test.

``UNSILO_TEST_POSTGRES_URL`` (``postgresql://user@host:port/db``, a role that may create
databases and replicate, on a server with ``wal_level = logical``) is used when set.
Otherwise a throwaway PostgreSQL 15 from Debian's packages (``postgresql-15``) is started in
a temporary data directory on a free port, as the ``postgres`` OS user when running as
root (PostgreSQL refuses to run as root), and stopped by its PID at the end of the session.
tests/conftest.py registers these fixtures for every test (``pytest_plugins``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from tests.support import free_ports

__all__ = ["LocalPostgres", "postgres_db", "postgres_url", "run_sql", "with_database"]

POSTGRES_ROOT = Path("/usr/lib/postgresql")


def _bin_dir() -> Path | None:
    found = sorted(POSTGRES_ROOT.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class LocalPostgres:
    """A throwaway PostgreSQL server in its own data directory (not for production)."""

    def __init__(self, *, wal_level: str = "logical", fsync: bool = False) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL is not installed: apt-get install postgresql-15 "
                "(or set UNSILO_TEST_POSTGRES_URL to a server with wal_level = logical)"
            )
        self.bin_dir = bin_dir
        self.wal_level = wal_level
        self.fsync = fsync
        self.port = free_ports(1)[0]
        self.root = Path(tempfile.mkdtemp(prefix="unsilo-pg-"))  # not under pytest's 0700 dirs
        self.data = self.root / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout_s: float = 60.0) -> LocalPostgres:
        subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, user=self.user,
        )  # fmt: skip
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "wal_level": self.wal_level,
            "max_replication_slots": "40",
            "max_wal_senders": "40",
            "max_connections": "200",
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "shared_buffers": "256MB",
        }
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(self.root / "postgres.log", "wb")  # noqa: SIM115 - the server's log, closed with it
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, user=self.user)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg2.connect(self.url, connect_timeout=2).close()
                return self
            except psycopg2.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = (self.root / "postgres.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start:\n{tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM by PID (then a fast shutdown if sessions linger), and remove the data."""
        process = self.process
        if process is not None and process.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGINT, 20), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)
                try:
                    process.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def run_sql(url: str, statement: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement in its own committed transaction, as another program would; its rows."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server with wal_level = logical for the whole session."""
    configured = os.environ.get("UNSILO_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    server = LocalPostgres().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database; dropped (with its replication slots) afterwards."""
    name = f"unsilo_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield with_database(postgres_url, name)
        _drop_database(admin, name)
    finally:
        admin.close()


def _drop_database(admin: Any, name: str) -> None:
    """End the database's sessions (walsenders too), drop its slots, then drop it."""
    deadline = time.monotonic() + 30
    with admin.cursor() as cur:
        while True:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute("SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", (name,))
            slots = cur.fetchall()
            for slot, active in slots:
                if not active:
                    with contextlib.suppress(psycopg2.Error):
                        cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            if not any(active for _, active in slots) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
