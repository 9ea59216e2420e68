"""Identity resolution as plain code: which source records are one real customer or employee.

Rules, deterministic, each between records of *different* systems of the same entity (a
duplicate inside one system is that system's data-quality matter, not an identity):

- ``reference``: a Customer's ``reference_key`` names a known record of another system;
- ``tax_id``: equal tax ids once spaces and punctuation are stripped and letters upper-cased;
- ``email``: equal emails once trimmed and lower-cased (blank means none).

Manual corrections override them: ``link`` joins keys whatever the rules say; ``unlink``
removes a key's manual links and keeps it out of every rule-based merge from then on (a
later ``link`` can still join it by hand). The parties are a union-find over the source
keys, recomputed from the current facts and corrections (so a changed or deleted record
splits a party as surely as a new one merges two), applying manual links first, then the
rules in the order above, edges sorted; each key's ``rule`` is the rule of the first merge
that reached it (provenance of every merge in :attr:`Party.merges`), ``self`` for a key alone
(``manual`` when it is alone because it was unlinked). A party's id is ``party:`` and its
smallest member key, so it is stable while that member stays.

The result depends only on the set of facts and the order of commands, never on how
customer records and commands interleaved: replaying the inputs rebuilds the same state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RULES = ("manual", "reference", "tax_id", "email")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


def normalise_tax_id(value: str | None) -> str | None:
    """``'fr 12-345.678'`` -> ``'FR12345678'``; None when nothing is left."""
    text = _NOT_ALNUM.sub("", value or "").upper()
    return text or None


def normalise_email(value: str | None) -> str | None:
    """``' Ada@Example.COM '`` -> ``'ada@example.com'``; None when blank."""
    text = (value or "").strip().lower()
    return text or None


def system_of(key: str) -> str:
    """The system prefix of a canonical key (``fin`` of ``fin:000042``)."""
    return key.split(":", 1)[0]


@dataclass(frozen=True)
class Facts:
    """What the rules look at in one canonical Customer or Employee record."""

    key: str
    entity: str
    reference_key: str | None = None
    tax_id: str | None = None
    email: str | None = None

    @classmethod
    def of(cls, entity: str, record: Mapping[str, Any]) -> Facts:
        return cls(
            key=str(record["key"]),
            entity=entity,
            reference_key=record.get("reference_key") or None,
            tax_id=normalise_tax_id(record.get("tax_id")),
            email=normalise_email(record.get("email")),
        )


@dataclass(frozen=True)
class Link:
    """Which party one source key belongs to, and by which rule."""

    source_key: str
    entity: str
    party_id: str
    rule: str
    members: tuple[str, ...]


@dataclass
class Party:
    """One real customer or employee: its member keys and the merges that made it."""

    party_id: str
    entity: str
    members: tuple[str, ...]
    merges: list[tuple[str, str, str]] = field(default_factory=list)  # (key, key, rule)


class _UnionFind:
    """Union-find over source keys; each key remembers the rule of its first merge."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.parent = {key: key for key in keys}
        self.members = {key: [key] for key in self.parent}
        self.rule: dict[str, str] = {}
        self.merges: list[tuple[str, str, str]] = []

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str, rule: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return
        low, high = sorted((root_a, root_b))
        for key in (*self.members[low], *self.members[high]):
            self.rule.setdefault(key, rule)
        self.parent[high] = low
        self.members[low] += self.members.pop(high)
        self.merges.append((a, b, rule))


class IdentityResolver:
    """Facts and manual corrections in; parties and the links that changed out."""

    def __init__(self) -> None:
        self.facts: dict[str, Facts] = {}
        self.manual_links: set[tuple[str, str]] = set()
        self.unlinked: set[str] = set()
        self.emitted: dict[str, Link] = {}

    # -- inputs ---------------------------------------------------------------------
    def upsert(self, facts: Facts) -> None:
        self.facts[facts.key] = facts

    def remove(self, key: str) -> None:
        self.facts.pop(key, None)

    def link(self, keys: Iterable[str]) -> None:
        """Join ``keys`` into one party whatever the rules say."""
        ordered = sorted(set(keys))
        for other in ordered[1:]:
            self.manual_links.add((ordered[0], other))

    def unlink(self, keys: Iterable[str]) -> None:
        """Split each key out of its party, and keep it out of rule-based merges."""
        for key in keys:
            self.manual_links = {pair for pair in self.manual_links if key not in pair}
            self.unlinked.add(key)

    def command(self, command: str, keys: Iterable[str]) -> None:
        if command == "link":
            self.link(keys)
        elif command == "unlink":
            self.unlink(keys)
        else:
            raise ValueError(f"unknown identity command {command!r} (link or unlink)")

    # -- resolution -----------------------------------------------------------------
    def edges(self) -> list[tuple[str, str, str]]:
        """Every (key, key, rule) the corrections and rules give, in the order applied."""
        known = self.facts
        found: list[tuple[str, str, str]] = [
            (a, b, "manual")
            for a, b in sorted(self.manual_links)
            if a in known and b in known and known[a].entity == known[b].entity
        ]
        eligible = [f for f in sorted(known.values(), key=lambda f: f.key) if f.key not in self.unlinked]
        for f in eligible:
            target = known.get(f.reference_key or "")
            if target is not None and target.key not in self.unlinked and _crosses(f, target):
                low, high = sorted((f.key, target.key))
                found.append((low, high, "reference"))
        for rule in ("tax_id", "email"):
            groups: dict[tuple[str, str], list[Facts]] = {}
            for f in eligible:
                value = getattr(f, rule)
                if value:
                    groups.setdefault((f.entity, value), []).append(f)
            for _, members in sorted(groups.items()):
                found += [
                    (a.key, b.key, rule)
                    for i, a in enumerate(members)
                    for b in members[i + 1 :]
                    if _crosses(a, b)
                ]
        return found

    def parties(self) -> list[Party]:
        """Every party of the current facts, by party id."""
        links, merges = self._resolve()
        by_party: dict[str, Party] = {}
        for link in links.values():
            by_party.setdefault(link.party_id, Party(link.party_id, link.entity, link.members))
        for a, b, rule in merges:
            by_party[links[a].party_id].merges.append((a, b, rule))
        return [by_party[p] for p in sorted(by_party)]

    def links(self) -> dict[str, Link]:
        """The link of every known source key."""
        return self._resolve()[0]

    def _resolve(self) -> tuple[dict[str, Link], list[tuple[str, str, str]]]:
        forest = _UnionFind(self.facts)
        for a, b, rule in self.edges():
            forest.union(a, b, rule)
        components: dict[str, list[str]] = {}
        for key in sorted(self.facts):
            components.setdefault(forest.find(key), []).append(key)
        links: dict[str, Link] = {}
        for keys in components.values():
            members = tuple(keys)
            for key in keys:
                alone = "manual" if key in self.unlinked else "self"
                rule = forest.rule.get(key, alone)
                links[key] = Link(key, self.facts[key].entity, f"party:{keys[0]}", rule, members)
        return links, forest.merges

    def changes(self) -> tuple[list[Link], list[str]]:
        """Links that changed since the last call (new or re-partied keys), and keys gone.

        Marks them as emitted, so the next call reports only what changes after this one.
        """
        current = self.links()
        changed = [link for key, link in sorted(current.items()) if self.emitted.get(key) != link]
        gone = sorted(set(self.emitted) - set(current))
        self.emitted = current
        return changed, gone


def _crosses(a: Facts, b: Facts) -> bool:
    return a.entity == b.entity and system_of(a.key) != system_of(b.key)
