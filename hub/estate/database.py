"""Where the demo estate's three databases live, and how they are created and read.

The DDL is the SQL in ``deploy/demo/estate/<system>.sql`` (``<system>.mariadb.sql`` where
MariaDB needs other types); tables are then reflected, so SQLAlchemy Core statements are
built from the database's own columns and every identifier is quoted as its dialect wants.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, MetaData, Table, create_engine, event, exc, inspect, select
from sqlalchemy.engine import make_url

from hub.errors import ConfigError, SourceUnavailableError
from hub.estate.seed import seed_rows

log = structlog.get_logger(__name__)

ESTATE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "estate"
SYSTEMS: tuple[str, ...] = ("finance", "hr", "sales")
TABLES: dict[str, tuple[str, ...]] = {
    "finance": ("AR_CUSTOMER", "AR_INVOICE", "AR_PAYMENT", "GL_ACCOUNT"),
    "hr": ("DEPT", "EMP"),
    "sales": (
        "crm_customer",
        "product",
        "store",
        "sales_order",
        "order_line",
        "pos_ticket",
        "stock_movement",
    ),
}
DEFAULT_SEED = 42
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
_ANSI_QUOTES = "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')"
# The drivers the project installs (SQLAlchemy 2.1 would pick psycopg 3 and mysqlclient).
_DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def estate_urls(where: Mapping[str, str] | str | os.PathLike[str]) -> dict[str, str]:
    """One SQLAlchemy URL per system: given as a mapping, or SQLite files in a directory."""
    if isinstance(where, Mapping):
        missing = [system for system in SYSTEMS if system not in where]
        unknown = sorted(set(where) - set(SYSTEMS))
        if missing or unknown:
            raise ConfigError(
                f"estate URLs must name exactly the systems {', '.join(SYSTEMS)}"
                f" (missing: {missing or 'none'}, unknown: {unknown or 'none'})",
                hint="give one SQLAlchemy URL per system, or a directory for SQLite files",
            )
        return {system: sqlalchemy_url(where[system]) for system in SYSTEMS}
    if "://" in str(where):
        raise ConfigError(
            f"{where} is one URL; the estate has three databases",
            hint="give {'finance': url, 'hr': url, 'sales': url} (one URL may repeat), or a directory",
        )
    directory = Path(where).absolute()
    return {system: f"sqlite:///{directory / f'{system}.db'}" for system in SYSTEMS}


def sqlalchemy_url(url: str) -> str:
    """``url`` naming a driver the project installs (``mysql://`` -> PyMySQL); a path -> SQLite."""
    if "://" not in url:
        return f"sqlite:///{Path(url).absolute()}"
    scheme, rest = url.split("://", 1)
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def connect(url: str) -> Engine:
    """An engine for one estate database (SQLite: WAL-friendly, waits for a busy writer)."""
    url = sqlalchemy_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return engine


def is_mysql(engine: Engine) -> bool:
    return engine.dialect.name in ("mysql", "mariadb")


def ddl_file(system: str, dialect: str) -> Path:
    """The DDL file for ``system`` on ``dialect`` (``sqlite``, ``postgresql``, ``mysql``...)."""
    if dialect in ("mysql", "mariadb"):
        special = ESTATE_DIR / f"{system}.mariadb.sql"
        if special.exists():
            return special
    return ESTATE_DIR / f"{system}.sql"


def ddl_statements(system: str, dialect: str) -> list[str]:
    """The statements of ``system``'s DDL file, comments removed, one string each."""
    text = _COMMENTS.sub("", ddl_file(system, dialect).read_text(encoding="utf-8"))
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def reflect(engine: Engine, system: str) -> dict[str, Table]:
    """``system``'s tables as the database declares them."""
    metadata = MetaData()
    with warnings.catch_warnings():  # SQLite stores DECIMAL as REAL; figures read cents instead
        warnings.simplefilter("ignore", exc.SAWarning)
        metadata.reflect(engine, only=list(TABLES[system]))
    return {name: metadata.tables[name] for name in TABLES[system]}


def create_estate(
    where: Mapping[str, str] | str | os.PathLike[str],
    seed: int = DEFAULT_SEED,
    *,
    reset: bool = False,
    dirty: bool = False,
) -> dict[str, str]:
    """Create and seed the three databases; return their URLs.

    A database that already holds its system's tables is left as it is (the demo resumes);
    ``reset`` drops those tables first. ``dirty`` seeds one row no mapping can accept.
    """
    urls = estate_urls(where)
    for url in urls.values():
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    rows = seed_rows(seed, dirty=dirty)
    for system in SYSTEMS:
        engine = connect(urls[system])
        try:
            _create_system(engine, system, rows[system], reset=reset)
        except exc.OperationalError as error:
            raise SourceUnavailableError(
                f"cannot create the {system} database at {engine.url.render_as_string()}: {error.orig}",
                hint="check that the database server runs and the URL's user may create tables",
            ) from error
        finally:
            engine.dispose()
    log.info("estate_ready", seed=seed, systems=list(SYSTEMS))
    return urls


def _create_system(
    engine: Engine, system: str, rows: dict[str, list[dict[str, Any]]], *, reset: bool
) -> None:
    present = set(inspect(engine).get_table_names()) & set(TABLES[system])
    if present and not reset:
        if present == set(TABLES[system]):
            log.info("estate_system_exists", system=system)
            return
        raise ConfigError(
            f"the {system} database holds only some of the estate's tables: {sorted(present)}",
            hint="create the estate with reset=True, or point it at an empty database",
        )
    with engine.begin() as conn:
        for name in reversed(TABLES[system]):
            if name in present:
                Table(name, MetaData()).drop(conn)
        mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() if is_mysql(engine) else None
        if mode is not None:
            conn.exec_driver_sql(_ANSI_QUOTES)
        for statement in ddl_statements(system, engine.dialect.name):
            conn.exec_driver_sql(statement)
        if mode is not None:  # reflection reads SHOW CREATE TABLE, which expects backticks
            conn.exec_driver_sql("SET SESSION sql_mode = %s", (mode,))
    tables = reflect(engine, system)
    with engine.begin() as conn:
        for name in TABLES[system]:
            if rows.get(name):
                conn.execute(tables[name].insert(), rows[name])
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:  # readers (the connector) and the writer side by side
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    log.info("estate_system_created", system=system, rows={name: len(rows.get(name, [])) for name in rows})


def estate_columns(urls: Mapping[str, str]) -> dict[str, list[str]]:
    """Each estate table's columns as the databases declare them, keyed ``system.table``."""
    columns: dict[str, list[str]] = {}
    for system in SYSTEMS:
        engine = connect(urls[system])
        try:
            inspector = inspect(engine)
            for table in TABLES[system]:
                columns[f"{system}.{table}"] = [column["name"] for column in inspector.get_columns(table)]
        finally:
            engine.dispose()
    return columns


def read_tables(url: str, system: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``system``'s tables, in primary-key order (to compare two estates)."""
    engine = connect(url)
    try:
        tables = reflect(engine, system)
        with engine.connect() as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore", exc.SAWarning)
            return {
                name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
                for name, table in tables.items()
            }
    finally:
        engine.dispose()
