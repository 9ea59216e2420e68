"""Point-in-time replay over HTTP: ``POST /replay`` starts one, ``GET /replay/{id}`` follows it.

The replay itself comes from the ``unsilo.replay`` entry point group (projections
publishes it; hub imports none of it): a function ``(settings, read_model, as_of, into,
replace=...)`` that checks the request (unknown read model, unreadable or future instant,
non-empty target: 400 with the hint) and returns an object whose ``run(progress)`` does
the work and returns a result with ``to_dict()``. Each accepted request runs in its own
background thread; its progress and result stay in memory for the life of the process.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from hub.config import Settings
from hub.errors import UnsiloError

log = structlog.get_logger(__name__)


class ReplayRequest(BaseModel):
    as_of: str = Field(description="ISO-8601 instant (no zone means UTC) or epoch milliseconds")
    read_model: str = Field(description="the read model to rebuild, e.g. mirror")
    into: str = Field(description="SQLAlchemy URL of an empty throwaway store, e.g. sqlite:///pit.db")
    replace: bool = Field(default=False, description="empty a non-empty target first")


@dataclass
class ReplayJob:
    id: str
    read_model: str
    as_of: str
    state: str = "running"  # running, done, failed
    read: int = 0
    total: int | None = None
    started_ms: int = 0
    finished_ms: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "read_model": self.read_model,
            "as_of": self.as_of,
            "state": self.state,
            "progress": {"events_read": self.read, "events_to_read": self.total},
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "result": self.result,
            "error": self.error,
            "hint": self.hint,
        }


def replay_dir(settings: Settings) -> Path:
    return (settings.api.replay_dir or settings.local.data_dir / "replays").resolve()


def target_refusal(settings: Settings, into: str) -> str | None:
    """Why the API may not build a store at ``into`` (None: it may). Over HTTP a replay only
    writes where the operator allowed: anywhere else it could create or empty any database
    the API process reaches, or a SQLite file anywhere it may write."""
    try:
        url = make_url(into)
    except ArgumentError:
        return f"{into!r} is not a SQLAlchemy URL"
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if url.database in (None, "", ":memory:") or not path.is_absolute():
            return "a SQLite target must be an absolute file path"
        if not path.resolve().is_relative_to(replay_dir(settings)):
            return f"{path} is outside the replay directory {replay_dir(settings)}"
        return None
    if any(into.startswith(prefix) for prefix in settings.api.replay_urls):
        return None
    return "replays over HTTP go to SQLite files in the replay directory or to api.replay_urls"


def target_hint(settings: Settings) -> str:
    return (
        f"use into=sqlite:///{replay_dir(settings)}/<name>.db, or allow a database in api.replay_urls "
        "(api.replay_dir moves the directory); `unsilo replay --into` has no such limit"
    )


def _preparer() -> Any:
    found = list(entry_points(group="unsilo.replay"))
    if not found:
        raise HTTPException(501, "no point-in-time replay is installed (entry point group unsilo.replay)")
    return found[0].load()


def replay_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/replay", tags=["replay"])
    jobs: dict[str, ReplayJob] = {}
    lock = threading.Lock()

    @router.post("", status_code=202)
    def start_replay(request: ReplayRequest) -> dict[str, Any]:
        """Start rebuilding a read model as it stood at ``as_of`` into ``into``; 202 with the job id."""
        refused = target_refusal(settings, request.into)
        if refused is not None:
            raise HTTPException(400, {"error": refused, "hint": target_hint(settings)})
        replay_dir(settings).mkdir(parents=True, exist_ok=True)
        try:
            replay = _preparer()(
                settings, request.read_model, request.as_of, request.into, replace=request.replace
            )
        except UnsiloError as exc:
            raise HTTPException(400, {"error": exc.message, "hint": exc.hint}) from exc
        job = ReplayJob(uuid.uuid4().hex[:12], request.read_model, request.as_of)
        job.started_ms = int(time.time() * 1000)
        with lock:
            jobs[job.id] = job

        def progress(read: int, total: int) -> None:
            job.read, job.total = read, total

        def work() -> None:
            try:
                job.result = replay.run(progress).to_dict()
                job.state = "done"
            except UnsiloError as exc:
                job.error, job.hint, job.state = exc.message, exc.hint, "failed"
            except Exception as exc:  # a replay thread must report, not vanish
                log.error("replay_job_failed", job=job.id, kind=type(exc).__name__)
                job.error, job.state = f"unexpected {type(exc).__name__}", "failed"
            finally:
                job.finished_ms = int(time.time() * 1000)
                log.info("replay_job_finished", job=job.id, state=job.state)

        threading.Thread(target=work, name=f"unsilo-replay-{job.id}", daemon=True).start()
        log.info("replay_job_started", job=job.id, read_model=job.read_model)
        return job.to_dict()

    @router.get("/{job_id}")
    def replay_status(job_id: str) -> dict[str, Any]:
        """A replay's state (running, done, failed), its progress, and its summary when done."""
        with lock:
            job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no replay {job_id!r} (replays are kept until the API restarts)")
        return job.to_dict()

    return router
