from __future__ import annotations

import pytest

from watcher.domains import DomainRules, registered_domain, subdomain_part


@pytest.mark.parametrize(
    ("name", "domain"),
    [
        ("a.b.evil.example.", "evil.example"),
        ("x.tunnel.example.org.", "example.org"),
        ("a.b.example.co.uk.", "example.co.uk"),
        ("d111.cloudfront.net.", "d111.cloudfront.net"),
        ("localhost.", "localhost"),
        ("", ""),
        ("..hidemyself.org.", "hidemyself.org"),
        ("A.B.EVIL.Example", "evil.example"),
    ],
)
def test_registered_domain(name: str, domain: str) -> None:
    assert registered_domain(name) == domain


def test_subdomain_part() -> None:
    assert subdomain_part("abc.def.evil.example.", "evil.example") == "abc.def"
    assert subdomain_part("evil.example.", "evil.example") == ""


def test_rules() -> None:
    rules = DomainRules.build("cluster.local", ["corp.example"], source_globs=["monitoring/*"])
    assert rules.is_cluster("api.default.svc.cluster.local.")
    assert not rules.is_cluster("cluster.local.evil.example.")
    assert rules.is_allowlisted("4.3.2.1.zen.spamhaus.org.")
    assert rules.is_allowlisted("0.0.0.0.1.0.0.4e.abc.avqs.mcafee.com.")
    assert rules.is_allowlisted("x.corp.example")
    assert not rules.is_allowlisted("notspamhaus.org")
    assert rules.ignores_source("monitoring/prometheus-0") and not rules.ignores_source("shop/a")
    bare = DomainRules.build("cluster.local", use_defaults=False)
    assert not bare.is_allowlisted("1.2.3.4.in-addr.arpa")


@pytest.mark.parametrize(
    ("name", "shaped", "ignored"),
    [
        ("4.3.2.1.zen.spamhaus.org.", True, True),
        ("4.3.2.1.bl.unknown-dnsbl.example.", True, True),
        ("1.0.0.127.dnsbl.example.net.", True, True),
        ("9.8.7.6.rbl.mail-filter.example.", True, True),
        (".".join("0123456789abcdef0123456789abcdef") + ".rbl.example.", True, True),
        # The same shape under a zone that answers no address lookups: a payload in octets.
        ("12.45.200.7.octets.attacker.example.", True, False),
        ("12.45.200.7.cdn-sync.example.", True, False),
        ("300.3.2.1.zen.example.", False, False),
        ("a.56178.tunnel.example.org.", False, False),
        ("1.2.3.example.com.", False, False),
    ],
)
def test_address_lookups_are_exempt_only_in_zones_that_answer_them(
    name: str, shaped: bool, ignored: bool
) -> None:
    from watcher.domains import is_address_lookup

    assert is_address_lookup(name) is shaped
    assert DomainRules.build("cluster.local", use_defaults=False).ignores(name) is ignored


def test_names_under_private_use_tlds_never_reach_an_attacker_and_are_ignored() -> None:
    rules = DomainRules.build("cluster.local")
    for name in (
        "ip-10-12-3-4.eu-west-1.compute.internal.",  # cloud hosts named after private IPs
        "api.github.com.google.internal.",  # GKE search-path expansion
        "printer.lan",
    ):
        assert rules.ignores(name), name
    for name in ("x9f3a.evil.example.", "data.internal.evil.com.", "a.b.localhost.example."):
        assert not rules.ignores(name), name
    assert not DomainRules.build("cluster.local", private_tlds=[]).ignores("x.corp.internal")
