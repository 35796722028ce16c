"""The day window (issue 12): a leak too slow for the 6 h window is alerted over 24 h, on a real
Prometheus and from the same history as a file; hosts re-queried all day stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import alerts
from tests.histories import Composite, day_long
from tests.scans import Scan, composite_fixtures

pytestmark = pytest.mark.prometheus

history, prom, history_file, scan = composite_fixtures(day_long, "day")


@pytest.fixture
def day_off(tmp_path: Path) -> list[str]:
    off = tmp_path / "no-day.yaml"
    off.write_text("windows:\n  day: 0\n")
    return ["--config", str(off)]


def test_a_leak_too_slow_for_six_hours_is_alerted_over_the_day(
    scan: Scan, history: Composite
) -> None:
    source, domain, minute = history.incidents["leak slower than the 6 h window"]
    hits = [f for f in alerts(scan(minute)) if f["source"] == source and f["domain"] == domain]
    assert len(hits) == 1, hits
    ev = hits[0]["evidence"]
    assert ev["distinct_names"] >= 300 and ev["encoded_fraction"] < 0.5  # words, not shape
    assert ev["window"] == "1d" and ev["unique_ratio"] > 0.9


def test_without_the_day_window_a_shared_zones_leak_would_be_only_info(
    scan: Scan, history: Composite, tmp_path: Path
) -> None:
    """With the day window off and private channels judged like shared ones
    (judge.private_factor 1), six hours hold ~100 of the leak's names: info only."""
    off = tmp_path / "no-day-shared.yaml"
    off.write_text("windows:\n  day: 0\njudge:\n  private_factor: 1\n")
    source, domain, minute = history.incidents["leak slower than the 6 h window"]
    report = scan(minute, "--config", str(off))
    mine = [f for f in report["findings"] if f["source"] == source and f["domain"] == domain]
    assert mine and all(f["severity"] == "info" for f in mine), mine
    assert max(f["evidence"]["distinct_names"] for f in mine) < 150


def test_without_the_day_window_a_private_zones_leak_still_pages_within_six_hours(
    scan: Scan, history: Composite, day_off: list[str]
) -> None:
    """Only its workload resolves the leak's zone and each name is asked once: a private
    channel, alerted at 60 names in 6 h (the long window's 150 times judge.private_factor)."""
    source, domain, _ = history.incidents["leak slower than the 6 h window"]
    hits = [
        f
        for f in alerts(scan(60 + 300, *day_off))
        if f["source"] == source and f["domain"] == domain
    ]
    assert len(hits) == 1, hits
    ev = hits[0]["evidence"]
    assert ev["window"] == "6h" and ev["threshold_distinct"] == 60
    assert ev["prevalence_clients"] == 1 and "private_channel" in ev


def test_hosts_and_tenants_re_queried_all_day_are_never_alerted(
    scan: Scan, history: Composite
) -> None:
    leak, _, _ = history.incidents["leak slower than the 6 h window"]
    for hour in (7, 13, 20, 25):
        report = scan(hour * 60)
        assert [f for f in alerts(report) if f["source"] != leak] == [], hour
