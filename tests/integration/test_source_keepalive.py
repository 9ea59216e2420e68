"""Source connections keep TCP keepalive on, so a database host that goes silent is noticed."""

from __future__ import annotations

import socket

from connectors import keepalive, pgcatalog
from connectors.mysql_server import MysqlServer
from hub.config import SourceSettings
from tests.fixtures_mysql import MysqlDatabase


def test_postgres_connections_probe_a_silent_server(postgres_db: str) -> None:
    source = SourceSettings(name="crm", system="crm", kind="postgres", url=postgres_db, tables=["t"])
    settings = pgcatalog.PostgresSettings.from_source(source)
    for replication in (False, True):
        conn = pgcatalog.connect(settings, replication=replication)
        try:
            params = conn.get_dsn_parameters()
            assert params["keepalives"] == "1"
            assert params["keepalives_idle"] == str(keepalive.IDLE_S)
            assert params["keepalives_count"] == str(keepalive.COUNT)
            assert params["tcp_user_timeout"] == str(keepalive.USER_TIMEOUT_MS)
        finally:
            conn.close()


def test_a_keepalive_setting_in_the_url_wins(postgres_db: str) -> None:
    url = f"{postgres_db}?keepalives_idle=5"
    source = SourceSettings(name="crm", system="crm", kind="postgres", url=url, tables=["t"])
    conn = pgcatalog.connect(pgcatalog.PostgresSettings.from_source(source))
    try:
        assert conn.get_dsn_parameters()["keepalives_idle"] == "5"
    finally:
        conn.close()


def test_mysql_connections_probe_a_silent_server(mysql_db: MysqlDatabase) -> None:
    source = SourceSettings(name="shop", system="shop", kind="mysql", url=mysql_db.url, tables=["t"])
    conn = MysqlServer.of(source).connect()
    try:
        sock = conn._sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == keepalive.IDLE_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == keepalive.COUNT
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == keepalive.USER_TIMEOUT_MS
    finally:
        conn.close()
