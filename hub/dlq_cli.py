"""``unsilo dlq list`` and ``unsilo dlq replay``: the dead letters, and delivering them after a fix."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.dlq import Outcome, describe, dlq_topics, letter_values, list_letters, load_replayer, replay
from hub.kafka.topics import dlq_topic

console = Console(width=None if sys.stdout.isatty() else 200)
dlq_app = typer.Typer(
    help="Dead letters: list them, replay them once the cause is fixed.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``unsilo dlq`` to ``app``."""
    app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def list_command(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option("--stage", help="a source name, or canonical")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    show_values: Annotated[bool, typer.Option("--show-values", help="include the rows' values")] = False,
) -> None:
    """Each dead letter: offset, time, source, table, position, error, and whether it was replayed."""
    settings = ctx.obj.settings
    listings = list_letters(settings.kafka, stage)
    if as_json:
        data = {
            listing.topic: [
                describe(letter, listing.marks.get(letter.id), show_values=show_values)
                for letter in listing.letters
            ]
            for listing in listings
        }
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    if not any(listing.letters for listing in listings):
        console.print("no dead letters")
        return
    for listing in listings:
        table = Table("offset", "time", "source", "table", "position", "error", "replay", title=listing.topic)
        for letter in listing.letters:
            mark = listing.marks.get(letter.id)
            replayed = "-" if mark is None else mark.state
            if mark is not None and mark.state == "failed":
                replayed = f"failed: {mark.error}"
            table.add_row(
                str(letter.offset),
                _time(letter.timestamp_ms),
                letter.source,
                letter.table,
                letter.position,
                f"{letter.error_class}: {letter.error}",
                replayed,
            )
            if show_values:
                table.add_row("", "", "", "", "", json.dumps(letter_values(letter), default=str), "")
        console.print(table)


@dlq_app.command("replay")
def replay_command(
    ctx: typer.Context,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", help="a source name, or canonical[.<namespace>]; default: every source of the config"
        ),
    ] = None,
    offsets: Annotated[
        list[int] | None,
        typer.Option("--offset", help="only this letter of --stage (repeatable); default: all"),
    ] = None,
    mappings: Annotated[
        Path | None, typer.Option("--mappings", help="canonical: the mapping file (default: the demo's)")
    ] = None,
) -> None:
    """Deliver each dead letter not replayed yet, encoded with the current config, exactly once.

    Exit status 1 when a letter still fails (it stays in the DLQ with the new reason).
    """
    from hub.errors import ConfigError

    settings = ctx.obj.settings
    if offsets and stage is None:
        raise ConfigError("--offset names letters of one DLQ", hint="add --stage <source> (or canonical)")
    if stage is not None:
        stages = [stage]
    else:  # the DLQs of this config's sources (canonical needs its mapping file: --stage canonical)
        existing = set(dlq_topics(settings.kafka))
        stages = [source.name for source in settings.sources if dlq_topic(source.name) in existing]
    outcomes: list[Outcome] = []
    for name in stages:
        replayer = load_replayer(settings, name, mappings)
        try:
            outcomes += replay(settings, name, replayer, set(offsets) if offsets else None)
        finally:
            replayer.close()
    for outcome in outcomes:
        console.print(_line(outcome), highlight=False)
    replayed = sum(o.result == "replayed" for o in outcomes)
    failed = sum(o.result == "failed" for o in outcomes)
    console.print(
        f"{replayed} replayed, {failed} still failing, {len(outcomes) - replayed - failed} done before"
    )
    if failed:
        raise typer.Exit(1)


def _line(outcome: Outcome) -> str:
    letter = outcome.letter
    where = f"{letter.stage} offset {letter.offset} ({letter.table} @ {letter.position})"
    if outcome.result == "failed":
        hint = f"\n    hint: {outcome.hint}" if outcome.hint else ""
        return f"failed   {where}: {outcome.error}{hint}"
    return f"{outcome.result:<8} {where} -> {', '.join(outcome.topics)}"


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
