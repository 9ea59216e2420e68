"""Sustained load: a mixed workload at a fixed rate for minutes; memory stays flat, lag returns to 0.

A throwaway PostgreSQL 15 holds an ``orders`` table (``--rows`` rows, the 10 columns of
benchmarks/postgres_snapshot.py). After its snapshot, ``unsilo run`` streams it and
``unsilo project mirror`` keeps a SQLite read model of it, both as processes, while the
workload writes ``--rate`` changes/s (transactions of 10: 60 % updates, 25 % inserts, 15 %
deletes) for ``--seconds``. Every ``--every`` seconds: each process's RSS (from /proc) and
the read model's distance to the log (records behind, from the read store's offsets). When
the load stops: how long until the read model has applied everything and equals the
table (row count and sum of quantities). Reports RSS at the start, the end and the peak of
the load, the RSS slope over its second half (MiB/min), and the drain time.

    python -m benchmarks.sustained_load [--rate 2000] [--seconds 600] [--rows 100000]

Uses the running broker and registry (default the dev stack). Writes
``benchmarks/results/sustained_load.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from sqlalchemy import create_engine, text

from benchmarks.foundation import UNSILO, clean_env, machine
from benchmarks.postgres_snapshot import TABLE, make_table
from hub.config import Settings, load_settings
from hub.lag_monitor import LagMonitor
from hub.lag_source import LagSource
from hub.pipeline import PipelineReader
from tests.fixtures_postgres import LocalPostgres, with_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "sustained_load.json"


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Workload:
    """Mixed changes at a fixed rate on an absolute schedule, in transactions of 10."""

    def __init__(self, url: str, rows: int, rate: int, seed: int = 7) -> None:
        self.url, self.rate = url, rate
        self.next_id = rows + 1
        self.live = list(range(1, rows + 1))
        self.rng = random.Random(seed)
        self.changes = self.late = 0
        self.stop = threading.Event()

    def run(self, seconds: float) -> None:
        conn = psycopg2.connect(self.url)
        conn.autocommit = False
        per_txn = 10
        interval = per_txn / self.rate
        started = time.monotonic()
        n = 0
        with conn.cursor() as cur:
            while not self.stop.is_set() and time.monotonic() - started < seconds:
                pause = started + n * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    self.late += 1
                for _ in range(per_txn):
                    self._change(cur)
                conn.commit()
                self.changes += per_txn
                n += 1
        conn.close()

    def _change(self, cur: Any) -> None:
        pick = self.rng.random()
        if pick < 0.25 or len(self.live) < 100:
            cur.execute(
                f"INSERT INTO {TABLE} (id, customer, amount, quantity, note, paid) "
                "VALUES (%s, 'CUST-NEW', 1.50, 1, 'inserted', false)",
                (self.next_id,),
            )
            self.live.append(self.next_id)
            self.next_id += 1
        elif pick < 0.40:
            index = self.rng.randrange(len(self.live))
            self.live[index], self.live[-1] = self.live[-1], self.live[index]
            cur.execute(f"DELETE FROM {TABLE} WHERE id = %s", (self.live.pop(),))
        else:
            row = self.live[self.rng.randrange(len(self.live))]
            cur.execute(f"UPDATE {TABLE} SET quantity = quantity + 1 WHERE id = %s", (row,))


def write_config(tmp: Path, name: str, url: str, args: argparse.Namespace) -> Path:
    settings = {
        "kafka": {"bootstrap_servers": args.bootstrap},
        "registry": {"url": args.registry_url},
        "local": {"data_dir": str(tmp / "data")},
        "read_store": {"url": f"sqlite:///{tmp / 'read.db'}"},
        "sources": [{"name": name, "system": name, "kind": "postgres", "url": url, "tables": [TABLE]}],
    }
    config = tmp / "unsilo.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config


def behind(reader: PipelineReader) -> int:
    """Records of the log the mirror read model has not applied."""
    return sum(f.behind for f in reader.freshness() if f.read_model == "mirror")


def table_figures(engine_url: str, table: str) -> tuple[int, int]:
    engine = create_engine(engine_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text(f'SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM "{table}"')).one()
            return int(found[0]), int(found[1])
    finally:
        engine.dispose()


def source_figures(url: str) -> tuple[int, int]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM {TABLE}")
            count, total = cur.fetchone()
            return int(count), int(total)
    finally:
        conn.close()


def run(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, Any]:
    name = f"load_{uuid.uuid4().hex[:8]}"
    make_table(url, args.rows)
    config = write_config(tmp, name, url, args)
    settings: Settings = load_settings(config)
    subprocess.run([*UNSILO, "-c", str(config), "run", name, "--until-idle"], check=True, env=clean_env(),
                   stdout=subprocess.DEVNULL)  # fmt: skip
    logs = {n: open(tmp / f"{n}.log", "wb") for n in ("connector", "projection")}  # noqa: SIM115
    procs = {
        "connector": subprocess.Popen([*UNSILO, "-c", str(config), "run", name], stdout=logs["connector"],
                                      stderr=subprocess.STDOUT, env=clean_env()),
        "projection": subprocess.Popen([*UNSILO, "-c", str(config), "project", "mirror"],
                                       stdout=logs["projection"], stderr=subprocess.STDOUT, env=clean_env()),
    }  # fmt: skip
    source = LagSource(settings.kafka)
    reader = PipelineReader(settings, source, LagMonitor(settings, source=source))
    mirror = f"mirror_{name}_{TABLE}"
    samples: list[dict[str, Any]] = []
    workload = Workload(url, args.rows, args.rate)
    try:
        time.sleep(args.warmup)
        writer = threading.Thread(target=workload.run, args=(args.seconds,), daemon=True)
        started = time.monotonic()
        writer.start()
        while writer.is_alive():
            writer.join(args.every)
            sample = {"t_s": round(time.monotonic() - started, 1), "changes": workload.changes}
            sample.update({f"{n}_rss_mib": rss_mib(p.pid) for n, p in procs.items()})
            sample["read_model_behind"] = behind(reader)
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            if any(p.poll() is not None for p in procs.values()):
                raise RuntimeError(f"a process stopped; see {tmp}")
        load_s = time.monotonic() - started
        stopped = time.monotonic()
        expected = source_figures(url)
        drained_s = None
        while time.monotonic() - stopped < args.drain_timeout:
            if behind(reader) == 0 and table_figures(settings.read_store.url, mirror) == expected:
                drained_s = round(time.monotonic() - stopped, 1)
                break
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(60)
        for handle in logs.values():
            handle.close()
    half = [s for s in samples if s["t_s"] >= load_s / 2]
    return {
        "rate": args.rate,
        "seconds": round(load_s, 1),
        "changes": workload.changes,
        "achieved_changes_per_s": round(workload.changes / load_s, 1),
        "late_txns": workload.late,
        "rss_mib": {n: summary([s[f"{n}_rss_mib"] for s in samples], half, n) for n in procs},
        "max_read_model_behind": max((s["read_model_behind"] for s in samples), default=0),
        "drained_after_stop_s": drained_s,
        "read_model_equals_source": drained_s is not None,
        "samples": samples,
    }


def summary(values: list[float | None], half: list[dict[str, Any]], name: str) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    tail = [(s["t_s"], s[f"{name}_rss_mib"]) for s in half if s[f"{name}_rss_mib"] is not None]
    slope = None
    if len(tail) >= 2 and tail[-1][0] > tail[0][0]:
        slope = round((tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0]) * 60, 2)
    return {"start": known[0] if known else None, "end": known[-1] if known else None,
            "peak": max(known, default=None), "second_half_slope_mib_per_min": slope}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sustained_load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=int, default=2000, help="changes/s")
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the load lasts")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the table before the load")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry-url", default="http://127.0.0.1:8081/apis/ccompat/v7")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unsilo-load-") as tmp:
        server = LocalPostgres().start()
        try:
            database = f"load_{uuid.uuid4().hex[:8]}"
            admin = psycopg2.connect(server.url)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')
            admin.close()
            result = {"machine": machine(), **run(args, Path(tmp), with_database(server.url, database))}
        finally:
            server.stop()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    printed = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(printed, indent=2))
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
