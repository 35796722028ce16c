"""Issue 12's evasions against a real Prometheus (and the same history as a file): a leak spread
over a workload's replicas, a payload in dotted octets, a host-network client named by its node.
Each alerted; nothing benign alerted."""

from __future__ import annotations

import pytest

from tests.conftest import alerts
from tests.histories import Composite, generalisation
from tests.scans import Scan, composite_fixtures

pytestmark = pytest.mark.prometheus


history, prom, history_file, scan = composite_fixtures(generalisation, "general")


def test_a_leak_spread_over_24_replicas_is_one_alert_for_the_workload(
    scan: Scan, history: Composite
) -> None:
    workload, domain, minute = history.incidents["leak spread over 24 replicas"]
    report = scan(minute)
    hits = [f for f in alerts(report) if f["domain"] == domain]
    assert [f["source"] for f in hits] == [workload], report["findings"]
    ev = hits[0]["evidence"]
    assert ev["pods"] == 24 and ev["workload"] == workload
    assert ev["distinct_names"] >= 150 and ev["encoded_fraction"] < 0.5  # words, not shape
    # No pod alone crosses a threshold, and its info findings are folded into the one alert.
    assert not [f for f in report["findings"] if f["source"].startswith(workload + "-")]


def test_a_payload_written_as_dotted_octets_under_an_unknown_zone_is_alerted(
    scan: Scan, history: Composite
) -> None:
    source, domain, minute = history.incidents["payload as dotted octets"]
    hits = [f for f in alerts(scan(minute)) if f["source"] == source and f["domain"] == domain]
    assert hits and hits[0]["evidence"]["distinct_names"] >= 200, hits


def test_a_host_network_client_is_reported_by_its_node(scan: Scan, history: Composite) -> None:
    node, domain, minute = history.incidents["tunnel from a host-network client"]
    report = scan(minute)
    hits = [f for f in alerts(report) if f["domain"] == domain]
    assert [f["source"] for f in hits] == [node], report["findings"]


def test_no_benign_workload_is_alerted_in_the_evasions_history(
    scan: Scan, history: Composite
) -> None:
    expected = {(s, d) for s, d, _ in history.incidents.values()}
    offenders = []
    for minute in range(60, history.cluster.minutes + 1, 60):
        for f in alerts(scan(minute)):
            if (f["source"], f["domain"]) not in expected:
                offenders.append((minute, f["kind"], f["source"], f["domain"], f["summary"]))
    assert not offenders
