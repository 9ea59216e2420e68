"""Freshness of store_sales at a steady workload: legacy commit -> read model updated.

Runs the demo pipeline on its own broker and registry (started in a temporary data
directory on free ports, so no earlier topic or connector position interferes): the
seeded estate, one connector per system, the canonicalizer and a
store_sales worker (child processes, as `unsilo demo` starts them), and the workload
simulator at ``--rate`` changes/s. Every 50 ms it samples how many till tickets the POS
database holds and how many store_sales counts; the k-th ticket's freshness is the time
the read model reached k minus the time the database reached k. Writes
``benchmarks/results/freshness.json``.

    python -m benchmarks.freshness [--rate 500] [--seconds 60]   (needs `unsilo install` once)
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from hub.config import KafkaSettings, LocalSettings, RegistrySettings, Settings
from hub.demo import demo_config
from hub.estate import SYSTEMS, WorkloadSimulator, create_estate
from hub.local import stack

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "freshness.json"


def tickets_in_pos(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM pos_ticket").fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unsilo-bench-fresh-"))
    settings = _fresh_stack_settings(workdir)
    stack.up(settings, PROJECT_ROOT)
    try:
        _measure(settings, workdir, args)
    finally:
        stack.down(settings, PROJECT_ROOT)


def _fresh_stack_settings(workdir: Path) -> Settings:
    """A broker and registry of its own, reusing the project's resolved jars."""
    ports = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    data = workdir / ".unsilo"
    data.mkdir()
    for jars in ("kafka-lib", "apicurio"):
        if (PROJECT_ROOT / ".unsilo" / jars).exists():
            (data / jars).symlink_to(PROJECT_ROOT / ".unsilo" / jars)
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{ports[0]}"),
        registry=RegistrySettings(url=f"http://127.0.0.1:{ports[2]}/apis/ccompat/v7"),
        local=LocalSettings(
            data_dir=data, kafka_port=ports[0], controller_port=ports[1], registry_port=ports[2]
        ),
    )


def _measure(settings: Settings, workdir: Path, args: argparse.Namespace) -> None:
    urls = create_estate(workdir / "estate", 42)
    read_url = f"sqlite:///{workdir / 'read.db'}"
    config = demo_config(settings, workdir, urls, read_url)
    read = create_engine(read_url)
    base = [sys.executable, "-m", "hub.cli", "--log-level", "warning", "-c", str(config)]
    for system in SYSTEMS:
        subprocess.run([*base, "run", system, "--until-idle"], check=True, capture_output=True)
    log = open(workdir / "children.log", "ab")  # noqa: SIM115
    children = [subprocess.Popen([*base, "canonicalize"], stdout=log, stderr=log)]
    children += [subprocess.Popen([*base, "run", s], stdout=log, stderr=log) for s in SYSTEMS]
    children.append(subprocess.Popen([*base, "project", "store_sales"], stdout=log, stderr=log))
    pos = Path(urls["sales"].removeprefix("sqlite:///"))

    def model_tickets() -> int:
        try:
            with read.connect() as conn:
                query = (
                    "SELECT COALESCE(SUM(CAST(tickets AS INTEGER)), 0) FROM store_sales WHERE period = 'day'"
                )
                return int(conn.execute(text(query)).scalar_one())
        except Exception:
            return 0

    try:
        baseline = tickets_in_pos(pos)
        deadline = time.monotonic() + 120
        while model_tickets() < baseline and time.monotonic() < deadline:
            time.sleep(0.5)
        stop = threading.Event()
        simulator = WorkloadSimulator(urls, 7, rate=args.rate)
        worker = threading.Thread(target=simulator.run, kwargs={"seconds": args.seconds, "stop": stop})
        source_samples: list[tuple[float, int]] = []
        model_samples: list[tuple[float, int]] = []
        worker.start()
        while worker.is_alive() or (model_samples and model_samples[-1][1] < source_samples[-1][1]):
            now = time.monotonic()
            source_samples.append((now, tickets_in_pos(pos)))
            model_samples.append((now, model_tickets()))
            time.sleep(0.05)
            if now > deadline + args.seconds + 120:
                break
        simulator.close()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
    # the time each count was first reached, on each side
    model_times, model_counts = [t for t, _ in model_samples], [c for _, c in model_samples]
    lags = []
    for reached_at, count in _first_reached(source_samples):
        if count <= baseline:
            continue
        i = bisect.bisect_left(model_counts, count)
        if i < len(model_counts):
            lags.append(model_times[i] - reached_at)
    lags.sort()
    made = source_samples[-1][1] - baseline
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rate_changes_per_s": args.rate,
        "seconds": args.seconds,
        "tickets_checked": len(lags),
        "tickets_made": made,
        "freshness_p50_ms": round(statistics.median(lags) * 1000) if lags else None,
        "freshness_p99_ms": round(lags[int(len(lags) * 0.99) - 1] * 1000) if lags else None,
        "freshness_max_ms": round(lags[-1] * 1000) if lags else None,
        "sampling_resolution_ms": 50,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _first_reached(samples: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(time, count) for each count the first time it was seen."""
    seen = -1
    out = []
    for at, count in samples:
        for value in range(seen + 1, count + 1):
            out.append((at, value))
        seen = max(seen, count)
    return out


if __name__ == "__main__":
    main()
