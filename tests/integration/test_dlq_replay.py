"""Poison input goes to the DLQ with the reason and the pipeline goes on; `unsilo dlq replay`
delivers a fixed letter exactly once; `unsilo dlq list` shows what happened to each."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings, TableSettings
from hub.kafka.topics import dlq_topic, raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.support import topic_messages, unique, write_config

pytestmark = pytest.mark.integration


def unsilo(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def empnos(settings: Settings, system: str) -> list[int]:
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    return [
        serde.decode(m.value())["after"]["empno"]
        for m in topic_messages(settings.kafka, raw_topic(system, "emp"))
        if m.value() is not None
    ]


def test_fixed_dead_letter_is_replayed_exactly_once(settings: Settings, tmp_path: Path) -> None:
    """A DATE holding 'soon' is dead-lettered; a replay before the fix fails and says why; after
    masking the column away it is delivered once, a second replay delivers nothing, and
    `dlq list` shows it replayed."""
    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE emp (empno INTEGER PRIMARY KEY, ename TEXT, hired DATE)")
    conn.execute("INSERT INTO emp VALUES (1, 'KING', '2024-02-29')")
    conn.execute("INSERT INTO emp VALUES (2, 'BLAKE', 'soon')")  # SQLite takes it; Avro's date cannot
    conn.execute("INSERT INTO emp VALUES (3, 'CLARK', '2024-03-01')")
    conn.commit()
    conn.close()
    system, name = unique("hr"), unique("hrsrc")
    source = SourceSettings(name=name, system=system, kind="sqlite", url=str(db), tables=["emp"])
    broken = write_config(settings.model_copy(update={"sources": [source]}), tmp_path / "broken.yaml")
    stats = ConnectorRunner(settings.model_copy(update={"sources": [source]}), source).run(until_idle=True)
    assert stats.dead_lettered == 1 and empnos(settings, system) == [1, 3]

    before_fix = unsilo(broken, "dlq", "replay", "--stage", name)
    assert before_fix.returncode == 1, before_fix.stderr
    assert "failed" in before_fix.stdout and "hired" in before_fix.stdout
    assert empnos(settings, system) == [1, 3]

    fixed_source = source.model_copy(update={"tables": [TableSettings(name="emp", mask={"hired": "drop"})]})
    fixed = write_config(settings.model_copy(update={"sources": [fixed_source]}), tmp_path / "fixed.yaml")
    first = unsilo(fixed, "dlq", "replay", "--stage", name)
    second = unsilo(fixed, "dlq", "replay")  # every source of the config
    listed = unsilo(fixed, "dlq", "list", "--stage", name, "--json")

    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 replayed, 0 still failing" in first.stdout
    assert second.returncode == 0 and "0 replayed, 0 still failing, 1 done before" in second.stdout
    assert empnos(settings, system) == [1, 3, 2]  # delivered once, after the fix
    letters = json.loads(listed.stdout)[dlq_topic(name)]
    assert [(d["table"], d["error_class"], d["replay"]) for d in letters] == [
        ("emp", "SourceDataError", "replayed")
    ]
    assert "values" not in letters[0] and "BLAKE" not in listed.stdout  # no payload unless asked
    shown = unsilo(fixed, "dlq", "list", "--stage", name, "--json", "--show-values")
    every_dlq = json.loads(unsilo(fixed, "dlq", "list", "--json").stdout)
    assert every_dlq[dlq_topic(name)] == letters
    assert json.loads(shown.stdout)[dlq_topic(name)][0]["values"]["after"]["ename"] == "BLAKE"


def test_row_above_the_broker_limit_is_dead_lettered_and_capture_goes_on(
    settings: Settings, tmp_path: Path
) -> None:
    """A 1.5 MB row goes to the DLQ as RecordTooLargeError with a truncated copy; the rows
    around it and later changes are published; its replay says to re-snapshot instead."""
    db = tmp_path / "docs.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE emp (empno INTEGER PRIMARY KEY, ename TEXT, cv TEXT)")
    conn.commit()
    system, name = unique("hr"), unique("hrsrc")
    source = SourceSettings(name=name, system=system, kind="sqlite", url=str(db), tables=["emp"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    conn.execute("INSERT INTO emp VALUES (1, 'KING', 'short')")
    conn.execute("INSERT INTO emp VALUES (2, 'BLAKE', ?)", ("x" * 1_500_000,))
    conn.execute("INSERT INTO emp VALUES (3, 'CLARK', 'short')")
    conn.commit()

    stats = ConnectorRunner(configured, source).run(until_idle=True)
    conn.execute("INSERT INTO emp VALUES (4, 'JONES', 'later')")
    conn.commit()
    conn.close()
    ConnectorRunner(configured, source).run(until_idle=True)

    dead = topic_messages(settings.kafka, dlq_topic(name))
    headers = dict(dead[0].headers() or [])
    body = json.loads(dead[0].value() or b"")
    assert stats.dead_lettered == 1 and empnos(settings, system) == [1, 3, 4]
    assert headers["unsilo.error.class"] == b"RecordTooLargeError"
    assert b"maximum message size" in headers["unsilo.error"]
    assert body["after"]["ename"] == "BLAKE" and body["truncated"] == ["cv"]
    assert len(dead[0].value() or b"") < 10_000
    replayed = unsilo(write_config(configured, tmp_path / "u.yaml"), "dlq", "replay", "--stage", name)
    assert replayed.returncode == 1 and f"unsilo snapshot {name}.emp" in replayed.stdout


EMPLOYEE_MAPPING = """
version: 1
systems:
  {system}: {{prefix: hr}}
mappings:
  - entity: Employee
    system: {system}
    table: EMP
    key: [EMPNO]
    fields:
      employee_no: {{column: EMPNO, convert: int}}
      name: {{column: ENAME, convert: [strip, title]}}
      job: {{column: JOB, convert: [strip, upper]}}
      manager_key: {{ref: [MGR]}}
      hire_date: {hire_date}
      salary: {{column: SAL, convert: decimal}}
      department_key: {{ref: [DEPTNO]}}
      email: {{column: EMAIL, convert: [strip, lower, blank_as_null]}}
"""


def test_unmappable_event_is_replayed_once_after_the_mapping_is_fixed(
    settings: Settings, tmp_path: Path
) -> None:
    """A HIREDATE of 20230229 fails the Employee mapping and is dead-lettered; after the mapping
    is changed, `dlq replay --stage canonical.<ns>` delivers it once to the Employee topic."""
    from projections.canonical.contract import CanonicalTopics
    from projections.cli_canonical import run_canonical

    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE EMP (EMPNO INTEGER PRIMARY KEY, ENAME TEXT, JOB TEXT, MGR INTEGER, HIREDATE TEXT, "
        "SAL TEXT, DEPTNO INTEGER, EMAIL TEXT)"
    )
    conn.execute("INSERT INTO EMP VALUES (7839, 'king', 'president', NULL, '19811117', '5000.00', 10, NULL)")
    conn.execute("INSERT INTO EMP VALUES (7900, 'james', 'clerk', 7839, '20230229', '950.00', 30, NULL)")
    conn.commit()
    conn.close()
    system, namespace = unique("hr"), unique("c")
    source = SourceSettings(name=unique("hrsrc"), system=system, kind="sqlite", url=str(db), tables=["EMP"])
    configured = settings.model_copy(update={"sources": [source]})
    strict = tmp_path / "mappings.yaml"
    strict.write_text(
        EMPLOYEE_MAPPING.format(system=system, hire_date="{column: HIREDATE, convert: yyyymmdd}")
    )
    ConnectorRunner(configured, source).run(until_idle=True)
    run_canonical(configured, mappings=strict, namespace=namespace, until_idle=True, max_seconds=120)
    topics = CanonicalTopics(namespace)
    stage = f"canonical.{namespace}"
    config = write_config(configured, tmp_path / "unsilo.yaml")
    lenient = tmp_path / "fixed.yaml"  # unknown hire dates become the company's founding day
    lenient.write_text(EMPLOYEE_MAPPING.format(system=system, hire_date="{value: 1977-06-16}"))

    def employees() -> list[str]:
        serde = AvroSerde(ConfluentRegistry(settings.registry))
        return [
            serde.decode(m.key())["key"] for m in topic_messages(settings.kafka, topics.entity("Employee"))
        ]

    assert employees() == ["hr:7839"]
    unfixed = unsilo(config, "dlq", "replay", "--stage", stage, "--mappings", str(strict))
    first = unsilo(config, "dlq", "replay", "--stage", stage, "--mappings", str(lenient))
    second = unsilo(config, "dlq", "replay", "--stage", stage, "--mappings", str(lenient))
    listed = json.loads(unsilo(config, "dlq", "list", "--stage", stage, "--json").stdout)[topics.dlq]

    assert unfixed.returncode == 1 and "20230229" in unfixed.stdout, unfixed.stdout + unfixed.stderr
    assert first.returncode == 0 and "1 replayed" in first.stdout, first.stdout + first.stderr
    assert second.returncode == 0 and "0 replayed, 0 still failing, 1 done before" in second.stdout
    assert employees() == ["hr:7839", "hr:7900"]
    assert [(d["table"], d["replay"]) for d in listed] == [(f"{system}.EMP->Employee", "replayed")]


KILL_ON_SECOND_COMMIT = """
import os, signal, sys
from hub.kafka.producer import TransactionalProducer
commit, calls = TransactionalProducer.commit, []
def dying_commit(self, timeout_s=60.0):
    calls.append(1)
    if len(calls) == 2:  # the second letter's records are sent, its transaction still open
        os.kill(os.getpid(), signal.SIGKILL)
    return commit(self, timeout_s)
TransactionalProducer.commit = dying_commit
from hub.cli import main
main(sys.argv[1:])
"""


def test_replay_killed_mid_transaction_delivers_each_letter_once(settings: Settings, tmp_path: Path) -> None:
    """A replay SIGKILLed with a letter's records sent but not committed: the next replay
    delivers that letter and the rest, and no letter reaches the raw topic twice."""
    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE emp (empno INTEGER PRIMARY KEY, ename TEXT, hired DATE)")
    conn.executemany("INSERT INTO emp VALUES (?, ?, 'soon')", [(n, f"E{n}") for n in (1, 2, 3)])
    conn.commit()
    conn.close()
    system, name = unique("hr"), unique("hrsrc")
    source = SourceSettings(name=name, system=system, kind="sqlite", url=str(db), tables=["emp"])
    assert ConnectorRunner(settings, source).run(until_idle=True).dead_lettered == 3
    fixed = source.model_copy(update={"tables": [TableSettings(name="emp", mask={"hired": "drop"})]})
    config = write_config(settings.model_copy(update={"sources": [fixed]}), tmp_path / "fixed.yaml")

    command = ["--config", str(config), "dlq", "replay", "--stage", name]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_ON_SECOND_COMMIT, *command], capture_output=True, text=True, timeout=120
    )
    after_crash = empnos(settings, system)
    resumed = unsilo(config, "dlq", "replay", "--stage", name)

    assert killed.returncode == -9 and after_crash == [1]  # the open transaction is not visible
    assert "2 replayed, 0 still failing, 1 done before" in resumed.stdout, resumed.stdout + resumed.stderr
    assert empnos(settings, system) == [1, 2, 3]


def test_postgres_dead_letter_is_replayed_with_the_tables_read_from_the_server(
    settings: Settings, postgres_db: str, tmp_path: Path
) -> None:
    """A PostgreSQL numeric 'NaN' (no Avro decimal holds it) is dead-lettered; after the column is
    dropped by the config, the replay reads the table's shape from the server and delivers it."""
    from tests.fixtures_postgres import run_sql as pg_sql

    pg_sql(postgres_db, "CREATE TABLE emp (empno integer PRIMARY KEY, ename text, sal numeric(10,2))")
    pg_sql(postgres_db, "INSERT INTO emp VALUES (1, 'KING', 5000), (2, 'BLAKE', 'NaN')")
    system, name = unique("hr"), unique("hrsrc")
    source = SourceSettings(name=name, system=system, kind="postgres", url=postgres_db, tables=["emp"])
    assert ConnectorRunner(settings, source).run(until_idle=True).dead_lettered == 1
    fixed = source.model_copy(update={"tables": [TableSettings(name="emp", mask={"sal": "drop"})]})
    config = write_config(settings.model_copy(update={"sources": [fixed]}), tmp_path / "fixed.yaml")

    replayed = unsilo(config, "dlq", "replay", "--stage", name)

    assert replayed.returncode == 0 and "1 replayed" in replayed.stdout, replayed.stdout + replayed.stderr
    assert empnos(settings, system) == [1, 2]
