"""The pipeline's processes under a supervisor that restarts whatever dies, as systemd would.

Each component is one ``unsilo`` command (a connector, the canonicalizer, a projection
worker, the API). :meth:`Supervisor.kill` SIGKILLs one by its PID (an injected fault); the
watch thread starts any component that is not running again after ``restart_delay_s``.
Exits that were not injected (a component giving up because the broker was away, say)
are counted apart, per component, so the report can say who did not survive on its own.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Component:
    name: str
    kind: str  # connector, canonicalizer, projection, api
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False  # the last exit was ours
    starts: int = 0
    down_since: float | None = field(default=None)


class Supervisor:
    """Starts components, restarts them when they exit, SIGKILLs them on demand."""

    def __init__(self, config: Path, log_dir: Path, restart_delay_s: float = 0.5) -> None:
        self.config = config
        self.log_dir = log_dir
        self.restart_delay_s = restart_delay_s
        self.components: dict[str, Component] = {}
        self.unexpected_exits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def add(self, name: str, kind: str, *args: str) -> None:
        self.components[name] = Component(name, kind, list(args))

    def start(self) -> None:
        for component in self.components.values():
            self._spawn(component)
        self._watch.start()

    def names(self, kind: str | None = None) -> list[str]:
        return [c.name for c in self.components.values() if kind is None or c.kind == kind]

    def kill(self, name: str) -> bool:
        """SIGKILL ``name``; False when it was not running (then it is no fault)."""
        with self._lock:
            component = self.components[name]
            process = component.process
            if process is None or process.poll() is not None:
                return False
            component.killed = True
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            return True

    def running(self, name: str) -> bool:
        process = self.components[name].process
        return process is not None and process.poll() is None

    def stop(self) -> None:
        self._stop.set()
        if self._watch.is_alive():
            self._watch.join(10)
        processes = [c.process for c in self.components.values() if c.process is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def _spawn(self, component: Component) -> None:
        argv = [sys.executable, "-m", "hub.cli", "--log-level", "warning", "-c", str(self.config)]
        log = open(self.log_dir / f"{component.name}.log", "ab")  # noqa: SIM115 - the child's output
        with contextlib.closing(log):
            log.write(f"\n=== start {component.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            component.process = subprocess.Popen(
                [*argv, *component.args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        component.starts += 1
        component.down_since = None

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                for component in self.components.values():
                    process = component.process
                    if process is None or process.poll() is None:
                        continue
                    now = time.monotonic()
                    if component.down_since is None:
                        component.down_since = now
                        if not component.killed:
                            self.unexpected_exits[component.name] += 1
                        component.killed = False
                    if now - component.down_since >= self.restart_delay_s:
                        self._spawn(component)
