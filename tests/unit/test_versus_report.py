"""The arithmetic and the Markdown of the Unsilo vs Debezium benchmark (benchmarks/versus_report.py)."""

from __future__ import annotations

from typing import Any

from benchmarks.versus_report import (
    latency_verdict,
    machine_line,
    percentiles,
    ratio,
    render_markdown,
    snapshot_verdict,
    summary_lines,
    top_frames,
)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unordered

    got = percentiles(values)

    assert got == {"count": 100, "p50": 50.0, "p99": 99.0, "max": 100.0}


def test_p99_of_a_small_sample_is_its_worst_value() -> None:
    assert percentiles([5.0, 1.0, 3.0])["p99"] == 5.0
    assert percentiles([7.25])["p50"] == 7.2  # rounded to one place (banker's rounding of 7.25)


def test_percentiles_of_nothing_are_none() -> None:
    assert percentiles([]) == {"count": 0, "p50": None, "p99": None, "max": None}


def test_ratio_is_missing_when_a_side_is() -> None:
    assert ratio(30_000, 12_000) == 2.5
    assert ratio(None, 1.0) is None
    assert ratio(1.0, 0) is None


def test_snapshot_target_is_one_and_a_half_times_debezium() -> None:
    assert snapshot_verdict(15_000, 10_000) == {"ratio": 1.5, "target": 1.5, "met": True}
    assert snapshot_verdict(14_000, 10_000)["met"] is False
    assert snapshot_verdict(None, 10_000)["met"] is None


def test_latency_is_met_when_unsilo_is_no_worse() -> None:
    assert latency_verdict(80.0, 80.0) == {"ratio": 1.0, "met": True}
    assert latency_verdict(81.0, 80.0)["met"] is False
    assert latency_verdict(40.0, 80.0) == {"ratio": 0.5, "met": True}
    assert latency_verdict(None, 80.0)["met"] is None


def results() -> dict[str, Any]:
    rate = {
        "rate": 2000,
        "unsilo": {"latency_ms": {"p50": 20.0, "p99": 70.0, "max": 90.0}, "achieved_per_s": 1999.0},
        "debezium": {"latency_ms": {"p50": 30.0, "p99": 60.0, "max": 95.0}, "achieved_per_s": 2000.0},
        "verdict": latency_verdict(70.0, 60.0),
    }
    snapshot = {
        "rows": 1_000_000,
        "unsilo": {"rows_per_s": 30_000.0, "rows_per_s_after_first": 31_000.0},
        "debezium": {"rows_per_s": 12_000.0, "rows_per_s_after_first": 20_000.0},
        "verdict": snapshot_verdict(30_000.0, 12_000.0),
    }
    return {
        "machine": {
            "cpu_count": 2,
            "cpu_model": "Test CPU",
            "memory_total_mib": 24105,
            "platform": "Linux",
            "python": "3.11.7",
            "load_average": [1.0, 2.0, 3.0],
        },
        "command": "python -m benchmarks.versus_debezium --quick",
        "quick": True,
        "seconds": 700,
        "finished_at": "2026-11-27 13:00 UTC",
        "peer": "Debezium",
        "latency_definition": "append minus commit",
        "databases": {"postgres": {"snapshot": snapshot, "streaming": [rate]}},
        "processes": [
            {
                "process": "unsilo run (snapshot)",
                "phase": "postgres snapshot",
                "peak_rss_mib": 101.5,
                "cpu_seconds": 50.0,
            }
        ],
        "unsilo_only": {
            "rows": [{"figure": "Rebuild", "value": "75.8 s", "source": "results/read_models.json"}]
        },
        "deviations": ["MariaDB reports version 5.5.5-x"],
    }


def test_markdown_has_a_row_per_database_and_rate_with_the_ratios() -> None:
    text = render_markdown(results())

    assert "| postgres | 1,000,000 | 30,000 | 12,000 | 2.50x | yes | 31,000 | 20,000 |" in text
    assert "| postgres | 2,000 | 20 / 70 / 90 | 30 / 60 / 95 | 1.17x | **no** |" in text
    assert "| unsilo run (snapshot) | postgres snapshot | 101.5 | 50.0 |" in text
    assert "| Rebuild | 75.8 s | results/read_models.json |" in text
    assert "QUICK RUN" in text
    assert "- MariaDB reports version 5.5.5-x" in text
    assert "2 cores (Test CPU), 24,105 MiB RAM" in text


def test_a_missing_measurement_shows_as_n_a_not_zero() -> None:
    data = results()
    data["databases"]["postgres"]["snapshot"]["debezium"] = {}
    data["databases"]["postgres"]["snapshot"]["verdict"] = snapshot_verdict(30_000.0, None)

    text = render_markdown(data)

    assert "| postgres | 1,000,000 | 30,000 | n/a | n/a | n/a |" in text


def test_summary_prints_each_ratio_and_whether_its_target_is_met() -> None:
    lines = summary_lines(results())

    assert lines == [
        "postgres snapshot: Unsilo/Debezium = 2.50x (target >= 1.5x: yes)",
        "postgres 2000/s p99 latency: Unsilo/Debezium = 1.17x (no worse: **no**)",
    ]


def test_machine_line_says_how_busy_the_machine_was() -> None:
    line = machine_line(results()["machine"])

    assert line.endswith("load average 1.0/2.0/3.0 at start")


def test_top_frames_rank_functions_by_their_own_samples() -> None:
    collapsed = "\n".join([
        "main (cli.py:1);run (runner.py:10);encode (serde.py:33) 60",
        "main (cli.py:1);run (runner.py:10);poll (postgres.py:260) 30",
        "main (cli.py:1);run (runner.py:10) 10",
        "not a sample line",
    ])  # fmt: skip

    ranked = top_frames(collapsed, count=2)

    assert ranked == [
        {"frame": "encode (serde.py:33)", "own_pct": 60.0, "total_pct": 60.0},
        {"frame": "poll (postgres.py:260)", "own_pct": 30.0, "total_pct": 30.0},
    ]
    assert top_frames(collapsed)[2] == {"frame": "run (runner.py:10)", "own_pct": 10.0, "total_pct": 100.0}
