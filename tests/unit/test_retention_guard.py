"""The retention guard names each topic whose settings would delete history, and what to set."""

from __future__ import annotations

from hub.retention_guard import RetentionCheck, findings, findings_for, fix_command, risk_by_topic

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def test_a_topic_kept_forever_has_no_finding() -> None:
    """retention.ms=-1, retention.bytes=-1 and cleanup delete: nothing to report."""
    assert findings_for("unsilo.raw.sales.customers", FOREVER) == []


def test_time_retention_on_a_raw_topic_is_a_finding() -> None:
    """A raw topic with retention.ms=1000 is reported with the fix retention.ms=-1."""
    found = findings_for("unsilo.raw.sales.customers", {**FOREVER, "retention.ms": "1000"})

    assert [(f.setting, f.fix) for f in found] == [("retention.ms", "retention.ms=-1")]
    assert found[0].message() == (
        "unsilo.raw.sales.customers: retention.ms=1000 deletes events older than 1 s; set retention.ms=-1"
    )


def test_size_retention_and_compaction_are_findings_too() -> None:
    """retention.bytes and a compacting cleanup policy on a canonical topic each give a finding."""
    config = {"retention.ms": "-1", "retention.bytes": "1073741824", "cleanup.policy": "compact,delete"}

    found = findings_for("unsilo.canonical.customer", config)

    assert [f.fix for f in found] == ["retention.bytes=-1", "cleanup.policy=delete"]


def test_week_long_retention_reads_in_days() -> None:
    """The broker default of 7 days is described as such on an outbox topic."""
    found = findings_for("unsilo.outbox.order", {**FOREVER, "retention.ms": "604800000"})

    assert "older than 7 days" in found[0].problem


def test_internal_and_foreign_topics_are_not_guarded() -> None:
    """The compacted _unsilo.offsets topic and other teams' topics are none of the guard's business."""
    compacted = {"retention.ms": "604800000", "retention.bytes": "-1", "cleanup.policy": "compact"}

    assert findings_for("_unsilo.offsets", compacted) == []
    assert findings_for("payments.events", compacted) == []


def test_findings_are_listed_by_topic_and_feed_a_gauge() -> None:
    """Each risky topic counts 1 in unsilo_topic_retention_risk, the others 0."""
    configs = {
        "unsilo.raw.b.t": {**FOREVER, "retention.ms": "1000"},
        "unsilo.raw.a.t": {**FOREVER, "cleanup.policy": "compact"},
        "unsilo.raw.c.t": FOREVER,
    }

    found = findings(configs)

    assert [f.topic for f in found] == ["unsilo.raw.a.t", "unsilo.raw.b.t"]
    assert risk_by_topic(found, list(configs)) == {
        "unsilo.raw.a.t": 1,
        "unsilo.raw.b.t": 1,
        "unsilo.raw.c.t": 0,
    }
    assert fix_command(found[1], "k:9092").endswith(
        "--entity-name unsilo.raw.b.t --add-config retention.ms=-1"
    )


def test_status_line_names_the_risky_topics_or_says_all_is_kept() -> None:
    """The status line is OK with the topic count, or WARN naming each topic and its fix."""
    healthy = RetentionCheck(["unsilo.raw.a.t", "unsilo.raw.b.t"], [])
    risky_topic = findings({"unsilo.raw.b.t": {**FOREVER, "retention.ms": "1000"}})
    risky = RetentionCheck(["unsilo.raw.a.t", "unsilo.raw.b.t"], risky_topic)

    assert (healthy.status, healthy.summary()) == ("OK", "2 history topic(s) keep everything")
    assert risky.status == "WARN"
    assert risky.summary().startswith("1 topic(s) can lose history: unsilo.raw.b.t: retention.ms=1000")
    assert risky.gauge() == {"unsilo.raw.a.t": 0, "unsilo.raw.b.t": 1}
