"""``unsilo validate`` for sources: connect, check settings and privileges, name the fix."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Problem
from connectors.runner import create_connector
from hub.config import Settings
from hub.errors import UnsiloError


@dataclass(frozen=True)
class CheckResult:
    """One line of ``unsilo validate``: what was checked, whether it is fine, and the fix."""

    subject: str
    ok: bool
    detail: str
    fix: str | None = None


def check_sources(settings: Settings) -> list[CheckResult]:
    """Check every configured source without changing it."""
    results: list[CheckResult] = []
    for source in settings.sources:
        try:
            connector = create_connector(source)
            check = getattr(connector, "check", None)
            describe = getattr(connector, "describe_tables", None)  # connects and reads the tables
            if check is None and describe is not None:
                describe()
            problems: list[Problem] = check() if check is not None else []
        except UnsiloError as exc:
            results.append(CheckResult(f"source {source.name}", False, exc.message, exc.hint))
            continue
        if not problems:
            detail = f"{source.kind}, {len(source.tables)} table(s) ready to capture"
            results.append(CheckResult(f"source {source.name}", True, detail))
        for problem in problems:
            where = f"source {source.name}" + (f" table {problem.table}" if problem.table else "")
            results.append(CheckResult(where, False, problem.what, problem.fix))
    return results
