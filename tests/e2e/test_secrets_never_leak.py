"""Secrets never leak: no output of a pipeline run holds a password, token or key in clear.

A PostgreSQL source whose role needs a password (given under the source's ``password``),
a connector run, ``unsilo validate``, ``status``, ``connectors`` and ``dlq list``, the API's
``/status``, ``/lag``, ``/metrics``, ``/dashboard`` and ``/health/ready``, and error paths (a
wrong database password, a password inside a polled source's URL, a wrong API token) run
with distinctive secret values for every secret setting. Every stdout, stderr (structlog at
debug level included) and HTTP body is searched for each of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hub.config import Settings
from tests.fixtures_postgres import run_sql, with_database
from tests.support import free_ports, unique, wait_for

pytestmark = pytest.mark.e2e

ROLE = "unsilo_secret_role"
PAYROLL, LEDGER = unique("payroll"), unique("ledger")  # sources: positions are kept in the broker
SECRETS = {
    "database password": "Db-Pw-7f3c19e2",
    "password in a URL": "Url-Pw-a4410b7c",
    "kafka sasl password": "Sasl-Pw-5be0c2d1",
    "registry password": "Reg-Pw-91ce7a30",
    "registry password in its URL": "RegUrl-Pw-3d5e8a17",
    "operator token": "Op-Tok-0d8e44f1",
    "auditor token": "Aud-Tok-6a2f9b05",
    "subscriber token": "Sub-Tok-c37e1d88",
    "audit hmac key": "Hmac-Key-2b71f6ea",
    "mask key": "Mask-Key-e905a3c4",
}


class Outputs:
    """Everything the test saw, by where it came from."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> str:
        self.seen.append((where, text))
        return text

    def leaks(self) -> list[str]:
        return [
            f"{name} in {where}"
            for where, text in self.seen
            for name, secret in SECRETS.items()
            if secret in text
        ]


def require_password(postgres_url: str) -> str:
    """A superuser role that must log in with the database password (scram-sha-256 over TCP)."""
    run_sql(postgres_url, f"DROP ROLE IF EXISTS {ROLE}")
    run_sql(
        postgres_url,
        f"CREATE ROLE {ROLE} LOGIN SUPERUSER REPLICATION PASSWORD %s",
        (SECRETS["database password"],),
    )
    hba = Path(run_sql(postgres_url, "SHOW hba_file")[0][0])
    rule = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
    text = hba.read_text()
    if rule not in text:
        hba.write_text(rule + text)
        run_sql(postgres_url, "SELECT pg_reload_conf()")
    return ROLE


def role_url(db_url: str, password: str | None = None) -> str:
    """``db_url`` as the password role (the password in the URL only when given)."""
    auth = f"{ROLE}:{password}" if password else ROLE
    return db_url.replace("postgres@", f"{auth}@", 1)


def config(settings: Settings, path: Path, db_url: str, api_port: int, db_password: str) -> Path:
    """An unsilo.yaml holding every secret in clear, as a user's file would (the right database
    password gives the registry's credentials inside its URL, a wrong one as settings)."""
    registry: dict[str, Any] = {"url": settings.registry.url, "username": "unsilo"}
    if db_password == SECRETS["database password"]:
        registry["url"] = registry["url"].replace(
            "://", f"://unsilo:{SECRETS['registry password in its URL']}@"
        )
        del registry["username"]
    else:
        registry["password"] = SECRETS["registry password"]
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "sasl_username": "unsilo",
            "sasl_password": SECRETS["kafka sasl password"],  # PLAINTEXT: configured, unused
        },
        "registry": registry,
        "local": {"data_dir": str(path.parent / ".unsilo")},
        "read_store": {"url": f"sqlite:///{path.parent / 'read.db'}"},
        "api": {
            "port": api_port,
            "operator_token": SECRETS["operator token"],
            "auditor_token": SECRETS["auditor token"],
            "subscriber_token": SECRETS["subscriber token"],
            "lag_history": str(path.parent / "lag.db"),
        },
        "audit": {"hmac_key": SECRETS["audit hmac key"]},
        "sources": [
            {
                "name": PAYROLL,
                "system": unique("hr"),
                "kind": "postgres",
                "url": role_url(db_url),
                "password": db_password,
                "slot": unique("slot_"),
                "mask_key": SECRETS["mask key"],
                "tables": [{"name": "emp", "mask": {"iban": "hash"}}],
            },
            {
                "name": LEDGER,
                "system": unique("fin"),
                "kind": "sql_poll",
                "url": role_url(db_url, SECRETS["password in a URL"]),  # wrong password, inside the URL
                "poll_mode": "incrementing",
                "tables": ["emp"],
                "state_dir": str(path.parent / "state"),
            },
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def unsilo(out: Outputs, *commands: tuple[Path, list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run the commands side by side (at debug level), each with its config; record their output."""
    started = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "--config", str(cfg), "--log-level", "debug", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for cfg, args in commands
    ]
    results = []
    for args, process in started:
        stdout, stderr = process.communicate(timeout=90)
        out.add(f"`unsilo {' '.join(args)}` stdout", stdout)
        out.add(f"`unsilo {' '.join(args)}` stderr", stderr)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def test_no_secret_appears_in_any_output(
    settings: Settings, postgres_url: str, postgres_db: str, tmp_path: Path
) -> None:
    """Run, validate, status, the API and three error paths: no secret value in any output."""
    require_password(postgres_url)
    run_sql(postgres_db, "CREATE TABLE emp (empno integer PRIMARY KEY, ename text, iban text)")
    run_sql(postgres_db, "INSERT INTO emp VALUES (7839, 'KING', 'FR76 3000 6000 0112 3456 7890 189')")
    db_url = with_database(postgres_url, postgres_db.rsplit("/", 1)[1])
    (api_port,) = free_ports(1)
    good = config(settings, tmp_path / "unsilo.yaml", db_url, api_port, SECRETS["database password"])
    wrong = config(settings, tmp_path / "wrong" / "unsilo.yaml", db_url, api_port, "not-the-password")
    out = Outputs()
    out.add("a self-check: the config files", good.read_text() + wrong.read_text())
    assert len(out.leaks()) == len(SECRETS)  # the search finds each secret where it is
    out.seen.clear()

    (run,) = unsilo(out, (good, ["run", PAYROLL, "--until-idle"]))
    assert run.returncode == 0, run.stderr[-2000:]
    api = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "--config", str(good), "--log-level", "debug", "api"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        validate, status, dlq, refused, polled = unsilo(
            out,
            (wrong, ["validate"]),
            (good, ["status"]),
            (good, ["dlq", "list", "--stage", PAYROLL]),
            (wrong, ["run", PAYROLL, "--until-idle"]),
            (good, ["run", LEDGER, "--until-idle"]),
        )
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: _answers(f"{base}/health/live"), timeout_s=30, what="the API")
        operator = {"Authorization": f"Bearer {SECRETS['operator token']}"}
        with httpx.Client(base_url=base, timeout=60) as client:
            for path in ("/status", "/lag", "/metrics", "/dashboard", "/health/ready", "/read-models"):
                response = client.get(path, headers=operator)
                assert response.status_code in (200, 503), (path, response.status_code)
                out.add(f"GET {path}", response.text + str(response.headers))
            denied = client.get("/status", headers={"Authorization": "Bearer wrong-token"})
            out.add("GET /status with a wrong token", denied.text + str(denied.headers))
    finally:
        api.terminate()
        logs, _ = api.communicate(timeout=30)
    out.add("`unsilo api` output", logs)

    assert status.returncode == 0 and dlq.returncode == 0 and denied.status_code == 401
    checked = " ".join(validate.stdout.split())  # rich wraps long lines
    assert validate.returncode == 1 and "password authentication failed" in checked
    assert "refused the login" in checked  # the polled source's password, in its URL, checked too
    assert refused.returncode == 2 and "password authentication failed" in refused.stderr
    assert polled.returncode == 2 and "refused the login" in polled.stderr  # not retried for ever
    assert out.leaks() == []


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
