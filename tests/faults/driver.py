"""The fault-injection scenario: snapshot, streaming and rebuild under seeded SIGKILLs and outages.

One long run (setup is paid once). A seeded RNG (``UNSILO_FAULT_SEED``) picks each victim
and how much progress (growth of the raw and canonical topics, or rows a rebuild applied)
to wait for before striking, so faults land at random points of real work, not after
fixed sleeps:

1. **snapshot** — every component starts on the grown estate; connectors (mostly) and the
   other components are SIGKILLed while the sources are read for the first time;
2. **streaming** — the estate and the PostgreSQL counters change continuously; cheap
   components are SIGKILLed, and the broker and the registry are SIGKILLed and restarted,
   PostgreSQL crashes (immediate shutdown) and restarts, and the connection to it is cut;
3. **rebuild** — ``unsilo rebuild <read model>`` is SIGKILLed mid-way and run again, while
   the workers keep applying the live stream (and are killed too).

The supervisor restarts whatever exits, as systemd would; exits nobody injected are
counted apart. Afterwards the workload stops, the pipeline drains, every raw topic is
checked against the changes the databases recorded, every read model against SQL over
the legacy databases, and a last unkilled rebuild of each read model must give the same.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import create_engine, text

from hub.errors import UnsiloError
from hub.estate import SYSTEMS, TABLES
from hub.status import load_statuses
from tests.faults.audit import current_keys, expected_changes, primary_key
from tests.faults.pipeline import PG_SYSTEM, READ_MODELS, Pipeline, Progress, Workload
from tests.faults.verify import (
    Tally,
    check_counters,
    check_snapshot,
    check_stream,
    read_model_mismatches,
    topic_events,
)

DEFAULT_SEED = 20261127
CHEAP = {"connector": 45, "projection": 30, "canonicalizer": 15, "api": 10}


def fault_seed() -> int:
    return int(os.environ.get("UNSILO_FAULT_SEED", DEFAULT_SEED))


@dataclass(frozen=True)
class Plan:
    snapshot_faults: int = 10
    stream_faults: int = 36  # including the heavy ones below
    rebuild_kills: int = 6
    rebuild_worker_kills: int = 4
    broker_restarts: int = 2
    registry_restarts: int = 2
    postgres_restarts: int = 1
    network_cuts: int = 1


@dataclass
class Outcome:
    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    by_phase: Counter[str] = field(default_factory=Counter)
    tally: Tally = field(default_factory=Tally)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unexpected_exits: Counter[str] = field(default_factory=Counter)
    exits_after_heavy: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def summary(self) -> str:
        t = self.tally
        return (
            f"faults injected: {self.injected}, changes checked: {t.checked},"
            f" lost: {t.lost}, duplicated: {t.duplicated}"
        )


class Scenario:
    def __init__(self, pipeline: Pipeline, plan: Plan, seed: int, say: Callable[[str], None] = print) -> None:
        self.p = pipeline
        self.plan = plan
        self.rng = random.Random(seed)
        self.say = say
        self.out = Outcome(seed)
        self.progress = Progress(pipeline.settings.kafka)
        self.phase = "setup"

    # -- faults ----------------------------------------------------------------------------

    def _record(self, what: str) -> None:
        self.out.faults[what] += 1
        self.out.by_phase[self.phase] += 1

    def _kill_cheap(self, kinds: dict[str, int] = CHEAP) -> None:
        """SIGKILL one running component of a kind drawn by weight (it is restarted by the supervisor)."""
        sup = self.p.supervisor
        for _ in range(20):
            kind = self.rng.choices(list(kinds), weights=list(kinds.values()))[0]
            name = self.rng.choice(sup.names(kind))
            if sup.kill(name):
                self._record(f"SIGKILL {kind}")
                self.say(f"[{self.phase}] SIGKILL {name}")
                return
            time.sleep(0.2)  # it was down (restarting): draw again
        self.out.notes.append(f"{self.phase}: no running component to kill")

    def _heavy(self, kind: str) -> None:
        sup, stack, started = self.p.supervisor, self.p.stack, time.monotonic()
        before = Counter(sup.unexpected_exits)
        if kind == "broker":
            stack.kill_broker()
            time.sleep(self.rng.uniform(1.0, 4.0))  # down under load
            took = stack.start_broker()
            self._record("broker SIGKILL+restart")
        elif kind == "registry":
            stack.kill_registry()
            time.sleep(self.rng.uniform(1.0, 3.0))
            took = stack.start_registry()
            self._record("registry SIGKILL+restart")
        elif kind == "postgres":
            self.p.postgres.crash()
            time.sleep(self.rng.uniform(0.5, 2.0))
            took = self.p.postgres.restart()
            self._record("PostgreSQL crash+restart")
        else:
            self.p.proxy.cut()
            took = self.rng.uniform(3.0, 8.0)
            time.sleep(took)
            self.p.proxy.restore()
            self._record("network cut to PostgreSQL")
        self.say(f"[{self.phase}] {kind} fault: {took:.1f}s to come back ({time.monotonic() - started:.1f}s)")
        self._heavy_pending = (kind, before)

    def _settle_heavy(self) -> None:
        pending = getattr(self, "_heavy_pending", None)
        if pending is not None:
            kind, before = pending
            exits = Counter(self.p.supervisor.unexpected_exits)
            exits.subtract(before)
            self.out.exits_after_heavy.setdefault(kind, Counter()).update(+exits)
            self._heavy_pending = None

    def _wait_progress(self, low: int, high: int) -> None:
        if not self.progress.wait_growth(self.rng.randint(low, high), timeout_s=30):
            self.out.notes.append(f"{self.phase}: no progress for 30s before a fault")

    # -- phases ----------------------------------------------------------------------------

    def run(self) -> Outcome:
        began = time.monotonic()
        snapshot_keys = {s: current_keys(self.p.dbs[s], list(TABLES[s])) for s in SYSTEMS}
        self.snapshot_total = sum(len(k) for keys in snapshot_keys.values() for k in keys.values())
        self.snapshot_total += self.p.counters
        self.say(f"fault seed: {self.out.seed}; snapshot of {self.snapshot_total} rows")
        try:
            self._timed("snapshot", self._snapshot)
            workload = Workload(self.p, self.out.seed + 1000, estate_rate=40, counter_rate=25)
            workload.start()
            try:
                self._timed("streaming", self._streaming)
                self._timed("rebuild", self._rebuild)
            finally:
                workload.stop()
            self.say(f"workload: {workload.changes} estate changes, {workload.bumps} counter updates")
            self._timed("drain", self._drain)
            self._timed("verify", lambda: self._verify(snapshot_keys))
        finally:
            self.progress.close()
            self.out.unexpected_exits = Counter(self.p.supervisor.unexpected_exits)
        self.out.seconds["total"] = time.monotonic() - began
        return self.out

    def _timed(self, phase: str, step: Callable[[], None]) -> None:
        self.phase = phase
        started = time.monotonic()
        step()
        self.out.seconds[phase] = round(time.monotonic() - started, 1)

    def _snapshot_done(self) -> bool:
        """Every row published at least once and every connector says its tables stream."""
        if self.progress.total(("unsilo.raw.",)) < self.snapshot_total:
            return False
        try:
            statuses = load_statuses(self.p.settings.kafka)
        except UnsiloError:
            return False
        names = [source.name for source in self.p.settings.sources]
        return all(
            name in statuses
            and statuses[name].tables
            and all(t.state == "streaming" for t in statuses[name].tables.values())
            for name in names
        )

    def _snapshot(self) -> None:
        self.p.supervisor.start()
        kinds = {"connector": 70, "canonicalizer": 10, "projection": 15, "api": 5}
        while self.out.by_phase["snapshot"] < self.plan.snapshot_faults and not self._snapshot_done():
            self._wait_progress(20, 150)
            self._kill_cheap(kinds)
        deadline = time.monotonic() + 240
        while not self._snapshot_done():
            assert time.monotonic() < deadline, "the snapshot did not finish within 240s"
            time.sleep(0.5)
        if self.out.by_phase["snapshot"] < self.plan.snapshot_faults:
            self.out.notes.append(f"snapshot finished after {self.out.by_phase['snapshot']} faults")

    def _streaming(self) -> None:
        plan = self.plan
        heavy = (
            ["broker"] * plan.broker_restarts
            + ["registry"] * plan.registry_restarts
            + ["postgres"] * plan.postgres_restarts
            + ["network"] * plan.network_cuts
        )
        slots = dict(zip(self.rng.sample(range(2, plan.stream_faults), len(heavy)), heavy, strict=True))
        for index in range(plan.stream_faults):
            self._wait_progress(20, 150)
            self._settle_heavy()
            if index in slots:
                self._heavy(slots[index])
            else:
                self._kill_cheap()
        self._wait_progress(20, 150)
        self._settle_heavy()

    def _rebuild_progress(self, model: str) -> int:
        engine = create_engine(self.p.read_url, connect_args={"timeout": 5})
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    text('SELECT COALESCE(SUM("offset") + COUNT(*), 0) FROM unsilo_projection_positions'
                         " WHERE projection = :p"),
                    {"p": model + "__rebuild"},
                ).scalar()  # fmt: skip
            return int(found or 0)
        except Exception:
            return 0
        finally:
            engine.dispose()

    def _rebuild(self) -> None:
        kills = 0
        for _ in range(self.plan.rebuild_kills * 3):
            if kills >= self.plan.rebuild_kills:
                break
            model = self.rng.choice(READ_MODELS)
            threshold = self.rng.randint(1, 400)
            job = self._start_rebuild(model)
            deadline = time.monotonic() + 60
            while job.poll() is None and time.monotonic() < deadline:
                if self._rebuild_progress(model) >= threshold:
                    job.kill()
                    job.wait(10)
                    kills += 1
                    self._record("SIGKILL rebuild")
                    self.say(f"[rebuild] SIGKILL unsilo rebuild {model} after {threshold}+ events")
                    break
                time.sleep(0.05)
            else:
                if job.poll() is None:
                    job.kill()
                    job.wait(10)
                self.out.notes.append(f"rebuild {model} ended (rc {job.returncode}) before its kill")
            if (
                self.out.by_phase["rebuild"] - kills < self.plan.rebuild_worker_kills
                and self.rng.random() < 0.7
            ):
                self._wait_progress(10, 60)
                self._kill_cheap({"projection": 70, "canonicalizer": 30})

    def _start_rebuild(self, model: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "hub.cli", "--log-level", "warning", "-c", str(self.p.config)]
        log = open(self.p.workdir / "logs" / f"rebuild-{model}.log", "ab")  # noqa: SIM115
        with log:
            return subprocess.Popen(
                [*argv, "rebuild", model], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _drain(self) -> None:
        """Wait until the read models equal SQL and the counters topic holds every update."""
        versions = self.p.versions()
        wanted_pg = self.p.counters + sum(versions.values())
        deadline = time.monotonic() + 300
        problems: list[str] = ["not checked yet"]
        while time.monotonic() < deadline:
            pg = self.progress.total(("unsilo.raw." + PG_SYSTEM + ".",))
            problems = read_model_mismatches(self.p.urls, self.p.read_url)
            if not problems and pg >= wanted_pg:
                break
            time.sleep(2.0)
        time.sleep(2.0)  # anything published beyond the expected would show as a duplicate
        self.out.mismatches = problems

    def _verify(self, snapshot_keys: dict[str, dict[str, set[tuple[str, ...]]]]) -> None:
        tally, settings = self.out.tally, self.p.settings
        for system in SYSTEMS:
            expected = expected_changes(self.p.dbs[system])
            conn = sqlite3.connect(self.p.dbs[system])
            keys = {t: primary_key(conn, t) for t in TABLES[system]}
            conn.close()
            for table, topic in self.p.raw_topics()[system]:
                events = topic_events(settings, topic, keys[table])
                check_snapshot(tally, table, events, snapshot_keys[system][table])
                check_stream(tally, table, events, expected)
        events = topic_events(settings, self.p.raw_topics()[PG_SYSTEM][0][1], ["id"])
        check_counters(tally, events, self.p.versions())
        for model in READ_MODELS:  # a last rebuild, unkilled, gives the same rows
            job = self._start_rebuild(model)
            if job.wait(300) != 0:
                self.out.mismatches.append(f"the final rebuild of {model} failed (rc {job.returncode})")
        self.out.mismatches += [
            f"after rebuild: {m}" for m in read_model_mismatches(self.p.urls, self.p.read_url)
        ]
        try:
            health = httpx.get(f"http://127.0.0.1:{self.p.api_port}/health/live", timeout=10).status_code
        except httpx.HTTPError as exc:
            health = str(exc)  # type: ignore[assignment]
        if health != 200:
            self.out.mismatches.append(f"the API did not answer after its restarts: {health}")


def describe(out: Outcome) -> list[str]:
    """The report's lines: seed, mix, timings, and the counts line last."""
    lines = [f"fault seed: {out.seed} (set UNSILO_FAULT_SEED to replay)"]
    lines.append("fault mix: " + ", ".join(f"{what} x{n}" for what, n in sorted(out.faults.items())))
    lines.append("faults per phase: " + ", ".join(f"{p} {n}" for p, n in out.by_phase.items()))
    lines.append("seconds: " + ", ".join(f"{p} {s:.0f}" for p, s in out.seconds.items()))
    if out.unexpected_exits:
        lines.append("exits nobody injected (restarted): " + dict_text(out.unexpected_exits))
    for kind, exits in out.exits_after_heavy.items():
        lines.append(f"exits after {kind} faults: " + (dict_text(exits) or "none: every component recovered"))
    t = out.tally
    if t.unexpected or t.out_of_order:
        lines.append(f"unexplained events: {t.unexpected}, keys out of order: {t.out_of_order}")
    lines += [f"  e.g. {e}" for e in t.examples[:10]]
    lines += [f"read model: {m}" for m in out.mismatches]
    lines += [f"note: {n}" for n in out.notes]
    lines.append(out.summary())
    return lines


def dict_text(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
