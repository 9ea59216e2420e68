"""The Unsilo-only figures of ``make bench``, from the benchmarks that measure them.

Freshness into a read model is benchmarks/freshness.py's; projection replay events/s and the
rebuild time are benchmarks/read_models.py's. ``rerun_unsilo_only`` runs both now (read_models
against the caller's broker and registry, freshness on a stack of its own); ``fold_unsilo_only``
reads their latest results files into rows for the versus_debezium table, naming the file and
when it was written.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def rerun_unsilo_only(events: int, seconds: float, bootstrap: str, registry_url: str) -> list[str]:
    """Run the read-model benchmark (``events`` canonical sales) and the freshness benchmark;
    what failed (the comparison already measured is kept whatever happens here)."""
    python = [sys.executable, "-m"]
    runs = [
        [*python, "benchmarks.read_models", "--events", str(events), "--bootstrap", bootstrap,
         "--registry", registry_url],
        [*python, "benchmarks.freshness", "--rate", "500", "--seconds", str(seconds)],
    ]  # fmt: skip
    failed = []
    for argv in runs:
        try:
            subprocess.run(argv, check=True, timeout=3600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            failed.append(f"{argv[2]}: {exc}")
            print(f"warning: {argv[2]} failed, its last results are used: {exc}", file=sys.stderr)
    return failed


def _load(name: str) -> tuple[dict[str, Any], str]:
    path = RESULTS / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, f"{name} (missing)"
    written = data.get("timestamp") or dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat(
        timespec="seconds"
    )
    return data, f"results/{name}, {written}"


def fold_unsilo_only() -> dict[str, Any]:
    """Rows (figure, value, source) from the latest freshness.json and read_models.json."""
    fresh, fresh_src = _load("freshness.json")
    models, models_src = _load("read_models.json")
    rows = []
    if fresh:
        rows.append({
            "figure": f"Freshness legacy commit -> store_sales read model, p50 / p99 / max "
                      f"({fresh.get('rate_changes_per_s')} changes/s, "
                      f"{fresh.get('tickets_checked')} tickets)",
            "value": f"{fresh.get('freshness_p50_ms')} / {fresh.get('freshness_p99_ms')} / "
                     f"{fresh.get('freshness_max_ms')} ms",
            "source": fresh_src,
        })  # fmt: skip
    if models:
        events = models.get("events")
        rows += [
            {"figure": f"Projection replay, store_sales ({events:,} events)",
             "value": f"{models.get('store_sales_replay_events_per_s'):,} events/s", "source": models_src},
            {"figure": f"Projection replay, inventory_position ({events:,} events)",
             "value": f"{models.get('inventory_position_replay_events_per_s'):,} events/s",
             "source": models_src},
            {"figure": f"Rebuild (replay + swap) of store_sales, {events:,} events",
             "value": f"{models.get('store_sales_rebuild_seconds')} s "
                      f"({models.get('rebuild_seconds_per_million_events')} s per 1M events)",
             "source": models_src},
            {"figure": "Peak RSS of the read-model process", "value": f"{models.get('peak_rss_mib')} MiB",
             "source": models_src},
        ]  # fmt: skip
    return {"rows": rows, "freshness": fresh, "read_models": models}
