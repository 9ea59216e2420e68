"""/metrics: kafka-lag-exporter's names and labels, the hub's own metrics, and both render paths agreeing."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.health import Component
from hub.lag import GroupInfo, Member, PartitionOffsets, WindowConfig, evaluate
from hub.metrics import HubCollector, MetricsRenderer
from hub.overview import Snapshot
from hub.pipeline import CaptureLag, Freshness
from hub.status import SourceStatus

T0 = 1_700_000_000_000
PARTITION_LABELS = {"cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"}


def snapshot() -> Snapshot:
    member = Member("/10.0.0.7", "orders-app-1-4f2a", "orders-app-1")
    parts = [
        PartitionOffsets(
            "orders-app", "unsilo.raw.pos.sales", 0, 90, 0, 100, oldest_unconsumed_ms=T0 - 4000, member=member
        ),
        PartitionOffsets("orders-app", "unsilo.raw.pos.sales", 1, 50, 10, 50, member=member),
        PartitionOffsets(
            'we"ird\\group', "unsilo.raw.pos.sales", 0, 40, 0, 100, oldest_unconsumed_ms=T0 - 1000
        ),
    ]
    infos = {
        "orders-app": GroupInfo("orders-app", "STABLE"),
        'we"ird\\group': GroupInfo('we"ird\\group', "EMPTY", True),
    }
    report, _ = evaluate(parts, infos, {}, T0, WindowConfig())
    status = SourceStatus(
        "pos", "pos", "sqlite", state="running", events=1200, dead_lettered=3, quarantined=1
    )
    return Snapshot(
        taken_ms=T0,
        components=[
            Component("broker", "127.0.0.1:9092", True),
            Component("registry", "http://127.0.0.1:8081/apis/ccompat/v7", False, "did not answer"),
        ],
        lag=report,
        sources={"pos": status},
        capture=[
            CaptureLag("pos", "pos", "sales", "unsilo.raw.pos.sales", "OK", "streaming", capture_lag_s=0.25)
        ],
        freshness=[Freshness("store_sales", "OK", 0, 0.0)],
        dead_letters={"unsilo.dlq.pos": 3},
        duration_ms=12.5,
    )


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def test_consumer_lag_uses_kafka_lag_exporter_names_and_labels() -> None:
    """Per-partition and per-group lag come out under kafka-lag-exporter's metric names and label sets."""
    snap = snapshot()

    found = families(MetricsRenderer(lambda: snap, "prod").render().decode())

    for name in (
        "kafka_consumergroup_group_lag",
        "kafka_consumergroup_group_offset",
        "kafka_consumergroup_group_lag_seconds",
    ):
        assert {frozenset(labels) for labels, _ in found[name]} == {frozenset(PARTITION_LABELS)}
    lag = {(s["group"], s["partition"]): v for s, v in found["kafka_consumergroup_group_lag"]}
    assert lag == {("orders-app", "0"): 10, ("orders-app", "1"): 0, ('we"ird\\group', "0"): 60}
    first = next(s for s, _ in found["kafka_consumergroup_group_lag"] if s["group"] == "orders-app")
    assert (first["cluster_name"], first["member_host"], first["client_id"]) == (
        "prod",
        "/10.0.0.7",
        "orders-app-1",
    )
    seconds = {
        s["group"]: v for s, v in found["kafka_consumergroup_group_lag_seconds"] if s["partition"] == "0"
    }
    assert seconds == {"orders-app": 4.0, 'we"ird\\group': 1.0}
    assert found["kafka_consumergroup_group_max_lag"][0][0].keys() == {
        "cluster_name",
        "group",
        "is_simple_consumer",
    }
    assert {s["group"]: v for s, v in found["kafka_consumergroup_group_sum_lag"]} == {
        "orders-app": 10,
        'we"ird\\group': 60,
    }
    assert {s["group"]: v for s, v in found["kafka_consumergroup_group_max_lag_seconds"]} == {
        "orders-app": 4.0,
        'we"ird\\group': 1.0,
    }
    latest = {(s["topic"], s["partition"]): v for s, v in found["kafka_partition_latest_offset"]}
    earliest = {(s["topic"], s["partition"]): v for s, v in found["kafka_partition_earliest_offset"]}
    assert latest[("unsilo.raw.pos.sales", "1")] == 50 and earliest[("unsilo.raw.pos.sales", "1")] == 10


def test_hub_metrics_cover_connectors_dead_letters_and_registry() -> None:
    """Connector counters and state, DLQ records, capture lag, freshness and registry-up are exported."""
    found = families(MetricsRenderer(snapshot, "prod").render().decode())

    assert found["unsilo_connector_events_total"] == [({"source": "pos", "system": "pos"}, 1200)]
    assert found["unsilo_connector_dead_lettered_total"][0][1] == 3
    assert found["unsilo_connector_quarantined_total"][0][1] == 1
    assert found["unsilo_connector_state"] == [({"source": "pos", "system": "pos", "state": "running"}, 1)]
    assert found["unsilo_dead_letter_records"] == [({"topic": "unsilo.dlq.pos"}, 3)]
    assert found["unsilo_registry_up"] == [({"address": "http://127.0.0.1:8081/apis/ccompat/v7"}, 0)]
    assert found["unsilo_capture_lag_seconds"][0][1] == 0.25
    assert found["unsilo_read_model_status"] == [({"read_model": "store_sales", "status": "OK"}, 1)]


def test_fast_partition_writer_matches_prometheus_client_output() -> None:
    """The specialised per-partition writer yields exactly the samples prometheus-client's writer does."""
    snap = snapshot()
    registry = CollectorRegistry()
    registry.register(HubCollector(lambda: snap, "prod"))

    generic = families(generate_latest(registry).decode())
    fast = families(MetricsRenderer(lambda: snap, "prod").render().decode())

    def canonical(found: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, list[Any]]:
        return {
            name: sorted((sorted(labels.items()), value) for labels, value in samples)
            for name, samples in found.items()
        }

    assert canonical(fast) == canonical(generic)


def test_no_snapshot_yet_renders_empty_but_valid_text() -> None:
    """Before the first sample /metrics is empty, not an error."""
    assert MetricsRenderer(lambda: None, "prod").render() == b""
