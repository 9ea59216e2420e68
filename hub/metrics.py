"""Prometheus metrics: kafka-lag-exporter's consumer-lag names and labels, plus the hub's own.

``HubCollector`` is a prometheus-client Collector over the latest :class:`Snapshot`; it
yields every family and can be registered in any registry. ``MetricsRenderer`` serves
`/metrics`: the small families through prometheus-client's ``generate_latest``, and the
per-partition families (one sample per group x partition, 100,000s of lines for big
clusters) through a specialised writer that caches each partition's escaped label set,
because the generic writer formats every label of every sample on every scrape (about
7 s for 300,000 samples on two cores, against a 200 ms target). A test checks both paths
give the same samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.lag import GroupLag, Member, PartitionLag, Status
from hub.overview import Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PRERENDER_FOR_S = 300.0  # the sampler keeps rendering ahead this long after the last scrape
PARTITION_LABELS = ["cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"]
# (name, help, value of a PartitionLag): the per-partition families, kafka-lag-exporter's
PARTITION_FAMILIES: list[tuple[str, str, Callable[[PartitionLag], float | None]]] = [
    (
        "kafka_consumergroup_group_offset",
        "The last committed offset of this partition for this group.",
        lambda p: p.committed,
    ),
    (
        "kafka_consumergroup_group_lag",
        "Records between the last produced and the last committed offset.",
        lambda p: p.lag,
    ),
    (
        "kafka_consumergroup_group_lag_seconds",
        "Age of the oldest unconsumed record, read from the log.",
        lambda p: p.lag_seconds,
    ),
]
STATUS_CODE = {Status.OK: 0, Status.WARN: 1, Status.ERR: 2, Status.STOP: 3, Status.STALL: 4, Status.REWIND: 5}


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class HubCollector(Collector):
    """Yields the metrics of the latest snapshot (None: only what is known without one)."""

    def __init__(
        self, snapshot: Callable[[], Snapshot | None], cluster_name: str, *, partitions: bool = True
    ) -> None:
        self.snapshot = snapshot
        self.cluster = cluster_name
        self.partitions = partitions

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        if snap is None:
            return
        yield from self._components(snap)
        if snap.lag is not None:
            groups = [g for _, g in sorted(snap.lag.groups.items())]
            if self.partitions:
                yield from self._partition_families(groups, snap)
            yield from self._group_families(groups, snap)
        yield from self._connectors(snap)
        yield from self._pipeline(snap)

    def _components(self, snap: Snapshot) -> Iterator[Metric]:
        up = _gauge(
            "unsilo_component_up", "1 when the component answered the last probe.", ["component", "address"]
        )
        registry = _gauge(
            "unsilo_registry_up", "1 when the schema registry answered the last probe.", ["address"]
        )
        for c in snap.components:
            up.add_metric([c.name, c.address], 1.0 if c.up else 0.0)
            if c.name == "registry":
                registry.add_metric([c.address], 1.0 if c.up else 0.0)
        poll = _gauge(
            "kafka_consumergroup_poll_time_ms", "Time taken to read the cluster's offsets.", ["cluster_name"]
        )
        poll.add_metric([self.cluster], snap.duration_ms)
        yield from (up, registry, poll)

    def _partition_families(self, groups: list[GroupLag], snap: Snapshot) -> Iterator[Metric]:
        for name, doc, value in PARTITION_FAMILIES:
            family = _gauge(name, doc, PARTITION_LABELS)
            for g in groups:
                for p in g.partitions:
                    v = value(p)
                    if v is not None:
                        family.add_metric(partition_labels(self.cluster, g.group, p), float(v))
            yield family
        assert snap.lag is not None
        ends = sorted(snap.lag.partition_ends.items())
        latest = _gauge(
            "kafka_partition_latest_offset",
            "The latest offset of the partition.",
            ["cluster_name", "topic", "partition"],
        )
        earliest = _gauge(
            "kafka_partition_earliest_offset",
            "The earliest offset of the partition.",
            ["cluster_name", "topic", "partition"],
        )
        for (topic, partition), (start, end) in ends:
            latest.add_metric([self.cluster, topic, str(partition)], float(end))
            earliest.add_metric([self.cluster, topic, str(partition)], float(start))
        yield from (latest, earliest)

    def _group_families(self, groups: list[GroupLag], snap: Snapshot) -> Iterator[Metric]:
        max_lag = _gauge(
            "kafka_consumergroup_group_max_lag",
            "The highest lag in offsets of the group.",
            ["cluster_name", "group", "is_simple_consumer"],
        )
        max_seconds = _gauge(
            "kafka_consumergroup_group_max_lag_seconds",
            "The highest lag in time of the group.",
            ["cluster_name", "group", "is_simple_consumer"],
        )
        sum_lag = _gauge(
            "kafka_consumergroup_group_sum_lag",
            "The sum of the lag of all partitions of the group.",
            ["cluster_name", "group"],
        )
        topic_sum = _gauge(
            "kafka_consumergroup_group_topic_sum_lag",
            "The sum of the lag of the group's partitions of a topic.",
            ["cluster_name", "group", "topic"],
        )
        status = _gauge(
            "unsilo_consumergroup_status",
            "Burrow status of the group (0 OK, 1 WARN, 2 ERR); label worst: its worst partition.",
            ["cluster_name", "group", "status", "worst"],
        )
        for g in groups:
            simple = "true" if g.is_simple else "false"
            max_lag.add_metric([self.cluster, g.group, simple], float(g.max_lag))
            max_seconds.add_metric([self.cluster, g.group, simple], g.max_lag_seconds)
            sum_lag.add_metric([self.cluster, g.group], float(g.total_lag))
            per_topic: dict[str, int] = {}
            for p in g.partitions:
                per_topic[p.topic] = per_topic.get(p.topic, 0) + p.lag
            for topic, total in sorted(per_topic.items()):
                topic_sum.add_metric([self.cluster, g.group, topic], float(total))
            status.add_metric(
                [self.cluster, g.group, g.status.value, g.worst.value], float(STATUS_CODE[g.status])
            )
        yield from (max_lag, max_seconds, sum_lag, topic_sum, status)

    def _connectors(self, snap: Snapshot) -> Iterator[Metric]:
        labels = ["source", "system"]
        events = CounterMetricFamily(
            "unsilo_connector_events", "Events the connector published.", labels=labels
        )
        dead = CounterMetricFamily(
            "unsilo_connector_dead_lettered", "Changes sent to the dead-letter topic.", labels=labels
        )
        quarantined = CounterMetricFamily(
            "unsilo_connector_quarantined", "Events sent to the quarantine topic.", labels=labels
        )
        state = _gauge("unsilo_connector_state", "1 for the connector's current state.", [*labels, "state"])
        for s in sorted(snap.sources.values(), key=lambda s: s.source):
            events.add_metric([s.source, s.system], float(s.events))
            dead.add_metric([s.source, s.system], float(s.dead_lettered))
            quarantined.add_metric([s.source, s.system], float(s.quarantined))
            state.add_metric([s.source, s.system, s.state], 1.0)
        yield from (events, dead, quarantined, state)

    def _pipeline(self, snap: Snapshot) -> Iterator[Metric]:
        labels = ["source", "table", "topic"]
        capture = _gauge(
            "unsilo_capture_lag_seconds",
            "Kafka append time minus source commit time of the newest record.",
            labels,
        )
        age = _gauge(
            "unsilo_capture_last_event_age_seconds",
            "Seconds since the newest record of the table reached Kafka.",
            labels,
        )
        rows = _gauge(
            "unsilo_capture_snapshot_rows", "Rows of the table's snapshot published so far.", labels
        )
        table_status = _gauge(
            "unsilo_capture_status", "1 for the table's current capture status.", [*labels, "status"]
        )
        for c in snap.capture:
            key = [c.source, c.table, c.topic]
            if c.capture_lag_s is not None:
                capture.add_metric(key, c.capture_lag_s)
            if c.last_event_age_s is not None:
                age.add_metric(key, c.last_event_age_s)
            rows.add_metric(key, float(c.rows))
            table_status.add_metric([*key, c.status], 1.0)
        behind = _gauge(
            "unsilo_read_model_behind_records",
            "Records in the log the read model has not applied.",
            ["read_model"],
        )
        fresh = _gauge(
            "unsilo_read_model_age_seconds",
            "Age of the oldest record the read model has not applied.",
            ["read_model"],
        )
        model_status = _gauge(
            "unsilo_read_model_status", "1 for the read model's current status.", ["read_model", "status"]
        )
        for f in snap.freshness:
            behind.add_metric([f.read_model], float(f.behind))
            fresh.add_metric([f.read_model], f.age_s)
            model_status.add_metric([f.read_model, f.status], 1.0)
        dlq = _gauge("unsilo_dead_letter_records", "Records in a dead-letter or quarantine topic.", ["topic"])
        for topic, count in sorted(snap.dead_letters.items()):
            dlq.add_metric([topic], float(count))
        risk = _gauge(
            "unsilo_topic_retention_risk",
            "1 when the topic's retention or compaction would delete history replay and audit need.",
            ["topic"],
        )
        for topic, value in (snap.retention.gauge() if snap.retention else {}).items():
            risk.add_metric([topic], float(value))
        yield from (capture, age, rows, table_status, behind, fresh, model_status, dlq, risk)


def partition_labels(cluster: str, group: str, p: PartitionLag) -> list[str]:
    m = p.member or Member()
    return [cluster, group, p.topic, str(p.partition), m.host, m.consumer_id, m.client_id]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class MetricsRenderer:
    """Renders `/metrics` for the latest snapshot.

    Keeps each group's escaped label sets between scrapes and the rendered bytes of the last
    snapshot, so several scrapers of one snapshot cost one rendering; while scrapes come, the
    API's sampler renders each new snapshot in the background and a scrape only sends bytes.
    """

    def __init__(self, snapshot: Callable[[], Snapshot | None], cluster_name: str) -> None:
        self.snapshot = snapshot
        self.cluster = cluster_name
        self._small = CollectorRegistry(auto_describe=False)
        self._small.register(HubCollector(snapshot, cluster_name, partitions=False))
        self._labels: dict[str, tuple[list[tuple[str, int, Member | None]], list[str]]] = {}
        self._last: tuple[Snapshot | None, bytes] = (None, b"")
        self._lock = threading.Lock()
        self._scraped = -PRERENDER_FOR_S

    def scrape(self, *, allow_previous: bool = False) -> bytes:
        """The body for a scrape: the last rendered one when ``allow_previous`` (the sampler
        renders every new snapshot while someone scrapes), otherwise rendered now if needed."""
        self._scraped = time.monotonic()
        snap, body = self._last
        if snap is not None and (allow_previous or snap is self.snapshot()):
            return body
        return self.render()

    def prerender(self) -> None:
        """Render the latest snapshot ahead of the next scrape, if anyone scraped lately."""
        if time.monotonic() - self._scraped < PRERENDER_FOR_S:
            self.render()

    def render(self) -> bytes:
        """The body for the latest snapshot (rendered once per snapshot)."""
        snap = self.snapshot()
        with self._lock:
            if snap is not None and self._last[0] is snap:
                return self._last[1]
            body = generate_latest(self._small)
            if snap is not None and snap.lag is not None:
                body += self._partitions(snap).encode("utf-8")
            self._last = (snap, body)
            return body

    def _partitions(self, snap: Snapshot) -> str:
        """The per-partition families, written directly (integers as integers: valid text format)."""
        assert snap.lag is not None
        cluster = _escape(self.cluster)
        cache: dict[str, tuple[list[tuple[str, int, Member | None]], list[str]]] = {}
        texts: list[str] = []
        rows: list[PartitionLag] = []
        for name, g in sorted(snap.lag.groups.items()):
            keys = [(p.topic, p.partition, p.member) for p in g.partitions]
            known = self._labels.get(name)
            if known is not None and known[0] == keys:
                group_texts = known[1]  # same partitions and members as last time: reuse the labels
            else:
                group = _escape(name)
                group_texts = [_labels(cluster, group, topic, n, m or Member()) for topic, n, m in keys]
            cache[name] = (keys, group_texts)
            texts += group_texts
            rows += g.partitions
        self._labels = cache
        offset, lag, seconds = (name for name, _, _ in PARTITION_FAMILIES)
        pairs = list(zip(texts, rows, strict=True))
        parts = [_header(*PARTITION_FAMILIES[0][:2])]
        parts += [f"{offset}{text} {p.committed}\n" for text, p in pairs]
        parts.append(_header(*PARTITION_FAMILIES[1][:2]))
        parts += [f"{lag}{text} {p.lag}\n" for text, p in pairs]
        parts.append(_header(*PARTITION_FAMILIES[2][:2]))
        parts += [f"{seconds}{text} {p.lag_seconds!r}\n" for text, p in pairs if p.lag_seconds is not None]
        ends = sorted(snap.lag.partition_ends.items())
        where = [f'{{cluster_name="{cluster}",topic="{_escape(t)}",partition="{n}"}}' for (t, n), _ in ends]
        parts.append(_header("kafka_partition_latest_offset", "The latest offset of the partition."))
        parts += [f"kafka_partition_latest_offset{w} {b[1]}\n" for w, (_, b) in zip(where, ends, strict=True)]
        parts.append(_header("kafka_partition_earliest_offset", "The earliest offset of the partition."))
        parts += [
            f"kafka_partition_earliest_offset{w} {b[0]}\n" for w, (_, b) in zip(where, ends, strict=True)
        ]
        return "".join(parts)


def _labels(cluster: str, group: str, topic: str, partition: int, m: Member) -> str:
    return (
        f'{{cluster_name="{cluster}",group="{group}",topic="{_escape(topic)}",partition="{partition}",'
        f'member_host="{_escape(m.host)}",consumer_id="{_escape(m.consumer_id)}",client_id="{_escape(m.client_id)}"}}'
    )


def _header(name: str, doc: str) -> str:
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n"
