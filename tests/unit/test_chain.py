"""The hash chain's pure parts: link hashes, headers, partitions, checkpoints, heads across transactions."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct

import pytest

from hub.chain import (
    GENESIS,
    GENESIS_HEAD,
    HASH_HEADER,
    SEQ_HEADER,
    ChainLinker,
    Head,
    MalformedLinkError,
    chain_headers,
    is_chained,
    link_hash,
    links,
    partition_for,
    read_checkpoint,
    read_link,
)


def test_link_hash_is_sha256_of_previous_lengths_and_seq() -> None:
    """A link hashes the previous hash, the length-prefixed key and value and the 8-byte seq."""
    previous = bytes(range(32))
    expected = hashlib.sha256(
        previous + struct.pack(">i", 2) + b"k1" + struct.pack(">i", 3) + b"abc" + struct.pack(">Q", 7)
    ).digest()

    assert link_hash(previous, b"k1", b"abc", 7) == expected


def test_tombstone_empty_value_and_missing_key_hash_differently() -> None:
    """None (no key, a tombstone) and empty bytes are different links."""
    hashes = {
        link_hash(GENESIS, None, b"v", 0),
        link_hash(GENESIS, b"", b"v", 0),
        link_hash(GENESIS, b"k", None, 0),
        link_hash(GENESIS, b"k", b"", 0),
    }

    assert len(hashes) == 4


def test_moving_bytes_between_key_and_value_changes_the_hash() -> None:
    """Length prefixes keep key b"ab" + value b"c" apart from key b"a" + value b"bc"."""
    assert link_hash(GENESIS, b"ab", b"c", 0) != link_hash(GENESIS, b"a", b"bc", 0)


def test_each_link_depends_on_the_one_before() -> None:
    """Changing an early record changes every later hash."""
    records = [(b"k%d" % i, b"v%d" % i) for i in range(5)]
    clean = GENESIS_HEAD
    forged = GENESIS_HEAD
    clean_hashes, forged_hashes = [], []
    for i, (key, value) in enumerate(records):
        clean = clean.next(key, value)
        forged = forged.next(key, b"forged" if i == 1 else value)
        clean_hashes.append(clean.hash)
        forged_hashes.append(forged.hash)

    assert clean.seq == 4
    assert clean_hashes[0] == forged_hashes[0]
    assert all(a != b for a, b in zip(clean_hashes[1:], forged_hashes[1:], strict=True))


def test_headers_round_trip_and_bad_headers_are_reported() -> None:
    """The seq and hex hash headers read back as the head; garbage raises MalformedLinkError."""
    head = Head(41, link_hash(GENESIS, b"k", b"v", 41))
    headers = [("other", b"x"), *chain_headers(head)]

    assert read_link(headers) == head
    assert read_link(dict(headers)) == head
    assert read_link([("other", b"x")]) is None
    assert read_link(None) is None
    with pytest.raises(MalformedLinkError):
        read_link([(SEQ_HEADER, b"12"), (HASH_HEADER, b"not hex")])
    with pytest.raises(MalformedLinkError):
        read_link([(SEQ_HEADER, b"-1"), (HASH_HEADER, head.hash.hex().encode())])


def test_chained_topics_are_raw_canonical_and_outbox() -> None:
    """Raw, canonical and outbox topics carry the chain; DLQ, quarantine and internal ones do not."""
    assert is_chained("unsilo.raw.sales.orders")
    assert is_chained("unsilo.canonical.customer")
    assert is_chained("unsilo.outbox.order")
    assert not is_chained("unsilo.dlq.shop")
    assert not is_chained("unsilo.quarantine.shop")
    assert not is_chained("_unsilo.offsets")


def test_partition_is_crc32_of_the_key_like_librdkafka() -> None:
    """A key lands where librdkafka's consistent_random partitioner puts it; no key goes to 0."""
    assert partition_for(b"123456789", 1000) == 0xCBF43926 % 1000  # the CRC-32 check value
    assert partition_for(None, 6) == 0
    assert partition_for(b"", 6) == 0
    assert {partition_for(b"key-%d" % i, 6) for i in range(100)} == set(range(6))


class FakeLog:
    """Chain heads as the log holds them, and how often they were asked for."""

    def __init__(self, heads: dict[tuple[str, int], Head] | None = None, partitions: int = 1) -> None:
        self.heads = heads or {}
        self.loads: list[tuple[str, int]] = []
        self.count = partitions

    def load(self, topic: str, partition: int) -> Head:
        self.loads.append((topic, partition))
        return self.heads.get((topic, partition), GENESIS_HEAD)

    def partitions(self, topic: str) -> int:
        return self.count


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def linker(fake: FakeLog, clock: Clock | None = None, **options: object) -> ChainLinker:
    return ChainLinker(
        fake.load,
        fake.partitions,
        writer="unsilo-connector-test",
        hmac_key=options.pop("hmac_key", b"secret"),  # type: ignore[arg-type]
        clock=clock or Clock(),
        wall_clock=lambda: 1_700_000_000.0,
        **options,  # type: ignore[arg-type]
    )


def seqs(headers: list[tuple[str, bytes]]) -> int:
    return int(dict(headers)[SEQ_HEADER])


def test_a_head_is_loaded_once_and_the_chain_continues_from_it() -> None:
    """The first send to a partition loads its head from the log; later sends continue in memory."""
    stored = Head(9, link_hash(GENESIS, b"k", b"v", 9))
    fake = FakeLog({("unsilo.raw.s.t", 0): stored})
    chain = linker(fake)

    chain.begin()
    _, first = chain.link("unsilo.raw.s.t", b"a", b"1")
    _, second = chain.link("unsilo.raw.s.t", b"b", b"2")
    chain.commit()

    assert fake.loads == [("unsilo.raw.s.t", 0)]
    assert (seqs(first), seqs(second)) == (10, 11)
    assert read_link(first) == stored.next(b"a", b"1")
    assert read_link(second) == stored.next(b"a", b"1").next(b"b", b"2")


def test_abort_rolls_the_heads_back_to_the_start_of_the_transaction() -> None:
    """Links of an aborted transaction are not in the log, so the next transaction reuses their seqs."""
    fake = FakeLog()
    chain = linker(fake)
    chain.begin()
    _, committed = chain.link("unsilo.raw.s.t", b"a", b"1")
    chain.commit()

    chain.begin()
    chain.link("unsilo.raw.s.t", b"b", b"2")
    chain.link("unsilo.raw.s.t", b"c", b"3")
    chain.abort()
    chain.begin()
    _, retried = chain.link("unsilo.raw.s.t", b"b", b"2")
    chain.commit()

    assert seqs(retried) == 1
    assert read_link(retried) == read_link(committed).next(b"b", b"2")  # type: ignore[union-attr]


def test_a_head_first_loaded_in_an_aborted_transaction_is_loaded_again() -> None:
    """Abort also forgets heads loaded during the transaction; forget() drops every head."""
    fake = FakeLog()
    chain = linker(fake)
    chain.begin()
    chain.link("unsilo.raw.s.t", b"a", b"1")
    chain.abort()
    chain.begin()
    chain.link("unsilo.raw.s.t", b"a", b"1")
    chain.commit()
    chain.forget()
    chain.begin()
    chain.link("unsilo.raw.s.t", b"b", b"2")

    assert len(fake.loads) == 3


def test_records_of_a_key_go_to_one_partition_with_one_chain_each() -> None:
    """With several partitions each keeps its own sequence, and a key always maps to the same one."""
    fake = FakeLog(partitions=4)
    chain = linker(fake)
    chain.begin()
    placed = [chain.link("unsilo.raw.s.t", b"key-%d" % (i % 8), b"v") for i in range(40)]
    chain.commit()

    by_partition: dict[int, list[int]] = {}
    for partition, headers in placed:
        by_partition.setdefault(partition, []).append(seqs(headers))
    assert all(s == list(range(len(s))) for s in by_partition.values())
    assert [p for p, _ in placed[:8]] == [p for p, _ in placed[8:16]]


def test_checkpoints_are_due_every_n_links_and_are_signed() -> None:
    """After checkpoint_every links a signed checkpoint of the head is due, then not again at once."""
    fake = FakeLog()
    chain = linker(fake, checkpoint_every=3)
    chain.begin()
    for i in range(2):
        chain.link("unsilo.raw.s.t", b"k", b"%d" % i)
    assert chain.due_checkpoints() == []
    chain.link("unsilo.raw.s.t", b"k", b"2")
    due = chain.due_checkpoints()
    chain.commit()

    assert len(due) == 1
    key, value = due[0]
    checkpoint, valid = read_checkpoint(value, b"secret")
    assert key == b"unsilo.raw.s.t/0"
    assert valid is True
    assert (checkpoint.seq, checkpoint.hash) == (2, chain.head("unsilo.raw.s.t", 0).hash.hex())  # type: ignore[union-attr]
    assert checkpoint.writer == "unsilo-connector-test"
    assert chain.due_checkpoints() == []


def test_checkpoints_are_due_after_the_interval_even_for_few_links() -> None:
    """A partition with any new link gets a checkpoint once checkpoint_interval_s has passed."""
    clock = Clock()
    chain = linker(FakeLog(), clock, checkpoint_every=1000, checkpoint_interval_s=60.0)
    chain.begin()
    chain.link("unsilo.raw.s.t", b"k", b"v")
    assert chain.due_checkpoints() == []
    clock.now += 61
    assert len(chain.due_checkpoints()) == 1


def test_an_aborted_checkpoint_is_due_again() -> None:
    """A checkpoint in an aborted transaction never reached the log: the next commit writes one."""
    chain = linker(FakeLog(), checkpoint_every=1)
    chain.begin()
    chain.link("unsilo.raw.s.t", b"k", b"v")
    assert len(chain.due_checkpoints()) == 1
    chain.abort()
    chain.begin()
    chain.link("unsilo.raw.s.t", b"k", b"v")

    assert len(chain.due_checkpoints()) == 1


def test_no_key_no_checkpoints() -> None:
    """Without audit.hmac_key the chain is written but no checkpoint is."""
    chain = linker(FakeLog(), checkpoint_every=1, hmac_key=None)
    chain.begin()
    chain.link("unsilo.raw.s.t", b"k", b"v")

    assert chain.due_checkpoints() == []


def test_a_checkpoint_fails_with_the_wrong_key_or_an_edited_field() -> None:
    """The HMAC covers every field: another key, or a changed seq, does not verify."""
    chain = linker(FakeLog(), checkpoint_every=1)
    chain.begin()
    chain.link("unsilo.raw.s.t", b"k", b"v")
    _, value = chain.due_checkpoints()[0]
    edited = json.loads(value)
    edited["seq"] = 5

    assert read_checkpoint(value, b"secret")[1] is True
    assert read_checkpoint(value, b"other key")[1] is False
    assert read_checkpoint(json.dumps(edited).encode(), b"secret")[1] is False
    assert read_checkpoint(value, None)[1] is None


def test_verify_selects_every_chained_topic_by_default_and_patterns_on_request() -> None:
    """No --topic: raw, canonical and outbox topics; patterns match; plain names are kept as given."""
    from hub.audit_cli import select_topics

    existing = {"unsilo.raw.a.t", "unsilo.raw.b.t", "unsilo.canonical.sale", "unsilo.dlq.a", "_unsilo.chain"}

    assert select_topics(existing, []) == ["unsilo.canonical.sale", "unsilo.raw.a.t", "unsilo.raw.b.t"]
    assert select_topics(existing, ["unsilo.raw.*"]) == ["unsilo.raw.a.t", "unsilo.raw.b.t"]
    assert select_topics(existing, ["copy", "unsilo.raw.a.*"]) == ["copy", "unsilo.raw.a.t"]


def test_a_partition_another_writer_appended_to_is_reloaded_at_the_next_transaction() -> None:
    """When the log moved on without this writer (a DLQ replay), its next link follows the log's head."""
    fake = FakeLog()
    moved: set[tuple[str, int]] = set()
    chain = ChainLinker(
        fake.load,
        fake.partitions,
        is_current=lambda topic, partition: (topic, partition) not in moved,
        writer="w",
        hmac_key=None,
    )
    chain.begin()
    chain.link("unsilo.raw.s.t", b"a", b"1")
    chain.commit()
    other = GENESIS_HEAD.next(b"a", b"1").next(b"dlq", b"replayed")  # the other writer's link
    fake.heads[("unsilo.raw.s.t", 0)] = other
    moved.add(("unsilo.raw.s.t", 0))

    chain.begin()
    _, first = chain.link("unsilo.raw.s.t", b"b", b"2")
    moved.clear()
    _, second = chain.link("unsilo.raw.s.t", b"c", b"3")
    chain.commit()

    assert read_link(first) == other.next(b"b", b"2")
    assert seqs(second) == 3
    assert len(fake.loads) == 2


def test_the_writer_sees_another_writer_from_where_its_records_landed() -> None:
    """Records landing past where the last transaction (and its marker) ended: the log moved on."""
    from hub.config import KafkaSettings
    from hub.kafka.chain import KafkaHeads

    heads = KafkaHeads(KafkaSettings())  # no I/O until a head is loaded
    tp = ("unsilo.raw.s.t", 0)
    assert not heads.is_current(*tp)
    heads.delivered(*tp, 0)
    heads.delivered(*tp, 1)
    heads.settled()  # committed: the marker at 2, our next record at 3
    assert heads.is_current(*tp) and heads.moved() == []

    heads.delivered(*tp, 3)
    assert heads.moved() == []
    heads.settled()
    heads.delivered(*tp, 7)  # offsets 5 and 6 were written by someone else
    assert heads.moved() == [tp]
    heads.settled(known=False)  # the batch aborted: the end is unknown, the head is reloaded
    assert not heads.is_current(*tp)


def test_links_made_in_c_are_those_of_link_hash() -> None:
    """The C linker's headers and last hash equal link_hash's, keys and values missing or empty."""
    from hub import chain

    if chain._links is chain._links_in_python:
        if os.environ.get("CI"):
            pytest.fail("hub/_chain_native.c was not built: `pip install -e .` needs OpenSSL's headers")
        pytest.skip("the C linker was not built here (no OpenSSL headers at install time)")
    rng = random.Random(5)
    records = [
        (rng.randbytes(rng.randrange(0, 40)), rng.randbytes(rng.randrange(0, 3000))) for _ in range(300)
    ]
    records += [(None, b"v"), (b"", None), (None, None), (b"k", b"")]
    for head in (GENESIS_HEAD, Head(2**40 + 7, hashlib.sha256(b"head").digest())):
        headers, last = links(head, records)
        expected, previous = [], head
        for key, value in records:
            previous = previous.next(key, value)
            expected.append(chain_headers(previous))
        assert (headers, last) == (expected, previous.hash)
        assert links(head, records, native=False) == (headers, last)
    assert links(GENESIS_HEAD, []) == ([], GENESIS)
    with pytest.raises(TypeError):
        links(GENESIS_HEAD, [("key", b"value")])  # type: ignore[list-item]


def test_linking_many_records_equals_linking_them_one_by_one() -> None:
    """link_many spreads records over partitions as link does, with the same heads after."""
    one_by_one, batched = linker(FakeLog(partitions=4)), linker(FakeLog(partitions=4))
    records = [(b"key-%d" % (i % 13) if i % 5 else None, b"value %d" % i) for i in range(200)]
    for batch in (records[:70], records[70:]):
        one_by_one.begin()
        batched.begin()
        expected = [one_by_one.link("unsilo.raw.x", key, value) for key, value in batch]
        assert batched.link_many("unsilo.raw.x", batch) == expected
        one_by_one.commit()
        batched.commit()
    for partition in range(4):
        assert batched.head("unsilo.raw.x", partition) == one_by_one.head("unsilo.raw.x", partition)
    assert batched.due_checkpoints() == one_by_one.due_checkpoints()
