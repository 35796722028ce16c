"""Pure detectors on hand-made windows: thresholds, severities and the cases around them."""

from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from watcher.channel import NameSet, from_window
from watcher.config import Config, day_history_needed, domain_rules, load_config
from watcher.detect import detect_all, judge_all
from watcher.detect.judge import burst_severity, judge_volume
from watcher.domains import DomainRules
from watcher.evidence import Volume
from watcher.findings import Finding
from watcher.window import Window, apply_prefilter, empty_names, reask_bit, workload_of

AT = 1_780_000_000.0
CFG = load_config(environ={})
RULES = domain_rules(CFG)
rng = np.random.default_rng(1)


def encoded(n: int, domain: str = "evil.example") -> list[str]:
    return [
        f"{base64.b32encode(rng.bytes(30)).decode().lower().rstrip('=')}.{domain}."
        for _ in range(n)
    ]


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["source", "name", "queries"]) if rows else empty_names()


def window(
    short: list[tuple[str, str, float]] = (),
    long: list[tuple[str, str, float]] = (),  # type: ignore[assignment]
    volume: pd.DataFrame | None = None,
    reasked_over: float = 0,
) -> Window:
    """A hand-made window; `reasked_over`: seconds before AT over which every name that was
    asked more than once was asked again (one re-ask a step), 0: never re-asked."""
    long_f = frame(list(long) or list(short))
    reasks: dict[tuple[str, str], int] = {}
    if reasked_over:
        mask = 0
        step = CFG.judge.repeat_step
        for t in np.arange(AT, AT - reasked_over, -step):
            mask |= reask_bit(AT, t, step)
        reasks = {(s, n): mask for s, n, q in long_f.itertuples(index=False) if q > 1}
    return Window(
        AT,
        600,
        21600,
        300,
        frame(list(short)),
        long_f,
        apply_prefilter(long_f, 20, 60),
        volume if volume is not None else pd.DataFrame(),
        reasks=reasks,
    )


def judged(w: Window, cfg=CFG) -> list[Finding]:  # type: ignore[no-untyped-def]
    """The judge's findings of every channel in the window (no volume)."""
    return judge_all(from_window(w, cfg, RULES), cfg)


def other_client(domain: str) -> list[tuple[str, str, float]]:
    """Another workload resolving the same domain: the channel is not private."""
    return [("web/portal-7d9f8b7c6-x2x4q", f"www.{domain}.", 3)]


def test_a_fast_encoded_burst_is_critical() -> None:
    w = window([("app/a", n, 1) for n in encoded(60)])
    [f] = judged(w)
    assert (f.kind, f.severity, f.source, f.domain) == (
        "subdomain_burst",
        "critical",
        "app/a",
        "evil.example",
    )
    assert f.evidence["distinct_names"] == 60 and f.evidence["est_bytes"] > 1000
    assert len(f.evidence["sample_names"]) == 5


def test_plain_names_re_queried_over_hours_are_info_not_alert() -> None:
    rows = [("app/a", f"host-{i:03d}.corp.example.", 10) for i in range(60)]
    [f] = judged(window(rows, reasked_over=3 * 3600))
    assert f.severity == "info" and "asked again long after" in f.evidence["why_not_alerted"]


def test_names_repeated_in_one_burst_are_not_hosts() -> None:
    """A retry loop: each name asked ten times, all within one step. Repetition counts only
    when spread over time."""
    rows = [("app/a", f"host-{i:03d}.corp.example.", 10) for i in range(60)]
    [f] = judged(window(rows, reasked_over=CFG.judge.repeat_step))
    assert f.is_alert and "why_not_alerted" not in f.evidence


def test_plain_unique_names_in_number_are_a_tunnel() -> None:
    # dnscapy-style: short numeric labels, each queried once.
    rows = [("app/a", f"a.1.{i}.tunnel.example.org.", 1) for i in range(45)]
    [f] = judged(window(rows))
    assert f.severity == "warning" and f.domain == "example.org"


@pytest.mark.parametrize(("n", "alert"), [(11, False), (12, True)])
def test_slow_encoded_leak_threshold(n: int, alert: bool) -> None:
    names = NameSet(distinct=n, queries=n, encoded=n, est_bytes=20.0 * n)
    assert (burst_severity(names, 150, 12, CFG) in ("warning", "critical")) is alert


def test_cluster_domain_and_allowlist_are_ignored() -> None:
    rows = [("app/a", f"{q[:-1]}.default.svc.cluster.local.", 1) for q in encoded(60)]
    rows += [("app/a", f"{i}.{i}.1.10.in-addr.arpa.", 1) for i in range(100)]
    assert judged(window(rows)) == []


def test_allowlisted_sources_are_ignored() -> None:
    cfg = load_config(environ={"DNSWATCH_ALLOWLIST__SOURCES": "['app/*']"})
    w = window([("app/a", n, 1) for n in encoded(60)])
    assert detect_all(w, cfg) == []


@pytest.mark.parametrize(("n", "severity"), [(3, "warning"), (20, "critical")])
def test_few_encoded_names(n: int, severity: str) -> None:
    w = window([], [("app/a", q, 1) for q in encoded(n)] + other_client("evil.example"))
    [f] = judged(w)
    assert (f.kind, f.severity) == ("suspicious_name", severity)


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_encoded_names_to_a_zone_others_resolve_stay_info(n: int) -> None:
    w = window([], [("app/a", q, 1) for q in encoded(n)] + other_client("evil.example"))
    [f] = judged(w)
    assert (f.kind, f.severity) == ("suspicious_name", "info")


@pytest.mark.parametrize("n", [1, 2])
def test_a_credential_in_one_or_two_names_to_a_zone_only_it_resolves_alerts(n: int) -> None:
    """A 30-byte secret fits in one name; a zone no other workload resolves has the sender's
    own server behind it."""
    [f] = judged(window([], [("app/a", q, 1) for q in encoded(n)]))
    assert (f.kind, f.severity) == ("suspicious_name", "warning")
    assert "secret's size" in f.summary and f.evidence["secret_sized"]


@pytest.mark.parametrize(
    "label",
    [
        rng.bytes(16).hex(),  # a 128-bit hash or a UUID without dashes
        base64.urlsafe_b64encode(rng.bytes(16)).decode().rstrip("="),  # a UUID, base64url
    ],
)
def test_identifiers_to_a_private_zone_are_not_secrets(label: str) -> None:
    """Two 16-byte identifiers (say a zone's first two measurement tokens, before its other
    users show up) stay under secret_min_bytes: info."""
    other = base64.urlsafe_b64encode(rng.bytes(16)).decode().rstrip("=")
    rows = [("app/a", f"{label}.evil.example.", 1), ("app/a", f"{other}.evil.example.", 1)]
    [f] = judged(window([], rows))
    assert f.severity == "info"


def test_a_mail_servers_dkim_key_lookups_are_not_secrets() -> None:
    """`<selector>._domainkey.<sender>`: a 32-character base32 selector (Amazon SES's) is the
    sender's published key id, one per sender domain, each domain resolved by this client
    only. Protocol lookups (underscored labels) are not the asker's data: info."""
    rows = [
        (
            "mail/mx",
            f"{base64.b32encode(rng.bytes(20)).decode().lower()}._domainkey.s{i}.example.",
            1,
        )
        for i in range(5)
    ]
    found = judged(window([], rows))
    assert found and not [f for f in found if f.is_alert], [f.summary for f in found]


def test_one_secret_sized_name_from_a_crawler_is_chance() -> None:
    """The base rate still speaks: a client resolving thousands of domains."""
    crawl = [("app/a", f"www.site{i}.com.", 1) for i in range(CFG.names.busy_client_domains)]
    [f] = [
        f
        for f in judged(window([], [("app/a", encoded(1)[0], 1), *crawl]))
        if f.domain == "evil.example"
    ]
    assert f.severity == "info" and f.evidence["quieted_by"] == "busy_client"


def test_few_names_with_characters_no_host_has_stay_alerts_however_often_repeated() -> None:
    names = [
        f"{base64.b64encode(rng.bytes(40)).decode().lower()}x+/.evil.example." for _ in range(3)
    ]
    [f] = judged(window([], [("app/a", q, 43) for q in names], reasked_over=6 * 3600))
    assert f.severity == "warning"


def test_the_seeds_demo_three_base64_names_asked_43_times_in_two_minutes_alerts() -> None:
    """The example the project started from: lower-cased base64 names, host-name characters
    only, each asked 43 times within two minutes. A retry loop is not a set of hosts."""
    names = [
        f"{base64.b64encode(rng.bytes(36)).decode().lower().replace('+', 'a').replace('/', 'b')}"
        ".cdn-sync.example."
        for _ in range(3)
    ]
    [f] = judged(window([], [("app/a", q, 43) for q in names], reasked_over=120))
    assert (f.kind, f.severity) == ("suspicious_name", "warning")


def test_a_steady_set_of_hex_named_hosts_re_queried_all_day_is_not_an_alert() -> None:
    # An uploader resolving six storage endpoints named by 32-hex account IDs, all day.
    hosts = [f"{rng.bytes(16).hex()}.objects.storage-cloud.example." for _ in range(6)]
    w = window([], [("media/up", h, 700) for h in hosts], reasked_over=6 * 3600)
    [f] = judged(w)
    assert f.severity == "info" and "asked again long after" in f.evidence["why_not_alerted"]


def test_hex_endpoints_resolved_by_two_replicas_are_shared_hosts_one_finding() -> None:
    """An uploader's two replicas resolve the same few dozen hex-named storage endpoints: a
    payload is unique to its sender, so names asked by two clients are hosts."""
    hosts = [f"{rng.bytes(16).hex()}.blob.store-cloud.example." for _ in range(36)]
    rows = [(f"media/uploader-6c9f7d5b8-{p}", h, 2.0) for p in ("aaaaa", "bbbbb") for h in hosts]
    found = judged(window([], rows))
    assert [(f.source, f.severity) for f in found] == [("media/uploader", "info")]
    assert "also asked by other clients" in found[0].evidence["why_not_alerted"]


def test_names_new_in_10_minutes_but_re_queried_all_day_are_not_a_burst() -> None:
    # A preview router resolving 250 wildcard-DNS names (an IP in each), each once per 10 min.
    names = [
        f"10-{i // 200}-{i % 200}-{i % 7 + 1}.preview.wildcard-dns.example." for i in range(250)
    ]
    w = window(
        [("edge/router", n, 1) for n in names],
        [("edge/router", n, 36) for n in names],
        reasked_over=6 * 3600,
    )
    found = judged(w)
    assert found and all(f.severity == "info" for f in found)
    assert any("asked again long after" in f.evidence.get("why_not_alerted", "") for f in found)


def test_one_channel_one_finding() -> None:
    w = window([("app/a", n, 1) for n in encoded(60)])
    found = detect_all(w, CFG)
    assert [(f.kind, f.domain) for f in found] == [("subdomain_burst", "evil.example")]


def volume(series: dict[str, list[float]], step: float = 300) -> pd.DataFrame:
    n = max(len(v) for v in series.values())
    index = AT - np.arange(n)[::-1] * step
    return pd.DataFrame({k: [np.nan] * (n - len(v)) + v for k, v in series.items()}, index=index)


def high_volume(w: Window, cfg: Config, rules: DomainRules) -> list[Finding]:
    """The volume judge on a window's volume table."""
    return judge_volume(Volume(w.at, w.step_seconds, w.volume), cfg, rules)


def steady(hours: float, qps: float, jitter: float = 0.1) -> list[float]:
    n = int(hours * 12)
    return list(np.maximum(0, rng.normal(qps, qps * jitter, n)) * 300)


def test_a_flood_against_its_own_history_is_critical() -> None:
    w = window(volume=volume({"app/a": steady(10, 0.5)[:-4] + [30 * 300] * 4}))
    [f] = high_volume(w, CFG, RULES)
    assert f.severity == "critical" and f.domain is None and f.evidence["baseline_kind"] == "own"
    assert f.evidence["rate_qps"] == pytest.approx(30, rel=0.01)
    # The queries of the recent span (30 min: six 5-minute steps), not a sum of rates.
    assert f.evidence["queries"] == pytest.approx(4 * 30 * 300 + 2 * 0.5 * 300, rel=0.1)


def test_a_busy_steady_source_is_quiet() -> None:
    w = window(volume=volume({"app/a": steady(10, 40)}))
    assert high_volume(w, CFG, RULES) == []


def test_a_flood_that_began_before_the_recent_span_is_still_seen() -> None:
    w = window(volume=volume({"app/a": steady(10, 0.5)[:-18] + [30 * 300] * 18}))
    assert [f.severity for f in high_volume(w, CFG, RULES)] == ["critical"]


def test_periodic_bursts_in_history_are_not_an_alert() -> None:
    hourly = [(20 if i % 12 == 0 else 1) * 300 for i in range(120)]
    w = window(volume=volume({"app/a": hourly}))
    assert high_volume(w, CFG, RULES) == []


def test_a_new_source_is_judged_by_the_absolute_floor() -> None:
    quiet = window(volume=volume({"job/new-x2x4q": [10 * 300] * 4}))
    assert high_volume(quiet, CFG, RULES) == []
    loud = window(volume=volume({"job/new-x2x4q": [np.nan] * 4 + [2 * 300] * 4 + [80 * 300] * 4}))
    [f] = high_volume(loud, CFG, RULES)
    assert f.evidence["baseline_kind"] == "none" and f.is_alert


def test_a_young_source_steady_since_it_started_is_not_a_flood() -> None:
    # Born 40 minutes ago at 160 q/s and steady since: busy, but no change to call a flood.
    young = [np.nan] * 20 + list(np.random.default_rng(3).normal(160, 8, 8) * 300)
    [f] = high_volume(window(volume=volume({"ingest/new-7d9f8b7c6-x2x4q": young})), CFG, RULES)
    assert f.severity == "info" and "steady since it started" in f.evidence["why_not_alerted"]
    # The same pod jumping from 20 to 160 q/s in its first hour is a flood.
    jump = [np.nan] * 20 + [20 * 300] * 4 + [160 * 300] * 4
    [g] = high_volume(window(volume=volume({"ingest/new-7d9f8b7c6-x2x4q": jump})), CFG, RULES)
    assert g.severity == "critical"


def test_a_rolled_out_pod_inherits_its_workloads_baseline() -> None:
    old = steady(10, 0.5)[:-12] + [np.nan] * 12
    new = [0.5 * 300] * 8 + [10 * 300] * 4
    w = window(volume=volume({"app/web-7d9f8b7c6-aaaaa": old, "app/web-5c8d7f6b9-bbbbb": new}))
    [f] = high_volume(w, CFG, RULES)
    assert f.source == "app/web-5c8d7f6b9-bbbbb" and f.evidence["baseline_kind"] == "workload"


def test_the_baselines_spread_is_scipys_median_absolute_deviation() -> None:
    from scipy.stats import median_abs_deviation

    from watcher.detect.volume import _baseline

    rng = np.random.default_rng(7)
    for rates in (rng.gamma(2.0, 3.0, 288), np.array([1.0, 1.0, 9.0]), np.zeros(5)):
        assert _baseline(rates, "own", 300, CFG).mad == pytest.approx(median_abs_deviation(rates))


def test_a_scan_does_not_import_scipy_stats() -> None:
    """Importing scipy.stats costs each scan ~60 MB of RSS (docs/performance.md)."""
    code = (
        "import sys, watcher.cli, watcher.detect, watcher.sources.prometheus, "
        "watcher.sources.metrics_file; print('scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_empty_windows_give_nothing() -> None:
    assert detect_all(window(), CFG) == []


def test_a_re_ask_stamped_a_hair_after_the_scan_time_is_the_latest_step() -> None:
    """Prometheus rounds a range query's end to milliseconds: its last point can lie just past
    a fractional scan time (serve --at replays one): no negative shift, bit 0."""
    assert reask_bit(1000.9996, 1001.0, 120) == 1
    assert reask_bit(1000.0, 1000.0 - 121, 120) == 2


@pytest.mark.parametrize(
    ("source", "workload"),
    [
        ("app/web-7d9f8b7c6-x2x4q", "app/web"),
        ("kube-system/cilium-x2x4q", "kube-system/cilium"),
        ("db/postgres-0", "db/postgres-0"),
        ("batch/report-28374650-x2x4q", "batch/report"),
    ],
)
def test_workload_of(source: str, workload: str) -> None:
    assert workload_of(source) == workload


def _pod(i: int) -> str:
    return f"jobs/exporter-6c9f7d5b8-{i:05d}"


def test_a_leak_spread_over_replicas_is_one_finding_for_the_workload() -> None:
    """Twelve pods, each 15 one-off plain names in 6 h (info alone): 180 for the workload."""
    rows = [
        (_pod(i), f"{rng.bytes(6).hex()}-part.d.spread.example.", 1.0)
        for i in range(12)
        for _ in range(15)
    ]
    found = detect_all(window(long=rows), CFG)
    assert [(f.kind, f.severity, f.source) for f in found] == [
        ("subdomain_burst", "warning", "jobs/exporter")
    ]
    assert found[0].evidence["pods"] == 12 and found[0].evidence["distinct_names"] == 180


def test_replicas_re_querying_one_set_of_hosts_are_not_summed_into_a_burst() -> None:
    hosts = [f"node-{k}.db.vendor.example." for k in range(30)]
    rows = [(_pod(i), h, 20.0) for i in range(12) for h in hosts]
    assert not [f for f in detect_all(window(long=rows, reasked_over=6 * 3600), CFG) if f.is_alert]


def test_a_channel_is_the_workload_one_finding_however_many_pods_leak() -> None:
    rows = [(_pod(0), n, 1.0) for n in encoded(60)] + [(_pod(1), n, 1.0) for n in encoded(2)]
    found = [f for f in detect_all(window(rows), CFG) if f.is_alert]
    assert [(f.source, f.evidence["pods"]) for f in found] == [("jobs/exporter", 2)]
    assert found[0].evidence["sample_pods"][0] == _pod(0)  # the most active pod first


def test_encoded_names_one_per_replica_are_a_workload_suspicious_name() -> None:
    rows = [(_pod(i), n, 1.0) for i, n in enumerate(encoded(5, "spread.example"))]
    found = judged(window(long=rows))
    alerts = [f for f in found if f.is_alert]
    assert [(f.source, f.severity) for f in alerts] == [("jobs/exporter", "warning")]
    assert alerts[0].evidence["pods"] == 5


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"source": "app/web-1", "instance": "10.0.0.1:9965"}, "app/web-1"),
        ({"source": "", "instance": "10.0.0.1:9965"}, "node/10.0.0.1:9965"),
        ({"source": "", "node": "worker-3", "instance": "10.0.0.1:9965"}, "node/worker-3"),
        ({"source": ""}, ""),
    ],
)
def test_a_client_with_no_pod_identity_is_named_by_its_node(
    labels: dict[str, str], expected: str
) -> None:
    from watcher.window import source_name

    assert source_name(labels, ["source"]) == expected


def _day(long: list[tuple[str, str, float]], day: list[tuple[str, str, float]]) -> Window:
    base = window(long=long)
    return dataclasses.replace(base, day_seconds=86400, day=frame(day))


def _words(n: int, domain: str) -> list[str]:
    return [f"{('alpha', 'delta', 'omega')[i % 3]}-{i}.{domain}." for i in range(n)]


def test_a_day_of_one_off_plain_names_past_300_is_a_warning_where_six_hours_were_info() -> None:
    names = _words(360, "slow.example")
    shared = other_client("slow.example")
    w = _day([("app/a", n, 1) for n in names[:90]] + shared, [("app/a", n, 1) for n in names])
    [f] = [f for f in judged(w) if f.source == "app/a"]
    assert (f.severity, f.evidence["window"], f.evidence["distinct_names"]) == (
        "warning",
        "1d",
        360,
    )


def test_the_day_window_pages_or_says_nothing() -> None:
    names = _words(200, "slow.example")  # under 300: the long window's info is all there is
    shared = other_client("slow.example")
    w = _day([("app/a", n, 1) for n in names[:40]] + shared, [("app/a", n, 1) for n in names])
    [f] = [f for f in judged(w) if f.source == "app/a"]
    assert (f.severity, f.evidence["window"]) == ("info", "6h")


def test_a_slow_word_leak_to_a_zone_only_it_resolves_is_a_warning_within_six_hours() -> None:
    """~22 one-off names an hour for 4 h under a domain no other client resolves: 88 names,
    under the long window's 150, over the private channel's 60."""
    names = _words(88, "quiet-zone.example")
    [f] = judged(window([], [("app/a", n, 1) for n in names]))
    assert (f.kind, f.severity, f.evidence["threshold_distinct"]) == (
        "subdomain_burst",
        "warning",
        60,
    )
    assert "only this client resolves" in f.evidence["private_channel"]
    # The same names under a domain other workloads resolve too keep the full threshold.
    w = window([], [("app/a", n.replace("quiet-zone", "busy-zone"), 1) for n in names])
    w = dataclasses.replace(w, long=pd.concat([w.long, frame(other_client("busy-zone.example"))]))
    [g] = [g for g in judged(w) if g.source == "app/a"]
    assert g.severity == "info"


def test_hosts_re_queried_over_the_day_are_not_a_day_burst() -> None:
    hosts = _words(400, "fleet.example")
    w = _day([("ops/inv", n, 3) for n in hosts[:120]], [("ops/inv", n, 12) for n in hosts])
    w = dataclasses.replace(
        w, reasks=window(long=w.long.values.tolist(), reasked_over=6 * 3600).reasks
    )
    assert [f.severity for f in judged(w)] == ["info"]


def test_encoded_names_over_the_day_need_the_long_windows_rate() -> None:
    names = encoded(40, "drip.example")  # under 48 = 12 per 6 h over 24 h
    plain = CFG.model_copy(
        update={"names": CFG.names.model_copy(update={"min_distinct": 99, "secret_min_bytes": 1e9})}
    )
    w = _day([("app/a", n, 1) for n in names[:8]], [("app/a", n, 1) for n in names])
    assert [f.is_alert for f in judged(w, plain)] in ([], [False])
    more = encoded(50, "drip.example")
    w = _day([("app/a", n, 1) for n in more[:8]], [("app/a", n, 1) for n in more])
    [f] = judged(w, plain)
    assert f.is_alert and f.evidence["window"] == "1d"


def test_the_day_window_is_read_only_past_twelve_hours_of_history() -> None:
    # Over 12 h its 300 names are the long window's rate (150 per 6 h): nothing more to see.
    assert day_history_needed(CFG) == 12 * 3600
