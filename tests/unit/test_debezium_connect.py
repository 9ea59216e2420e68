"""The Kafka Connect / Debezium configuration the benchmark writes (benchmarks/debezium_connect.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.debezium_connect import (
    CONVERTER,
    mysql_connector,
    postgres_connector,
    registry_v2_url,
    render_properties,
    topic_of,
    worker_properties,
)


def test_the_converter_talks_to_the_same_registry_by_its_v2_api() -> None:
    assert (
        registry_v2_url("http://127.0.0.1:8081/apis/ccompat/v7") == "http://127.0.0.1:8081/apis/registry/v2"
    )


def test_worker_writes_confluent_wire_format_avro_with_ids_in_the_payload(tmp_path: Path) -> None:
    props = worker_properties(
        "127.0.0.1:9092", "http://reg:8081/apis/ccompat/v7", tmp_path / "offsets", 18083
    )

    for side in ("key", "value"):
        assert props[f"{side}.converter"] == CONVERTER
        assert props[f"{side}.converter.apicurio.registry.url"] == "http://reg:8081/apis/registry/v2"
        assert props[f"{side}.converter.apicurio.registry.as-confluent"] is True
        assert props[f"{side}.converter.apicurio.registry.use-id"] == "contentId"
        assert props[f"{side}.converter.apicurio.registry.headers.enabled"] is False
    assert props["listeners"] == "http://127.0.0.1:18083"
    assert props["offset.storage.file.filename"] == str(tmp_path / "offsets")


def test_properties_render_booleans_in_java_spelling_and_escape_backslashes() -> None:
    text = render_properties({"a.b": True, "path": "C:\\x", "n": 5})

    assert text == "a.b=true\npath=C:\\\\x\nn=5\n"


def test_a_property_holding_a_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="newline"):
        render_properties({"bad": "one\ntwo"})


def test_postgres_connector_reads_the_url_and_uses_its_own_slot() -> None:
    props = postgres_connector(
        "d_x", "postgresql://postgres@127.0.0.1:5433/bench", "orders", snapshot=True, log_append_time=True
    )

    assert props["database.port"] == 5433
    assert props["database.dbname"] == "bench"
    assert props["slot.name"] == props["publication.name"] == "d_x"
    assert props["snapshot.mode"] == "initial"
    assert props["topic.creation.default.message.timestamp.type"] == "LogAppendTime"
    assert topic_of(props, "orders") == "d_x.public.orders"


def test_mysql_connector_streams_only_without_a_snapshot(tmp_path: Path) -> None:
    props = mysql_connector(
        "d_y", "mysql://root@127.0.0.1:3307/", "shop", "pulse", server_id=4242,
        history=tmp_path / "h.dat", snapshot=False,
    )  # fmt: skip

    assert props["snapshot.mode"] == "no_data"
    assert props["table.include.list"] == "shop.pulse"
    assert props["database.server.id"] == 4242
    assert props["schema.history.internal.store.only.captured.tables.ddl"] is True
    assert "topic.creation.default.message.timestamp.type" not in props
    assert topic_of(props, "pulse") == "d_y.shop.pulse"
