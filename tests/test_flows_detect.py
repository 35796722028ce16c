"""What the flow pipeline alerts on and what it leaves quiet, written as sentences.

Every case feeds Hubble-shaped lines (tests/flowlines.py, built from real lines) through the
same pipeline as `dnswatch flows`, with the default configuration."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from tests.flowlines import exchange, request
from watcher import simulate, simulate_flows
from watcher.config import Config
from watcher.findings import Finding
from watcher.flows.scan import FlowScan
from watcher.simulate import WORDS

T0 = 1_780_000_000.0
NETRACK = Path(__file__).resolve().parent / "fixtures" / "netrack"


def scan(lines: Iterable[str], cfg: Config | None = None) -> list[Finding]:
    s = FlowScan(cfg or Config())
    s.feed(line.encode() for line in lines)
    s.result()
    return list(s.best.values())


def alerts(found: list[Finding]) -> set[tuple[str, str | None]]:
    return {(f.source, f.domain) for f in found if f.is_alert}


def words_name(i: int) -> str:
    ws = [WORDS[(i * 37 + k * 101) % len(WORDS)] for k in range(9)]
    return f"{'-'.join(ws[:5])}.{'-'.join(ws[5:])}"


def test_a_simulated_cluster_alerts_on_its_tunnel_and_flood_and_not_on_look_alikes() -> None:
    c = simulate.build(
        1.5,
        [
            "tunnel,at=40m,duration=10m,rate=20,encoding=base32,domain=t.exfil.example",
            "flood,source=shop/checkout,at=70m,duration=15m,factor=25",
        ],
        seed=7,
    )
    simulate_flows.add_hard_negatives(c)
    found = scan(simulate_flows.lines(c))
    got = {(f.kind, f.domain) for f in found if f.is_alert}
    kinds = {k for k, d in got if d == "exfil.example"}
    assert {d for _, d in got} == {"exfil.example", None} and len(got) == 2, got
    assert kinds <= {"subdomain_burst", "suspicious_name"}  # the two views of one channel
    quiet = {f.domain: f for f in found if not f.is_alert}
    # IP-named cloud hosts live under a private-use TLD (`.internal`): never a channel at all.
    assert not any(f.domain == "compute.internal" for f in found)
    # A wildcard DNS service and hex storage endpoints: hosts (re-asked all along, answered
    # with addresses), quiet with the reason.
    for domain in ("nip.io", "storage-cloud.example"):
        assert domain in quiet, sorted(quiet)
        assert "hosts" in quiet[domain].evidence["why_not_alerted"]


def test_a_low_entropy_word_encoded_slow_leak_is_a_channel() -> None:
    lines: list[str] = []
    for i in range(80):  # one name every ~2 minutes for ~3 hours, answered NXDOMAIN
        lines += exchange(
            T0 + i * 137.0,
            "billing/sync-5f7d8c9b6-abcde",
            f"{words_name(i)}.up.wordy.example",
            "A",
            rcode=3,
        )
    # The same pod's ordinary traffic, re-queried names that resolve.
    for i in range(400):
        lines += exchange(
            T0 + i * 27.0, "billing/sync-5f7d8c9b6-abcde", "api.stripe.com", ips=["3.18.12.63"]
        )
    found = scan(sorted(lines, key=_time))
    hit = [f for f in found if f.domain == "wordy.example"]
    assert len(hit) == 1 and hit[0].is_alert, hit
    ev = hit[0].evidence
    # Both rules see it: a private channel's burst (as from metrics) and flows' behaviour.
    assert {r.split()[0] for r in ev["reasons"]} == {"subdomain_burst", "channel_behaviour"}
    assert ev["behaviour_score"] >= 0.45
    assert ev["mean_score"] < 0.7  # no shape score would have caught it
    assert ev["nxdomain_share"] == 1.0 and ev["unique_ratio"] == 1.0
    assert alerts(found) == {("billing/sync-5f7d8c9b6-abcde", "wordy.example")}


def _time(line: str) -> str:
    i = line.rindex('"time":"')
    return line[i : i + 40]


def test_a_leak_spread_over_24_replicas_is_one_workload_alert() -> None:
    lines: list[str] = []
    for pod in range(24):
        src = f"jobs/exporter-6c9f7d5b8-{pod:05d}"
        for k in range(12):  # twelve names per pod over 5 hours: nothing per pod
            t = T0 + pod * 11 + k * 1500.0
            q = f"{(pod * 1000 + k) * 2654435761 % (1 << 64):016x}{k:02x}{pod:02x}.d.spread.example"
            lines += exchange(t, src, q, "TXT", rrtypes=["TXT"], app="exporter")
    found = scan(sorted(lines, key=_time))
    hit = [f for f in found if f.is_alert]
    assert len(hit) == 1 and hit[0].domain == "spread.example", hit
    assert hit[0].evidence["workload"] == "jobs/exporter" and hit[0].evidence["pods"] == 24
    assert hit[0].evidence["distinct_names"] >= 200


def test_a_domain_many_workloads_query_is_not_one_workloads_private_channel() -> None:
    lines: list[str] = []
    for w in range(8):
        for i in range(40):
            q = f"{words_name(i + w * 50)}.trace.shared-telemetry.example"
            lines += exchange(
                T0 + w + i * 60.0, f"team{w}/svc-7d9f8b7c6-x2x4q", q, rcode=3, app=f"svc{w}"
            )
    found = scan(sorted(lines, key=_time))
    assert not alerts(found)
    reasons = [f.evidence.get("why_not_alerted", "") for f in found]
    assert reasons and all("private" in r for r in reasons), reasons


def test_a_host_network_client_is_reported_by_its_node() -> None:
    import json

    lines = []
    for i in range(60):
        raw = json.loads(
            request(
                T0 + i * 5,
                "app/x-1",
                f"{i:02x}{'9f3a7c1e' * 5}.q.evil.example",
                "TXT",
                node="worker-3",
            )
        )
        raw["flow"]["source"] = {"identity": 1, "labels": ["reserved:host"]}
        lines.append(json.dumps(raw))
    found = scan(lines)
    assert [f.source.startswith("node/worker-3/") for f in found if f.is_alert] == [True]


def test_memory_is_bounded_by_max_pairs_and_an_evicted_tunnel_is_still_reported() -> None:
    cfg = Config.model_validate({"flows": {"max_pairs": 100}})
    lines: list[str] = []
    for i in range(150):  # the tunnel first, then 1,000 busy benign pairs push it out
        lines += exchange(
            T0 + i * 2,
            "shop/api-7d9f8b7c6-x2x4q",
            f"{i * 7919:08x}{'ab12cd34' * 5}.t.evil.example",
            "TXT",
            rrtypes=["TXT"],
        )
    for j in range(1000):
        lines += exchange(
            T0 + 400 + j,
            f"web/site{j}-7d9f8b7c6-x2x4q",
            f"www.site{j}.example",
            ips=["1.2.3.4"],
            app=f"site{j}",
        )
    s = FlowScan(cfg)
    peak = 0
    for line in lines:
        s.feed([line.encode()])
        peak = max(peak, len(s.window.pairs))
    s.result()
    assert peak <= 100
    assert alerts(list(s.best.values())) == {("shop/api-7d9f8b7c6-x2x4q", "evil.example")}


def _netrack(tool: str) -> list[str]:
    with (NETRACK / f"{tool}.csv").open() as fh:
        return [r["qname"].lower() for r in csv.DictReader(fh)]


def test_real_tool_names_are_alerted_and_real_benign_domains_are_not() -> None:
    lines: list[str] = []
    for k, tool in enumerate(("iodine", "dns2tcp", "dnscapy")):
        for i, q in enumerate(_netrack(tool)[:200]):
            lines += exchange(
                T0 + i * 3 + k, f"apps/{tool}-7d9f8b7c6-x2x4q", q, "TXT", rrtypes=["TXT"], app=tool
            )
    for i, q in enumerate(_netrack("plain")):
        lines += exchange(
            T0 + i * 0.3,
            "web/crawler-7d9f8b7c6-x2x4q",
            q,
            ips=[f"93.184.{i % 200}.{i % 250 + 1}"],
            app="crawler",
        )
    found = scan(sorted(lines, key=_time))
    got = alerts(found)
    for tool in ("iodine", "dns2tcp", "dnscapy"):
        assert any(src.startswith(f"apps/{tool}-") for src, _ in got), (tool, got)
    assert not any(src.startswith("web/crawler") for src, _ in got)


def test_a_leak_through_getaddrinfo_a_and_aaaa_per_name_is_still_one_off_names() -> None:
    lines: list[str] = []
    for i in range(60):  # curl http://<chunk>.evil/ : A and AAAA for every chunk, NXDOMAIN
        q = f"{words_name(i)}.c.curl-leak.example"
        t = T0 + i * 97.0
        lines += exchange(t, "web/app-5f7d8c9b6-abcde", q, "A", rcode=3)
        lines += exchange(t + 0.004, "web/app-5f7d8c9b6-abcde", q, "AAAA", rcode=3)
    found = scan(sorted(lines, key=_time))
    hit = [f for f in found if f.domain == "curl-leak.example"]
    assert hit and hit[0].is_alert, hit
    assert hit[0].evidence["unique_ratio"] == 1.0


def _slow_day(hours: float, leak: bool = True) -> list[str]:
    """Six short numeric names an hour to a zone no one else resolves, answered NXDOMAIN (too
    short for flows' behaviour rule, too few for the long window), beside a pod that resolves
    140 hosts of a shop's CDN, each again and again through the day, with addresses."""
    import numpy as np

    rng = np.random.default_rng(4)
    enc = simulate.ENCODERS["numeric"]
    lines: list[str] = []
    n = int(hours * 6)
    for i in range(n if leak else 0):
        at = T0 + i * 600.0 + float(rng.uniform(0, 300))
        lines += exchange(at, "ops/agent-5f7d8c9b6-abcde", f"{enc(rng, i)}.capy.example", rcode=3)
    for i in range(n * 4):
        host = f"img-{(i * 53) % 140:03d}.shop-cdn.example"
        ip = f"198.51.100.{(i * 53) % 140 + 1}"
        lines += exchange(T0 + i * 150.0 + 7, "shop/thumbs-6c9f7d5b8-fghij", host, ips=[ip])
    return sorted(lines, key=_time)


def test_a_slow_leak_the_long_window_cannot_see_alerts_over_the_day() -> None:
    """The day window from flow lines, as from metrics: 144 one-off names in 24 h to a zone
    only this client resolves is a private channel's day burst (120); over 11 h of lines (less
    than the 12 h the day window needs to add anything) it is only info."""
    found = scan(_slow_day(24))
    [f] = [f for f in found if f.domain == "capy.example"]
    assert f.is_alert and f.kind == "subdomain_burst", f
    assert f.evidence["window"] == "1d" and f.evidence["distinct_names"] >= 140
    assert "only this client" in f.evidence["private_channel"]
    assert alerts(found) == {("ops/agent-5f7d8c9b6-abcde", "capy.example")}
    short = [f for f in scan(_slow_day(11)) if f.domain == "capy.example"]
    assert short and not any(f.is_alert for f in short)
    # The CDN's hosts, as many over the day: asked again all day, answered with addresses.
    assert not alerts(scan(_slow_day(24, leak=False)))


def test_a_ten_minute_burst_is_seen_whole_whatever_its_alignment_with_the_buckets() -> None:
    """45 one-off short names in 10 minutes, starting half-way into a 5-minute bucket: no two
    buckets hold 40 of them, but the short window (10 min, as a metrics scan's) does."""
    import numpy as np

    rng = np.random.default_rng(6)
    enc = simulate.ENCODERS["numeric"]
    start = T0 - T0 % 300 + 150
    lines: list[str] = []
    for i in range(45):
        name = f"{enc(rng, i)}.burst.example"
        lines += exchange(start + i * 599 / 44, "ops/agent-5f7d8c9b6-abcde", name, rcode=3)
    found = scan(sorted(lines, key=_time))
    [f] = [f for f in found if f.domain == "burst.example"]
    assert f.is_alert and f.evidence["window"] == "10m", f
    assert f.evidence["distinct_names"] == 45
