"""Read-model throughput: replaying canonical sales into store_sales and inventory_position,
and a full rebuild (replay + atomic swap) of store_sales.

Produces ``--events`` canonical Sale records (Avro, Confluent wire format, the real Sale
schema) to a uniquely named topic of a running stack (default: the dev stack from
`unsilo up`), then times, in this process, the same builder code the faust workers run:
a replay into each read model, and ``rebuild`` of store_sales. Writes
``benchmarks/results/read_models.json``.

    python -m benchmarks.read_models [--events 200000] [--bootstrap 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import Engine

from hub.canonical_schemas import canonical_schema
from hub.config import KafkaSettings, ReadStoreSettings, RegistrySettings, Settings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import spec_for
from hub.registry import ConfluentRegistry, key_subject, value_subject
from hub.serde import AvroSerde
from projections.aggregates import AggregateBuilder
from projections.canonical.contract import ENTITY_KEY_SCHEMA
from projections.inventory_position.builder import DAILY, POSITION
from projections.inventory_position.builder import sale_contributions as inventory_sale
from projections.rebuild import rebuild
from projections.replay import replay
from projections.store import create_read_store
from projections.store_sales.builder import SALES, sale_contributions

RESULTS = Path(__file__).resolve().parent / "results" / "read_models.json"


def produce_sales(settings: Settings, topic: str, events: int) -> float:
    """``events`` Sale records on ``topic`` (a few corrections among them); returns seconds."""
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(topic)])
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    key_writer = serde.writer(key_subject(topic), ENTITY_KEY_SCHEMA)
    value_writer = serde.writer(value_subject(topic), canonical_schema("Sale"))
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 20, "compression.type": "lz4"})
    rng = random.Random(7)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    began = time.perf_counter()
    for i in range(events):
        ticket = i if rng.random() > 0.05 else rng.randrange(max(i, 1))  # 5% corrections
        sale = {
            "key": f"sales:{ticket}",
            "system": "sales",
            "ticket_no": ticket,
            "store_key": f"sales:S00{rng.randint(1, 5)}",
            "product_key": f"sales:SKU{rng.randint(1, 40):05d}",
            "quantity": rng.randint(1, 4),
            "amount": decimal.Decimal(rng.randint(100, 99999)) / 100,
            "sold_at": start + dt.timedelta(seconds=i * 7),
        }
        while True:
            try:
                producer.produce(
                    topic, key=key_writer.encode({"key": sale["key"]}), value=value_writer.encode(sale)
                )
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)
    return time.perf_counter() - began


def timed_replay(settings: Settings, topic: str, builder: AggregateBuilder) -> float:
    began = time.perf_counter()
    replay(settings, [topic], builder, batch=5000)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry", default="http://127.0.0.1:8081/apis/ccompat/v7")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unsilo-bench-rm-"))
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=args.bootstrap),
        registry=RegistrySettings(url=args.registry),
        read_store=ReadStoreSettings(url=f"sqlite:///{workdir / 'read.db'}"),
    )
    topic = f"unsilo.canonical.bench_{uuid.uuid4().hex[:8]}.sale"
    produce_s = produce_sales(settings, topic, args.events)
    engine: Engine = create_read_store(settings.read_store.url)

    def store_sales(eng: Engine, projection: str, suffix: str) -> AggregateBuilder:
        return AggregateBuilder(eng, projection, [SALES], {topic: sale_contributions}, table_suffix=suffix)

    sales_s = timed_replay(settings, topic, store_sales(engine, "bench_store_sales", ""))
    inventory = AggregateBuilder(engine, "bench_inventory", [POSITION, DAILY], {topic: inventory_sale})
    inventory_s = timed_replay(settings, topic, inventory)
    began = time.perf_counter()
    result = rebuild(settings, "bench_store_sales", [topic], store_sales)
    rebuild_s = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "events": args.events,
        "produce_seconds": round(produce_s, 2),
        "store_sales_replay_events_per_s": round(args.events / sales_s),
        "inventory_position_replay_events_per_s": round(args.events / inventory_s),
        "store_sales_rebuild_seconds": round(rebuild_s, 2),
        "store_sales_rebuild_events": result.events,
        "rebuild_seconds_per_million_events": round(rebuild_s / args.events * 1_000_000, 1),
        "peak_rss_mib": round(peak_mib, 1),
        "topic": topic,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
