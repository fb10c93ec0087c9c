"""DMARC mode: strict domains are detected through a stub resolver, and cached."""

from __future__ import annotations

from worker.dmarc import DmarcPolicy, TxtResolver, policy_of


def stub(records: dict[str, list[str]], calls: list[str]) -> TxtResolver:
    def resolve(name: str) -> list[str]:
        calls.append(name)
        return records.get(name, [])

    return resolve


def test_policy_of_reads_p_tag() -> None:
    assert policy_of(["v=spf1 -all", "v=DMARC1; p=reject; rua=mailto:x@y"]) == "reject"
    assert policy_of(["v=DMARC1;p=none"]) == "none"
    assert policy_of([]) == ""


def test_reject_and_quarantine_rewrite_none_does_not() -> None:
    calls: list[str] = []
    policy = DmarcPolicy(
        resolver=stub(
            {
                "_dmarc.strict.org": ["v=DMARC1; p=reject"],
                "_dmarc.q.org": ["v=DMARC1; p=quarantine"],
                "_dmarc.lax.org": ["v=DMARC1; p=none"],
            },
            calls,
        )
    )
    assert policy.needs_rewrite("a@strict.org")
    assert policy.needs_rewrite("a@q.org")
    assert not policy.needs_rewrite("a@lax.org")
    assert policy.needs_rewrite("a@mail.strict.org")  # the organisational domain's record
    assert not policy.needs_rewrite("a@strict.org", mode="never")


def test_answers_are_cached() -> None:
    calls: list[str] = []
    policy = DmarcPolicy(resolver=stub({"_dmarc.strict.org": ["v=DMARC1; p=reject"]}, calls))
    for _ in range(5):
        policy.needs_rewrite("someone@strict.org")
    assert calls == ["_dmarc.strict.org"]


def test_always_domains_need_no_lookup() -> None:
    calls: list[str] = []
    policy = DmarcPolicy(always=("corp.example",), resolver=stub({}, calls))
    assert policy.needs_rewrite("a@corp.example") and policy.needs_rewrite("a@eu.corp.example")
    assert calls == []
