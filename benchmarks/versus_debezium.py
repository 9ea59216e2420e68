"""Unsilo vs Debezium, side by side on one machine in one run (``make bench``).

Starts its own broker and registry (temporary data dir, free ports, the jars of ``unsilo
install``), and per database (``--databases``) a throwaway server (benchmarks/versus_sources.py).
The peer is Debezium 3.6.1's connector on Kafka Connect standalone 4.1.1 (the broker's Kafka),
resolved from Maven Central by deploy/debezium/pom.xml, writing Avro through the same registry
into the same broker (benchmarks/debezium_connect.py). Per database:

1. **Snapshot**: the ``--rows``-row, 10-column ``orders`` table, first by ``unsilo run <source>
   --until-idle`` (done when the process exits, every row committed), then by Debezium
   (``snapshot.mode=initial``; done when the topic's end offset reaches ``--rows``). rows/s is
   rows / (process start -> done); also given from the first record on (start-up left out).
2. **Streaming**: one long-running capture per tool on the ``pulse`` table; for each of
   ``--rates`` changes/s, ``--duration`` seconds of UPDATEs (``--per-txn`` rows each), each row
   stamped with the server's clock (``written_us``). Latency = the record's Kafka LogAppendTime
   minus ``written_us``: p50/p99/max; the time a read_committed consumer received it is kept too.

CPU seconds and peak RSS (VmHWM) of every Unsilo process and Connect JVM are recorded. The
Unsilo-only figures come from benchmarks/freshness.py and benchmarks/read_models.py (their last
results, or run now with ``--rerun-unsilo-only``). Writes benchmarks/results/versus_debezium.json
and .md and prints the ratios. ``--profile`` runs Unsilo's snapshots under pyinstrument.

    python -m benchmarks.versus_debezium [--rows 1000000] [--rates 500,2000,5000] [--duration 60]
        [--databases postgres,mariadb] [--quick] [--rerun-unsilo-only] [--profile]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import debezium_connect as dbz
from benchmarks.foundation import UNSILO, clean_env, count_records, run_connector
from benchmarks.freshness import _fresh_stack_settings
from benchmarks.mysql_snapshot import create_append_time_topic
from benchmarks.unsilo_only import fold_unsilo_only, rerun_unsilo_only
from benchmarks.versus_measure import (
    ChangeCounter,
    LiveCollector,
    OffsetWatcher,
    end_leftovers,
    latencies,
    machine_shape,
    usage,
    wait_for_marker,
)
from benchmarks.versus_report import (
    latency_verdict,
    render_markdown,
    snapshot_verdict,
    summary_lines,
    top_frames,
)
from benchmarks.versus_sources import ORDERS, PULSE, BenchDatabase, make_database, write_at_rate
from hub.config import RegistrySettings, Settings
from hub.errors import ServiceError
from hub.local import stack
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.support import free_ports

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "versus_debezium.json"
WARMUP_TIMEOUT_S = 180
DRAIN_TIMEOUT_S = 120


class Bench:
    """One run: the fresh stack's addresses, the work dir, the processes measured so far."""

    def __init__(self, args: argparse.Namespace, settings: Settings, workdir: Path) -> None:
        self.args, self.settings, self.workdir = args, settings, workdir
        self.bootstrap = settings.kafka.bootstrap_servers
        self.registry_url = settings.registry.url
        self.serde = AvroSerde(ConfluentRegistry(RegistrySettings(url=self.registry_url)))
        self.processes: list[dict[str, Any]] = []
        self.profiles: dict[str, list[dict[str, Any]]] = {}

    def unsilo_config(self, db: BenchDatabase, name: str, table: str) -> Path:
        local = self.settings.local
        settings = {
            "kafka": {"bootstrap_servers": self.bootstrap},
            "registry": {"url": self.registry_url},
            "local": {"data_dir": str(local.data_dir), "kafka_port": local.kafka_port,
                      "controller_port": local.controller_port, "registry_port": local.registry_port},
            "sources": [db.unsilo_source(name, table)],
        }  # fmt: skip
        config = self.workdir / f"{name}.yaml"
        config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        return config

    def connect(self, db: BenchDatabase, name: str, table: str, *, snapshot: bool) -> dbz.ConnectStandalone:
        (rest_port,) = free_ports(1)
        home = self.workdir / name
        worker = dbz.worker_properties(self.bootstrap, self.registry_url, home / "offsets", rest_port)
        return dbz.ConnectStandalone(home, worker, db.debezium_connector(name, table, snapshot=snapshot))

    def note(self, process: str, phase: str, measured: dict[str, Any]) -> None:
        self.processes.append({"process": process, "phase": phase, **measured})

    # -- snapshot ------------------------------------------------------------------------------

    def unsilo_snapshot(self, db: BenchDatabase, rows: int) -> dict[str, Any]:
        name = f"u_{db.name}_snap"
        topic = f"unsilo.raw.{name}.{ORDERS}"
        config = self.unsilo_config(db, name, ORDERS)
        watcher = OffsetWatcher(self.bootstrap, topic, target=1 << 62)
        profile = RESULTS.with_name(f"versus-{db.kind}-profile.txt") if self.args.profile else None
        started = time.monotonic()
        watcher.start()
        try:
            run = run_connector(config, name, profile)
        finally:
            watcher.stop()
            db.release(name)
        result = self._snapshot_result(rows, run["wall_seconds"], watcher.first_at, started, topic)
        result.update(
            cpu_seconds=run["cpu_seconds"], peak_rss_mib=run["peak_rss_mib"], profiled=bool(profile)
        )
        if profile is not None:
            result["profile"] = str(profile.relative_to(ROOT))
        self.note(
            "unsilo run (snapshot)",
            f"{db.kind} snapshot",
            {k: run[k] for k in ("peak_rss_mib", "cpu_seconds")},
        )
        return result

    def debezium_snapshot(self, db: BenchDatabase, rows: int) -> dict[str, Any]:
        name = f"d_{db.name}_snap"
        connect = self.connect(db, name, ORDERS, snapshot=True)
        topic = dbz.topic_of(connect.connector, ORDERS)
        watcher = OffsetWatcher(self.bootstrap, topic, target=rows)
        with dbz.running(connect):
            started = connect.started_at
            watcher.start()
            deadline = time.monotonic() + max(600, rows / 200)
            while watcher.reached_at is None:
                connect.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Debezium's snapshot did not finish: {watcher.latest} of {rows} rows")
                time.sleep(0.5)
            watcher.stop()
            measured = usage(connect.process.pid)  # type: ignore[union-attr]
        db.release(name)
        self.note("Kafka Connect JVM (snapshot)", f"{db.kind} snapshot", measured)
        result = self._snapshot_result(rows, watcher.reached_at - started, watcher.first_at, started, topic)
        return {**result, **measured}

    def _snapshot_result(
        self, rows: int, wall: float, first_at: float | None, started: float, topic: str
    ) -> dict[str, Any]:
        records = count_records(self.bootstrap, topic, timeout_s=900)
        first = None if first_at is None else first_at - started
        after_first = None if first is None or wall - first <= 0 else round(rows / (wall - first), 1)
        return {
            "wall_seconds": round(wall, 2),
            "rows_per_s": round(rows / wall, 1),
            "first_record_seconds": None if first is None else round(first, 2),
            "rows_per_s_after_first": after_first,
            "topic": topic,
            "topic_records": records,
            "verified": records == rows,
        }

    # -- streaming -----------------------------------------------------------------------------

    def caught_up(self, db: BenchDatabase, tool: str, topic: str, alive: Any) -> None:
        """Stamp a marker into pulse row 1 (again every 3 s) until the capture delivers it: the
        capture is streaming and every change written before it has arrived."""
        collector = LiveCollector(self.bootstrap, topic)
        collector.start()
        marker = -time.time_ns() // 1000
        try:
            deadline = time.monotonic() + WARMUP_TIMEOUT_S
            db.mark(1, marker)
            while not wait_for_marker(self.serde, collector, marker, 3.0):
                alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{tool} did not stream a change of {db.kind}.{PULSE} within {WARMUP_TIMEOUT_S}s"
                    )
                db.mark(1, marker)  # again: the first may precede the stream's start
        finally:
            collector.stop()

    def stream(
        self, db: BenchDatabase, tool: str, pid: int, topic: str, alive: Any, measuring: Any = None
    ) -> list[dict[str, Any]]:
        """Warm up the running capture, then each rate in turn, each starting with nothing in
        flight; the per-rate latency results. ``measuring`` is called once the warm-up is over."""
        self.caught_up(db, tool, topic, alive)
        if self.args.warmup > 0:  # unmeasured: JIT, caches and connections settle for both tools
            first = self.args.rates[0]
            write_at_rate(db.connect, db.update_statement(), first, self.args.per_txn, self.args.warmup)
            self.caught_up(db, tool, topic, alive)
        if measuring is not None:
            measuring()
        results = []
        for rate in self.args.rates:
            collector = LiveCollector(self.bootstrap, topic)
            collector.start()
            since_us = time.time_ns() // 1000
            counter = ChangeCounter(self.serde, collector, since_us)
            written = write_at_rate(
                db.connect, db.update_statement(), rate, self.args.per_txn, self.args.duration
            )
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while counter.update() < written["changes"] and time.monotonic() < deadline:
                alive()
                time.sleep(0.25)
            collector.stop()
            measured = latencies(self.serde, collector.records, since_us)
            verified = measured["events"] == written["changes"]
            results.append({"rate": rate, **written, **measured, "verified": verified})
            got = f"{measured['events']}/{written['changes']}"
            print(f"  {db.kind} {tool} {rate}/s: {measured['latency_ms']} ({got} changes)")
        self.note(f"{'unsilo run' if tool == 'unsilo' else 'Kafka Connect JVM'} (streaming)",
                  f"{db.kind} streaming", usage(pid))  # fmt: skip
        return results

    def unsilo_streaming(self, db: BenchDatabase) -> list[dict[str, Any]]:
        name = f"u_{db.name}_live"
        topic = f"unsilo.raw.{name}.{PULSE}"
        create_append_time_topic(self.bootstrap, topic)
        config = self.unsilo_config(db, name, PULSE)
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen([*UNSILO, "-c", str(config), "run", name], stdout=subprocess.DEVNULL,
                                stderr=log, env=clean_env())  # fmt: skip

        def alive() -> None:
            if proc.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"unsilo run {name} exited {proc.returncode}:\n{tail}")

        spy: list[subprocess.Popen[bytes]] = []
        profile = RESULTS.with_name(f"versus-{db.kind}-streaming-pyspy.txt")

        def measuring() -> None:
            if self.args.profile:  # py-spy samples the running connector while the rates are measured
                argv = ["py-spy", "record", "--pid", str(proc.pid), "--format", "raw", "--nonblocking",
                        "--output", str(profile)]  # fmt: skip
                spy.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        try:
            results = self.stream(db, "unsilo", proc.pid, topic, alive, measuring)
            if spy:
                spy[0].send_signal(signal.SIGINT)
                spy[0].wait(60)
                self.profiles[f"{db.kind} streaming"] = top_frames(profile.read_text(encoding="utf-8"))
            return results
        finally:
            for running in spy:
                if running.poll() is None:
                    running.kill()
                    running.wait(10)
            proc.terminate()
            proc.wait(60)
            log.close()
            db.release(name)

    def debezium_streaming(self, db: BenchDatabase) -> list[dict[str, Any]]:
        name = f"d_{db.name}_live"
        connect = self.connect(db, name, PULSE, snapshot=False)
        topic = dbz.topic_of(connect.connector, PULSE)
        with dbz.running(connect):
            results = self.stream(db, "debezium", connect.process.pid, topic, connect.check)  # type: ignore[union-attr]
        db.release(name)
        return results

    def database(self, kind: str) -> dict[str, Any]:
        db = make_database(kind, self.workdir / kind)
        version = db.start()
        try:
            build = db.build(self.args.rows)
            print(f"{version}: {self.args.rows:,} rows built in {build:.1f}s")
            unsilo = self.unsilo_snapshot(db, self.args.rows)
            print(
                f"  {kind} snapshot unsilo: {unsilo['rows_per_s']:,.0f} rows/s ({unsilo['wall_seconds']} s)"
            )
            debezium = self.debezium_snapshot(db, self.args.rows)
            took = f"{debezium['rows_per_s']:,.0f} rows/s ({debezium['wall_seconds']} s)"
            print(f"  {kind} snapshot debezium: {took}")
            verdict = snapshot_verdict(unsilo["rows_per_s"], debezium["rows_per_s"])
            snapshot = {"rows": self.args.rows, "columns": 10, "unsilo": unsilo, "debezium": debezium}
            snapshot["verdict"] = verdict
            by_tool: dict[str, list[dict[str, Any]]] = {"unsilo": [], "debezium": []}
            if self.args.rates:  # --rates '' measures the snapshots only
                by_tool = {"unsilo": self.unsilo_streaming(db), "debezium": self.debezium_streaming(db)}
        finally:
            db.stop()
        streaming = []
        for u, d in zip(by_tool["unsilo"], by_tool["debezium"], strict=True):
            verdict = latency_verdict(u["latency_ms"]["p99"], d["latency_ms"]["p99"])
            streaming.append({"rate": u["rate"], "unsilo": u, "debezium": d, "verdict": verdict})
        return {
            "server": version,
            "db_build_seconds": round(build, 2),
            "snapshot": snapshot,
            "streaming": streaming,
        }


def start_stack(workdir: Path, attempts: int = 2) -> Settings:
    """A broker and registry of this run's own (free ports, the project's jars); a second try on
    fresh ports when the first start fails, after ending whatever it left running."""
    for attempt in range(1, attempts + 1):
        home = workdir / f"stack{attempt}"
        home.mkdir()
        settings = _fresh_stack_settings(home)
        try:
            stack.up(settings, ROOT)
            return settings
        except ServiceError as exc:
            stack.down(settings, ROOT)
            left = end_leftovers(home)
            print(f"warning: the broker/registry did not start (try {attempt}; ended {left}): {exc}")
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.versus_debezium", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=None, help="snapshot table rows (default 1,000,000)")
    parser.add_argument(
        "--rates",
        default=None,
        help="changes/s, comma-separated (default 500,2000,5000; '' for snapshots only)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per rate (default 60)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="unmeasured seconds of writes before the rates (default 10)",
    )
    parser.add_argument("--per-txn", type=int, default=10, help="rows per UPDATE transaction")
    parser.add_argument("--databases", default="postgres,mariadb")
    parser.add_argument("--quick", action="store_true", help="50,000 rows and 20 s per rate")
    parser.add_argument(
        "--rerun-unsilo-only", action="store_true", help="run read_models.py (--rows events) and freshness.py"
    )
    parser.add_argument("--profile", action="store_true", help="Unsilo's snapshots under pyinstrument")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs) at the end")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON file (the .md goes beside it)")
    args = parser.parse_args(argv)
    args.rows = args.rows or (50_000 if args.quick else 1_000_000)
    args.duration = args.duration or (20.0 if args.quick else 60.0)
    args.warmup = (5.0 if args.quick else 10.0) if args.warmup is None else args.warmup
    rates = "500,2000,5000" if args.rates is None else args.rates
    args.rates = [int(r) for r in rates.split(",") if r.strip()]
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop: the finally blocks stop everything
    command = "python -m benchmarks.versus_debezium " + shlex.join(sys.argv[1:] if argv is None else argv)
    lib = dbz.ensure_installed()
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="unsilo-vs-"))
    settings = start_stack(workdir)
    results: dict[str, Any] = {
        "machine": machine_shape(),
        "command": command.strip(),
        "quick": args.quick,
        "peer": f"Debezium 3.6.1.Final on Kafka Connect standalone 4.1.1 ({lib.name}), "
        "Avro by Apicurio's AvroConverter 2.6.13 through the same registry into the same broker",
        "settings": {
            "rows": args.rows,
            "rates": args.rates,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "per_txn": args.per_txn,
            "poll_interval_ms": dbz.POLL_INTERVAL_MS,
        },
        "latency_definition": "Kafka LogAppendTime of the record minus the row's written_us (the source "
        "server's clock at the UPDATE, committed at once); p99 is nearest-rank",
        "deviations": [
            "MariaDB runs with --version=5.5.5-<its version>: Debezium 3.6's MySQL connector otherwise asks "
            "it for SHOW BINARY LOG STATUS (its MariaDB connector is not on Maven Central here)",
            "Debezium's poll.interval.ms is 50 (default 500), as Unsilo's connectors poll every 50 ms",
            "Debezium's MySQL connector keeps the DDL of the captured table only "
            "(schema.history.internal.store.only.captured.tables.ddl / databases.ddl = true)",
        ],
        "databases": {},
    }
    bench = Bench(args, settings, workdir)
    try:
        for kind in args.databases:
            results["databases"][kind] = bench.database(kind)
        if args.rerun_unsilo_only:
            failed = rerun_unsilo_only(args.rows, args.duration, bench.bootstrap, bench.registry_url)
            results["deviations"] += [f"re-running an Unsilo-only benchmark failed: {f}" for f in failed]
    finally:
        stack.down(settings, ROOT)
    results["unsilo_only"] = fold_unsilo_only()
    results["processes"] = bench.processes
    if bench.profiles:
        results["streaming_profiles"] = bench.profiles
    results["seconds"] = round(time.monotonic() - began)
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(render_markdown(results), encoding="utf-8")
    if args.keep:
        print(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(summary_lines(results)))
    print(f"results written to {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
