"""The fault-injection suite: SIGKILLs and outages of every component lose and duplicate nothing.

Runs one seeded scenario (tests/faults/driver.py) against a broker, a registry and a
PostgreSQL of its own, and prints ``faults injected: N, changes checked: M, lost: L,
duplicated: D``. ``UNSILO_FAULT_SEED`` replays a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.driver import Plan, Scenario, describe, fault_seed
from tests.faults.pipeline import Pipeline
from tests.faults.services import FaultStack, RestartablePostgres

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultStack, RestartablePostgres]]:
    """A broker, a registry and a PostgreSQL that only this suite uses (it kills them)."""
    stack = FaultStack(tmp_path_factory.mktemp("fault-stack"))
    postgres = RestartablePostgres()
    try:
        stack.start()
        postgres.start()
        yield stack, postgres
    finally:
        postgres.stop()
        stack.stop()


def test_faults_lose_and_duplicate_nothing(
    services: tuple[FaultStack, RestartablePostgres], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After 50+ kills, restarts and outages every change is in its topic once; read models equal SQL."""
    stack, postgres = services

    def say(line: str) -> None:  # shown live, whatever pytest captures
        with capsys.disabled():
            print(line, flush=True)

    seed = fault_seed()
    plan = Plan()
    pipeline = Pipeline(tmp_path, stack, postgres, seed, pregrow=4000, counters=1500, batch_size=50)
    try:
        outcome = Scenario(pipeline, plan, seed, say=say).run()
    finally:
        pipeline.close()
    for line in describe(outcome):
        say(line)

    tally = outcome.tally
    assert outcome.injected >= 50, f"only {outcome.injected} faults were injected"
    assert tally.lost == 0 and tally.duplicated == 0, outcome.summary()
    assert tally.unexpected == 0 and tally.out_of_order == 0, tally.examples
    assert outcome.mismatches == [], outcome.mismatches
    assert tally.checked >= 5000, "too few changes were checked to mean anything"
