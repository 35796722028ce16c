"""The traps of Hubble DNS metrics, each against a real backend holding the same history: Debian's
Prometheus (backfilled by promtool) and Debian's VictoriaMetrics (loaded through its Prometheus
import API), the second backend big clusters use behind the same HTTP API."""

from __future__ import annotations

import pytest

from tests.conftest import alerts, scan_json
from tests.histories import Composite
from tests.promserver import PrometheusServer

pytestmark = pytest.mark.prometheus


@pytest.fixture(params=["prometheus", "victoriametrics"])
def backend(request: pytest.FixtureRequest) -> PrometheusServer:
    """Each test runs against both backends (session-scoped servers, loaded once)."""
    name = "cluster_prom" if request.param == "prometheus" else "cluster_vm"
    server: PrometheusServer = request.getfixturevalue(name)
    return server


def _scan(prom: PrometheusServer, at: int, *extra: str) -> dict:
    return scan_json("--prometheus-url", prom.url, "--at", str(at), *extra)


@pytest.mark.parametrize(
    "incident",
    [
        "iodine-like tunnel",
        "tunnel from a deleted pod",
        "low-and-slow hex leak",
        "three encoded names repeated 43 times",
        "dnscapy-like numeric tunnel",
        "DNSExfiltrator-like tunnel",
        "volume flood",
    ],
)
def test_every_incident_is_an_alert_naming_source_and_domain(
    backend: PrometheusServer, cluster_history: Composite, incident: str
) -> None:
    source, domain, minute = cluster_history.incidents[incident]
    report = _scan(backend, cluster_history.at(minute))
    hits = [f for f in alerts(report) if f["source"] == source and f["domain"] == domain]
    assert hits, f"{incident} not reported: {report['findings']}"


def test_no_benign_workload_is_ever_alerted(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    """Scan every 30 minutes: only incident sources may carry alerts."""
    incident_sources = {s for s, _, _ in cluster_history.incidents.values()}
    offenders = []
    for minute in range(30, cluster_history.cluster.minutes + 1, 30):
        for f in alerts(_scan(backend, cluster_history.at(minute))):
            if f["source"] not in incident_sources:
                offenders.append((minute, f["kind"], f["source"], f["domain"], f["summary"]))
    assert not offenders


def test_persisting_series_are_not_names_queried_in_the_window(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    src = cluster_history.benign_burst_source
    at_end = cluster_history.at(470)
    # The 100 warm-up series are still there at the end (the pod lives on) ...
    present = backend.query(
        f'count(hubble_dns_queries_total{{source="{src}",query=~".*corp-assets.example."}})', at_end
    )
    assert present
    warmed = int(float(present[0]["value"][1]))  # type: ignore[index]
    assert warmed >= 90
    # ... but were queried 7 h earlier: outside every window, nothing is reported.
    assert not [f for f in _scan(backend, at_end)["findings"] if f["source"] == src]
    # While they were being queried, the same names are seen (so the check above can fail).
    early = [
        f
        for f in _scan(backend, cluster_history.at(40))["findings"]
        if f["source"] == src and f["domain"] == "corp-assets.example"
    ]
    assert early and early[0]["evidence"]["distinct_names"] == warmed
    # 400 lookups of ~100 names: repeating, plain names are not a tunnel.
    assert early[0]["severity"] == "info"


def test_first_increment_is_counted_for_names_queried_once(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    source, domain, minute = cluster_history.incidents["iodine-like tunnel"]
    at = cluster_history.at(minute)
    # Prometheus' increase() sees nothing for series created with value 1 and never
    # incremented. (VictoriaMetrics' increase() counts a new series' first value: the trap does
    # not exist there, and the watcher's activity rule gives the same count on both.)
    naive = backend.query(
        f'sum(increase(hubble_dns_queries_total{{source="{source}",query=~".*{domain}."}}[10m]))',
        at,
    )
    if not getattr(backend, "increase_counts_new_series", False):
        assert not naive or float(naive[0]["value"][1]) == 0  # type: ignore[index]
    expected = len({q for _, q, _, _ in cluster_history.cluster.pod(source).extra})
    f = next(f for f in _scan(backend, at)["findings"] if f["domain"] == domain)
    assert f["evidence"]["distinct_names"] == expected
    assert f["evidence"]["queries"] == pytest.approx(expected)


def test_a_pod_deleted_before_the_scan_is_still_seen(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    source, domain, minute = cluster_history.incidents["tunnel from a deleted pod"]
    at = cluster_history.at(minute)
    gone = backend.query(f'count(hubble_dns_queries_total{{source="{source}"}})', at)
    assert not gone, "the pod's series should have vanished before the scan"
    hits = [f for f in alerts(_scan(backend, at)) if f["source"] == source]
    assert hits and hits[0]["domain"] == domain


def test_agent_restart_is_not_a_volume_spike(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    minute, node = cluster_history.cluster.restarts[0]
    on_node = {p.source for p in cluster_history.cluster.pods if p.node == node}
    # The counters did drop: the sum of the node's counters falls at the restart.
    expr = f'sum(hubble_dns_queries_total{{source=~"{"|".join(on_node)}"}})'
    before = float(backend.query(expr, cluster_history.at(minute - 1))[0]["value"][1])  # type: ignore[index]
    after = float(backend.query(expr, cluster_history.at(minute + 3))[0]["value"][1])  # type: ignore[index]
    assert after < before / 2
    for m in (minute + 2, minute + 5, minute + 15):
        vol = [
            f
            for f in _scan(backend, cluster_history.at(m))["findings"]
            if f["kind"] == "high_volume" and f["source"] in on_node
        ]
        assert not vol, vol


def test_cluster_domain_expansion_is_never_a_channel(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    for minute in (215, 412):
        report = _scan(backend, cluster_history.at(minute))
        assert not [
            f for f in report["findings"] if f["domain"] and f["domain"].endswith("cluster.local")
        ]


def test_a_custom_cluster_domain_is_respected(
    backend: PrometheusServer, cluster_history: Composite, tmp_path
) -> None:
    # Told the cluster domain is something else, the search-path names become visible: the
    # default config is what keeps them out.
    cfg = tmp_path / "c.yaml"
    cfg.write_text("labels:\n  cluster_domain: cluster.example\n")
    report = _scan(backend, cluster_history.at(412), "--config", str(cfg))
    assert [f for f in report["findings"] if f["domain"] == "cluster.local"]


def test_dns_as_data_lookalikes_are_allowlisted_by_default(
    backend: PrometheusServer, cluster_history: Composite, tmp_path
) -> None:
    at = cluster_history.at(300)
    default = _scan(backend, at)
    assert not [f for f in alerts(default) if f["source"].startswith("security/")]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("allowlist:\n  use_defaults: false\n  address_lookups: false\n")
    bare = _scan(backend, at, "--config", str(cfg))
    found = {f["domain"]: f for f in bare["findings"] if f["source"].startswith("security/")}
    # Without the list they are judged like any name: the scanner re-asks its hashes all day
    # here, so the principles quiet them (repetition spread over time), and say so.
    assert {"mcafee.com", "e5.sk"} <= set(found)
    for domain in ("mcafee.com", "e5.sk"):
        assert found[domain]["evidence"]["quieted_by"] == "spread_repetition"
    # Without the list, the address shape is exempt only in zones that answer address lookups:
    # the mail filter's DNSBL (zen.spamhaus.org) and reverse lookups pass; McAfee's GTI names
    # start with octets too, but under avqs.mcafee.com they are judged like any name (dotted
    # octets are also a payload encoding, issue 12).
    cfg.write_text("allowlist:\n  use_defaults: false\n")
    shape_only = _scan(backend, at, "--config", str(cfg))["findings"]
    assert not [f for f in shape_only if f["source"].startswith("security/mail-filter")]
    assert {"mcafee.com", "e5.sk"} <= {f["domain"] for f in shape_only}


def test_ip_named_hosts_under_a_private_use_tld_are_never_a_channel(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    """Names under `.internal` never leave the organisation's resolvers: no attacker can answer
    them, however many and however address-like they are."""
    src = cluster_history.private_hosts_source
    for minute in (15, 120, 412):
        report = _scan(backend, cluster_history.at(minute))
        assert not [f for f in report["findings"] if f["source"] == src and f["domain"]], minute


def test_names_re_queried_all_day_are_hosts_not_a_channel(
    backend: PrometheusServer, cluster_history: Composite
) -> None:
    """A wildcard-DNS preview router (250 IP-named hosts) and hex-named storage endpoints: new
    in any 10 minutes, re-queried all day; never an alert, and the reason is in the evidence."""
    why = []
    for minute in (60, 240, 412):
        for f in _scan(backend, cluster_history.at(minute))["findings"]:
            if f["source"] in cluster_history.rerequeried_sources:
                assert f["severity"] == "info", (minute, f["summary"])
                why.append(f["evidence"].get("why_not_alerted", ""))
    # Both families, quieted by the same principle: repetition spread over the long window.
    assert len(why) >= 2 * 3 and all("asked again long after" in w for w in why), why
