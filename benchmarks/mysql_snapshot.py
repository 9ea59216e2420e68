"""MySQL connector benchmark: snapshot throughput of a large MariaDB table, and streaming latency.

Runs against a throwaway MariaDB (Debian's ``mariadbd``, temporary data dir, free port) or
``--mysql-url``, and an already running broker and registry (``--bootstrap``,
``--registry-url``; default the dev stack), where it adds uniquely named topics only.

1. **Snapshot**: a ``--rows``-row, 10-column table (integer key, text, ``DECIMAL(12,2)``,
   ``DATE``, ``DATETIME(6)``, integer, double, nullable text, ``ENUM``, ``TIMESTAMP(3)``),
   read by ``unsilo run <source> --until-idle``: wall time and rows/s from process start to
   exit, the runner's own events/s, CPU seconds and peak RSS of the connector process, and
   the records a read_committed consumer counts. The connector alone (``poll`` in this
   process, no Kafka) is timed too, to tell its cost from the runner's.
2. **Streaming latency**: with ``unsilo run`` streaming, one client commits ``--rate`` single-row
   inserts per second for ``--seconds``. The topic is created with
   ``message.timestamp.type=LogAppendTime``, so each record carries the broker's append time;
   latency is that minus ``source.ts_ms`` (the binlog's commit time, whole seconds on MariaDB),
   and minus the row's own ``NOW(6)`` (the commit time to the microsecond).

    python -m benchmarks.mysql_snapshot [--rows 1000000] [--rate 2000] [--seconds 20] [--profile]

Results go to ``benchmarks/results/mysql.json`` (``mysql-profiled.json`` and
``mysql-profile.txt`` with ``--profile``, which runs the snapshot under pyinstrument).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.foundation import UNSILO, clean_env, count_records, machine, run_connector
from connectors.mysql import MysqlConnector
from hub.config import RegistrySettings, SourceSettings
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.fixtures_mysql import server_connection, start_mariadb, stop_mariadb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "mysql.json"
ORDERS = (
    "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(20) NOT NULL, amount DECIMAL(12,2), "
    "order_date DATE, created_at DATETIME(6), quantity INT, weight DOUBLE, note VARCHAR(100), "
    "status ENUM('new','paid','shipped'), updated_at TIMESTAMP(3) NULL)"
)
FILL = (
    "INSERT INTO orders SELECT seq, CONCAT('CUST-', LPAD(seq % 5000, 5, '0')), "
    "(seq * 7919 % 10000000) / 100, DATE('2024-01-01') + INTERVAL (seq % 365) DAY, "
    "TIMESTAMP('2024-01-01') + INTERVAL seq SECOND + INTERVAL seq MICROSECOND, seq % 100, "
    "(seq % 5000) / 3.0, IF(seq % 3 = 0, NULL, CONCAT('order ', seq)), "
    "ELT(1 + seq % 3, 'new', 'paid', 'shipped'), TIMESTAMP('2024-06-01') + INTERVAL seq SECOND "
    "FROM seq_{first}_to_{last}"
)
TICKS = (
    "CREATE TABLE ticks (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, written_at DATETIME(6) NOT NULL)"
)


def connect(url: str, database: str | None = None) -> Any:
    return server_connection(url, database=database)


def make_table(url: str, database: str, rows: int) -> float:
    """Create the database with ``orders`` (``rows`` rows, by the SEQUENCE engine) and ``ticks``."""
    started = time.monotonic()
    conn = connect(url)
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
        cursor.execute(f"USE `{database}`")
        cursor.execute(ORDERS)
        cursor.execute(TICKS)
        for first in range(0, rows, 250_000):  # in slices: one huge transaction would bloat the binlog cache
            count = min(250_000, rows - first)
            cursor.execute(FILL.format(first=first + 1, last=first + count))
    conn.close()
    return time.monotonic() - started


def connector_only(url: str, database: str, batch: int) -> dict[str, Any]:
    """Snapshot the table with the connector's ``poll`` alone (no Kafka, no Avro)."""
    source = SourceSettings(name="bench", system="bench", kind="mysql", url=f"{url.rstrip('/')}/{database}",
                            tables=["orders"], batch_size=batch)  # fmt: skip
    connector = MysqlConnector(source)
    connector.open(None)
    started, rows = time.monotonic(), 0
    while (polled := connector.poll(batch)) is not None:
        rows += len(polled.changes)
    seconds = time.monotonic() - started
    connector.close()
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def write_config(tmp: Path, url: str, database: str, name: str, args: argparse.Namespace) -> Path:
    db_url = f"{url.rstrip('/')}/{database}"
    common = {"kind": "mysql", "url": db_url}
    sources = [
        {"name": f"{name}_snap", "system": name, "tables": ["orders"], **common},
        {
            "name": f"{name}_live",
            "system": f"{name}_live",
            "tables": ["ticks"],
            "poll_interval_s": 0.01,
            **common,
        },
    ]
    settings = {
        "kafka": {"bootstrap_servers": args.bootstrap},
        "registry": {"url": args.registry_url},
        "sources": sources,
    }
    config = tmp / "unsilo.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config


def create_append_time_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"message.timestamp.type": "LogAppendTime", "retention.ms": "-1", "cleanup.policy": "delete"}
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)


def read_all(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is None:
                    messages.append(message)
                elif message.error().code() == KafkaError._PARTITION_EOF:
                    return messages
        return messages
    finally:
        consumer.close()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100)
    return {"p50": round(cut[49], 1), "p99": round(cut[98], 1), "max": round(ordered[-1], 1)}


def measure_streaming(
    config: Path, url: str, database: str, name: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Commit ``rate`` inserts/s while ``unsilo run`` streams; latency from each record's append time."""
    topic = f"unsilo.raw.{name}_live.ticks"
    create_append_time_topic(args.bootstrap, topic)
    log = config.with_name("live.log")
    with log.open("wb") as stderr:
        argv = [*UNSILO, "-c", str(config), "run", f"{name}_live"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=clean_env())
    writer = connect(url, database)
    try:
        with writer.cursor() as cursor:  # warm up: the connector is streaming once this arrives
            cursor.execute("INSERT INTO ticks (n, written_at) VALUES (0, NOW(6))")
        deadline = time.monotonic() + 120
        while count_records(args.bootstrap, topic, timeout_s=10) < 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the streaming connector did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        total = args.rate * args.seconds
        started = time.monotonic()
        with writer.cursor() as cursor:
            for n in range(1, total + 1):
                cursor.execute("INSERT INTO ticks (n, written_at) VALUES (%s, NOW(6))", (n,))
                ahead = started + n / args.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        achieved = total / (time.monotonic() - started)
        deadline = time.monotonic() + 120
        while count_records(args.bootstrap, topic, timeout_s=10) < total + 1 and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        writer.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    serde = AvroSerde(ConfluentRegistry(RegistrySettings(url=args.registry_url)))
    by_ts, by_commit, types = [], [], set()
    for message in read_all(args.bootstrap, topic)[1:]:  # skip the warm-up row
        value = serde.decode(message.value())
        kind, appended = message.timestamp()
        types.add(kind)
        by_ts.append(appended - value["source"]["ts_ms"])
        by_commit.append(appended - value["after"]["written_at"].timestamp() * 1000)
    return {
        "rate_target": args.rate,
        "rate_achieved": round(achieved, 1),
        "changes": total,
        "records": len(by_ts),
        "timestamp_is_log_append_time": types == {2},
        "latency_ms_vs_source_ts_ms": percentiles(by_ts),
        "latency_ms_vs_commit_now6": percentiles(by_commit),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mysql_snapshot", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=2000, help="changes per second while streaming")
    parser.add_argument("--seconds", type=int, default=20, help="how long to write at --rate")
    parser.add_argument("--mysql-url", help="an existing server (root-like user) instead of a throwaway one")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry-url", default="http://127.0.0.1:8081/apis/ccompat/v7")
    parser.add_argument("--profile", action="store_true", help="run the snapshot under pyinstrument")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="unsilo-mysqlbench-"))
    name, database = f"mybench_{uuid.uuid4().hex[:8]}", f"bench_{uuid.uuid4().hex[:8]}"
    server = None
    url = args.mysql_url
    if url is None:  # commits fsync the redo log once a second, as many busy legacy servers do
        server, url = start_mariadb(tmp / "mariadb", "--innodb-flush-log-at-trx-commit=2",
                                    "--innodb-buffer-pool-size=1G")  # fmt: skip
    results: dict[str, Any] = {"machine": machine(), "rows": args.rows, "server": None}
    try:
        conn = connect(url)
        results["server"] = conn.get_server_info()
        conn.close()
        build = make_table(url, database, args.rows)
        print(f"mariadb {results['server']}: {args.rows} rows written in {build:.1f}s")
        config = write_config(tmp, url, database, name, args)
        profile = RESULTS.with_name("mysql-profile.txt") if args.profile else None
        snap = run_connector(config, f"{name}_snap", profile)
        snap["rows_per_s"] = round(args.rows / snap["wall_seconds"], 1)
        snap["topic"] = f"unsilo.raw.{name}.orders"
        snap["topic_records"] = count_records(args.bootstrap, snap["topic"])
        snap["verified"] = snap["topic_records"] == args.rows
        results["snapshot"] = {"db_build_seconds": round(build, 2), "profiled": args.profile, **snap}
        print(f"snapshot: {results['snapshot']}")
        results["connector_only"] = connector_only(url, database, 2000)
        print(f"connector alone: {results['connector_only']}")
        if not args.profile:
            results["streaming"] = measure_streaming(config, url, database, name, args)
            print(f"streaming: {results['streaming']}")
    finally:
        try:
            conn = connect(url)
            with conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            conn.close()
        finally:
            if server is not None:
                stop_mariadb(server)
    out = RESULTS.with_name("mysql-profiled.json") if args.profile else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
