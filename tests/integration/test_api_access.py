"""Every API endpoint has a role: no or a wrong token is 401, a role not admitted is 403.

The policy table below is the contract. The test walks ``app.routes``, so an endpoint
added later without a guard (or without a row here) fails it. Masked columns stay masked
whoever asks, and no token value ever shows in a response or a log line.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connectors.runner import ConnectorRunner
from hub.api import create_app
from hub.api.access import ANYONE, AUDIT, OPERATE, Role
from hub.config import ApiSettings, Settings, SourceSettings, TableSettings
from hub.kafka.topics import raw_topic
from projections.replay import replay
from projections.store import create_read_store
from projections.table_mirror.builder import MirrorBuilder
from tests.support import query, unique, wait_for

pytestmark = pytest.mark.integration

POLICY: dict[tuple[str, str], tuple[Role, ...]] = {
    ("GET", "/"): OPERATE,
    ("GET", "/dashboard"): OPERATE,
    ("GET", "/status"): OPERATE,
    ("GET", "/metrics"): OPERATE,
    ("GET", "/lag"): OPERATE,
    ("GET", "/lag/{group}"): OPERATE,
    ("GET", "/read-models"): ANYONE,
    ("GET", "/read-models/{name}"): ANYONE,
    ("POST", "/replay"): AUDIT,
    ("GET", "/replay/{job_id}"): AUDIT,
    ("GET", "/catalog"): ANYONE,
    ("GET", "/asyncapi.json"): ANYONE,
    ("GET", "/history/{target}/{key}"): AUDIT,
}
CATALOG = {"/catalog", "/asyncapi.json", "/history/{target}/{key}"}  # rows for another change's routes

CLEAR_NID = "NID-77-0042-QRS"


def tokens() -> dict[Role, str]:
    return {role: f"{role.value}-{uuid.uuid4().hex}" for role in Role}


def with_tokens(settings: Settings, issued: dict[Role, str]) -> Settings:
    api = ApiSettings(
        operator_token=SecretStr(issued[Role.operator]),
        auditor_token=SecretStr(issued[Role.auditor]),
        subscriber_token=SecretStr(issued[Role.subscriber]),
    )
    return settings.model_copy(update={"api": api})


def request(client: TestClient, method: str, path: str, token: str | None, tmp_path: Path) -> httpx.Response:
    """Call one route with sample path parameters (and a body that fails after the guard)."""
    concrete = re.sub(r"\{[^}]+\}", lambda m: f"nosuch{uuid.uuid4().hex[:6]}", path)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = None
    if method == "POST" and path == "/replay":  # an unknown read model: 400 once let in
        body = {"as_of": "2026-01-01T00:00:00Z", "read_model": "nosuch", "into": f"sqlite:///{tmp_path}/x.db"}
    return client.request(method, concrete, headers=headers, json=body)


def api_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """(path, methods) of every API route, those of included routers too.

    FastAPI 0.165 keeps an included router as one entry of ``app.routes``;
    ``iter_route_contexts`` walks into it (older versions list the routes themselves).
    """
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    contexts = list(walk(app.routes)) if walk is not None else app.routes
    found = []
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute):
            found.append((str(context.path), set(context.methods or ())))
    return found


@pytest.fixture
def hr_source(settings: Settings, tmp_path: Path) -> Settings:
    """Settings with a captured SQLite HR table whose national id column is masked (hash)."""
    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE emp (empno INTEGER PRIMARY KEY, ename TEXT, nid TEXT)")
    conn.executemany(
        "INSERT INTO emp VALUES (?, ?, ?)", [(7839, "KING", CLEAR_NID), (7566, "JONES", "NID-2")]
    )
    conn.commit()
    conn.close()
    table = TableSettings(name="emp", mask={"nid": "hash"})
    source = SourceSettings(
        name=unique("hrsrc"), system=unique("hr"), kind="sqlite", url=str(db), tables=[table], mask_key="k"
    )
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    return configured


def test_every_route_admits_exactly_its_roles(
    settings: Settings, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Per route: no token and a wrong token are 401; each role gets 403 unless the policy admits it."""
    caplog.set_level(logging.DEBUG)
    issued = tokens()
    app = create_app(with_tokens(settings, issued), background=False)
    routes = [
        (method, path)
        for path, methods in api_routes(app)
        if not path.startswith("/health/")
        for method in sorted(methods)
    ]
    answers: list[httpx.Response] = []

    with TestClient(app, follow_redirects=False) as client:
        for method, path in routes:
            assert (method, path) in POLICY, f"{method} {path} has no role: guard it in app.py, add it here"
            for token in (None, "not-a-token"):
                answer = request(client, method, path, token, tmp_path)
                answers.append(answer)
                assert answer.status_code == 401, (method, path, token, answer.text)
            for role, token in issued.items():
                answer = request(client, method, path, token, tmp_path)
                answers.append(answer)
                if role in POLICY[(method, path)]:
                    assert answer.status_code not in (401, 403), (method, path, role, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, role, answer.text)
                    assert role.value in answer.json()["detail"]
        open_probe = client.get("/health/live")

    assert open_probe.status_code == 200
    assert {path for _, path in routes} >= {path for _, path in POLICY} - CATALOG  # real routes
    captured = capfd.readouterr()
    seen = [a.text + str(a.headers) for a in answers] + [captured.out, captured.err]
    seen += [record.getMessage() for record in caplog.records]
    for token in issued.values():
        assert all(token not in text for text in seen)


def test_the_dashboard_token_works_from_the_query_and_the_cookie(settings: Settings) -> None:
    """The operator's token is taken from ?token= and from the unsilo_token cookie; a subscriber's is 403."""
    issued = tokens()
    app = create_app(with_tokens(settings, issued), background=False)

    with TestClient(app) as client:
        by_query = client.get("/dashboard", params={"token": issued[Role.operator]})
        via_root = client.get("/", params={"token": issued[Role.operator]}, follow_redirects=False)
        client.cookies.set("unsilo_token", issued[Role.operator])
        by_cookie = client.get("/status")
        client.cookies.set("unsilo_token", issued[Role.subscriber])
        subscriber = client.get("/dashboard")

    assert by_query.status_code == 200 and "<svg" in by_query.text
    assert via_root.headers["location"] == f"/dashboard?token={issued[Role.operator]}"
    assert by_cookie.status_code == 200 and "components" in by_cookie.json()
    assert subscriber.status_code == 403


def test_masked_columns_stay_masked_for_every_role_and_replay_is_for_auditors(
    hr_source: Settings, tmp_path: Path
) -> None:
    """Operator, auditor and subscriber all read the hash of a masked column; an auditor's replay
    copies the hash too, and a subscriber may not start one."""
    issued = tokens()
    configured = with_tokens(hr_source, issued)
    source = configured.sources[0]
    topic = raw_topic(source.system, "emp")
    replay(
        configured, [topic], MirrorBuilder(create_read_store(configured.read_store.url))
    )  # the live mirror
    table = f"mirror_{source.system}_emp"
    app = create_app(configured, background=False)
    pit = configured.local.data_dir.resolve() / "replays" / "pit.db"  # where the API may replay to

    with TestClient(app) as client:
        rows = {
            role: client.get(
                f"/read-models/{table}", params={"empno": 7839}, headers={"Authorization": f"Bearer {token}"}
            )
            for role, token in issued.items()
        }
        body = {
            "as_of": str(int(time.time() * 1000)),
            "read_model": "mirror",
            "into": f"sqlite:///{pit}",
        }
        refused = client.post(
            "/replay", json=body, headers={"Authorization": f"Bearer {issued[Role.subscriber]}"}
        )
        auditor = {"Authorization": f"Bearer {issued[Role.auditor]}"}
        started = client.post("/replay", json=body, headers=auditor)
        assert started.status_code == 202, started.text

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = client.get(f"/replay/{started.json()['id']}", headers=auditor).json()
            return job if job["state"] != "running" else None

        job = wait_for(finished, timeout_s=120, what="the replay to finish")

    for role, answer in rows.items():
        assert answer.status_code == 200, (role, answer.text)
        (row,) = answer.json()["rows"]
        assert row["ename"] == "KING"
        assert re.fullmatch(r"[0-9a-f]{64}", row["nid"]), (role, row)
        assert CLEAR_NID not in answer.text
    assert refused.status_code == 403
    assert job["state"] == "done", job
    assert job["result"]["events_applied"] == 2 and job["progress"]["events_read"] == 2
    assert query(pit, f"SELECT nid FROM {table} WHERE empno = 7839") == [
        (rows[Role.auditor].json()["rows"][0]["nid"],)
    ]
