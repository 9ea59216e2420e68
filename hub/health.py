"""Is each component up? The broker, the schema registry and the read store, with the address tried.

Every probe has a short timeout and never raises: a component that does not answer is
reported down with the address that was tried and why, for `/health/ready`, the dashboard
and `unsilo status`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import httpx
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hub.config import Settings
from hub.lag_source import quiet_config
from hub.redact import without_password
from hub.sql_urls import engine_url


@dataclass(frozen=True)
class Component:
    """One component's health."""

    name: str
    address: str
    up: bool
    detail: str = ""
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_broker(settings: Settings, admin: AdminClient | None = None) -> Component:
    address = settings.kafka.bootstrap_servers
    started = time.monotonic()
    try:
        client = admin or AdminClient(quiet_config(settings.kafka.client_config()))
        metadata = client.list_topics(timeout=settings.api.check_timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        why = error.str() if isinstance(error, KafkaError) else str(exc)
        return Component("broker", address, False, f"no broker answered ({why})")
    if not metadata.brokers:
        return Component("broker", address, False, "no broker in the metadata")
    return Component("broker", address, True, f"{len(metadata.brokers)} broker(s)", _ms(started))


def check_registry(settings: Settings) -> Component:
    address = without_password(settings.registry.url)
    auth = None
    if settings.registry.username and settings.registry.password is not None:
        auth = (settings.registry.username, settings.registry.password.get_secret_value())
    started = time.monotonic()
    try:
        response = httpx.get(
            address.rstrip("/") + "/subjects", timeout=settings.api.check_timeout_s, auth=auth
        )
    except httpx.HTTPError as exc:
        return Component("registry", address, False, f"did not answer ({type(exc).__name__})")
    if response.status_code != 200:
        return Component("registry", address, False, f"answered HTTP {response.status_code}")
    return Component("registry", address, True, "answering", _ms(started))


def check_read_store(settings: Settings) -> Component:
    url = settings.read_store.url
    try:
        address = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return Component("read store", url, False, "not a SQLAlchemy URL")
    started = time.monotonic()
    try:
        engine = create_engine(engine_url(url), connect_args=_connect_args(url, settings.api.check_timeout_s))
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        return Component("read store", address, False, f"cannot connect ({type(exc).__name__})")
    return Component("read store", address, True, "answering", _ms(started))


def check_all(settings: Settings, *, read_store: bool = True) -> list[Component]:
    """Probe the broker, the registry (and the read store) in parallel."""
    checks = [check_broker, check_registry] + ([check_read_store] if read_store else [])
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return list(pool.map(lambda check: check(settings), checks))


def _connect_args(url: str, timeout_s: float) -> dict[str, object]:
    if url.startswith("sqlite"):
        return {"timeout": timeout_s}
    if url.startswith(("postgresql", "mysql", "mariadb")):
        return {"connect_timeout": max(1, int(timeout_s))}
    return {}


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
