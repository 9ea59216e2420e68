"""Background processes for the local services: start detached, find by pid file, stop by PID.

A service's process is known only by the PID in ``<data_dir>/run/<name>.pid`` *and* a marker
string in its command line (so a PID recycled by an unrelated program is never taken for
ours, nor signalled). Nothing here ever kills by process name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ServiceError
from hub.local.tools import log_tail


@dataclass(frozen=True)
class ServiceStatus:
    """What ``unsilo ps`` shows for one local service."""

    name: str
    pid: int | None
    address: str
    running: bool


def _cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid`` from /proc, or None when /proc does not have it."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def _is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited but was not reaped yet (state Z in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


_children: dict[int, subprocess.Popen[bytes]] = {}
_START_BANNER = "=== unsilo starting "
_ERROR_LINE = re.compile(r"\b(ERROR|FATAL|SEVERE)\b|^Caused by:|^Error:|^Exception in thread")


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` when it is our child, so it leaves no zombie."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def is_running(pid: int, marker: str | None = None) -> bool:
    """True when ``pid`` is alive (not a zombie) and, given a marker, it is one of its args."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else; the marker check below decides
    if _is_zombie(pid):
        return False
    if marker is None:
        return True
    argv = _cmdline(pid)
    if argv is None:
        return not Path("/proc").is_dir()  # no /proc: liveness is all that can be checked
    return marker in argv


def stop_pid(pid: int, marker: str | None, timeout_s: float = 30.0) -> bool:
    """SIGTERM ``pid``, wait up to ``timeout_s``, then SIGKILL; False if it was not running."""
    if not is_running(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and is_running(pid):
        time.sleep(0.05)
    if is_running(pid):
        raise ServiceError(f"process {pid} did not exit even after SIGKILL")
    return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port`` (a bind attempt fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


class ManagedProcess:
    """One named background process under ``data_dir``: pid file, log file, marker."""

    def __init__(self, name: str, data_dir: Path, marker: str) -> None:
        self.name = name
        self.marker = marker
        self.pid_file = data_dir / "run" / f"{name}.pid"
        self.log_file = data_dir / "logs" / f"{name}.log"

    def pid(self) -> int | None:
        """The PID of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        child = _children.get(pid)
        if child is not None and child.poll() is None:
            return pid  # ours and alive; it may not have exec'd yet (its argv is still ours)
        if is_running(pid, self.marker):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` in its own session, output appended to the log; returns the PID."""
        existing = self.pid()
        if existing is not None:
            raise ServiceError(f"{self.name} is already running (pid {existing})")
        if self.marker not in argv:
            raise ValueError(f"the command line of {self.name} must contain its marker")
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            out.write(f"\n{_START_BANNER}{self.name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
            out.flush()
            try:
                process = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=dict(env) if env is not None else None,
                    close_fds=True,
                )
            except OSError as exc:
                raise ServiceError(f"cannot start {self.name}: {exc}") from exc
        _children[process.pid] = process
        self.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        return process.pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop our process by PID (TERM, then KILL after ``timeout_s``); False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        stopped = stop_pid(pid, self.marker, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of this process's log."""
        return log_tail(self.log_file, lines)

    def error_lines(self, limit: int = 8) -> list[str]:
        """The first ERROR/FATAL/``Caused by`` lines the current run wrote to its log."""
        text = log_tail(self.log_file, 5000)
        run = text.rpartition(_START_BANNER)[2]
        found = [line for line in run.splitlines() if _ERROR_LINE.search(line)]
        return [line[:400] for line in found[:limit]]

    def died_error(self, what: str) -> ServiceError:
        """A ServiceError: the process exited during ``what``; its logged errors and log tail."""
        self.pid_file.unlink(missing_ok=True)
        errors = self.error_lines()
        found = "errors logged:\n" + "\n".join(errors) + "\n" if errors else ""
        return ServiceError(
            f"{self.name} exited during {what}; {found}last lines of {self.log_file}:\n{self.tail(20)}"
        )

    def rss_bytes(self) -> int | None:
        """Resident memory of the running process in bytes (Linux), or None."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None
