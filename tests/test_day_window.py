"""The day window (issue 12): a leak too slow for the 6 h window is alerted over 24 h, on a real
Prometheus and from the same history as a file; hosts re-queried all day stay quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import alerts, scan_json
from tests.histories import Composite, day_long
from tests.promserver import PrometheusServer, history_text

pytestmark = pytest.mark.prometheus

Scan = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def history() -> Composite:
    return day_long()


@pytest.fixture(scope="module")
def prom(
    history: Composite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        tmp_path_factory.mktemp("prom-day"), history_text(history.cluster, instance=True)
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def history_file(history: Composite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("day-file") / "history.om"
    path.write_text(history_text(history.cluster, instance=True), encoding="utf-8")
    return path


@pytest.fixture(params=["prometheus", "file"])
def scan(request: pytest.FixtureRequest, history: Composite, tmp_path: Path) -> Scan:
    """scan(minute, day_off=False) -> report, from Prometheus or the same history as a file."""
    if request.param == "prometheus":
        where = ["--prometheus-url", request.getfixturevalue("prom").url]
    else:
        where = ["--metrics-file", str(request.getfixturevalue("history_file"))]
    off = tmp_path / "no-day.yaml"
    off.write_text("windows:\n  day: 0\n")

    def run(minute: int, day_off: bool = False) -> dict[str, Any]:
        more = ["--config", str(off)] if day_off else []
        return scan_json(*where, "--at", str(history.at(minute)), *more)

    return run


def test_a_leak_too_slow_for_six_hours_is_alerted_over_the_day(
    scan: Scan, history: Composite
) -> None:
    source, domain, minute = history.incidents["leak slower than the 6 h window"]
    hits = [f for f in alerts(scan(minute)) if f["source"] == source and f["domain"] == domain]
    assert len(hits) == 1, hits
    ev = hits[0]["evidence"]
    assert ev["distinct_names"] >= 300 and ev["encoded_fraction"] < 0.5  # words, not shape
    assert ev["window"] == "1d" and ev["unique_ratio"] > 0.9


def test_without_the_day_window_the_same_leak_is_only_info(scan: Scan, history: Composite) -> None:
    source, domain, minute = history.incidents["leak slower than the 6 h window"]
    report = scan(minute, day_off=True)
    mine = [f for f in report["findings"] if f["source"] == source and f["domain"] == domain]
    assert mine and all(f["severity"] == "info" for f in mine), mine
    assert max(f["evidence"]["distinct_names"] for f in mine) < 150


def test_hosts_and_tenants_re_queried_all_day_are_never_alerted(
    scan: Scan, history: Composite
) -> None:
    leak, _, _ = history.incidents["leak slower than the 6 h window"]
    for hour in (7, 13, 20, 25):
        report = scan(hour * 60)
        assert [f for f in alerts(report) if f["source"] != leak] == [], hour
