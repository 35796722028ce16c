"""`dnswatch policy suggest` against a real Prometheus holding a simulated history: the flagged
domain is not allowed, every legitimate name the workload used still is, the YAML validates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, dnswatch
from tests.promserver import PrometheusServer, history_text
from watcher.policy import matches
from watcher.simulate import Cluster, Pod, add_incident

pytestmark = pytest.mark.prometheus
START = 1_780_100_000
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "ciliumnetworkpolicy_v2.json").read_text())

LEGIT = [
    "api.stripe.com",
    "hooks.slack.com",
    "sts.amazonaws.com",
    *(f"img{i}.static.shopcdn.example" for i in range(1, 7)),  # a family: one pattern
    "redis.shop.svc.cluster.local",
    "orders.shop.svc.cluster.local",
    "api.stripe.com.shop.svc.cluster.local",  # search-path expansions
    "api.stripe.com.svc.cluster.local",
    "4.3.2.1.in-addr.arpa",
]
TUNNEL_DOMAIN = "evil-tunnel.example"


@pytest.fixture(scope="module")
def shop() -> tuple[Cluster, str, str]:
    """Four hours of one workload across a rollout; a tunnel from the first pod in hour two."""
    rng = np.random.default_rng(21)
    c = Cluster(minutes=240, start=START)
    w = np.linspace(3, 1, len(LEGIT))
    first = Pod("shop", "api-7d9f8b7c6-x2x4q", 0, 0, 150, LEGIT, w / w.sum(), 20)
    second = Pod("shop", "api-5c8d7b6f4-k9m2p", 1, 145, 240, LEGIT, w / w.sum(), 20)
    other = Pod("shop", "web-6b7c8d9f5-aaaaa", 2, 0, 240, ["only.web.example"], np.ones(1), 5)
    c.pods += [first, second, other]
    add_incident(
        c, "tunnel", rng, source=first.source, domain=f"t.{TUNNEL_DOMAIN}", at=80, duration=12,
        rate=12, encoding="base32",
    )  # fmt: skip
    return c, first.source, second.source


@pytest.fixture(scope="module")
def shop_prom(
    shop: tuple[Cluster, str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prom-shop"), history_text(shop[0]))
    yield server
    server.stop()


def suggest(prom: PrometheusServer, source: str, *extra: str) -> tuple[str, dict[str, Any]]:
    at = str(START + 240 * 60)
    proc = dnswatch(
        "policy", "suggest", "--source", source, "--prometheus-url", prom.url, "--at", at,
        "--lookback", "7d", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, yaml.safe_load(proc.stdout)


def dns_rules(policy: dict[str, Any]) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = policy["spec"]["egress"][0]["toPorts"][0]["rules"]["dns"]
    return rules


def allowed(policy: dict[str, Any], name: str) -> bool:
    for r in dns_rules(policy):
        if "matchName" in r and r["matchName"].rstrip(".") == name:
            return True
        if "matchPattern" in r and matches(r["matchPattern"], name):
            return True
    return False


def test_the_flagged_domain_is_left_out_and_every_legitimate_name_kept(
    shop: tuple[Cluster, str, str], shop_prom: PrometheusServer
) -> None:
    cluster, _, new_pod = shop
    # Asked about the pod running now: the policy covers the workload, the tunnel pod included.
    text, policy = suggest(shop_prom, new_pod)
    tunnel_names = {name for p in cluster.pods for _, name, _, _ in p.extra}
    assert len(tunnel_names) > 100
    assert not [n for n in tunnel_names if allowed(policy, n.rstrip("."))]
    assert TUNNEL_DOMAIN not in json.dumps(policy["spec"])
    for name in LEGIT:
        assert allowed(policy, name), name
    assert not allowed(policy, "only.web.example")  # another workload's name
    assert not allowed(policy, "x.evil-tunnel.example") and not allowed(policy, "example.com")
    assert f"EXCLUDED (flagged by dnswatch): {TUNNEL_DOMAIN}" in text
    assert "api-7d9f8b7c6-x2x4q" in text and "api-5c8d7b6f4-k9m2p" in text
    assert {"matchPattern": "*.static.shopcdn.example"} in dns_rules(policy)  # collapsed
    fqdns = policy["spec"]["egress"][1]["toFQDNs"]
    assert {"matchName": "api.stripe.com"} in fqdns
    assert not [f for f in fqdns if "cluster.local" in json.dumps(f)]
    assert policy["metadata"]["namespace"] == "shop"
    assert policy["spec"]["endpointSelector"] == {"matchLabels": {"app": "api"}}
    assert "CHECK: Hubble metrics carry no pod labels" in text
    assert "default-deny for EGRESS" in text and "never applies it" in text


def test_the_suggested_policy_validates_against_the_cnp_schema(
    shop: tuple[Cluster, str, str], shop_prom: PrometheusServer
) -> None:
    _, policy = suggest(shop_prom, shop[1], "--selector", "app.kubernetes.io/name=shop-api")
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(policy), key=str)
    assert not errors, [e.message for e in errors]
    assert policy["spec"]["endpointSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shop-api"
    }
    # No rule elsewhere allows kube-dns on every port (that would switch off the DNS rules).
    others = policy["spec"]["egress"][2]["toEndpoints"][0]["matchExpressions"]
    assert {"key": "k8s:k8s-app", "operator": "NotIn", "values": ["kube-dns"]} in others


def test_cilium_match_pattern_stays_within_one_label() -> None:
    assert matches("*.cilium.io", "sub.cilium.io")
    assert not matches("*.cilium.io", "a.b.cilium.io")
    assert not matches("*.cilium.io", "cilium.io.evil.example")
    assert matches("*.*.cilium.io", "a.b.cilium.io")
    assert matches("img*.cdn.example", "img12.cdn.example")
    assert not matches("*.cilium.io", "axcilium.io") and not matches("a.b", "axb")


def test_policy_errors_are_one_line(shop_prom: PrometheusServer) -> None:
    bad = dnswatch("policy", "suggest", "--source", "no-slash", "--prometheus-url", shop_prom.url)
    assert bad.returncode == 2 and "NS/POD" in bad.stderr
    none = dnswatch(
        "policy", "suggest", "--source", "ghost/app-1", "--prometheus-url", shop_prom.url,
        "--at", str(START + 240 * 60),
    )  # fmt: skip
    assert none.returncode == 3 and "no DNS names" in none.stderr
    assert none.stderr.count("\n") == 1 and "Traceback" not in none.stderr
