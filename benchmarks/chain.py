"""Chain benchmark: the connector's producer path with and without the tamper-evidence chain.

Sends ``--records`` records (a 12-byte key, a ``--value-bytes`` value, like a raw change
event) through ``TransactionalProducer`` in transactions of ``--batch`` records, to a fresh
raw topic of ``--partitions`` partitions, once with ``audit.chain`` off and once on (with an
HMAC key, so checkpoints are written too), alternating for ``--rounds`` rounds; reports
events/s of each (send loop plus commit, the runner's publishing cost) and the time
``unsilo verify`` takes to check the chained topic. Also times the bare link hash. Each round
also snapshots a fresh SQLite table of ``--snapshot-rows`` rows (foundation.py's 8 columns)
through the real connector runner, chain off and on: rows/s from start to the last batch.

    python -m benchmarks.chain [--records 100000] [--rounds 2] [--snapshot-rows 50000]

Needs a running broker and registry (default the dev stack); the producer topics are
deleted afterwards (the snapshot topics stay, like foundation.py's with --skip-up).
Writes ``benchmarks/results/chain.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from benchmarks.foundation import TABLE, machine, make_database
from hub.chain import GENESIS_HEAD
from hub.config import AuditSettings, KafkaSettings, RegistrySettings, Settings, SourceSettings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.producer import TransactionalProducer
from hub.kafka.topics import spec_for
from hub.verify import Verifier

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "chain.json"


def publish(
    kafka: KafkaSettings, audit: AuditSettings, topic: str, records: int, batch: int, size: int
) -> float:
    """Events/s of publishing ``records`` records in transactions of ``batch``."""
    producer = TransactionalProducer(kafka, f"unsilo-bench-chain-{uuid.uuid4().hex[:8]}", audit=audit)
    producer.init()
    value = os.urandom(size)
    started = time.perf_counter()
    try:
        for first in range(0, records, batch):
            producer.begin()
            for i in range(first, min(first + batch, records)):
                producer.send(topic, b"key-%08d" % i, value)
            producer.commit()
    finally:
        producer.close()
    return records / (time.perf_counter() - started)


def snapshot(bootstrap: str, registry: str, audit: AuditSettings, rows: int, tmp: Path) -> float:
    """Rows/s of a real SQLite snapshot through the connector runner (Avro, registry, Kafka)."""
    from connectors.runner import ConnectorRunner

    name = f"benchchain_{uuid.uuid4().hex[:8]}"
    db = tmp / f"{name}.db"
    make_database(db, rows)
    source = SourceSettings(name=name, system=name, kind="sqlite", url=str(db), tables=[TABLE])
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        registry=RegistrySettings(url=registry),
        audit=audit,
        sources=[source],
    )
    runner = ConnectorRunner(settings, source)
    published: list[float] = []
    runner.on_batch = lambda batch, stats: published.append(time.perf_counter())
    started = time.perf_counter()
    stats = runner.run(until_idle=True)
    assert stats.snapshot_rows == rows, stats
    return rows / (published[-1] - started)


def hash_rate(size: int, count: int = 200_000) -> float:
    value = os.urandom(size)
    head = GENESIS_HEAD
    started = time.perf_counter()
    for i in range(count):
        head = head.next(b"key-%08d" % i, value)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--value-bytes", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--snapshot-rows", type=int, default=50_000, help="0: skip the connector part")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry-url", default="http://127.0.0.1:8081/apis/ccompat/v7")
    args = parser.parse_args()
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
    admin = KafkaAdmin(kafka)
    modes = {
        "chain_off": AuditSettings(chain=False),
        "chain_on": AuditSettings(chain=True, hmac_key=SecretStr("bench")),
    }
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    snapshots: dict[str, list[float]] = {mode: [] for mode in modes}
    topics: list[str] = []
    verify_s: float | None = None
    try:
        for _ in range(args.rounds):
            for mode, audit in modes.items():
                topic = f"unsilo.raw.benchchain_{uuid.uuid4().hex[:8]}.{mode}"
                topics.append(topic)
                admin.ensure_topics([spec_for(topic, args.partitions)])
                rates[mode].append(publish(kafka, audit, topic, args.records, args.batch, args.value_bytes))
                print(mode, f"{rates[mode][-1]:,.0f} events/s", flush=True)
            for mode, audit in modes.items() if args.snapshot_rows else ():
                with tempfile.TemporaryDirectory() as tmp:
                    rate = snapshot(args.bootstrap, args.registry_url, audit, args.snapshot_rows, Path(tmp))
                snapshots[mode].append(rate)
                print(mode, f"snapshot {rate:,.0f} rows/s", flush=True)
        verifier = Verifier(kafka, b"bench")
        started = time.perf_counter()
        checked = sum(verifier.verify(topics[-1], p, None, None).records for p in range(args.partitions))
        verify_s = time.perf_counter() - started
        verifier.close()
        assert checked == args.records, checked
    finally:
        admin.delete_topics(topics)
    result: dict[str, Any] = {
        "records": args.records,
        "batch": args.batch,
        "value_bytes": args.value_bytes,
        "partitions": args.partitions,
        "events_per_s": {mode: round(statistics.median(r)) for mode, r in rates.items()},
        "runs": {mode: [round(x) for x in r] for mode, r in rates.items()},
        "snapshot_rows": args.snapshot_rows,
        "snapshot_rows_per_s": {mode: round(statistics.median(r)) for mode, r in snapshots.items() if r},
        "snapshot_runs": {mode: [round(x) for x in r] for mode, r in snapshots.items()},
        "link_hashes_per_s": round(hash_rate(args.value_bytes)),
        "verify_s": round(verify_s or 0.0, 2),
        "verify_records_per_s": round(args.records / verify_s) if verify_s else None,
        "machine": machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
