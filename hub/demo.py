"""``unsilo demo``: the retail group's legacy estate, unified live.

Brings up the local broker and registry; creates the demo estate once (finance, HR and
sales databases as SQLite files, see hub/estate); starts, as child processes, one
connector per system (``unsilo run``), the canonicalizer and identity resolver
(``unsilo canonicalize``), one worker per read model (``unsilo project``) and the HTTP API
with its dashboard (``unsilo api``); and keeps the estate changing at a seeded rate. Every
few seconds it prints the legacy figures next to the read models'; on Ctrl-C (or after
``--seconds``) it stops the workload, waits for the read models to catch up, says whether
they match, and stops what it started.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import structlog
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import make_url

from hub.config import Settings
from hub.errors import ConfigError, ServiceError
from hub.estate import SYSTEMS, TABLES, WorkloadSimulator, create_estate
from hub.estate.checks import Check, check_read_models
from hub.redact import without_password

log = structlog.get_logger(__name__)

READ_MODELS = ["store_sales", "inventory_position", "customer_360", "employee_directory"]


def demo_config(settings: Settings, workdir: Path, urls: dict[str, str], read_url: str) -> Path:
    """The demo's own unsilo.yaml: the user's Kafka, registry and API, the estate as sources
    (SQLite files by triggers, PostgreSQL by logical replication, MariaDB/MySQL by binlog)."""
    data = settings.model_dump(mode="json", exclude_none=True, exclude={"sources", "read_store"})
    data["read_store"] = {"url": read_url}
    data["sources"] = [
        {
            "name": system,
            "system": system,
            **_capture(urls[system]),
            "tables": list(TABLES[system]),
            "batch_size": 500,
        }
        for system in SYSTEMS
    ]
    path = workdir / "unsilo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _capture(url: str) -> dict[str, str]:
    """The connector kind and URL capturing the estate database at SQLAlchemy ``url``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"kind": "sqlite", "url": str(parsed.database)}
    kind = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(backend)
    if kind is None:
        raise ConfigError(
            f"the demo cannot capture a {backend} estate",
            hint="give SQLite (default), PostgreSQL or MariaDB/MySQL URLs",
        )
    plain = parsed.set(drivername="postgresql" if kind == "postgres" else "mysql")
    return {"kind": kind, "url": plain.render_as_string(hide_password=False)}


def _command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", "--log-level", "warning", "-c", str(config), *args]


def _spawn(config: Path, args: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _command(config, *args),
        stdout=open(log_file, "ab"),
        stderr=subprocess.STDOUT,
    )


def run_demo(
    settings: Settings,
    project_root: Path,
    *,
    seconds: float | None,
    rate: float,
    seed: int,
    estate: str | None = None,
    read_store: str | None = None,
) -> bool:
    """Run the demo; True when the read models matched the legacy databases at the end."""
    from hub.local import stack

    console = Console()
    was_running = any(status.running for status in stack.ps(settings, project_root))
    stack.up(settings, project_root)
    workdir = settings.local.data_dir.absolute() / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    where = workdir / "estate"
    urls = create_estate({system: estate for system in SYSTEMS} if estate else where, seed)
    read_url = read_store or f"sqlite:///{(workdir / 'read.db').absolute()}"
    config = demo_config(settings, workdir, urls, read_url)
    api = f"http://{settings.api.host}:{settings.api.port}"
    console.print(
        f"[bold]broker[/] {settings.kafka.bootstrap_servers}   "
        f"[bold]registry[/] {without_password(settings.registry.url)}"
    )
    shown = make_url(estate).render_as_string() if estate else where  # no password on screen
    console.print(f"[bold]legacy estate[/] {shown} (finance, hr, sales databases)")
    console.print(f"[bold]read models[/] {make_url(read_url).render_as_string()}: {', '.join(READ_MODELS)}")
    console.print(f"[bold]dashboard[/] {api}/dashboard   [bold]API[/] {api}/docs   logs in {workdir}")
    console.print("try: unsilo -c " + str(config) + " show customer_360 --limit 5   (Ctrl-C stops the demo)")

    children: list[subprocess.Popen[bytes]] = []
    simulator = WorkloadSimulator(urls, seed, rate=rate)
    stop = threading.Event()
    interrupted = False
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for system in SYSTEMS:  # the snapshot first, so every topic exists for the workers
            if subprocess.run(_command(config, "run", system, "--until-idle"), check=False).returncode:
                raise ServiceError(
                    f"the first capture of {system} failed", hint=f"see the output above and {workdir}"
                )
        children.append(_spawn(config, ["canonicalize"], workdir / "canonicalize.log"))
        children += [
            _spawn(config, ["run", system], workdir / f"connector-{system}.log") for system in SYSTEMS
        ]
        children += [
            _spawn(config, ["project", name], workdir / f"projection-{name}.log") for name in READ_MODELS
        ]
        children.append(_spawn(config, ["api"], workdir / "api.log"))
        workload = threading.Thread(
            target=simulator.run, kwargs={"seconds": seconds, "stop": stop}, daemon=True
        )
        workload.start()
        next_report = time.monotonic() + 10
        while workload.is_alive():
            workload.join(0.5)
            if time.monotonic() >= next_report:
                next_report += 10
                _report(console, check_read_models(urls, read_url))
            if any(child.poll() is not None for child in children):
                raise ServiceError("a demo process stopped", hint=f"see the logs in {workdir}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
    try:
        matched = _wait_until_matched(urls, read_url, timeout_s=20 if interrupted else 180)
        checks = check_read_models(urls, read_url)
        _report(console, checks)
        console.print(
            f"read models match the legacy databases: {'[green]yes[/]' if matched else '[red]no[/]'}"
        )
    finally:
        simulator.close()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        if not was_running:
            stack.down(settings, project_root)
    return matched


def _wait_until_matched(urls: dict[str, str], read_url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(check.matches for check in check_read_models(urls, read_url)):
            return True
        time.sleep(1.0)
    return False


def _report(console: Console, checks: list[Check]) -> None:
    table = Table("figure", "legacy databases", "read models", "")
    for check in checks:
        table.add_row(
            check.name, check.legacy, check.read_model, "[green]=[/]" if check.matches else "[yellow]~[/]"
        )
    console.print(table)
