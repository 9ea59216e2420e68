"""PostgreSQL benchmark: snapshot throughput into Kafka, and streaming capture latency.

1. **Snapshot**: a ``--rows``-row, 10-column table (bigint key, text, numeric(12,2), date,
   timestamptz, integer, double precision, text, boolean, uuid) is snapshotted by
   ``unsilo run <source> --until-idle``: wall time and rows/s (process start to exit), the
   runner's events/s, CPU seconds and peak RSS of the connector process; a read_committed
   consumer then counts the topic (``verified``). The connector alone (``poll`` in a loop,
   no Kafka) is timed on the same table too, to show what the source side costs.
2. **Streaming latency**: with the connector running, ``--rate`` changes/s (transactions of
   ``--per-txn`` updates every few ms) for ``--seconds``; each event's latency is the Kafka
   append time of its record (the topic is set to ``LogAppendTime``) minus ``source.ts_ms``,
   the commit time in PostgreSQL. Reports p50/p99/max.

Uses the running broker and registry (``--bootstrap``, ``--registry-url``; default the dev
stack, where it adds one uniquely named topic) and a throwaway PostgreSQL 15 with fsync on
(or ``--postgres-url``, where it creates and drops one database). Results go to
``benchmarks/results/postgres.json``.

    python -m benchmarks.postgres_snapshot [--rows 1000000] [--rate 2000] [--profile]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from benchmarks.foundation import UNSILO, clean_env, count_records, machine, run_connector
from connectors.postgres import PostgresConnector
from hub.config import RegistrySettings, SourceSettings
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.fixtures_postgres import LocalPostgres, with_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "postgres.json"
TABLE = "orders"


def make_table(url: str, rows: int) -> float:
    """Create and fill the 10-column table server-side; returns seconds taken."""
    started = time.monotonic()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), "
            "order_date date, created_at timestamptz, quantity integer, weight double precision, "
            "note text, paid boolean, ref uuid)"
        )
        cur.execute(
            f"INSERT INTO {TABLE} SELECT i, 'CUST-' || lpad((i %% 5000)::text, 5, '0'), "
            "round((random() * 1000000)::numeric, 2), date '2024-01-01' + (i %% 365), "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '31 seconds', 1 + i %% 99, "
            "random() * 50, CASE WHEN i %% 3 = 0 THEN NULL ELSE 'order ' || i END, i %% 2 = 0, "
            "md5(i::text)::uuid FROM generate_series(1, %s) i",
            (rows,),
        )
        cur.execute(f"ANALYZE {TABLE}")
    conn.close()
    return time.monotonic() - started


def connector_only(url: str, rows: int, batch: int) -> dict[str, Any]:
    """Snapshot the table with the connector alone (its own slot and publication), no Kafka."""
    source = SourceSettings(
        name=f"solo_{uuid.uuid4().hex[:6]}", system="bench", kind="postgres", url=url, tables=[TABLE]
    )
    connector = PostgresConnector(source)
    connector.open(None)
    started, seen = time.monotonic(), 0
    try:
        while (got := connector.poll(batch)) is not None:
            seen += len(got.changes)
            connector.committed(got.position)
        seconds = time.monotonic() - started
    finally:
        connector.uninstall()
        connector.close()
    return {"rows": seen, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def write_config(tmp: Path, name: str, url: str, args: argparse.Namespace) -> Path:
    source = {"name": name, "system": name, "kind": "postgres", "url": url, "tables": [TABLE]}
    settings = {
        "kafka": {"bootstrap_servers": args.bootstrap},
        "registry": {"url": args.registry_url},
        "local": {"data_dir": str(tmp / "data")},
        "sources": [source],
    }
    config = tmp / "unsilo.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config


def use_append_time(bootstrap: str, topic: str) -> None:
    """Stamp the topic's records with the broker's append time (instead of the producer's)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(
        "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = []
    for p in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends.append(TopicPartition(topic, p, high))
    return ends


def write_changes(url: str, rows: int, rate: int, per_txn: int, seconds: float) -> dict[str, Any]:
    """``rate`` updates/s in transactions of ``per_txn``, on an absolute schedule."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    interval = per_txn / rate
    txns = int(seconds * rate / per_txn)
    started = time.monotonic()
    late = 0
    with conn.cursor() as cur:
        for n in range(txns):
            due = started + n * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                late += 1
            first = 1 + (n * per_txn) % (rows - per_txn)
            cur.execute(
                f"UPDATE {TABLE} SET quantity = quantity + 1 WHERE id BETWEEN %s AND %s",
                (first, first + per_txn - 1),
            )
    elapsed = time.monotonic() - started
    conn.close()
    return {"changes": txns * per_txn, "seconds": round(elapsed, 2), "late_txns": late}


def measure_latency(args: argparse.Namespace, config: Path, name: str, url: str, rows: int) -> dict[str, Any]:
    """Run the connector, write changes at ``--rate``, and time each from commit to Kafka append."""
    topic = f"unsilo.raw.{name}.{TABLE}"
    use_append_time(args.bootstrap, topic)
    group = {"bootstrap.servers": args.bootstrap, "group.id": f"bench-lat-{uuid.uuid4().hex[:8]}"}
    consumer = Consumer({**group, "isolation.level": "read_committed", "enable.auto.commit": False})
    start_at = end_offsets(consumer, topic)
    serde = AvroSerde(ConfluentRegistry(RegistrySettings(url=args.registry_url)))
    latencies: list[int] = []
    with tempfile.TemporaryFile() as log:
        argv = [*UNSILO, "-c", str(config), "run", name]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=clean_env())
        try:
            time.sleep(args.warmup)
            written = write_changes(url, rows, args.rate, args.per_txn, args.seconds)
            consumer.assign(start_at)
            deadline = time.monotonic() + 120
            while len(latencies) < written["changes"] and time.monotonic() < deadline:
                for message in consumer.consume(5000, timeout=1.0):
                    if message.error() is not None:
                        if message.error().code() != KafkaError._PARTITION_EOF:
                            raise RuntimeError(str(message.error()))
                        continue
                    value = serde.decode(message.value())
                    if value is not None and value["op"] == "u":
                        latencies.append(message.timestamp()[1] - value["source"]["ts_ms"])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            consumer.close()
        if not latencies:
            log.seek(0)
            raise RuntimeError(f"no change arrived:\n{log.read().decode(errors='replace')[-3000:]}")
    latencies.sort()
    return {
        "target_changes_per_s": args.rate,
        "changes_per_txn": args.per_txn,
        **written,
        "received": len(latencies),
        "verified": len(latencies) == written["changes"],
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "latency_ms_max": latencies[-1],
        "timestamp": "Kafka LogAppendTime minus source.ts_ms (PostgreSQL commit time)",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.postgres_snapshot", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=2000, help="changes/s while measuring latency")
    parser.add_argument("--per-txn", type=int, default=10, help="changes per source transaction")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to write changes")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds for the connector to start")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry-url", default="http://127.0.0.1:8081/apis/ccompat/v7")
    parser.add_argument("--postgres-url", help="an existing server (default: a throwaway one)")
    parser.add_argument("--profile", action="store_true", help="run the snapshot under pyinstrument")
    args = parser.parse_args(argv)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="unsilo-pgbench-"))
    server = None if args.postgres_url else LocalPostgres(fsync=True).start()
    admin_url = args.postgres_url or server.url  # type: ignore[union-attr]
    name = f"pgbench_{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"machine": machine(), "rows": args.rows, "columns": 10}
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    url = with_database(admin_url, name)
    try:
        build = make_table(url, args.rows)
        print(f"postgres source: {args.rows} rows written in {build:.2f}s")
        config = write_config(tmp, name, url, args)
        profile = RESULTS.with_name("postgres-profile.txt") if args.profile else None
        snap = run_connector(config, name, profile)
        snap["rows_per_s"] = round(args.rows / snap["wall_seconds"], 1)
        snap["topic"] = f"unsilo.raw.{name}.{TABLE}"
        snap["topic_records"] = count_records(args.bootstrap, snap["topic"])
        snap["verified"] = snap["topic_records"] == args.rows
        snap["profiled"] = profile is not None
        results["snapshot"] = {"db_build_seconds": round(build, 2), **snap}
        print(f"snapshot: {results['snapshot']}")
        results["connector_only"] = connector_only(url, args.rows, 2000)
        print(f"connector alone (no Kafka): {results['connector_only']}")
        results["streaming"] = measure_latency(args, config, name, url, args.rows)
        print(f"streaming: {results['streaming']}")
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s",
                (name,),
            )
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out = RESULTS.with_name("postgres-profiled.json") if args.profile else RESULTS
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {out}")


if __name__ == "__main__":
    sys.exit(main())
