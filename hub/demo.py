"""``unsilo demo``: a legacy shop captured live into Kafka and mirrored into a read model.

Brings up the local broker and registry, creates the shop database (SQLite) once, starts
the connector and the mirror projection as child processes (``unsilo run`` and
``unsilo project``), and changes the shop at a steady, seeded rate. Every few seconds it
prints what the shop holds next to what the read model holds; on Ctrl-C (or after
``--seconds``) it stops the workload, waits for the read model to catch up, says whether it
matches, and stops what it started.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import structlog
import yaml
from rich.console import Console
from sqlalchemy import create_engine, text

from hub.config import Settings
from hub.errors import ServiceError

log = structlog.get_logger(__name__)

ESTATE_SQL = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "shop.sql"
TABLES = ["stores", "products", "customers", "sales"]
STORES = [("S001", "LYON"), ("S002", "LILLE"), ("S003", "NANTES"), ("S004", "NICE")]


@dataclass(frozen=True)
class Totals:
    """What a reader checks: how many sales and how much revenue."""

    sales: int
    revenue: Decimal


def create_estate(path: Path, seed: int) -> None:
    """Create and fill the shop database if it does not exist yet."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    conn.executescript(ESTATE_SQL.read_text(encoding="utf-8"))
    conn.executemany("INSERT INTO stores VALUES (?, ?)", STORES)
    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?)",
        [(f"SKU{i:05d}", f"ITEM {i}", f"{rng.randint(100, 9999) / 100:.2f}") for i in range(1, 201)],
    )
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?)",
        [(f"C-{i:05d}", f"CUSTOMER {i}", f"c{i}@example.test", "2019-03-01") for i in range(1, 101)],
    )
    conn.commit()
    conn.close()


class Simulator:
    """Changes the shop like its tills and back office would, reproducibly from a seed."""

    def __init__(self, path: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.conn = sqlite3.connect(path, timeout=30)
        self.next_ticket = int(
            self.conn.execute("SELECT COALESCE(MAX(ticket_no), 0) + 1 FROM sales").fetchone()[0]
        )
        self.changes = 0

    def step(self) -> None:
        """One committed change: mostly till sales, sometimes a price change or a void."""
        roll = self.rng.random()
        if roll < 0.8:
            sku = f"SKU{self.rng.randint(1, 200):05d}"
            price = Decimal(
                self.conn.execute("SELECT unit_price FROM products WHERE sku = ?", (sku,)).fetchone()[0]
            )
            qty = self.rng.randint(1, 4)
            self.conn.execute(
                "INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self.next_ticket,
                    self.rng.choice(STORES)[0],
                    sku,
                    f"C-{self.rng.randint(1, 100):05d}",
                    qty,
                    str((price * qty).quantize(Decimal("0.01"))),
                    dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                ),
            )
            self.next_ticket += 1
        elif roll < 0.95:
            self.conn.execute(
                "UPDATE products SET unit_price = ? WHERE sku = ?",
                (f"{self.rng.randint(100, 9999) / 100:.2f}", f"SKU{self.rng.randint(1, 200):05d}"),
            )
        else:  # a voided ticket: the old system deletes the row
            self.conn.execute("DELETE FROM sales WHERE ticket_no = (SELECT MIN(ticket_no) FROM sales)")
        self.conn.commit()
        self.changes += 1

    def close(self) -> None:
        self.conn.close()


def shop_totals(path: Path) -> Totals:
    conn = sqlite3.connect(path, timeout=30)
    try:
        amounts = [Decimal(str(a)) for (a,) in conn.execute("SELECT amount FROM sales")]
    finally:
        conn.close()
    return Totals(len(amounts), sum(amounts, Decimal("0.00")))


def read_model_totals(url: str, table: str) -> Totals | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            amounts = [Decimal(str(a)) for (a,) in conn.execute(text(f"SELECT amount FROM {table}"))]
        return Totals(len(amounts), sum(amounts, Decimal("0.00")))
    except Exception:  # the projection has not created its table yet
        return None
    finally:
        engine.dispose()


def demo_config(settings: Settings, workdir: Path, shop: Path) -> Path:
    """The demo's own unsilo.yaml: the user's Kafka and registry, the shop as a source."""
    data = settings.model_dump(mode="json", exclude_none=True, exclude={"sources", "read_store"})
    data["read_store"] = {"url": f"sqlite:///{(workdir / 'read.db').absolute()}"}
    data["sources"] = [
        {"name": "shop", "system": "pos", "kind": "sqlite", "url": str(shop.absolute()), "tables": TABLES}
    ]
    path = workdir / "unsilo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _spawn(config: Path, args: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "--log-level", "warning", "-c", str(config), *args],
        stdout=open(log_file, "ab"),
        stderr=subprocess.STDOUT,
    )


def run_demo(
    settings: Settings, project_root: Path, *, seconds: float | None, rate: float, seed: int
) -> bool:
    """Run the demo; True when the read model matched the shop at the end."""
    from hub.local import stack

    console = Console()
    was_running = any(status.running for status in stack.ps(settings, project_root))
    stack.up(settings, project_root)
    workdir = settings.local.data_dir.absolute() / "demo"
    shop = workdir / "shop.db"
    create_estate(shop, seed)
    config = demo_config(settings, workdir, shop)
    read_url = f"sqlite:///{(workdir / 'read.db').absolute()}"
    console.print(
        f"[bold]broker[/]   {settings.kafka.bootstrap_servers}   [bold]registry[/] {settings.registry.url}"
    )
    console.print(f"[bold]shop[/]     {shop}  (the legacy POS database)")
    console.print(f"[bold]read model[/] {read_url}  (table mirror_pos_sales)")
    console.print(f"logs in {workdir}; topics unsilo.raw.pos.*; Ctrl-C to stop")

    snapshot = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "--log-level",
            "warning",
            "-c",
            str(config),
            "run",
            "shop",
            "--until-idle",
        ],
        check=False,
    )
    if snapshot.returncode != 0:
        raise ServiceError("the demo's first capture failed", hint=f"see the output above and {workdir}")
    children = [
        _spawn(config, ["run", "shop"], workdir / "connector.log"),
        _spawn(config, ["project", "mirror"], workdir / "projection.log"),
    ]
    simulator = Simulator(shop, seed)
    interrupted = False
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    next_report = started + 5
    try:
        while seconds is None or time.monotonic() - started < seconds:
            simulator.step()
            time.sleep(1.0 / rate)
            if time.monotonic() >= next_report:
                next_report += 5
                _report(console, shop, read_url, simulator.changes)
            if any(child.poll() is not None for child in children):
                raise ServiceError("a demo process stopped", hint=f"see the logs in {workdir}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        simulator.close()
        signal.signal(signal.SIGTERM, previous)
    try:
        matched = _wait_until_matched(shop, read_url, timeout_s=10 if interrupted else 60)
        _report(console, shop, read_url, simulator.changes)
        console.print(f"read model matches the shop: {'[green]yes[/]' if matched else '[red]no[/]'}")
    finally:
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


def _wait_until_matched(shop: Path, read_url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if read_model_totals(read_url, "mirror_pos_sales") == shop_totals(shop):
            return True
        time.sleep(0.5)
    return False


def _report(console: Console, shop: Path, read_url: str, changes: int) -> None:
    source = shop_totals(shop)
    model = read_model_totals(read_url, "mirror_pos_sales") or Totals(0, Decimal("0"))
    console.print(
        f"changes made {changes:>6}   shop: {source.sales} sales, {source.revenue} revenue   "
        f"read model: {model.sales} sales, {model.revenue} revenue"
    )
