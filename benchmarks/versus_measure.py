"""What ``benchmarks/versus_debezium.py`` watches, the same way for both tools.

- ``OffsetWatcher``: a topic's end offset every 200 ms, to time the first record and the moment
  the topic holds every row of a snapshot.
- ``LiveCollector``: a read_committed consumer tailing a topic from given offsets, keeping each
  record's Kafka timestamp (the topics use LogAppendTime), the moment this process received it,
  and its value; ``latencies`` then decodes the values (both tools write Avro in the Confluent
  wire format through the same registry) and measures from the row's ``written_us``.
- ``usage``: a process's CPU seconds and peak RSS (VmHWM) from /proc; ``machine_shape`` and
  ``end_leftovers`` (what a failed start of the broker left running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from benchmarks.foundation import machine, vm_hwm_kib
from benchmarks.versus_report import percentiles
from hub.serde import AvroSerde


def end_offset(consumer: Consumer, topic: str) -> int:
    """The end offset of partition 0 of ``topic`` (-1 while it does not exist)."""
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        return int(high)
    except KafkaException:
        return -1


class OffsetWatcher(threading.Thread):
    """Notes (monotonic) when ``topic`` first holds a record and when its end offset reaches ``target``."""

    def __init__(self, bootstrap: str, topic: str, target: int, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.topic, self.target, self.interval_s = topic, target, interval_s
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"vs-watch-{uuid.uuid4().hex[:8]}"}
        )
        self.first_at: float | None = None
        self.reached_at: float | None = None
        self.latest = -1
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set() and self.reached_at is None:
                self.latest = end_offset(self.consumer, self.topic)
                now = time.monotonic()
                if self.latest > 0 and self.first_at is None:
                    self.first_at = now
                if self.latest >= self.target:
                    self.reached_at = now
                self._halt.wait(self.interval_s)
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class LiveCollector(threading.Thread):
    """Tails ``topic`` (read_committed) from its current end, keeping (append ms, received ms, value)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"vs-live-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "fetch.wait.max.ms": 10, "fetch.min.bytes": 1,
        })  # fmt: skip
        self.start_offset = max(0, end_offset(self.consumer, topic))
        self.consumer.assign([TopicPartition(topic, 0, self.start_offset)])
        self.records: list[tuple[int, int, int, bytes]] = []
        self.error: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                for message in self.consumer.consume(1000, timeout=0.05):
                    received = time.time_ns() // 1_000_000
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            self.error = str(error)
                        continue
                    kind, stamp = message.timestamp()
                    self.records.append((kind, stamp, received, message.value() or b""))
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def written_us(serde: AvroSerde, value: bytes) -> int | None:
    """``after.written_us`` of a change event (Unsilo's and Debezium's envelopes both have ``after``)."""
    if not value:
        return None
    decoded = serde.decode(value)
    after = decoded.get("after") if isinstance(decoded, dict) else None
    return int(after["written_us"]) if isinstance(after, dict) and "written_us" in after else None


def latencies(serde: AvroSerde, records: list[tuple[int, int, int, bytes]], since_us: int) -> dict[str, Any]:
    """Commit -> Kafka append time, and commit -> received by a consumer, of the changes written
    after ``since_us``; the Kafka timestamps must be LogAppendTime (type 2)."""
    appended, received, processed, kinds = [], [], [], set()
    for kind, stamp, seen, value in records:
        event = serde.decode(value) if value else None
        if not isinstance(event, dict):
            continue
        after = event.get("after")
        if not isinstance(after, dict) or after.get("written_us") is None or after["written_us"] < since_us:
            continue
        at = int(after["written_us"]) / 1000
        kinds.add(kind)
        appended.append(stamp - at)
        received.append(seen - at)
        if isinstance(event.get("ts_ms"), int):  # when the tool made the event (both envelopes)
            processed.append(event["ts_ms"] - at)
    return {
        "events": len(appended),
        "timestamp_is_log_append_time": kinds == {2},
        "latency_ms": percentiles(appended),
        "received_latency_ms": percentiles(received),
        "event_made_latency_ms": percentiles(processed),
    }


class ChangeCounter:
    """Counts, as they arrive, a collector's changes written at or after ``since_us``."""

    def __init__(self, serde: AvroSerde, collector: LiveCollector, since_us: int) -> None:
        self.serde, self.collector, self.since_us = serde, collector, since_us
        self.checked = 0
        self.count = 0

    def update(self) -> int:
        records = self.collector.records[self.checked :]
        self.checked += len(records)
        for *_, value in records:
            at = written_us(self.serde, value)
            if at is not None and at >= self.since_us:
                self.count += 1
        return self.count


def wait_for_marker(serde: AvroSerde, collector: LiveCollector, marker: int, timeout_s: float) -> bool:
    """True once ``collector`` has seen a change whose ``written_us`` is ``marker``."""
    deadline = time.monotonic() + timeout_s
    checked = 0
    while time.monotonic() < deadline:
        records = collector.records[checked:]
        checked += len(records)
        if any(written_us(serde, value) == marker for *_, value in records):
            return True
        time.sleep(0.2)
    return False


def machine_shape() -> dict[str, Any]:
    """``benchmarks.foundation.machine`` plus the CPU model and the load when the run began."""
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {**machine(), "cpu_model": model, "load_average": [round(x, 2) for x in os.getloadavg()]}


def end_leftovers(marker: Path) -> list[int]:
    """SIGTERM (then SIGKILL) the processes whose command line names ``marker``, a directory this
    run created: what a failed start left running. Returns their PIDs."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if str(marker).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in found):
            time.sleep(0.2)
    return found


def usage(pid: int) -> dict[str, float]:
    """CPU seconds (user + system, children excluded) and peak RSS so far of a live process."""
    cpu = 0.0
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"cpu_seconds": round(cpu, 2), "peak_rss_mib": round(vm_hwm_kib(pid) / 1024, 1)}
