"""``unsilo topics``, ``unsilo asyncapi`` and ``unsilo history``: the subscriber and auditor commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hub.catalog import TopicEntry

console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the catalog commands to ``app``."""
    app.command("topics")(topics)
    app.command("asyncapi")(asyncapi)
    app.command("history")(history)


def topics(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print the catalog as JSON")] = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="also internal (_unsilo.*) and other topics of the cluster")
    ] = False,
) -> None:
    """The topic catalog: owner, schemas, partitions, retention, offsets and last event of each topic.

    Topics whose retention or compaction would delete history are marked RISK, with the
    setting to apply.
    """
    from hub.catalog import build_catalog

    settings = ctx.obj.settings
    catalog = build_catalog(settings, include_all=include_all)
    if as_json:
        typer.echo(json.dumps({"topics": [e.to_dict() for e in catalog]}, indent=2, default=str))
        return
    if not catalog:
        console.print("no topics yet: start a connector with `unsilo run <source>`")
        return
    console.print(_table(catalog))
    risky = [f for e in catalog for f in e.retention_risk]
    for finding in risky:
        console.print(f"[bold red]RISK[/] {finding.message()}", highlight=False)
    if risky:
        console.print(
            f"{len(risky)} retention finding(s): these topics can lose history replay and audit need",
            highlight=False,
        )


def _table(catalog: list[TopicEntry]) -> Table:
    table = Table(
        "topic",
        "owner",
        "key",
        "value",
        "partitions",
        "retention",
        "offsets",
        "last event (UTC)",
        title="topics",
        caption="offsets: high minus low watermark, records plus transaction markers",
    )
    for entry in catalog:
        owner = entry.owner
        who = ".".join(p for p in (owner.system, owner.table) if p) or owner.entity or "-"
        if entry.read_models:
            who += f" -> {', '.join(entry.read_models)}"
        retention = _retention(entry)
        table.add_row(
            entry.topic,
            who,
            _schema(entry, "key"),
            _schema(entry, "value"),
            str(entry.partitions),
            f"[bold red]RISK {retention}[/]" if entry.retention_risk else retention,
            f"{entry.offsets:,}",
            (entry.last_event_time or "-").replace("T", " ").removesuffix("+00:00"),
        )
    return table


def _schema(entry: TopicEntry, which: str) -> str:
    info = entry.key if which == "key" else entry.value
    if info is None:
        return "-"
    name = info.schema.get("name", "?") if isinstance(info.schema, dict) else str(info.schema)
    return f"{name} v{info.version}" + (f" ({len(info.versions)} versions)" if len(info.versions) > 1 else "")


def _retention(entry: TopicEntry) -> str:
    if entry.retention_ms is None:
        return "-"
    ms = "forever" if entry.retention_ms == -1 else f"{entry.retention_ms:,} ms"
    extra = [] if entry.retention_bytes in (-1, None) else [f"{entry.retention_bytes:,} B"]
    if entry.cleanup_policy and entry.cleanup_policy != "delete":
        extra.append(entry.cleanup_policy)
    return ", ".join([ms, *extra])


def asyncapi(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to FILE (default: stdout)")
    ] = None,
) -> None:
    """The AsyncAPI 3.0 document of the hub's topics (JSON), generated from the catalog."""
    from hub.asyncapi import document
    from hub.catalog import build_catalog

    settings = ctx.obj.settings
    text = json.dumps(document(build_catalog(settings), settings), indent=2, default=str)
    if output is None:
        typer.echo(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    err_console.print(f"AsyncAPI document written to {output}", highlight=False)


def history(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="a topic, a captured <system>.<table>, or an entity")],
    key: Annotated[str, typer.Argument(help="the key: a value, col=value,col=value, or JSON")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Every version of one record from the log, oldest first, with what changed in each.

    Exit status 1 when no record has that key, 2 when no topic, table or entity has that name.
    """
    from hub.history import history as read_history

    settings = ctx.obj.settings
    with Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("scan", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        found = read_history(settings, target, key, progress)
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
        return
    body = found.to_dict()
    table = Table(
        "#",
        "partition:offset",
        "op",
        "source position",
        "source commit (UTC)",
        "changes",
        title=f"{found.topic} key {key}",
        caption=f"{len(found.versions)} version(s), {found.scanned:,} records scanned",
    )
    for number, version in enumerate(body["versions"], 1):
        table.add_row(
            str(number),
            f"{version['partition']}:{version['offset']}",
            version["op"],
            version["source_position"] or "-",
            (version["source_time"] or "-").replace("T", " ").removesuffix("+00:00"),
            _changes(version["diff"]),
        )
    console.print(table)


def _changes(diff: dict[str, list[Any]]) -> str:
    if not diff:
        return "-"
    return "\n".join(f"{name}: {_show(old)} -> {_show(new)}" for name, (old, new) in diff.items())


def _show(value: Any) -> str:
    return "null" if value is None else json.dumps(value) if not isinstance(value, str) else repr(value)
