"""A real MariaDB for the MySQL connector tests: an existing server or a throwaway one.

``mysql_url`` (session): ``UNSILO_TEST_MYSQL_URL`` when set (a server with a row-based
binlog and a user holding REPLICATION SLAVE and REPLICATION CLIENT), otherwise a MariaDB
started from the Debian packages in a temporary data directory on a free port, with
``log-bin``, ``binlog-format=ROW`` and ``binlog-row-image=FULL``, stopped by its PID at
the end of the session. ``mysql_db`` (function): a fresh database on it for one test.

Import them into a test module with ``from tests.fixtures_mysql import *  # noqa: F403``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest

from tests.support import free_ports

__all__ = ["MysqlDatabase", "mysql_db", "mysql_url"]  # what `import *` brings into a test module

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class MysqlDatabase:
    """One test's database: its name, a connector URL for it, and a way to run SQL in it."""

    server_url: str
    name: str

    @property
    def url(self) -> str:
        parts = urlsplit(self.server_url)
        return f"{parts.scheme}://{parts.netloc}/{self.name}"

    def connect(self, **extra: Any) -> Any:
        """A new autocommit connection to this database, as another program would use."""
        return server_connection(self.server_url, database=self.name, **extra)

    def execute(self, statement: str, params: Any = None) -> None:
        """Run one statement in its own committed transaction."""
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
        finally:
            conn.close()

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall())
        finally:
            conn.close()


def server_connection(url: str, database: str | None = None, **extra: Any) -> Any:
    """An autocommit PyMySQL connection to the server of ``url``."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        charset="utf8mb4",
        autocommit=True,
        **extra,
    )


def _answers(url: str) -> bool:
    try:
        server_connection(url, connect_timeout=1).close()
        return True
    except pymysql.err.MySQLError:
        return False


def start_mariadb(base: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Install and start a throwaway MariaDB under ``base``; its process and root URL once it answers."""
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
    datadir, log = base / "data", base / "mariadbd.log"
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *as_root],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
    )  # fmt: skip
    (port,) = free_ports(1)
    argv = [
        mariadbd, "--no-defaults", "--log-basename=unsilo", f"--datadir={datadir}", f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={base / 'sock'}", f"--pid-file={base / 'mariadbd.pid'}",
        f"--log-bin={base / 'binlog'}", "--binlog-format=ROW",
        "--binlog-row-image=FULL", "--server-id=1", "--innodb-buffer-pool-size=256M",
        "--skip-name-resolve", *as_root, *extra,
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))  # noqa: SIM115
    url = f"mysql://root@127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_mariadb(process)
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mariadbd did not start on port {port}:\n{tail}")
        time.sleep(0.2)
    return process, url


def stop_mariadb(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server by its PID and wait for it to shut down."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def mysql_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a MariaDB/MySQL server with a row-based binlog, for the whole session."""
    configured = os.environ.get("UNSILO_TEST_MYSQL_URL")
    if configured:
        yield configured
        return
    process, url = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    try:
        yield url
    finally:
        stop_mariadb(process)


@pytest.fixture
def mysql_db(mysql_url: str) -> Iterator[MysqlDatabase]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = server_connection(mysql_url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield MysqlDatabase(mysql_url, name)
        with contextlib.suppress(pymysql.err.MySQLError), conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()
