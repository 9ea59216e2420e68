"""Lag benchmark: `unsilo lag` evaluation and `/metrics` rendering for 200 groups x 500 partitions.

Synthetic part (always): 100,000 group-partitions (200 groups, 500 partitions each) with
full Burrow windows, fed to the evaluation (observe + Burrow rules), the window history
(SQLite save of what changed, and a cold load as after a restart), `/metrics` rendering
(the hub's renderer, served through the FastAPI app) and, for comparison, prometheus-client's
generic writer on the same collector.

Real part (``--real``): on a running broker (default the dev stack), 10 topics x 50
partitions, 20 records each, and 200 groups that each commit an offset on all 500
partitions (100,000 committed offsets); times `LagMonitor.sample()` (AdminClient reads,
watermarks, log timestamps, evaluation, history) cold and warm, and the `unsilo lag`
command end to end. Its topics and groups are deleted afterwards.

    python -m benchmarks.lag [--real] [--bootstrap 127.0.0.1:9092]

Writes ``benchmarks/results/lag.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.foundation import machine
from hub.config import KafkaSettings, LocalSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "lag.json"
GROUPS, PARTITIONS = 200, 500
T0 = 1_700_000_000_000


def timed(action: Callable[[], Any], runs: int = 5) -> tuple[float, Any]:
    """Median seconds of ``runs`` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4), result


def synthetic(tmp: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry, generate_latest

    from hub.api.app import Sampler, create_app
    from hub.lag import GroupInfo, Member, PartitionOffsets, WindowConfig, Windows, evaluate
    from hub.lag_history import LagHistory
    from hub.metrics import HubCollector, MetricsRenderer
    from hub.overview import Snapshot

    rng = random.Random(7)
    cfg = WindowConfig(window=10, interval_ms=1000)
    now = T0
    infos = {f"group-{g:03d}": GroupInfo(f"group-{g:03d}", "STABLE") for g in range(GROUPS)}
    windows: Windows = {}
    parts: list[PartitionOffsets] = []
    for g, name in enumerate(infos):
        member = Member(
            f"/10.0.{g // 250}.{g % 250}", f"consumer-{g}-{uuid.uuid4().hex[:8]}", f"consumer-{g}"
        )
        topic = f"unsilo.raw.bench.t{g % 20:02d}"
        for p in range(PARTITIONS):
            kind = rng.random()
            end = 100_000 + rng.randrange(10_000)
            lag = 0 if kind < 0.6 else rng.randrange(1, 500)
            committed = end - lag
            step = 0 if kind > 0.97 else rng.randrange(1, 50)  # a few stalled partitions
            windows.setdefault(name, {})[(topic, p)] = [
                (committed - step * (10 - i), lag + rng.randrange(0, 20), now - (10 - i) * 1000)
                for i in range(10)
            ]
            parts.append(
                PartitionOffsets(
                    name, topic, p, committed, 0, end,
                    oldest_unconsumed_ms=now - rng.randrange(0, 30_000) if lag else None,
                    member=member if kind < 0.99 else None,
                )
            )  # fmt: skip

    def evaluate_once() -> Any:
        nonlocal now
        now += 1000
        return evaluate(parts, infos, windows, now, cfg)

    evaluation_s, (report, changed) = timed(evaluate_once)
    history = LagHistory(tmp / "lag-history.db")
    save_s, _ = timed(lambda: history.save(windows, changed), runs=3)
    load_s, loaded = timed(lambda: LagHistory(tmp / "lag-history.db").load(list(infos)), runs=3)
    snap = Snapshot(taken_ms=now, lag=report)
    current = [snap]
    renderer = MetricsRenderer(lambda: current[0], "bench")
    renderer.render()  # the first scrape fills the label cache

    def render_new_snapshot() -> bytes:
        current[0] = Snapshot(taken_ms=now, lag=report)  # a new sample: no cached body to reuse
        return renderer.render()

    render_s, body = timed(render_new_snapshot)
    cold_s, _ = timed(lambda: MetricsRenderer(lambda: snap, "bench").render(), runs=3)
    cached_s, _ = timed(renderer.render)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(lambda: snap, "bench"))
    generic_s, _ = timed(lambda: generate_latest(registry), runs=1)

    settings = Settings(
        local=LocalSettings(data_dir=tmp / "api"), kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1")
    )
    sampler = Sampler(settings)
    sampler.latest = snap
    with TestClient(create_app(settings, sampler=sampler, background=False)) as client:
        client.get("/metrics")

        def scrape_new_snapshot() -> Any:
            sampler.latest = Snapshot(taken_ms=now, lag=report)
            return client.get("/metrics")

        http_s, response = timed(scrape_new_snapshot)
        http_cached_s, _ = timed(lambda: client.get("/metrics"))
    statuses: dict[str, int] = {}
    for group in report.groups.values():
        for p in group.partitions:
            statuses[p.status.value] = statuses.get(p.status.value, 0) + 1
    return {
        "groups": GROUPS,
        "partitions_per_group": PARTITIONS,
        "group_partitions": len(parts),
        "window": cfg.window,
        "evaluation_seconds": evaluation_s,
        "history_save_seconds": save_s,
        "history_changed_windows": len(changed),
        "history_load_seconds": load_s,
        "history_loaded_windows": len(loaded),
        "lag_total_seconds": round(evaluation_s + save_s, 4),
        "partition_statuses": statuses,
        "metrics_render_seconds": render_s,
        "metrics_render_cold_seconds": cold_s,
        "metrics_render_cached_seconds": cached_s,
        "metrics_http_seconds": http_s,
        "metrics_http_cached_seconds": http_cached_s,
        "metrics_http_status": response.status_code,
        "metrics_bytes": len(body),
        "metrics_samples": body.count(b"\n") - body.count(b"\n#"),
        "prometheus_client_generic_seconds": generic_s,
    }


def real(bootstrap: str, tmp: Path, profile: bool = False) -> dict[str, Any]:
    from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from hub.kafka.admin import KafkaAdmin
    from hub.kafka.topics import TopicSpec
    from hub.lag_monitor import LagMonitor

    run = uuid.uuid4().hex[:8]
    topics = [f"bench.lag.{run}.t{i}" for i in range(10)]
    groups = [f"bench-lag-{run}-{g:03d}" for g in range(GROUPS)]
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap), local=LocalSettings(data_dir=tmp / "real")
    )
    admin = AdminClient(settings.kafka.client_config())
    started = time.perf_counter()
    KafkaAdmin(settings.kafka).ensure_topics([TopicSpec(t, 50) for t in topics])
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 20})
    for topic in topics:
        for p in range(50):
            for i in range(20):
                producer.produce(topic, value=b"x" * 100, partition=p, key=str(i).encode())
    producer.flush(60)
    rng = random.Random(11)
    for group in groups:
        offsets = [TopicPartition(t, p, rng.randrange(0, 21)) for t in topics for p in range(50)]
        for future in admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, offsets)]
        ).values():
            future.result(timeout=60)
    setup_s = time.perf_counter() - started
    monitor = LagMonitor(settings)
    try:
        cold_s, report = timed(lambda: monitor.sample(groups), runs=1)
        warm_s, report = timed(lambda: monitor.sample(groups), runs=3)
        if profile:
            import cProfile
            import pstats

            cProfile.runctx("monitor.sample(groups)", globals(), locals(), str(tmp / "sample.prof"))
            pstats.Stats(str(tmp / "sample.prof")).sort_stats("cumtime").print_stats(25)
        config = tmp / "unsilo.yaml"
        config.write_text(
            f"kafka:\n  bootstrap_servers: {bootstrap}\nlocal:\n  data_dir: {tmp / 'cli'}\n", encoding="utf-8"
        )
        unsilo = [shutil.which("unsilo") or "unsilo", "-c", str(config), "lag", *groups]
        cli_s, done = timed(
            lambda: subprocess.run(unsilo, capture_output=True, text=True, timeout=300), runs=3
        )
        assert done.returncode == 0, done.stderr
        api_cli_s = cli_via_api(tmp, bootstrap, unsilo[0], groups)
        group_partitions = sum(len(g.partitions) for g in report.groups.values())
    finally:
        monitor.close()
        for future in admin.delete_consumer_groups(groups, request_timeout=60).values():
            try:
                future.result(timeout=60)
            except Exception as exc:  # best effort: a leftover group only costs a line in `unsilo lag`
                print(f"could not delete a group: {exc}", file=sys.stderr)
        KafkaAdmin(settings.kafka).delete_topics(topics)
    return {
        "bootstrap": bootstrap,
        "topics": len(topics),
        "partitions": 500,
        "groups": len(groups),
        "group_partitions": group_partitions,
        "setup_seconds": round(setup_s, 1),
        "sample_cold_seconds": cold_s,
        "sample_warm_seconds": warm_s,
        "cli_seconds": cli_s,
        "cli_via_api_seconds": api_cli_s,
    }


def cli_via_api(tmp: Path, bootstrap: str, unsilo: str, groups: list[str]) -> float:
    """`unsilo lag` wall time while `unsilo api` runs (the command shows the API's latest report)."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp / "unsilo-api.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {bootstrap}\nlocal:\n  data_dir: {tmp / 'api-cli'}\n"
        f"api:\n  port: {port}\n",
        encoding="utf-8",
    )
    api = subprocess.Popen([unsilo, "-c", str(config), "api"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the API's sampler has seen every group
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lag?summary=true", timeout=5) as r:
                    if len(json.loads(r.read())["groups"]) >= len(groups):
                        break
            except OSError:
                pass
            time.sleep(0.5)
        command = [unsilo, "-c", str(config), "lag"]
        seconds, done = timed(lambda: subprocess.run(command, capture_output=True, text=True), runs=5)
        assert done.returncode == 0 and "from the API" in done.stdout, done.stdout + done.stderr
        return seconds
    finally:
        api.terminate()
        api.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real", action="store_true", help="also measure real groups on a running broker")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--profile", action="store_true", help="print a profile of one warm real sample")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="unsilo-bench-lag-") as tmp:
        results: dict[str, Any] = {"machine": machine()}
        if not args.skip_synthetic:
            results["synthetic"] = synthetic(Path(tmp))
            print(json.dumps(results["synthetic"], indent=2))
        if args.real:
            results["real"] = real(args.bootstrap, Path(tmp), args.profile)
            print(json.dumps(results["real"], indent=2))
    if args.profile or args.skip_synthetic:
        return  # partial runs are not the record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
