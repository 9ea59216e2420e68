"""Identity resolution rules: reference, tax id, email, manual link and unlink, re-emission."""

from __future__ import annotations

from typing import Any

from projections.identity.resolver import Facts, IdentityResolver, normalise_email, normalise_tax_id


def customer(key: str, **fields: Any) -> Facts:
    return Facts.of("Customer", {"key": key, **fields})


def resolver_with(*facts: Facts) -> IdentityResolver:
    resolver = IdentityResolver()
    for fact in facts:
        resolver.upsert(fact)
    return resolver


def test_shared_reference_merges_finance_and_sales() -> None:
    """A finance customer whose reference_key names a sales customer is one party with it."""
    resolver = resolver_with(customer("fin:000042", reference_key="sales:C-00007"), customer("sales:C-00007"))

    links = resolver.links()

    assert links["fin:000042"].party_id == links["sales:C-00007"].party_id == "party:fin:000042"
    assert links["fin:000042"].rule == links["sales:C-00007"].rule == "reference"
    assert links["sales:C-00007"].members == ("fin:000042", "sales:C-00007")


def test_reference_to_an_unknown_key_merges_nothing_until_it_appears() -> None:
    """A reference to a record not seen yet leaves the customer alone, then merges when it arrives."""
    resolver = resolver_with(customer("fin:000042", reference_key="sales:C-00007"))
    assert resolver.links()["fin:000042"].rule == "self"

    resolver.upsert(customer("sales:C-00007"))

    assert resolver.links()["fin:000042"].members == ("fin:000042", "sales:C-00007")


def test_tax_id_with_spaces_and_punctuation_matches() -> None:
    """Tax ids equal once spaces and punctuation are stripped and case is raised are one party."""
    resolver = resolver_with(
        customer("fin:000100", tax_id="fr 12.345-678 901"), customer("sales:C-00001", tax_id="FR12345678901")
    )

    link = resolver.links()["fin:000100"]

    assert normalise_tax_id(" fr 12.345-678/901 ") == "FR12345678901"
    assert link.rule == "tax_id" and link.members == ("fin:000100", "sales:C-00001")


def test_email_matches_across_case_and_blanks() -> None:
    """Emails that differ only in case and surrounding blanks are one party; blank emails match nothing."""
    resolver = resolver_with(
        customer("fin:000200", email=" Contact@Cafe-Roux.EXAMPLE "),
        customer("sales:C-00002", email="contact@cafe-roux.example"),
        customer("fin:000201", email="  "),
        customer("sales:C-00003", email=""),
    )

    links = resolver.links()

    assert normalise_email(" A@B.C ") == "a@b.c" and normalise_email("   ") is None
    assert links["fin:000200"].rule == "email" and links["fin:000200"].members == (
        "fin:000200",
        "sales:C-00002",
    )
    assert links["fin:000201"].members == ("fin:000201",) and links["sales:C-00003"].rule == "self"


def test_customer_in_one_system_only_is_alone() -> None:
    """A customer no rule links to another system is a party of its own, rule self."""
    resolver = resolver_with(
        customer("sales:C-00009", email="x@y.example"), customer("fin:000300", email="z@y.example")
    )

    links = resolver.links()

    assert links["sales:C-00009"].party_id == "party:sales:C-00009"
    assert links["sales:C-00009"].rule == "self" and links["sales:C-00009"].members == ("sales:C-00009",)


def test_same_system_duplicates_are_not_merged() -> None:
    """Two records of one system sharing an email stay apart: rules only cross systems."""
    resolver = resolver_with(
        customer("sales:C-00001", email="a@b.example"), customer("sales:C-00002", email="a@b.example")
    )

    assert resolver.links()["sales:C-00001"].members == ("sales:C-00001",)


def test_manual_link_wins_over_rules() -> None:
    """A manual link joins keys no rule connects, with rule manual."""
    resolver = resolver_with(
        customer("fin:000400", email="a@x.example"), customer("sales:C-00004", email="b@x.example")
    )

    resolver.command("link", ["sales:C-00004", "fin:000400"])

    link = resolver.links()["sales:C-00004"]
    assert link.rule == "manual" and link.party_id == "party:fin:000400"


def test_unlink_splits_and_stays_split() -> None:
    """An unlinked key leaves its party and stays out even when its record changes and rules match."""
    resolver = resolver_with(
        customer("fin:000500", tax_id="FR1", reference_key="sales:C-00005"),
        customer("sales:C-00005", tax_id="FR1"),
    )
    assert resolver.links()["fin:000500"].members == ("fin:000500", "sales:C-00005")

    resolver.command("unlink", ["fin:000500"])
    resolver.upsert(
        customer("fin:000500", tax_id="FR 1", email="new@x.example", reference_key="sales:C-00005")
    )
    resolver.upsert(customer("sales:C-00005", tax_id="FR1", email="new@x.example"))

    links = resolver.links()
    assert links["fin:000500"].members == ("fin:000500",) and links["fin:000500"].rule == "manual"
    assert links["sales:C-00005"].members == ("sales:C-00005",) and links["sales:C-00005"].rule == "self"


def test_link_after_unlink_joins_by_hand_only() -> None:
    """A key unlinked then linked by hand to another joins that one, still not its rule matches."""
    resolver = resolver_with(
        customer("fin:000600", email="a@x.example"),
        customer("sales:C-00006", email="a@x.example"),
        customer("sales:C-00016"),
    )
    resolver.command("unlink", ["fin:000600"])
    resolver.command("link", ["fin:000600", "sales:C-00016"])

    links = resolver.links()

    assert links["fin:000600"].members == ("fin:000600", "sales:C-00016")
    assert links["sales:C-00006"].members == ("sales:C-00006",)


def test_changes_re_emit_on_merge_and_split() -> None:
    """changes() reports every key whose party changed, on a merge and on a split, and nothing else."""
    resolver = resolver_with(
        customer("fin:000700", email="a@x.example"), customer("sales:C-00007"), customer("sales:C-00008")
    )
    first, _ = resolver.changes()
    assert [link.source_key for link in first] == ["fin:000700", "sales:C-00007", "sales:C-00008"]

    resolver.upsert(customer("sales:C-00007", email="A@x.example"))
    merged, gone = resolver.changes()
    assert [link.source_key for link in merged] == ["fin:000700", "sales:C-00007"] and gone == []
    assert all(link.rule == "email" for link in merged)

    resolver.upsert(customer("sales:C-00007", email="other@x.example"))
    split, _ = resolver.changes()
    assert {link.source_key: link.members for link in split} == {
        "fin:000700": ("fin:000700",),
        "sales:C-00007": ("sales:C-00007",),
    }
    assert resolver.changes() == ([], [])


def test_deleted_record_leaves_its_party() -> None:
    """Removing a record splits its party and reports the key as gone."""
    resolver = resolver_with(customer("fin:000800", tax_id="FR8"), customer("sales:C-00018", tax_id="FR8"))
    resolver.changes()

    resolver.remove("sales:C-00018")
    changed, gone = resolver.changes()

    assert gone == ["sales:C-00018"]
    assert [(link.source_key, link.rule, link.members) for link in changed] == [
        ("fin:000800", "self", ("fin:000800",))
    ]


def test_each_key_keeps_the_rule_of_its_first_merge() -> None:
    """Provenance: keys merged by reference keep 'reference' when an email later adds a third key."""
    resolver = resolver_with(
        customer("fin:000900", reference_key="sales:C-00019"),
        customer("sales:C-00019", email="e@x.example"),
        customer("zz:1", email="e@x.example"),
    )

    links = resolver.links()
    (party,) = resolver.parties()

    assert (links["fin:000900"].rule, links["sales:C-00019"].rule, links["zz:1"].rule) == (
        "reference",
        "reference",
        "email",
    )
    assert sorted(rule for *_, rule in party.merges) == ["email", "reference"]


def test_employees_are_self_and_never_merge_with_customers() -> None:
    """Each employee is its own party (rule self); a customer with the same email stays apart."""
    resolver = resolver_with(
        Facts.of("Employee", {"key": "hr:7499", "email": "jean.martin@retail.example"}),
        customer("sales:C-00020", email="jean.martin@retail.example"),
    )

    links = resolver.links()

    assert links["hr:7499"].entity == "Employee" and links["hr:7499"].rule == "self"
    assert links["hr:7499"].members == ("hr:7499",)


class _AwaySerde:
    """A serde whose registry cannot be reached (restarting, say)."""

    def decode(self, data: bytes | None) -> Any:
        from hub.errors import RegistryUnavailableError

        raise RegistryUnavailableError("schema registry at http://registry did not answer (ConnectError)")


class _Message:
    def topic(self) -> str:
        return "unsilo.canonical.customer"

    def offset(self) -> int:
        return 3

    def key(self) -> bytes:
        return b"\x00\x00\x00\x00\x01k"

    def value(self) -> bytes:
        return b"\x00\x00\x00\x00\x02v"


def test_registry_outage_is_retried_not_skipped() -> None:
    """While the registry is away an identity input raises a retriable error instead of being skipped."""
    import pytest

    from hub.errors import RegistryUnavailableError
    from projections.canonical.contract import CanonicalTopics
    from projections.identity.app import IdentityStage

    stage = IdentityStage.__new__(IdentityStage)  # no registry to register its output schemas with
    stage.topics = CanonicalTopics()
    stage.serde = _AwaySerde()  # type: ignore[assignment]
    stage.entity_of = {stage.topics.entity("Customer"): "Customer"}
    stage.resolver = IdentityResolver()

    with pytest.raises(RegistryUnavailableError):
        stage.process([_Message()])  # type: ignore[list-item]
