"""Dead letters: what the DLQ topics hold, and replaying them exactly once after a fix.

A dead letter is a record of ``unsilo.dlq.<stage>`` (a source's name, or ``canonical``)
whose headers say why (``unsilo.error``, ``unsilo.error.class``) and where it came from
(``unsilo.source``, ``unsilo.table``, ``unsilo.position``; a canonical letter names its
``unsilo.mapping`` and ``unsilo.source.topic``/``unsilo.source.offset`` instead).

A replay hands each letter to the stage's :class:`Replayer` (contributed through the
``unsilo.dlq_replayers`` entry point group, so ``hub`` imports neither connectors nor
projections), which encodes it again with the current config and schema. The records it
returns and the letter's mark in the compacted ``_unsilo.dlq_replayed`` topic (keyed
``<dlq topic>/<partition>/<offset>``) are committed in one Kafka transaction: a letter
marked replayed is never delivered again, by a second replay or after a crash mid-replay
(the next replay's ``init`` aborts what the crashed one left open). A letter that still
fails stays in the DLQ; its mark records the new reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import structlog
from confluent_kafka import Message

from hub.config import KafkaSettings, Settings
from hub.errors import ConfigError, UnsiloError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.consumer import read_to_end
from hub.kafka.producer import TransactionalProducer
from hub.kafka.scan import read_topics_to_end
from hub.kafka.topics import DLQ_REPLAYED_TOPIC, dlq_topic, spec_for

log = structlog.get_logger(__name__)

DLQ_PREFIX = "unsilo.dlq."
Headers = list[tuple[str, bytes]]
Output = tuple[str, bytes | None, bytes | None, Headers]  # topic, key, value, headers


@dataclass(frozen=True)
class DeadLetter:
    """One record of a DLQ topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    body: bytes | None
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def stage(self) -> str:
        return self.topic.removeprefix(DLQ_PREFIX)

    @property
    def error(self) -> str:
        return self.headers.get("unsilo.error", "")

    @property
    def error_class(self) -> str:
        return self.headers.get("unsilo.error.class", "")

    @property
    def source(self) -> str:
        return self.headers.get("unsilo.source") or self.headers.get("unsilo.source.topic", "")

    @property
    def table(self) -> str:
        return self.headers.get("unsilo.table") or self.headers.get("unsilo.mapping", "")

    @property
    def position(self) -> str:
        return self.headers.get("unsilo.position") or self.headers.get("unsilo.source.offset", "")


@dataclass(frozen=True)
class Mark:
    """What the last replay of a letter did: ``replayed`` (to ``topics``) or ``failed`` (why)."""

    state: str
    at_ms: int
    topics: tuple[str, ...] = ()
    error: str | None = None
    error_class: str | None = None

    def encode(self) -> bytes:
        data = {"state": self.state, "at_ms": self.at_ms, "topics": list(self.topics)}
        if self.error is not None:
            data.update(error=self.error, error_class=self.error_class)
        return json.dumps(data).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Mark:
        raw = json.loads(data)
        return cls(
            raw["state"],
            int(raw["at_ms"]),
            tuple(raw.get("topics") or ()),
            raw.get("error"),
            raw.get("error_class"),
        )


class Replayer(Protocol):
    """Encodes a stage's dead letter again with the current config and schema."""

    def replay(self, letter: DeadLetter) -> list[Output]:
        """The records to publish for ``letter``; an UnsiloError when it still fails."""
        ...

    def close(self) -> None: ...


# (settings, stage, mapping file of the canonical layer) -> the stage's replayer, or None
ReplayerFactory = Callable[[Settings, str, Path | None], Replayer | None]


@dataclass
class Outcome:
    """What one replay did with one letter: ``replayed``, ``already replayed`` or ``failed``."""

    letter: DeadLetter
    result: str
    topics: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None


@dataclass
class Listing:
    """A DLQ topic's letters with their replay marks."""

    topic: str
    letters: list[DeadLetter] = field(default_factory=list)
    marks: dict[str, Mark] = field(default_factory=dict)


def dlq_topics(settings: KafkaSettings) -> list[str]:
    """Every DLQ topic on the broker, sorted."""
    return sorted(t for t in KafkaAdmin(settings).topic_names() if t.startswith(DLQ_PREFIX))


def read_letters(settings: KafkaSettings, topic: str) -> list[DeadLetter]:
    """Every committed dead letter of ``topic``, by partition and offset."""
    return sorted((_letter(m) for m in read_to_end(settings, topic)), key=lambda d: (d.partition, d.offset))


def read_marks(settings: KafkaSettings) -> dict[str, Mark]:
    """The latest replay mark of each letter (by :attr:`DeadLetter.id`)."""
    marks: dict[str, Mark] = {}
    for message in read_to_end(settings, DLQ_REPLAYED_TOPIC):
        key, value = (message.key() or b"").decode("utf-8"), message.value()
        if value is None:
            marks.pop(key, None)
        else:
            marks[key] = Mark.decode(value)
    return marks


def list_letters(settings: KafkaSettings, stage: str | None = None) -> list[Listing]:
    """The letters of ``stage``'s DLQ (every DLQ without one) with their marks."""
    topics = [dlq_topic(stage)] if stage else dlq_topics(settings)
    marks = read_marks(settings)
    listings = {topic: Listing(topic) for topic in topics}
    for message in read_topics_to_end(settings, topics):  # one consumer for every DLQ
        letter = _letter(message)
        listing = listings[letter.topic]
        listing.letters.append(letter)
        if letter.id in marks:
            listing.marks[letter.id] = marks[letter.id]
    for listing in listings.values():
        listing.letters.sort(key=lambda d: (d.partition, d.offset))
    return list(listings.values())


def load_replayer(settings: Settings, stage: str, mappings: Path | None = None) -> Replayer:
    """The replayer a plugin offers for ``stage``; a ConfigError when none does."""
    for entry in entry_points(group="unsilo.dlq_replayers"):
        factory: ReplayerFactory = entry.load()
        found = factory(settings, stage, mappings)
        if found is not None:
            return found
    raise ConfigError(
        f"no way to replay the dead letters of {stage!r}",
        hint="--stage names a source of unsilo.yaml, or canonical[.<namespace>]",
    )


def replay(
    settings: Settings, stage: str, replayer: Replayer, offsets: Collection[int] | None = None
) -> list[Outcome]:
    """Replay ``stage``'s letters not replayed yet (only ``offsets`` when given), each exactly once."""
    topic = dlq_topic(stage)
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(DLQ_REPLAYED_TOPIC)])
    producer = TransactionalProducer(settings.kafka, f"unsilo-dlq-replay-{stage}", audit=settings.audit)
    try:
        producer.init()  # fences a replay still running; aborts what a crashed one left open
        marks = read_marks(settings.kafka)
        letters = [d for d in read_letters(settings.kafka, topic) if offsets is None or d.offset in offsets]
        return [_replay_one(producer, replayer, letter, marks.get(letter.id)) for letter in letters]
    finally:
        producer.close()


def _replay_one(
    producer: TransactionalProducer, replayer: Replayer, letter: DeadLetter, mark: Mark | None
) -> Outcome:
    if mark is not None and mark.state == "replayed":
        return Outcome(letter, "already replayed", mark.topics)
    now = int(time.time() * 1000)
    try:
        outputs = replayer.replay(letter)
    except UnsiloError as exc:
        log.warning("dead_letter_still_fails", letter=letter.id, error=exc.message)
        _commit(producer, [], letter, Mark("failed", now, error=exc.message, error_class=type(exc).__name__))
        return Outcome(letter, "failed", error=exc.message, hint=exc.hint)
    topics = tuple(sorted({out[0] for out in outputs}))
    _commit(producer, outputs, letter, Mark("replayed", now, topics))
    log.info("dead_letter_replayed", letter=letter.id, records=len(outputs), topics=list(topics))
    return Outcome(letter, "replayed", topics)


def _commit(
    producer: TransactionalProducer, outputs: Iterable[Output], letter: DeadLetter, mark: Mark
) -> None:
    """The letter's records and its mark, in one transaction."""
    producer.begin()
    try:
        for topic, key, value, headers in outputs:
            producer.send(topic, key, value, headers)
        producer.send(DLQ_REPLAYED_TOPIC, letter.id.encode("utf-8"), mark.encode())
        producer.commit()
    except BaseException:
        producer.abort()
        raise


def _letter(message: Message) -> DeadLetter:
    raw: list[tuple[str, bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
    headers = {name: (value or b"").decode("utf-8", "replace") for name, value in raw}
    _, timestamp = message.timestamp()
    return DeadLetter(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        timestamp_ms=int(timestamp),
        key=message.key(),
        body=message.value(),
        headers=headers,
    )


def letter_values(letter: DeadLetter) -> Any:
    """The letter's body as JSON when it is, else its text (for ``--show-values``)."""
    if letter.body is None:
        return None
    try:
        return json.loads(letter.body)
    except ValueError:
        return letter.body.decode("utf-8", "replace")


def describe(letter: DeadLetter, mark: Mark | None, *, show_values: bool = False) -> dict[str, Any]:
    """One letter as ``unsilo dlq list --json`` prints it."""
    data: dict[str, Any] = {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "time_ms": letter.timestamp_ms,
        "source": letter.source,
        "table": letter.table,
        "position": letter.position,
        "error_class": letter.error_class,
        "error": letter.error,
        "replay": None if mark is None else mark.state,
    }
    if mark is not None and mark.state == "failed":
        data["replay_error"] = mark.error
    if show_values:
        data["values"] = letter_values(letter)
    return data
