"""PostgreSQL connections, server checks, catalog introspection, publication and slot.

What the PostgreSQL connector needs from the server before it can stream: connections
(errors translated here, never showing the password), a server that can do logical
replication for this role, the captured tables' columns and keys, the publication listing
them and the logical replication slot. Identifiers always go through ``psycopg2.sql``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import structlog
from psycopg2 import sql
from pydantic import SecretStr

from connectors import keepalive
from connectors.pgoutput import TYPED, Parser, parse_lsn, parser_for
from hub.avro_types import Column, avro_type_for
from hub.config import SourceSettings, TableSettings
from hub.envelope import TableSchema, table_schema
from hub.errors import ConfigError, SourceError, SourceUnavailableError

log = structlog.get_logger(__name__)

#: Session settings that make values come out the same in the snapshot and the stream.
SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c bytea_output=hex -c extra_float_digits=3"
)
#: What an unchanged TOASTed column reads as when the old row was not logged (Debezium's way).
UNAVAILABLE = "__unsilo_unavailable_value"
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_REFUSED = ("authentication failed", "no password supplied", "does not exist", "pg_hba.conf", "permission")


@dataclass(frozen=True)
class PostgresSettings:
    """One PostgreSQL source as the connector uses it, resolved from its SourceSettings."""

    dsn: str  # libpq connection string without the password
    password: SecretStr | None
    host: str
    port: str
    dbname: str
    user: str
    slot: str
    publication: str
    heartbeat_interval_s: float
    application_name: str

    @classmethod
    def from_source(cls, source: SourceSettings) -> PostgresSettings:
        url = re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", source.url)
        try:
            parts = psycopg2.extensions.parse_dsn(url)
        except psycopg2.ProgrammingError as exc:
            raise ConfigError(
                f"source {source.name}: url is not a PostgreSQL connection string",
                hint="use postgresql://user@host:5432/database (the password goes in 'password')",
            ) from exc
        slot = source.slot or f"unsilo_{source.name.lower()}"
        if not _SLOT_NAME.match(slot):
            raise ConfigError(
                f"source {source.name}: slot {slot!r} is not a valid replication slot name",
                hint="use lower-case letters, digits and underscores (at most 63)",
            )
        return cls(
            dsn=url,
            password=source.password,
            host=parts.get("host") or parts.get("hostaddr") or "localhost",
            port=parts.get("port") or "5432",
            dbname=parts.get("dbname") or parts.get("user") or "postgres",
            user=parts.get("user") or "",
            slot=slot,
            publication=source.publication or f"unsilo_{source.name.lower()}",
            heartbeat_interval_s=source.heartbeat_interval_s,
            application_name=f"unsilo-{source.name}"[:63],
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def connect(settings: PostgresSettings, *, replication: bool = False) -> Any:
    """A connection (autocommit), or a logical replication connection; errors translated."""
    extra: dict[str, Any] = {
        "options": SESSION_OPTIONS,
        "application_name": settings.application_name,
        "client_encoding": "UTF8",
        "connect_timeout": 10,
    }
    if settings.password is not None:
        extra["password"] = settings.password.get_secret_value()
    extra.update(keepalive.libpq_defaults(psycopg2.extensions.parse_dsn(settings.dsn)))
    dsn = psycopg2.extensions.make_dsn(settings.dsn, **extra)
    try:
        if replication:
            return psycopg2.connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
        conn = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        raise translate(settings, exc, "connecting to") from exc
    conn.autocommit = True
    _plain_values(conn)
    return conn


def _plain_values(conn: Any) -> None:
    """json/jsonb stay text, bytea becomes bytes: as the stream's values."""
    psycopg2.extras.register_default_json(conn, globally=False, loads=lambda text: text)
    psycopg2.extras.register_default_jsonb(conn, globally=False, loads=lambda text: text)
    binary = psycopg2.BINARY

    def to_bytes(value: str | bytes | None, cursor: Any) -> bytes | None:
        return None if value is None else bytes(binary(value, cursor))

    psycopg2.extensions.register_type(
        psycopg2.extensions.new_type(binary.values, "UNSILO_BYTES", to_bytes), conn
    )


def translate(settings: PostgresSettings, exc: psycopg2.Error, doing: str) -> SourceError | ConfigError:
    """A psycopg2 error as ours: the server's message, never the password, and what to do."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if settings.password is not None:
        text = text.replace(settings.password.get_secret_value(), "**********")
    where = f"PostgreSQL at {settings.where} (database {settings.dbname})"
    if isinstance(exc, psycopg2.OperationalError) and any(word in text for word in _REFUSED):
        return ConfigError(
            f"{where} refused the connection: {text}",
            hint="check the user, password and database in the source's url and password",
        )
    # No SQLSTATE: libpq itself failed (a connection cut mid-stream reports "error with status
    # PGRES_COPY_BOTH and no message from the libpq" as a bare DatabaseError), not the server.
    lost = type(exc) is psycopg2.DatabaseError and exc.pgcode is None
    if lost or isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return SourceUnavailableError(
            f"{doing} {where} failed: {text}", hint="check that the server runs and the url's host and port"
        )
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        return ConfigError(f"{doing} {where}: {text}", hint=f"grant the role {settings.user!r} what it lacks")
    return SourceError(f"{doing} {where}: {text}")


def check_server(conn: Any, settings: PostgresSettings) -> None:
    """wal_level must be logical and the role must have REPLICATION (ConfigError saying the fix)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('wal_level'), r.rolreplication OR r.rolsuper, current_user"
            " FROM pg_roles r WHERE r.rolname = current_user"
        )
        wal_level, can_replicate, user = cur.fetchone()
        if wal_level != "logical":
            raise ConfigError(
                f"PostgreSQL at {settings.where} has wal_level = {wal_level}; "
                "logical replication needs wal_level = logical",
                hint="as a superuser run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL "
                "(or set wal_level = logical in postgresql.conf)",
            )
        if not can_replicate:
            role = sql.Identifier(user).as_string(conn)
            raise ConfigError(
                f"role {user!r} may not use replication on PostgreSQL at {settings.where}",
                hint=f"as a superuser run ALTER ROLE {role} WITH REPLICATION;",
            )


@dataclass
class CapturedTable:
    """What the connector knows of one captured table."""

    name: str  # as configured: the topic's table name
    namespace: str
    relname: str
    oid: int
    identity: str  # replica identity: d default, f full, i index, n nothing
    columns: list[str]
    types: dict[str, str]  # column -> base type name (pg_type.typname)
    order: list[str]  # snapshot chunk order: the key columns, or ctid for a row-hash table
    schema: TableSchema
    parsers: dict[str, Parser] = field(default_factory=dict)
    unavailable: dict[str, Any] = field(default_factory=dict)
    first_sql: str = ""
    after_sql: str = ""

    @property
    def full_identity(self) -> bool:
        return self.identity == "f"


def split_name(name: str) -> tuple[str, str]:
    """``schema.table`` or ``table`` (in ``public``)."""
    namespace, dot, relname = name.partition(".")
    return (namespace, relname) if dot else ("public", name)


_TABLE_SQL = """
SELECT c.oid, c.relreplident, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')"""
_COLUMNS_SQL = """
SELECT a.attname, a.attnotnull, bt.typname, bt.typtype,
       format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum"""
_PK_SQL = """
SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord"""


def introspect(conn: Any, source: SourceSettings, table: TableSettings) -> CapturedTable:
    """Columns, types, key and replica identity of one captured table."""
    namespace, relname = split_name(table.name)
    with conn.cursor() as cur:
        cur.execute(_TABLE_SQL, (namespace, relname))
        found = cur.fetchone()
        if found is None:
            raise ConfigError(
                f"source {source.name}: table {table.name!r} not found (looked for {namespace}.{relname})",
                hint="check the table names listed under the source in unsilo.yaml (schema.table or table)",
            )
        oid, identity, _ = found
        cur.execute(_COLUMNS_SQL, (oid,))
        attributes = cur.fetchall()
        cur.execute(_PK_SQL, (oid,))
        primary_key = [row[0] for row in cur.fetchall()]
    key = table.key or primary_key
    if identity == "n" or (identity == "d" and not primary_key):
        ident = sql.Identifier(namespace, relname).as_string(conn)
        raise ConfigError(
            f"source {source.name}: table {table.name!r} has no replica identity, so PostgreSQL would "
            "refuse its UPDATEs and DELETEs once it is published",
            hint=f"give it a primary key, or run ALTER TABLE {ident} REPLICA IDENTITY FULL;",
        )
    full = identity == "f"
    columns: list[Column] = []
    types: dict[str, str] = {}
    for name, not_null, typname, typtype, formatted in attributes:
        types[name] = typname
        in_key = name in key
        columns.append(
            Column(
                name=name,
                sql_type=declared_type(typname, typtype, formatted),
                # before images of tables without REPLICA IDENTITY FULL hold the key only
                nullable=not in_key and (not not_null or not full),
                primary_key=in_key,
            )
        )
    schema = table_schema(source, table, columns, primary_key)
    captured = CapturedTable(
        name=table.name,
        namespace=namespace,
        relname=relname,
        oid=oid,
        identity=identity,
        columns=[c.name for c in columns],
        types=types,
        order=list(schema.key) if schema.key else ["ctid"],
        schema=schema,
    )
    captured.parsers = {name: parser_for(types[name]) for name in captured.columns}
    for column in columns:  # stand-ins for unchanged TOASTed values (text and bytes only)
        avro_type = avro_type_for(column.sql_type)
        if avro_type == "string":
            captured.unavailable[column.name] = UNAVAILABLE
        elif avro_type == "bytes":
            captured.unavailable[column.name] = UNAVAILABLE.encode("ascii")
    _chunk_queries(conn, captured)
    return captured


def declared_type(typname: str, typtype: str, formatted: str) -> str:
    """The declared type the Avro mapping reads: the real one for types with their own Avro
    type; ``enum`` for enums; ``text`` for everything else (arrays, ranges, intervals...),
    whose text form is captured as it is."""
    if typname in TYPED:
        return formatted
    if typtype == "e":
        return "enum"
    log.info("postgres_type_as_text", type=formatted)
    return "text"


def _chunk_queries(conn: Any, table: CapturedTable) -> None:
    """The snapshot chunk queries: the first chunk, and the chunk after a cursor value."""

    def ident(*parts: str) -> str:  # '%' in a name must not read as a parameter
        return sql.Identifier(*parts).as_string(conn).replace("%", "%%")

    selected = [
        ident(name) if table.types[name] in TYPED else f"{ident(name)}::text" for name in table.columns
    ]
    relation = ident(table.namespace, table.relname)
    if table.order == ["ctid"]:
        selected.append("ctid::text")
        order, after = "ctid", "ctid > %s::tid"
    else:
        order = ", ".join(ident(k) for k in table.order)
        after = f"({order}) > ({', '.join('%s' for _ in table.order)})"
    head = f"SELECT {', '.join(selected)} FROM {relation}"
    table.first_sql = f"{head} ORDER BY {order} LIMIT %s"
    table.after_sql = f"{head} WHERE {after} ORDER BY {order} LIMIT %s"


def ensure_publication(conn: Any, settings: PostgresSettings, tables: list[CapturedTable]) -> None:
    """Create the publication for the captured tables, or add the ones it lacks."""
    wanted = {(t.namespace, t.relname) for t in tables}
    name = sql.Identifier(settings.publication)
    with conn.cursor() as cur:
        cur.execute("SELECT puballtables FROM pg_publication WHERE pubname = %s", (settings.publication,))
        found = cur.fetchone()
        try:
            if found is None:
                listed = sql.SQL(", ").join(sql.Identifier(*t) for t in sorted(wanted))
                cur.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(name, listed))
                log.info("postgres_publication_created", publication=settings.publication)
                return
            if found[0]:
                return
            cur.execute(
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                (settings.publication,),
            )
            missing = sorted(wanted - {tuple(row) for row in cur.fetchall()})
            if missing:
                listed = sql.SQL(", ").join(sql.Identifier(*t) for t in missing)
                cur.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(name, listed))
                log.info("postgres_publication_extended", publication=settings.publication, added=missing)
        except psycopg2.errors.InsufficientPrivilege as exc:
            raise ConfigError(
                f"cannot create or extend publication {settings.publication!r} on {settings.where}: "
                f"{str(exc).strip().splitlines()[0]}",
                hint="let the tables' owner (or a superuser) run CREATE PUBLICATION "
                f"{name.as_string(conn)} FOR TABLE ...; with the captured tables, or make the "
                "connector's role their owner",
            ) from exc


def ensure_slot(conn: Any, settings: PostgresSettings, *, resuming: bool) -> int:
    """Create the logical replication slot (pgoutput) or reuse it; its confirmed LSN."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT plugin, database, confirmed_flush_lsn::text FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (settings.slot,),
        )
        found = cur.fetchone()
        if found is not None:
            plugin, database, confirmed = found
            if plugin != "pgoutput" or database != settings.dbname:
                raise ConfigError(
                    f"replication slot {settings.slot!r} exists for plugin {plugin} on database "
                    f"{database}, not pgoutput on {settings.dbname}",
                    hint="name another slot in the source's 'slot' setting",
                )
            return parse_lsn(confirmed)
        if resuming:
            raise ConfigError(
                f"replication slot {settings.slot!r} is gone from {settings.where}, so the changes "
                "since the last committed position can no longer be read",
                hint="snapshot the source again: delete its position (unsilo.offsets) and restart",
            )
        try:
            cur.execute(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (settings.slot,)
            )
        except psycopg2.errors.ConfigurationLimitExceeded as exc:
            raise ConfigError(
                f"cannot create replication slot {settings.slot!r}: all slots are in use",
                hint="raise max_replication_slots (and max_wal_senders) in postgresql.conf, or drop unused "
                "slots (SELECT pg_drop_replication_slot(name))",
            ) from exc
        created = cur.fetchone()[0]
        log.info("postgres_slot_created", slot=settings.slot, lsn=created)
        return parse_lsn(created)


def drop_slot_and_publication(conn: Any, settings: PostgresSettings, timeout_s: float = 10.0) -> None:
    """Remove what :func:`ensure_slot` and :func:`ensure_publication` created.

    A replication connection just closed keeps its slot active for a moment: wait for it.
    """
    deadline = time.monotonic() + timeout_s
    with conn.cursor() as cur:
        while True:
            try:
                cur.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (settings.slot,),
                )
                break
            except psycopg2.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        cur.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(settings.publication)))
