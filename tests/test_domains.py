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
    ("name", "expected"),
    [
        ("4.3.2.1.zen.spamhaus.org.", True),
        ("4.3.2.1.bl.unknown-dnsbl.example.", True),
        ("1.0.0.127.dnsbl.example.net.", True),
        (".".join("0123456789abcdef0123456789abcdef") + ".rbl.example.", True),
        ("300.3.2.1.zen.example.", False),
        ("a.56178.tunnel.example.org.", False),
        ("1.2.3.example.com.", False),
    ],
)
def test_address_lookups(name: str, expected: bool) -> None:
    from watcher.domains import is_address_lookup

    assert is_address_lookup(name) is expected
    assert DomainRules.build("cluster.local").ignores(name) is expected


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
