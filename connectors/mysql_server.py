"""The MySQL/MariaDB server side of the mysql connector: URL, connection, checks, errors.

Only ``connectors/mysql.py`` imports this module. PyMySQL's errors are translated here:
an unreachable server is a retriable :class:`SourceUnavailableError` naming ``host:port``
(never the password); settings and grants that would lose changes are a
:class:`ConfigError` naming the exact variable or GRANT statement to run.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pymysql  # type: ignore[import-untyped]
import structlog
from pymysql.constants import FIELD_TYPE  # type: ignore[import-untyped]

from connectors import keepalive
from connectors.base import Problem
from connectors.mysql_rows import DATE, DATETIME, FastRows
from connectors.mysql_schema import Layout, MysqlColumn, quote
from hub.config import SourceSettings
from hub.errors import ConfigError, SourceUnavailableError, UnsiloError

log = structlog.get_logger(__name__)

GRANT = "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user};"
TABLES_HINT = (
    "check the table names listed under the source in unsilo.yaml, and that the user may SELECT them"
)


def _datetime(text: str) -> dt.datetime | str:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:  # '0000-00-00 00:00:00' and other invalid dates stay text (read as None)
        return text


def _date(text: str) -> dt.date | str:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return text


class _Connection(FastRows, pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's connection, sharing one default TLS context (for TLS "if the server offers it"),
    with result rows decoded in C (:mod:`connectors.mysql_rows`).

    PyMySQL builds a fresh default context per connection, loading the CA store (20 ms); that
    would dominate every reconnect (each rewind opens a new binlog connection). Its TCP
    socket has keepalive on (:mod:`connectors.keepalive`).
    """

    _default_ctx: Any = None
    fast_kinds: ClassVar[dict[Any, int]] = {_datetime: DATETIME, _date: DATE}

    def connect(self, sock: Any = None) -> None:
        super().connect(sock)
        keepalive.enable(self._sock)  # a silent server fails reads in about a minute, not 15

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if sslp:
            return super()._create_ssl_ctx(sslp)
        if _Connection._default_ctx is None:
            _Connection._default_ctx = super()._create_ssl_ctx(sslp)
        return _Connection._default_ctx


def open_connection(**kwargs: Any) -> Any:
    """A PyMySQL connection (with the shared TLS context); pymysqlreplication's ``pymysql_wrapper``."""
    return _Connection(**kwargs)


# PyMySQL's own date decoders use a regular expression per value: a quarter of snapshot time.
_DECODERS = {
    **pymysql.converters.conversions,
    FIELD_TYPE.DATETIME: _datetime,
    FIELD_TYPE.TIMESTAMP: _datetime,
    FIELD_TYPE.DATE: _date,
}


@dataclass(frozen=True)
class MysqlServer:
    """Where the source server answers; ``where`` names it without the password."""

    source: str
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def of(cls, settings: SourceSettings) -> MysqlServer:
        """The server of ``mysql://user[:password]@host[:port]/database`` (``password:`` wins)."""
        parts = urlsplit(settings.url)
        database = unquote(parts.path.lstrip("/"))
        if parts.scheme.split("+")[0] not in ("mysql", "mariadb") or not parts.hostname or not database:
            raise ConfigError(
                f"source {settings.name}: url must look like mysql://user@host:3306/database",
                hint="set the source's url in unsilo.yaml (and its password under password:)",
            )
        secret = settings.password.get_secret_value() if settings.password else unquote(parts.password or "")
        user = unquote(parts.username or "root")
        return cls(settings.name, parts.hostname, parts.port or 3306, user, secret, database)

    def connect_args(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "passwd": self.password}

    def connect(self) -> Any:
        """An autocommit utf8mb4 connection in UTC (so TIMESTAMPs read as UTC)."""
        try:
            return open_connection(
                **self.connect_args(), database=self.database, charset="utf8mb4", autocommit=True,
                connect_timeout=10, init_command="SET time_zone = '+00:00'", conv=_DECODERS,
            )  # fmt: skip
        except pymysql.err.MySQLError as exc:
            raise self.translate(exc) from exc

    def translate(self, exc: Exception) -> UnsiloError:
        """A PyMySQL error as the Unsilo error that says what to do."""
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        where, user, source = self.where, f"'{self.user}'", f"source {self.source}"
        if code == 1045:
            return ConfigError(
                f"{source}: {where} refused user {user} (wrong user or password)",
                hint="check the url and password of the source in unsilo.yaml",
            )
        if code == 1049:
            return ConfigError(f"{source}: database {self.database!r} does not exist on {where}")
        if code in (1227, 1044, 1142, 1143):
            return ConfigError(
                f"{source}: user {user} may not do this on {where}: {reason}",
                hint=f"run as an administrator: {GRANT.format(user=user)} "
                f"GRANT SELECT ON {quote(self.database)}.* TO {user};",
            )
        if code == 1236:
            return ConfigError(
                f"{source}: {where} cannot send the binlog from the saved position: {reason}",
                hint="the binlog was probably purged: raise binlog retention and snapshot this source again",
            )
        return SourceUnavailableError(f"{source}: cannot read MySQL/MariaDB at {where}: {reason}")


def is_mariadb(conn: Any) -> bool:
    return "mariadb" in str(conn.get_server_info()).lower()


def problems(conn: Any, server: MysqlServer, server_id: int) -> list[Problem]:
    """Binlog settings and grants that would keep the connector from capturing every change."""
    found: list[Problem] = []
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, @@server_id")
        log_bin, binlog_format, row_image, own_id = cursor.fetchone()
        cursor.execute("SELECT CURRENT_USER()")
        name, _, host = cursor.fetchone()[0].rpartition("@")
        cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = " ".join(row[0].upper() for row in cursor.fetchall() if " ON *.* " in row[0].upper())
    where = server.where
    if not int(log_bin):
        found.append(
            Problem(
                None,
                f"binary logging is off on {where} (log_bin=OFF)",
                "start the server with log_bin=ON (e.g. --log-bin=mysql-bin), binlog_format=ROW, "
                "binlog_row_image=FULL and a server_id, in the [mysqld] section of my.cnf",
            )
        )
    for setting, value, wanted in (
        ("binlog_format", binlog_format, "ROW"),
        ("binlog_row_image", row_image, "FULL"),
    ):
        if int(log_bin) and str(value).upper() != wanted:
            found.append(
                Problem(
                    None,
                    f"{setting} is {value} on {where}; the connector needs {wanted}",
                    f"SET GLOBAL {setting} = '{wanted}'; and set {setting}={wanted} under [mysqld] in "
                    "my.cnf so it survives a restart (sessions already open keep the old value)",
                )
            )
    missing = []
    if "ALL PRIVILEGES" not in grants:
        if not re.search(r"REPLICATION SLAVE(?! ADMIN)", grants):
            missing.append("REPLICATION SLAVE")
        if not re.search(r"REPLICATION CLIENT|BINLOG MONITOR|SUPER", grants):
            missing.append("REPLICATION CLIENT")
    if missing:
        user = f"'{name}'@'{host}'"
        found.append(
            Problem(None, f"user {user} lacks {' and '.join(missing)} on {where}", GRANT.format(user=user))
        )
    if int(own_id) == server_id:
        found.append(
            Problem(
                None,
                f"server_id {server_id} is the id of {where} itself",
                "set a different server_id for this source in unsilo.yaml",
            )
        )
    return found


def read_columns(conn: Any, database: str) -> dict[str, tuple[list[MysqlColumn], list[str]]]:
    """Every table of ``database``: its columns in order and its primary key, from information_schema."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, IS_NULLABLE FROM "
            "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        tables: dict[str, tuple[list[MysqlColumn], list[str]]] = {}
        for table, column, column_type, charset, nullable in cursor.fetchall():
            tables.setdefault(table, ([], []))[0].append(
                MysqlColumn(column, column_type, charset, nullable == "YES")
            )
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX",
            (database,),
        )
        for table, column in cursor.fetchall():
            if table in tables:
                tables[table][1].append(column)
    return tables


def read_layouts(
    conn: Any, server: MysqlServer, settings: SourceSettings, *, missing_ok: bool
) -> dict[str, Layout]:
    """The layout of each captured table now; a missing one is skipped or a ConfigError."""
    columns = read_columns(conn, server.database)
    layouts: dict[str, Layout] = {}
    for table in settings.tables:
        if table.name in columns:
            layouts[table.name] = Layout(settings, table, *columns[table.name])
        elif not missing_ok:
            raise ConfigError(
                f"source {settings.name}: table {table.name!r} not found in database {server.database} "
                f"on {server.where}",
                hint=TABLES_HINT,
            )
    return layouts


def table_problems(
    columns: dict[str, tuple[list[MysqlColumn], list[str]]], settings: SourceSettings, database: str
) -> list[Problem]:
    """Captured tables that are missing or cannot be keyed, each with its fix."""
    found = []
    for table in settings.tables:
        if table.name not in columns:
            found.append(Problem(table.name, f"table not found in database {database}", TABLES_HINT))
            continue
        try:
            Layout(settings, table, *columns[table.name])
        except ConfigError as exc:
            found.append(Problem(table.name, exc.message, exc.hint or ""))
    return found


class KeptConnection:
    """A connection pymysqlreplication may use and "close" again and again: it stays open."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def close(self) -> None:
        """Kept open for the next reader (see :meth:`close_really`)."""

    def close_really(self) -> None:
        try:
            self.conn.close()
        except pymysql.err.Error as exc:
            log.debug("mysql_close_failed", error=str(exc))


def has_data(conn: Any) -> bool:
    """Whether reading from PyMySQL connection ``conn`` would return at once, without waiting.

    True when bytes are buffered (PyMySQL's reader, TLS) or waiting on the socket, and when the
    connection is closed (the read then fails at once, with the real error). The socket is
    non-blocking for a moment: a peek of the reader returns its buffered bytes or reads what
    has arrived; a plain socket's peek tells nothing-yet from closed by the server.
    """
    sock, rfile = conn._sock, conn._rfile
    if sock is None or rfile is None:
        return True
    tls = isinstance(sock, ssl.SSLSocket)
    if tls and sock.pending():
        return True
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        if rfile.peek(1):
            return True
        return not tls and sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, ssl.SSLWantReadError):  # nothing has arrived yet
        return False
    except OSError:  # reset by the server: the read fails at once
        return True
    finally:
        sock.settimeout(timeout)


_STATUS = ["SHOW MASTER STATUS"]


def head(conn: Any, server: MysqlServer) -> tuple[str, int]:
    """The binlog file and offset the server writes next."""
    with conn.cursor() as cursor:
        try:
            cursor.execute(_STATUS[0])
        except pymysql.err.ProgrammingError as exc:  # MySQL 8.4 knows only the new spelling
            if exc.args[0] != 1064 or _STATUS[0] != "SHOW MASTER STATUS":
                raise
            _STATUS[0] = "SHOW BINARY LOG STATUS"
            cursor.execute(_STATUS[0])
        row = cursor.fetchone()
    if row is None:
        raise ConfigError(f"source {server.source}: binary logging is off on {server.where}")
    return str(row[0]), int(row[1])


def gtid_at(conn: Any, file: str, pos: int) -> str | None:
    """MariaDB's GTID state at a binlog file:offset (None where empty)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        value = cursor.fetchone()[0]
    return str(value) if value else None


def binlog_files(conn: Any) -> set[str]:
    with conn.cursor() as cursor:
        cursor.execute("SHOW BINARY LOGS")
        return {str(row[0]) for row in cursor.fetchall()}


def file_index(name: str) -> int:
    """The number of a binlog file (``mysql-bin.000042`` is 42)."""
    suffix = name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def label(file: str, pos: int, row: int) -> str:
    """A change's position that sorts as text: file number, offset, row within the event."""
    return f"{file_index(file):06d}:{pos:012d}:{row:06d}"


def parse_gtids(text: str | None) -> dict[str, str]:
    """``0-1-57,1-2-9`` as {domain: gtid}."""
    return {item.split("-", 1)[0]: item for item in (text or "").split(",") if item.strip()}
