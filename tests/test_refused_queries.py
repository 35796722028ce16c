"""A big cluster's queries get refused: the scan splits them and goes on, and says what is missing.

A real Prometheus holding the test history, started with a small `--query.max-samples` (the limit
behind "query processing would load too many samples into memory", HTTP 422).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import alerts, dnswatch, scan_json
from tests.histories import Composite
from tests.promserver import PrometheusServer

pytestmark = pytest.mark.prometheus


def _limited(cluster_prom: PrometheusServer, tmp: Path, max_samples: int) -> PrometheusServer:
    """A second Prometheus on a copy of the history's blocks, with the sample limit set."""
    data = tmp / "data"
    shutil.copytree(
        cluster_prom.data, data, ignore=shutil.ignore_patterns("lock", "wal", "chunks_head")
    )
    server = PrometheusServer.__new__(PrometheusServer)
    server.workdir, server.data = tmp, data
    server.flags = [f"--query.max-samples={max_samples}"]
    (tmp / "prometheus.yml").write_text("global:\n  scrape_interval: 60s\n")
    server.start()
    return server


@pytest.fixture
def limited(
    request: pytest.FixtureRequest, cluster_prom: PrometheusServer, tmp_path: Path
) -> Iterator[PrometheusServer]:
    server = _limited(cluster_prom, tmp_path, request.param)
    yield server
    server.stop()


@pytest.mark.parametrize("limited", [60_000], indirect=True)
def test_a_refused_query_is_split_by_namespace_and_the_tunnel_is_still_found(
    limited: PrometheusServer, cluster_history: Composite
) -> None:
    source, domain, minute = cluster_history.incidents["iodine-like tunnel"]
    report = scan_json("--prometheus-url", limited.url, "--at", str(cluster_history.at(minute)))
    assert any(f["source"] == source and f["domain"] == domain for f in alerts(report))
    refused = [w for w in report["warnings"] if "refused whole" in w]
    assert refused and all("asked again per namespace" in w for w in refused)
    assert "too many samples" in refused[0]
    assert not [w for w in report["warnings"] if "MISSING" in w]


@pytest.mark.parametrize("limited", [15_000], indirect=True)
def test_a_part_that_never_passes_is_named_and_the_rest_is_reported(
    limited: PrometheusServer, cluster_history: Composite
) -> None:
    source, domain, minute = cluster_history.incidents["iodine-like tunnel"]
    report = scan_json("--prometheus-url", limited.url, "--at", str(cluster_history.at(minute)))
    missing = [w for w in report["warnings"] if "MISSING" in w]
    assert missing and all("for namespace " in w for w in missing)
    assert any(f["source"] == source and f["domain"] == domain for f in alerts(report))


@pytest.mark.parametrize("limited", [5_000], indirect=True)
def test_when_even_the_label_check_is_refused_the_scan_fails_in_one_line(
    limited: PrometheusServer, cluster_history: Composite
) -> None:
    proc = dnswatch("scan", "--prometheus-url", limited.url, "--at", str(cluster_history.at(412)))
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "too many samples" in lines[0] and "Traceback" not in proc.stderr
