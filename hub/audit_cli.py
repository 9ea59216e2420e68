"""``unsilo verify``: prove the log was not altered (the hash chain and its signed checkpoints)."""

from __future__ import annotations

import fnmatch
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from hub.chain import is_chained
from hub.errors import ConfigError
from hub.verify import UNCHAINED, PartitionReport, Verifier, parse_bound
from hub.verify import Progress as OnProgress

console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)
log = structlog.get_logger(__name__)

EXIT_CLEAN, EXIT_BROKEN, EXIT_BAD_INPUT = 0, 1, 2


def register(app: typer.Typer) -> None:
    """Add ``unsilo verify`` to ``app``."""
    app.command("verify")(verify)


def verify(
    ctx: typer.Context,
    topics: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="topic or pattern (repeat; default: every chained topic)"),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="first offset, or ISO time (default: the start of the log)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="last offset (included), or ISO time (default: the end)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Recompute the hash chain of raw and canonical topics and name the first broken link.

    Checkpoints in _unsilo.chain are checked with audit.hmac_key (UNSILO_AUDIT__HMAC_KEY).
    Exit status 0 when every link holds, 1 when one does not (or a checkpoint is forged),
    2 for bad input (an unknown topic, a bad --from/--to, a named topic without chain headers).
    """
    from hub.kafka.admin import KafkaAdmin

    settings = ctx.obj.settings
    first = parse_bound(start) if start else None
    last = parse_bound(end) if end else None
    key = settings.audit.hmac_key
    names = select_topics(KafkaAdmin(settings.kafka).topic_names(), topics or [])
    if not names:
        console.print("no chained topics on the broker: nothing to verify")
        return
    reports: list[PartitionReport] = []
    with _progress(as_json) as on_progress:
        verifier = Verifier(
            settings.kafka, key.get_secret_value().encode() if key else None, progress=on_progress
        )
        try:
            for topic in names:
                for partition in verifier.partitions(topic):
                    reports.append(verifier.verify(topic, partition, first, last))
        finally:
            verifier.close()
    messages, code = judge(reports, named=bool(topics), keyed=key is not None)
    if as_json:
        body = {"ok": code == EXIT_CLEAN, "exit_code": code, "messages": messages}
        typer.echo(json.dumps({**body, "partitions": [r.to_dict() for r in reports]}, indent=2))
    else:
        console.print(_table(reports))
        for message in messages:
            console.print(message, highlight=False, markup=False)
    if code:
        raise typer.Exit(code)


def select_topics(existing: set[str], wanted: list[str]) -> list[str]:
    """The topics to verify: each name as given, each pattern's matches; default every chained one.

    A name that is not a pattern is kept even when missing (reading it says so, exit 2).
    """
    if not wanted:
        return sorted(t for t in existing if is_chained(t))
    chosen: list[str] = []
    for name in wanted:
        if any(c in name for c in "*?["):
            matches = sorted(fnmatch.filter(existing, name))
            if not matches:
                raise ConfigError(f"no topic matches {name!r}", hint="shell-style patterns: * ? [...]")
            chosen += matches
        else:
            chosen.append(name)
    return list(dict.fromkeys(chosen))


def judge(reports: list[PartitionReport], *, named: bool, keyed: bool) -> tuple[list[str], int]:
    """What to tell the user about ``reports``, and the exit status."""
    messages: list[str] = []
    code = EXIT_CLEAN
    for r in reports:
        where = f"{r.topic}[{r.partition}]"
        if r.broken is not None:
            b = r.broken
            seq = f" (seq {b.seq})" if b.seq is not None else ""
            line = f"BROKEN {where} at offset {b.offset}{seq}: {b.reason}"
            if b.expected_seq is not None and b.seq != b.expected_seq:
                line += f"; expected seq {b.expected_seq}"
            if b.expected_hash or b.found_hash:
                line += f"; expected hash {b.expected_hash or '-'}, found {b.found_hash or '-'}"
            messages.append(line)
            code = EXIT_BROKEN
        for rejected in r.checkpoints_rejected:
            messages.append(f"REJECTED {where} {rejected}")
            code = EXIT_BROKEN
        if r.chain_starts_at is not None:
            messages.append(
                f"{where}: the {r.unchained} records before offset {r.chain_starts_at} have {UNCHAINED}; "
                f"the chain starts at offset {r.chain_starts_at} and was verified from there"
            )
    for topic in dict.fromkeys(r.topic for r in reports):
        mine = [r for r in reports if r.topic == topic]
        if any(r.status == "unchained" for r in mine) and all(
            r.status in ("unchained", "empty") for r in mine
        ):
            messages.append(f"{topic}: {UNCHAINED}")
            if named and code == EXIT_CLEAN:
                code = EXIT_BAD_INPUT
    if not keyed and any(r.checkpoints_unchecked for r in reports):
        messages.append("checkpoints not checked: set audit.hmac_key (UNSILO_AUDIT__HMAC_KEY) to check them")
    if code == EXIT_CLEAN:
        checked = sum(r.records for r in reports)
        messages.append(f"verified {checked:,} records in {len(reports)} partitions: every link holds")
    return messages, code


def _table(reports: list[PartitionReport]) -> Table:
    table = Table("topic", "partition", "status", "records", "offsets", "checkpoints", "from")
    style = {"ok": "green", "empty": "dim", "unchained": "yellow"}
    for r in reports:
        offsets = (
            "-"
            if r.first_offset is None
            else f"{r.first_offset}-{r.last_offset if r.last_offset is not None else '-'}"
        )
        checkpoints = f"{r.checkpoints_verified} verified"
        if r.checkpoints_rejected:
            checkpoints += f", {len(r.checkpoints_rejected)} rejected"
        if r.checkpoints_unchecked:
            checkpoints += f", {r.checkpoints_unchecked} unchecked"
        table.add_row(
            r.topic,
            str(r.partition),
            f"[{style.get(r.status, 'red')}]{r.status}[/]",
            f"{r.records:,}",
            offsets,
            checkpoints,
            r.anchor,
        )
    return table


@contextmanager
def _progress(quiet: bool) -> Iterator[OnProgress | None]:
    """A progress bar on a terminal's stderr; otherwise a log event every 5 seconds."""
    if quiet and not err_console.is_terminal:
        yield None
        return
    if not err_console.is_terminal:
        last = [0.0]

        def log_progress(topic: str, partition: int, done: int, total: int) -> None:
            if time.monotonic() - last[0] >= 5.0:
                last[0] = time.monotonic()
                log.info("verify_progress", topic=topic, partition=partition, records=done, offsets=total)

        yield log_progress
        return
    bars = Progress(
        TextColumn("verify {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[tuple[str, int], TaskID] = {}

    def show(topic: str, partition: int, done: int, total: int) -> None:
        task = tasks.get((topic, partition))
        if task is None:
            task = tasks[(topic, partition)] = bars.add_task(f"{topic}[{partition}]", total=total)
        bars.update(task, completed=done)

    with bars:
        yield show
