"""The tamper-evidence hash chain: links, headers, partitions and signed checkpoints (pure).

Every record a Unsilo writer sends to a chained topic (``unsilo.raw.*``, ``unsilo.canonical.*``,
``unsilo.outbox.*``) is one link of a chain per topic-partition::

    hash(n) = SHA-256( hash(n-1)                      32 bytes; 32 zero bytes for seq 0
                     + len(key)   as 4-byte signed big endian (-1: no key)   + key
                     + len(value) as 4-byte signed big endian (-1: tombstone) + value
                     + n          as 8-byte big endian )

``n`` is the link's sequence number in its partition (0, 1, 2, ...), carried with the hash
in the record headers ``unsilo.chain.seq`` (ASCII digits) and ``unsilo.chain.hash`` (hex).
Kafka offsets cannot be the position: they are unknown inside a transaction when the record
is produced, and transaction markers consume offsets. A gap or a repeat in the sequence is a
broken link as much as a wrong hash. Other headers are not covered.

Chain heads are checkpointed to the compacted ``_unsilo.chain`` topic, key
``<topic>/<partition>``, signed with HMAC-SHA256 under ``audit.hmac_key``: an auditor holding
the key can check a range of the log against them without trusting the hub's current state.

:class:`ChainLinker` keeps the heads of one writer, rolls them back when a transaction aborts
and says when a checkpoint is due; loading a head from Kafka is injected (``hub.kafka.chain``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

SEQ_HEADER = "unsilo.chain.seq"
HASH_HEADER = "unsilo.chain.hash"
GENESIS = bytes(32)
CHAINED_PREFIXES = ("unsilo.raw.", "unsilo.canonical.", "unsilo.outbox.")

_LENGTH = struct.Struct(">i")
_SEQ = struct.Struct(">Q")
_NONE = _LENGTH.pack(-1)

TP = tuple[str, int]


def is_chained(topic: str) -> bool:
    """Whether records of ``topic`` carry the chain (raw, canonical and outbox topics)."""
    return topic.startswith(CHAINED_PREFIXES)


def link_hash(previous: bytes, key: bytes | None, value: bytes | None, seq: int) -> bytes:
    """The hash of link ``seq`` holding ``key`` and ``value``, after the link hashed ``previous``."""
    return hashlib.sha256(
        b"".join(
            (
                previous,
                _NONE if key is None else _LENGTH.pack(len(key)),
                key or b"",
                _NONE if value is None else _LENGTH.pack(len(value)),
                value or b"",
                _SEQ.pack(seq),
            )
        )
    ).digest()


Record = tuple[bytes | None, bytes | None]
Links = tuple[list[list[tuple[str, bytes]]], bytes]


def _links_in_python(
    previous: bytes, seq: int, records: list[Record], seq_header: str, hash_header: str
) -> Links:
    headers: list[list[tuple[str, bytes]]] = []
    for key, value in records:
        seq += 1
        previous = link_hash(previous, key, value, seq)
        headers.append([(seq_header, b"%d" % seq), (hash_header, previous.hex().encode())])
    return headers, previous


try:  # hub/_chain_native.c, built where OpenSSL's headers were found at install time
    from hub._chain_native import links as _links  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - built without OpenSSL's headers
    _links = _links_in_python


def links(head: Head, records: list[Record], *, native: bool = True) -> Links:
    """The chain headers of ``records`` linked after ``head``, and the last link's hash."""
    make = _links if native else _links_in_python
    result: Links = make(head.hash, head.seq, records, SEQ_HEADER, HASH_HEADER)
    return result


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``) gives ``key``.

    CRC-32 of the key modulo the partition count, so a key stays in the partition it was
    always written to (per-key order kept across enabling the chain). librdkafka places a
    missing or empty key at random; a chained record needs its partition up front: 0.
    """
    if not key:
        return 0
    return zlib.crc32(key) % partitions


class Head(NamedTuple):
    """The last link of a partition's chain; ``seq`` -1 and 32 zero bytes before the first."""

    seq: int = -1
    hash: bytes = GENESIS

    def next(self, key: bytes | None, value: bytes | None) -> Head:
        seq = self.seq + 1
        return Head(seq, link_hash(self.hash, key, value, seq))


GENESIS_HEAD = Head()


def chain_headers(head: Head) -> list[tuple[str, bytes]]:
    return [(SEQ_HEADER, str(head.seq).encode("ascii")), (HASH_HEADER, head.hash.hex().encode("ascii"))]


class MalformedLinkError(ValueError):
    """Chain headers are present but cannot be read."""


RawHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


def read_link(headers: RawHeaders | None) -> Head | None:
    """The link in a record's headers; None when it has no chain headers."""
    seq_raw = hash_raw = None
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        raw = value.encode("utf-8") if isinstance(value, str) else value
        if name == SEQ_HEADER:
            seq_raw = raw
        elif name == HASH_HEADER:
            hash_raw = raw
    if seq_raw is None and hash_raw is None:
        return None
    try:
        seq = int((seq_raw or b"").decode("ascii"))
        digest = bytes.fromhex((hash_raw or b"").decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedLinkError(f"unreadable chain headers ({exc})") from exc
    if seq < 0 or len(digest) != 32:
        raise MalformedLinkError("chain headers out of range")
    return Head(seq, digest)


# -- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A chain head as a writer committed it, signed in ``_unsilo.chain``."""

    topic: str
    partition: int
    seq: int
    hash: str  # hex
    written_at: str  # ISO 8601, UTC
    writer: str  # the transactional id

    @property
    def key(self) -> bytes:
        return checkpoint_key(self.topic, self.partition)

    def signed(self, hmac_key: bytes) -> bytes:
        """The record value: the fields and their ``hmac``, as JSON."""
        fields = asdict(self)
        return json.dumps({**fields, "hmac": _mac(hmac_key, fields)}, sort_keys=True).encode("utf-8")


def checkpoint_key(topic: str, partition: int) -> bytes:
    return f"{topic}/{partition}".encode()


def _mac(hmac_key: bytes, fields: dict[str, object]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(hmac_key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def read_checkpoint(value: bytes, hmac_key: bytes | None) -> tuple[Checkpoint, bool | None]:
    """The checkpoint in ``value`` and whether its HMAC is right (None: no key to check with).

    Raises ValueError for a value that is not a checkpoint.
    """
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    mac = data.pop("hmac", None)
    checkpoint = Checkpoint(
        topic=str(data["topic"]),
        partition=int(data["partition"]),
        seq=int(data["seq"]),
        hash=str(data["hash"]),
        written_at=str(data["written_at"]),
        writer=str(data["writer"]),
    )
    if hmac_key is None:
        return checkpoint, None
    return checkpoint, isinstance(mac, str) and hmac.compare_digest(mac, _mac(hmac_key, data))


# -- the writer's side ---------------------------------------------------------------------------


@dataclass
class _Progress:
    """Links since the last checkpoint of a partition, and when it was written (monotonic)."""

    since: int
    at: float


class ChainLinker:
    """The chain heads of one transactional writer, kept in step with its transactions.

    A head is loaded with ``load_head`` the first time the writer sends to a partition (the
    last committed chained record there, or the genesis). Each chained topic is meant to have
    one writer (a connector's transactional id for its raw topics, a canonicalizer's for its
    canonical ones). An occasional second writer between two transactions (``unsilo dlq
    replay`` into a raw topic) is caught before the commit by the producer, which sees its
    records land past where its last transaction ended (``ChainMovedError``: the batch is
    aborted and retried on heads loaded again). ``is_current``, asked once per partition and
    transaction, says whether a held head can still be used (not after an abort, whose end
    in the log is unknown). Two writers with transactions open on one partition at the same
    time can still fork the chain, and ``unsilo verify`` reports it.

    ``begin()`` remembers the heads; ``abort()`` restores them; ``commit()`` keeps them;
    ``forget()`` drops them all (reloaded on the next send) when a commit's outcome is unknown.
    """

    def __init__(
        self,
        load_head: Callable[[str, int], Head],
        partitions: Callable[[str], int],
        *,
        is_current: Callable[[str, int], bool] = lambda topic, partition: True,
        writer: str,
        hmac_key: bytes | None,
        checkpoint_every: int = 10_000,
        checkpoint_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._load_head = load_head
        self._partitions = partitions
        self._is_current = is_current
        self._checked: set[TP] = set()
        self._counts: dict[str, int] = {}  # partitions per topic, for this writer's life
        self.writer = writer
        self.hmac_key = hmac_key
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._heads: dict[TP, Head] = {}
        self._progress: dict[TP, _Progress] = {}
        self._saved: tuple[dict[TP, Head], dict[TP, _Progress]] | None = None

    def head(self, topic: str, partition: int) -> Head | None:
        """The head held for a partition (None: not loaded yet)."""
        return self._heads.get((topic, partition))

    def begin(self) -> None:
        self._checked = set()
        self._saved = (
            dict(self._heads),
            {tp: _Progress(p.since, p.at) for tp, p in self._progress.items()},
        )

    def link(self, topic: str, key: bytes | None, value: bytes | None) -> tuple[int, list[tuple[str, bytes]]]:
        """The partition of the next record of ``topic`` and its chain headers."""
        partition = partition_for(key, self._partition_count(topic))
        head = self._current_head(topic, partition)
        seq = head.seq + 1
        digest = link_hash(head.hash, key, value, seq)
        self._heads[(topic, partition)] = Head(seq, digest)
        self._progress[(topic, partition)].since += 1
        return partition, [(SEQ_HEADER, b"%d" % seq), (HASH_HEADER, digest.hex().encode())]

    def link_many(self, topic: str, records: list[Record]) -> list[tuple[int, list[tuple[str, bytes]]]]:
        """:meth:`link` for each of ``records`` in turn, hashed in C a partition at a time."""
        count = self._partition_count(topic)
        by_partition: dict[int, list[int]] = {}
        if count == 1:
            by_partition[0] = list(range(len(records)))
        else:
            for index, (key, _) in enumerate(records):
                by_partition.setdefault(partition_for(key, count), []).append(index)
        linked: list[tuple[int, list[tuple[str, bytes]]]] = [(0, [])] * len(records)
        for partition, indexes in by_partition.items():
            head = self._current_head(topic, partition)
            headers, digest = links(head, [records[i] for i in indexes])
            self._heads[(topic, partition)] = Head(head.seq + len(indexes), digest)
            self._progress[(topic, partition)].since += len(indexes)
            for index, record_headers in zip(indexes, headers, strict=True):
                linked[index] = (partition, record_headers)
        return linked

    def _partition_count(self, topic: str) -> int:
        count = self._counts.get(topic)
        if count is None:
            count = self._counts[topic] = self._partitions(topic)
        return count

    def _current_head(self, topic: str, partition: int) -> Head:
        """The partition's head to link after: checked once per transaction, loaded when needed."""
        tp = (topic, partition)
        head = self._heads.get(tp)
        if tp not in self._checked:
            if head is not None and not self._is_current(topic, partition):
                head = None  # someone else wrote to the partition since: load the head again
            self._checked.add(tp)
        if head is None:
            head = self._load_head(topic, partition)
            if tp not in self._progress:
                self._progress[tp] = _Progress(0, self._clock())
        return head

    def due_checkpoints(self) -> list[tuple[bytes, bytes]]:
        """Checkpoint records (key, value) to add to the open transaction before it commits."""
        if self.hmac_key is None:
            return []
        now = self._clock()
        due: list[tuple[bytes, bytes]] = []
        for tp, progress in self._progress.items():
            if progress.since == 0:
                continue
            if progress.since < self.checkpoint_every and now - progress.at < self.checkpoint_interval_s:
                continue
            head = self._heads[tp]
            checkpoint = Checkpoint(
                topic=tp[0],
                partition=tp[1],
                seq=head.seq,
                hash=head.hash.hex(),
                written_at=_iso(self._wall_clock()),
                writer=self.writer,
            )
            due.append((checkpoint.key, checkpoint.signed(self.hmac_key)))
            progress.since, progress.at = 0, now
        return due

    def commit(self) -> None:
        self._saved = None

    def abort(self) -> None:
        if self._saved is not None:
            self._heads, self._progress = self._saved
        self._saved = None

    def forget(self) -> None:
        self._heads, self._progress, self._saved = {}, {}, None


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s * 1000) % 1000:03d}Z"
