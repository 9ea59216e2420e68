"""Foundation benchmark: cold ``unsilo up`` time, and SQLite snapshot throughput into Kafka.

Runs everything against a fresh broker and registry in a temporary data dir on free ports
(jars are linked from ./.unsilo, so nothing is downloaded), so the developer's running stack
is never touched. ``--skip-up`` instead uses an already running stack (``--bootstrap``,
``--registry-url``) and only adds a new uniquely named topic to it.

    python -m benchmarks.foundation [--rows 100000] [--skip-up] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
DEV_DATA = ROOT / ".unsilo"
RESULTS = ROOT / "benchmarks" / "results" / "foundation.json"
TABLE = "orders"
UNSILO = [shutil.which("unsilo") or "unsilo"]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 a moment ago (all bound at once, then released)."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def machine() -> dict[str, Any]:
    """The shape of the machine the numbers were measured on."""
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    total_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    return {
        "cpu_count": os.cpu_count(),
        "memory_total_mib": total_kib // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def make_database(path: Path, rows: int) -> float:
    """Write a ``rows``-row, 8-column legacy-style table into ``path``; returns seconds taken."""
    started = time.monotonic()
    rng = random.Random(42)
    base = dt.datetime(2024, 1, 1)
    conn = sqlite3.connect(path)
    conn.execute(
        f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount DECIMAL(12,2), "
        "order_date DATE, created_at TIMESTAMP, quantity INTEGER, weight REAL, note TEXT)"
    )
    moments = (base + dt.timedelta(seconds=rng.randrange(365 * 86400), microseconds=i) for i in range(rows))
    values = (
        (i, f"CUST-{rng.randrange(5000):05d}", f"{rng.randrange(10**8) / 100:.2f}", m.date().isoformat(),
         m.isoformat(sep=" "), rng.randrange(1, 100), rng.random() * 50, f"order {i}" if i % 3 else None)
        for i, m in enumerate(moments, start=1)
    )  # fmt: skip
    with conn:
        conn.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
    conn.close()
    return time.monotonic() - started


def json_logs(text: str) -> list[dict[str, Any]]:
    """The structlog JSON lines in a process's stderr (rich's summary dict uses single quotes)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"')]


def unsilo(config: Path, *args: str, timeout: float = 600) -> tuple[float, str]:
    """Run ``unsilo -c config args`` to completion; returns (seconds, stderr)."""
    started = time.monotonic()
    done = subprocess.run(
        [*UNSILO, "-c", str(config), *args], capture_output=True, text=True, timeout=timeout, env=clean_env()
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"unsilo {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def clean_env() -> dict[str, str]:
    """This environment without UNSILO_* variables (they would override the temp config)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("UNSILO_")}


def measure_up(config: Path) -> dict[str, Any]:
    """Time a cold ``unsilo up`` (fresh data dir, jars already present) until both are ready."""
    seconds, stderr = unsilo(config, "up")
    result: dict[str, Any] = {"seconds": round(seconds, 2)}
    for event in json_logs(stderr):
        if event.get("event") in ("kafka_started", "registry_started") and "seconds" in event:
            result[event["event"].replace("_started", "_seconds")] = event["seconds"]
    return result


def run_connector(config: Path, source: str, profile: Path | None) -> dict[str, Any]:
    """Run ``unsilo run <source> --until-idle``; wall time, peak RSS and what the runner reported."""
    argv = [*UNSILO, "-c", str(config), "run", source, "--until-idle"]
    if profile is not None:
        argv = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(profile), *argv]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
        hwm_kib = 0
        # Sample VmHWM every 50 ms. Not wait4's ru_maxrss: Linux carries the parent's peak RSS
        # over exec into it (the benchmark process's own 267 MiB was reported as the connector's).
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm_kib = max(hwm_kib, vm_hwm_kib(proc.pid))
            time.sleep(0.05)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"unsilo run exited {proc.returncode}:\n{stderr[-3000:]}")
    result: dict[str, Any] = {
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": round((hwm_kib or usage.ru_maxrss) / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    }
    reported = re.search(r"'events_per_s':\s*([\d.]+)", stderr)
    result["runner_events_per_s"] = float(reported.group(1)) if reported else None
    events = json_logs(stderr)
    stamps = {e["event"]: e["timestamp"] for e in events if "timestamp" in e}  # last one wins
    if "connector_started" in stamps and "snapshot_chunk_published" in stamps:  # start to last batch
        first = dt.datetime.fromisoformat(stamps["connector_started"])
        last = dt.datetime.fromisoformat(stamps["snapshot_chunk_published"])
        result["publish_seconds"] = round((last - first).total_seconds(), 2)
    result["batches"] = sum(1 for e in events if e.get("event") == "snapshot_chunk_published")
    return result


def vm_hwm_kib(pid: int) -> int:
    """The peak resident set size of ``pid`` so far (0 once it is gone)."""
    with contextlib.suppress(OSError):
        found = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(encoding="utf-8"))
        return int(found.group(1)) if found else 0
    return 0


def count_records(bootstrap: str, topic: str, timeout_s: float = 120) -> int:
    """Records in ``topic`` a read_committed consumer sees, read from the start to the end."""
    config = {"bootstrap.servers": bootstrap, "group.id": f"bench-count-{uuid.uuid4().hex[:8]}"}
    extra = {"isolation.level": "read_committed", "enable.auto.commit": False, "enable.partition.eof": True}
    consumer = Consumer({**config, **extra})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending, count = set(partitions), 0
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                else:
                    raise RuntimeError(f"reading {topic}: {error}")
        return count
    finally:
        consumer.close()


def write_config(tmp: Path, name: str, db: Path, args: argparse.Namespace) -> tuple[Path, str]:
    """A temp unsilo.yaml (fresh data dir, free ports, one SQLite source); returns it and bootstrap."""
    data_dir = tmp / "data"
    data_dir.mkdir()
    for jars in ("kafka-lib", "apicurio"):  # link the jars, so a cold start downloads nothing
        if (DEV_DATA / jars).is_dir():
            (data_dir / jars).symlink_to(DEV_DATA / jars, target_is_directory=True)
    kafka, controller, registry = free_ports(3)
    bootstrap = args.bootstrap if args.skip_up else f"127.0.0.1:{kafka}"
    url = args.registry_url if args.skip_up else f"http://127.0.0.1:{registry}/apis/ccompat/v7"
    local = {"data_dir": str(data_dir), "kafka_port": kafka, "controller_port": controller}
    source = {"name": name, "system": name, "kind": "sqlite", "url": f"sqlite:///{db}", "tables": [TABLE]}
    settings = {
        "local": {**local, "registry_port": registry},
        "kafka": {"bootstrap_servers": bootstrap},
        "registry": {"url": url},
        "sources": [source],
    }
    config = tmp / "unsilo.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config, bootstrap


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.foundation", description="Cold `unsilo up` and snapshot throughput."
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-up", action="store_true", help="use a running stack instead of a fresh one")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="with --skip-up")
    parser.add_argument(
        "--registry-url", default="http://127.0.0.1:8081/apis/ccompat/v7", help="with --skip-up"
    )
    parser.add_argument("--profile", action="store_true", help="run the connector under pyinstrument")
    args = parser.parse_args(argv)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="unsilo-bench-"))
    name, db = f"bench_{uuid.uuid4().hex[:8]}", tmp / "legacy.db"
    config, bootstrap = write_config(tmp, name, db, args)
    results: dict[str, Any] = {"machine": machine(), "rows": args.rows, "up": None}
    print(f"machine: {results['machine']}")
    try:
        if not args.skip_up:
            results["up"] = measure_up(config)
            print(f"cold unsilo up: {results['up']}")
        build = make_database(db, args.rows)
        print(f"sqlite source: {args.rows} rows written in {build:.2f}s")
        profile = RESULTS.with_name("foundation-profile.txt") if args.profile else None
        snap = run_connector(config, name, profile)
        snap["rows_per_s"] = round(args.rows / snap["wall_seconds"], 1)
        snap["topic"] = f"unsilo.raw.{name}.{TABLE}"
        snap["topic_records"] = count_records(bootstrap, snap["topic"])
        snap["verified"] = snap["topic_records"] == args.rows
        snap["profiled"] = profile is not None
        results["snapshot"] = {"db_build_seconds": round(build, 2), **snap}
        print(f"snapshot: {results['snapshot']}")
        if profile is not None:
            print(f"profile written to {profile}")
    finally:
        try:
            if not args.skip_up:
                unsilo(config, "down", timeout=180)
            shutil.rmtree(tmp, ignore_errors=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"warning: `unsilo -c {config} down` failed, {tmp} kept: {exc}", file=sys.stderr)
    out = RESULTS.with_name("foundation-profiled.json") if args.profile else RESULTS  # slower: apart
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
