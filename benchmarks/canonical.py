"""Canonicalizer throughput: the demo estate's raw events, copied until there are enough.

Creates the seeded demo estate (SQLite) in a temporary directory, captures it under unique
system names, copies the raw records of every mapped table (same bytes, so the same keys)
until about ``--events`` raw events wait, then times ``run_canonical`` (canonicalizer and
identity resolver, exactly once, until idle) in this process. Reports raw events/s over the
whole run (start-up included) and the CPU seconds used. Uses a running stack (default: the
dev stack); adds uniquely named topics.

    python -m benchmarks.canonical [--events 200000] [--batch-size 2000] [--bootstrap 127.0.0.1:9092]

Writes ``benchmarks/results/canonical.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from confluent_kafka import Producer

from connectors.runner import ConnectorRunner
from hub.config import KafkaSettings, RegistrySettings, Settings, SourceSettings
from hub.estate import SYSTEMS, TABLES, create_estate
from hub.kafka.consumer import read_to_end
from hub.kafka.topics import raw_topic
from hub.mapping import DEMO_MAPPINGS, load_mappings
from projections.cli_canonical import run_canonical

RESULTS = Path(__file__).resolve().parent / "results" / "canonical.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry-url", default="http://127.0.0.1:8081/apis/ccompat/v7")
    args = parser.parse_args()
    uid = f"bench{uuid.uuid4().hex[:8]}"
    systems = {system: f"{system}_{uid}" for system in SYSTEMS}
    work = Path(tempfile.mkdtemp(prefix="unsilo-canonical-bench-"))
    urls = create_estate(work, 42)
    sources = [
        SourceSettings(
            name=f"src_{system}_{uid}",
            system=systems[system],
            kind="sqlite",
            url=urls[system].removeprefix("sqlite:///"),
            tables=list(TABLES[system]),
        )
        for system in SYSTEMS
    ]
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=args.bootstrap),
        registry=RegistrySettings(url=args.registry_url),
        sources=sources,
    )
    for source in sources:
        ConnectorRunner(settings, source).run(until_idle=True)
    text = DEMO_MAPPINGS.read_text()
    for system, renamed in systems.items():
        text = text.replace(f"system: {system}", f"system: {renamed}").replace(
            f"  {system}: {{", f"  {renamed}: {{"
        )
    mappings_file = work / "mappings.yaml"
    mappings_file.write_text(text)
    mappings = load_mappings(yaml.safe_load(text))
    topics = sorted({raw_topic(m.system, m.table) for m in mappings})
    records = [(t, m.key(), m.value()) for t in topics for m in read_to_end(settings.kafka, t)]
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    copies = max(args.events // len(records) - 1, 0)
    for _ in range(copies):
        for topic, key, value in records:
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.1)
    producer.flush(120)
    raw_events = len(records) * (copies + 1)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    result = run_canonical(
        settings, mappings=mappings_file, namespace=uid, until_idle=True, batch_size=args.batch_size
    )
    wall = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "raw_events": raw_events,
        "consumed": result["raw_events"],
        "canonical_records": result["canonical_records"],
        "identity_links": result["identity_links"],
        "batch_size": args.batch_size,
        "wall_s": round(wall, 2),
        "events_per_s": round(result["raw_events"] / wall),
        "cpu_s": round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 2),
        "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
