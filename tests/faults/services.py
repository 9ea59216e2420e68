"""The suite's own broker, registry and PostgreSQL, which it may SIGKILL and restart.

Never the development services (9092/8081) nor the session's ``stack``: these run on free
ports with their own data directories, like tests/conftest.py starts a local stack, and
are stopped by their PIDs at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psycopg2

from hub.config import LocalSettings
from hub.local.kafka import LocalKafka
from hub.local.process import _reap, port_in_use
from hub.local.registry import LocalRegistry
from tests.fixtures_postgres import LocalPostgres
from tests.support import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_JARS = PROJECT_ROOT / ".unsilo"


def _pid_of(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while any thread of ``pid`` lives: a SIGKILLed JVM's main thread is a zombie before its
    other threads are gone, and only then are its sockets closed."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    tasks = Path(f"/proc/{pid}/task")
    try:
        states = [(t / "stat").read_text().rpartition(")")[2].split()[:1] for t in tasks.iterdir()]
    except OSError:
        return False
    return any(state != ["Z"] for state in states)


def _sigkill(pid_file: Path, ports: list[int], timeout_s: float = 30.0) -> None:
    """SIGKILL the process in ``pid_file`` and wait until it and its listening ports are gone."""
    pid = _pid_of(pid_file)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (pid is None or not _alive(pid)) and not any(port_in_use(p) for p in ports):
            break
        time.sleep(0.05)
    if pid is not None:
        _reap(pid)  # collect our child's exit status (hub.local.process started it)
    pid_file.unlink(missing_ok=True)


class FaultStack:
    """A broker and a registry of our own: start, SIGKILL, restart, stop."""

    def __init__(self, data_dir: Path) -> None:
        kafka_port, controller_port, registry_port = free_ports(3)
        self.local = LocalSettings(
            data_dir=data_dir,
            kafka_port=kafka_port,
            controller_port=controller_port,
            registry_port=registry_port,
            kafka_heap="512m",
            registry_heap="384m",
            start_timeout_s=180,
        )
        kafka_lib = SHARED_JARS / "kafka-lib"
        apicurio = SHARED_JARS / "apicurio"
        self.kafka = LocalKafka(self.local, PROJECT_ROOT, lib_dir=kafka_lib if kafka_lib.exists() else None)
        self.registry = LocalRegistry(
            self.local,
            PROJECT_ROOT,
            self.kafka.bootstrap_servers,
            install_dir=apicurio if apicurio.exists() else None,
        )

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def registry_url(self) -> str:
        return self.registry.url

    def start(self) -> None:
        self.kafka.ensure_installed()
        self.kafka.start()
        self.kafka.wait_ready()
        self.registry.ensure_installed()
        self.registry.start()
        self.registry.wait_ready()

    def kill_broker(self) -> None:
        """SIGKILL the broker (no clean shutdown: the next start recovers its log)."""
        _sigkill(self.kafka.process.pid_file, [self.local.kafka_port, self.local.controller_port])

    def start_broker(self, timeout_s: float = 180.0) -> float:
        """Start the broker again on the same ports and data; seconds until it is ready."""
        started = time.monotonic()
        pid = self.kafka.start()
        admin = self.kafka._admin()
        while not self.kafka._lists_broker(admin, 2.0):
            if not _alive(pid):
                raise self.kafka.process.died_error("restart")
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"the broker was not ready within {timeout_s:.0f}s of its restart")
            time.sleep(0.2)
        return time.monotonic() - started

    def kill_registry(self) -> None:
        _sigkill(self.registry.process.pid_file, [self.local.registry_port])

    def start_registry(self, timeout_s: float = 180.0) -> float:
        """Start the registry again; ready once ``GET /subjects`` answers (its config is in Kafka)."""
        started = time.monotonic()
        pid = self.registry.start()
        while not self._registry_answers():
            if not _alive(pid):
                raise self.registry.process.died_error("restart")
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"the registry did not answer within {timeout_s:.0f}s of its restart")
            time.sleep(0.25)
        return time.monotonic() - started

    def _registry_answers(self) -> bool:
        try:
            return httpx.get(self.registry.url + "/subjects", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.registry.stop(timeout_s=10)
        with contextlib.suppress(Exception):
            self.kafka.stop(timeout_s=20)


class RestartablePostgres(LocalPostgres):
    """A throwaway PostgreSQL that can also crash (immediate shutdown) and start again."""

    def crash(self) -> None:
        """SIGQUIT the postmaster: an immediate shutdown, no checkpoint; crash recovery on start."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGQUIT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def restart(self, timeout_s: float = 60.0) -> float:
        """Start the same server again (same data directory and port); seconds until it answers."""
        assert self.process is not None, "start() it first"
        started = time.monotonic()
        argv = [str(a) for a in self.process.args]  # type: ignore[union-attr]
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the server's log, closed with it
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, user=self.user)
        deadline = started + timeout_s
        while True:
            try:
                psycopg2.connect(self.url, connect_timeout=2).close()
                return time.monotonic() - started
            except psycopg2.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "PostgreSQL did not come back:\n"
                        + (self.root / "postgres.log").read_text(errors="replace")[-2000:]
                    ) from None
                time.sleep(0.1)
