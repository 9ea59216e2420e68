"""SQLAlchemy URLs as users write them: ``postgresql://`` and ``mysql://`` with no driver named.

SQLAlchemy 2.1 picks psycopg (3) and mysqlclient for those, neither of which Unsilo
installs; it depends on psycopg2 (PostgreSQL replication) and PyMySQL (binlogs), so a URL
naming no driver gets one of these. A URL naming its driver is left as it is.
"""

from __future__ import annotations

from sqlalchemy import URL, make_url

DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg2",
    "postgres": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def engine_url(url: str | URL) -> URL:
    """``url`` with the installed driver for its database when it names none."""
    parsed = make_url(url)
    driver = DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed
