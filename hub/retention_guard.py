"""Retention guard: warn when a topic's retention or compaction would delete history.

Raw, canonical and outbox topics are the system of record (replay rebuilds read models
from them; `unsilo history` and audits read every version); DLQ and quarantine topics hold
events nothing else has. All five keep everything by policy (``retention.ms=-1``,
``retention.bytes=-1``, ``cleanup.policy=delete``, see :mod:`hub.kafka.topics`). Someone
may still change a topic's config, or a cluster default may have applied when a topic was
created elsewhere: each deviation is one :class:`Finding`, naming the topic, what is lost
and what to set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hub.config import Settings
from hub.kafka.topic_facts import TopicFacts

HISTORY_PREFIXES = (
    "unsilo.raw.",
    "unsilo.canonical.",
    "unsilo.outbox.",
    "unsilo.dlq.",
    "unsilo.quarantine.",
)
METRIC = "unsilo_topic_retention_risk"


@dataclass(frozen=True)
class Finding:
    """One topic setting that would delete history replay or audit needs."""

    topic: str
    setting: str  # retention.ms, retention.bytes or cleanup.policy
    value: str
    problem: str
    fix: str  # the setting to apply, e.g. retention.ms=-1

    def message(self) -> str:
        return f"{self.topic}: {self.problem}; set {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message()}


def keeps_history(topic: str) -> bool:
    """Whether ``topic`` is one the hub needs to keep whole (raw, canonical, outbox, DLQ, quarantine)."""
    return topic.startswith(HISTORY_PREFIXES)


def findings_for(topic: str, config: dict[str, str]) -> list[Finding]:
    """What in ``config`` (a topic's effective configuration) would delete its history."""
    if not keeps_history(topic):
        return []
    found = []
    retention_ms = config.get("retention.ms", "-1")
    if _int(retention_ms) != -1:
        found.append(
            Finding(
                topic,
                "retention.ms",
                retention_ms,
                f"retention.ms={retention_ms} deletes events older than {_duration(retention_ms)}",
                "retention.ms=-1",
            )
        )
    retention_bytes = config.get("retention.bytes", "-1")
    if _int(retention_bytes) != -1:
        found.append(
            Finding(
                topic,
                "retention.bytes",
                retention_bytes,
                f"retention.bytes={retention_bytes} deletes the oldest events beyond that size per partition",
                "retention.bytes=-1",
            )
        )
    policy = config.get("cleanup.policy", "delete")
    if "compact" in [p.strip() for p in policy.split(",")]:
        found.append(
            Finding(
                topic,
                "cleanup.policy",
                policy,
                f"cleanup.policy={policy} keeps only the latest version of each key",
                "cleanup.policy=delete",
            )
        )
    return found


def findings(configs: dict[str, dict[str, str]]) -> list[Finding]:
    """Every finding over ``configs`` (topic -> effective config), by topic."""
    return [f for topic in sorted(configs) for f in findings_for(topic, configs[topic])]


@dataclass(frozen=True)
class RetentionCheck:
    """The history topics checked and what was found on them."""

    topics: list[str]
    findings: list[Finding]

    @property
    def status(self) -> str:
        return "WARN" if self.findings else "OK"

    def summary(self) -> str:
        """One line for `unsilo status`."""
        if not self.findings:
            return f"{len(self.topics)} history topic(s) keep everything"
        risky = sorted({f.topic for f in self.findings})
        return f"{len(risky)} topic(s) can lose history: " + "; ".join(f.message() for f in self.findings)

    def gauge(self) -> dict[str, int]:
        """``unsilo_topic_retention_risk{topic}``: 1 for a topic with a finding, 0 for the others."""
        return risk_by_topic(self.findings, self.topics)


def check_retention(settings: Settings) -> RetentionCheck:
    """Every history topic on the cluster and its findings (one metadata, one DescribeConfigs request)."""
    facts = TopicFacts(settings.kafka)
    topics = sorted(t for t in facts.shapes() if keeps_history(t))
    return RetentionCheck(topics, findings(facts.configs(topics)))


def retention_findings(settings: Settings) -> list[Finding]:
    """The findings of every history topic on the cluster."""
    return check_retention(settings).findings


def risk_by_topic(found: list[Finding], topics: list[str]) -> dict[str, int]:
    """``unsilo_topic_retention_risk{topic}``: 1 for a topic with a finding, else 0."""
    risky = {f.topic for f in found}
    return {t: int(t in risky) for t in sorted(topics)}


def fix_command(finding: Finding, bootstrap: str) -> str:
    """The kafka-configs command that applies the finding's fix."""
    return (
        f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
        f"--entity-name {finding.topic} --add-config {finding.fix}"
    )


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _duration(ms_text: str) -> str:
    ms = _int(ms_text)
    if ms is None:
        return ms_text
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:g} {unit}"
    return f"{ms} ms"
