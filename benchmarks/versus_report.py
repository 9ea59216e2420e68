"""The pure side of ``benchmarks/versus_debezium.py``: percentiles, ratios, verdicts, the Markdown.

Nothing here does I/O, so it is unit-tested (tests/unit/test_versus_report.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SNAPSHOT_TARGET = 1.5  # Unsilo's snapshot rows/s at least 1.5 x Debezium's
TOOLS = ("unsilo", "debezium")


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """p50, p99 (nearest rank) and max of ``values``, and how many there were."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "p50": round(rank(0.50), 1),
        "p99": round(rank(0.99), 1),
        "max": round(ordered[-1], 1),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` to two places; None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 2)


def snapshot_verdict(unsilo_rows_per_s: float | None, debezium_rows_per_s: float | None) -> dict[str, Any]:
    """Unsilo's snapshot throughput as a multiple of Debezium's, against the 1.5 x target."""
    times = ratio(unsilo_rows_per_s, debezium_rows_per_s)
    return {
        "ratio": times,
        "target": SNAPSHOT_TARGET,
        "met": None if times is None else times >= SNAPSHOT_TARGET,
    }


def latency_verdict(unsilo_p99: float | None, debezium_p99: float | None) -> dict[str, Any]:
    """Unsilo's p99 capture latency over Debezium's; met when it is no worse (ratio <= 1)."""
    times = ratio(unsilo_p99, debezium_p99)
    met = None if unsilo_p99 is None or debezium_p99 is None else unsilo_p99 <= debezium_p99
    return {"ratio": times, "met": met}


def top_frames(collapsed: str, count: int = 12) -> list[dict[str, Any]]:
    """The functions the most samples were spent in, from py-spy's raw (collapsed) output: each
    line is ``frame;frame;...;leaf N``. Own time = samples whose leaf is the function; total =
    samples with the function anywhere on the stack (counted once per stack)."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    ranked = sorted(own.items(), key=lambda item: item[1], reverse=True)[:count]
    return [
        {
            "frame": frame,
            "own_pct": round(100 * n / samples, 1),
            "total_pct": round(100 * total[frame] / samples, 1),
        }
        for frame, n in ranked
    ]


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[value]


def machine_line(machine: Mapping[str, Any]) -> str:
    """One line describing the machine the figures come from."""
    cpu = machine.get("cpu_model") or "unknown CPU"
    load = machine.get("load_average")
    busy = f", load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at start" if load else ""
    return (
        f"{machine.get('cpu_count')} cores ({cpu}), {_num(machine.get('memory_total_mib'))} MiB RAM, "
        f"{machine.get('platform')}, Python {machine.get('python')}{busy}"
    )


def snapshot_rows(databases: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown rows: per database, each tool's snapshot figures and the ratio."""
    lines = [
        "| Database | Rows | Unsilo rows/s | Debezium rows/s | Unsilo / Debezium | Target 1.5x met | "
        "Unsilo rows/s after first record | Debezium rows/s after first record |",
        "|---|--:|--:|--:|--:|:-:|--:|--:|",
    ]
    for db, result in databases.items():
        snap = result.get("snapshot", {})
        uns, dbz = snap.get("unsilo", {}), snap.get("debezium", {})
        verdict = snap.get("verdict", {})
        lines.append(
            f"| {db} | {_num(snap.get('rows'))} "
            f"| {_num(uns.get('rows_per_s'))} | {_num(dbz.get('rows_per_s'))} "
            f"| {_times(verdict.get('ratio'))} | {_met(verdict.get('met'))} "
            f"| {_num(uns.get('rows_per_s_after_first'))} | {_num(dbz.get('rows_per_s_after_first'))} |"
        )
    return lines


def streaming_rows(databases: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown rows: per database and rate, both tools' latency percentiles and the p99 ratio."""
    lines = [
        "| Database | Rate (changes/s) | Unsilo p50 / p99 / max (ms) | Debezium p50 / p99 / max (ms) "
        "| p99 Unsilo / Debezium | No worse | p99 received by a consumer U / D (ms) | Achieved rate U / D |",
        "|---|--:|--:|--:|--:|:-:|--:|--:|",
    ]
    for db, result in databases.items():
        for rate in result.get("streaming", []):
            uns, dbz = rate.get("unsilo", {}), rate.get("debezium", {})
            lu, ld = uns.get("latency_ms", {}), dbz.get("latency_ms", {})
            ru, rd = uns.get("received_latency_ms", {}), dbz.get("received_latency_ms", {})
            verdict = rate.get("verdict", {})
            lines.append(
                f"| {db} | {_num(rate.get('rate'))} "
                f"| {_num(lu.get('p50'))} / {_num(lu.get('p99'))} / {_num(lu.get('max'))} "
                f"| {_num(ld.get('p50'))} / {_num(ld.get('p99'))} / {_num(ld.get('max'))} "
                f"| {_times(verdict.get('ratio'))} | {_met(verdict.get('met'))} "
                f"| {_num(ru.get('p99'))} / {_num(rd.get('p99'))} "
                f"| {_num(uns.get('achieved_per_s'))} / {_num(dbz.get('achieved_per_s'))} |"
            )
    return lines


def rss_rows(processes: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| Process | Phase | Peak RSS (MiB) | CPU seconds |", "|---|---|--:|--:|"]
    for proc in processes:
        lines.append(
            f"| {proc['process']} | {proc['phase']} | {_num(proc.get('peak_rss_mib'), 1)} "
            f"| {_num(proc.get('cpu_seconds'), 1)} |"
        )
    return lines


def unsilo_only_rows(figures: Mapping[str, Any]) -> list[str]:
    lines = ["| Figure | Value | From |", "|---|--:|---|"]
    for figure in figures.get("rows", []):
        lines.append(f"| {figure['figure']} | {figure['value']} | {figure['source']} |")
    return lines


def render_markdown(results: Mapping[str, Any]) -> str:
    """The results as the Markdown the README quotes: machine, command, the four tables."""
    databases = results.get("databases", {})
    parts = [
        "# Unsilo vs Debezium",
        "",
        f"Machine: {machine_line(results.get('machine', {}))}.",
        f"Command: `{results.get('command')}` ({results.get('finished_at')}, "
        f"{_num(results.get('seconds'))} s{', QUICK RUN' if results.get('quick') else ''}).",
        f"Peer: {results.get('peer')}.",
        "",
        "## Snapshot (source table -> Kafka, Avro through the registry)",
        "",
        *snapshot_rows(databases),
        "",
        "rows/s = rows / (process start -> every row in the topic); 'after first record' leaves out "
        "start-up (JVM, connections, schema registration).",
        "",
        "## Streaming capture latency (commit -> Kafka append time)",
        "",
        *streaming_rows(databases),
        "",
        f"Latency = {results.get('latency_definition')}.",
        "",
        "## Peak RSS",
        "",
        *rss_rows(results.get("processes", [])),
        "",
        "## Unsilo only",
        "",
        *unsilo_only_rows(results.get("unsilo_only", {})),
    ]
    notes = results.get("deviations") or []
    if notes:
        parts += ["", "## Deviations", "", *[f"- {note}" for note in notes]]
    return "\n".join(parts) + "\n"


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """The ratios, one line each, for the console."""
    lines = []
    for db, result in results.get("databases", {}).items():
        verdict = result.get("snapshot", {}).get("verdict", {})
        lines.append(
            f"{db} snapshot: Unsilo/Debezium = {_times(verdict.get('ratio'))} "
            f"(target >= {SNAPSHOT_TARGET}x: {_met(verdict.get('met'))})"
        )
        for rate in result.get("streaming", []):
            verdict = rate.get("verdict", {})
            lines.append(
                f"{db} {rate.get('rate')}/s p99 latency: Unsilo/Debezium = {_times(verdict.get('ratio'))} "
                f"(no worse: {_met(verdict.get('met'))})"
            )
    return lines
