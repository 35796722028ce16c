"""An attacker's own traffic must not quiet its payload (issue 30): the judge's principles hold
per name. A beacon's heartbeat beside its tasking burst, chunks beside a 30 s heartbeat, and
one-off names whose own server answers each with an address all alert within ten minutes of
the payload's start, and an idle C2 polling 16 names (never answered) once it has polled for
half an hour, from a real Prometheus, the same history as a file, and its flow lines; the
benign counterparts (a health check of a rare domain every 30 s, SaaS tenants' hosts
re-asked all day, a job retrying one retired name all day, and every earlier family) stay
quiet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import alerts, dnswatch
from tests.histories import Composite, covert
from tests.scans import Scan, composite_fixtures
from watcher import simulate_flows
from watcher.window import workload_of

pytestmark = pytest.mark.prometheus

history, prom, history_file, scan = composite_fixtures(covert, "covert")


def channel(f: dict[str, Any]) -> tuple[str, str]:
    return (f["evidence"].get("workload") or workload_of(f["source"]), f["domain"] or "")


def flows_until(history: Composite, minute: int, tmp: Path) -> dict[str, Any]:
    """`dnswatch flows` over the history's flow lines up to `minute`, as a user would."""
    path = tmp / f"events-{minute}.log"
    simulate_flows.write(history.cluster, path, minutes=minute)
    proc = dnswatch("flows", str(path), "--format", "json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize(
    "case",
    [
        "a beacon's heartbeat beside its tasking burst",
        "base32 chunks beside a 30 s heartbeat",
        "one-off names answered with addresses by their own server",
        "an idle C2 polling 16 names, never answered",
        "a session rotated over ten rare domains",
        "a secret in one name to a zone only it resolves",
    ],
)
def test_a_payload_beside_cover_traffic_alerts_within_ten_minutes(
    scan: Scan, history: Composite, case: str
) -> None:
    source, domain, minute = history.incidents[case]
    hits = [f for f in alerts(scan(minute)) if channel(f) == (workload_of(source), domain)]
    assert hits, case
    ev = hits[0]["evidence"]
    assert "quieted_by" not in ev, ev
    if hits[0]["kind"] == "beacon":  # its names are hosts: their repetition is the case
        assert ev["beacon_names"] == 16 and ev["regularity"] >= 0.5, ev
    elif "secret" in case:  # one name: its size, and a zone no one else resolves
        assert hits[0]["kind"] == "suspicious_name" and ev["secret_sized"], ev
    elif not domain:  # one finding for the session, naming its domains
        assert ev["domains"] >= 3 and all(
            d.endswith("-cdn-update.example") for d in ev["session_domains"]
        )
    else:
        assert ev["one_off_names"] >= 12, ev


def test_the_heartbeat_is_a_host_and_the_chunks_beside_it_are_not(
    scan: Scan, history: Composite
) -> None:
    _, domain, minute = history.incidents["a beacon's heartbeat beside its tasking burst"]
    # After the download too: the repeats of one name never hide the 300 chunks.
    [f] = [f for f in alerts(scan(minute + 120)) if f["domain"] == domain]
    ev = f["evidence"]
    assert f["severity"] == "critical" and ev["hosts"]["spread_repetition"] == 1
    assert ev["one_off_names"] >= 250 and ev["distinct_names"] == ev["one_off_names"] + 1
    assert "one-off names (beside 1 host names)" in f["summary"]


def test_benign_counterparts_stay_quiet_all_day(scan: Scan, history: Composite) -> None:
    for minute in range(60, history.cluster.minutes + 1, 60):
        loud = [f for f in alerts(scan(minute)) if channel(f)[0] in history.benign]
        assert not loud, (minute, loud)


def test_one_retired_name_retried_all_day_is_not_paged(
    history_file: Path, history: Composite
) -> None:
    """A beacon-like pace, never answered usefully, but one name: a broken lookup (info).
    (A metrics scan from Prometheus fetches no zone with so few names: no finding at all.)"""
    from tests.conftest import scan_json

    report = scan_json("--metrics-file", str(history_file), "--at", str(history.at(300)))
    [f] = [f for f in report["findings"] if f["domain"] == "retired-vendor.example"]
    assert (f["kind"], f["severity"]) == ("beacon", "info")
    assert "broken lookup" in f["evidence"]["why_not_alerted"]


@pytest.mark.parametrize(
    "case",
    [
        "base32 chunks beside a 30 s heartbeat",
        "a beacon's heartbeat beside its tasking burst",
        "one-off names answered with addresses by their own server",
        "an idle C2 polling 16 names, never answered",
        "a session rotated over ten rare domains",
        "a secret in one name to a zone only it resolves",
    ],
)
def test_the_flow_lines_alert_within_ten_minutes_and_on_nothing_benign(
    history: Composite, tmp_path: Path, case: str
) -> None:
    """The lines up to ten minutes after the payload's start, read as a user would: the
    payload's channel alerts, the payloads started before it still do (hosts never turn one-off
    chunks into hosts), and no benign family does."""
    source, domain, minute = history.incidents[case]
    report = flows_until(history, minute, tmp_path)
    found = {channel(f) for f in alerts(report)}
    earlier = {(workload_of(s), d) for s, d, m in history.incidents.values() if m <= minute}
    assert (workload_of(source), domain) in found and found == earlier, found
    judged = {channel(f)[0] for f in report["findings"]} & set(history.benign)
    assert judged, "the benign families are judged (and quieted), not missing"
