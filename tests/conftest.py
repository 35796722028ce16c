from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.histories import Composite, composite
from tests.promserver import PrometheusServer, history_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cluster_history() -> Composite:
    return composite()


@pytest.fixture(scope="session")
def cluster_prom(
    cluster_history: Composite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        tmp_path_factory.mktemp("prom-cluster"), history_text(cluster_history.cluster)
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_vm(
    cluster_history: Composite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from tests.vmserver import VictoriaMetricsServer

    server = VictoriaMetricsServer(
        tmp_path_factory.mktemp("vm-cluster"), history_text(cluster_history.cluster)
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_file(cluster_history: Composite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("file") / "cluster.om"
    path.write_text(history_text(cluster_history.cluster), encoding="utf-8")
    return path


def dnswatch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed console entry point exactly as users do."""
    return subprocess.run(
        [sys.executable, "-m", "watcher.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def scan_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = dnswatch("scan", *args, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def alerts(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] in ("warning", "critical")]


def watcher_and_scrape_series(start: int, minutes: int) -> str:
    """What a running watcher and a real Hubble scrape would add: the watcher's self-metrics
    (names fixed by the alerting issue) and scrape health, one sample a minute."""
    lines = ["# TYPE dnswatch_findings gauge"]
    for kind, severity in (("subdomain_burst", "critical"), ("high_volume", "warning")):
        lines += [
            f'dnswatch_findings{{kind="{kind}",severity="{severity}"}} 1 {start + m * 60}'
            for m in range(1, minutes + 1)
        ]
    lines.append("# TYPE dnswatch_last_success_timestamp_seconds gauge")
    lines += [
        f"dnswatch_last_success_timestamp_seconds {start + (m // 10) * 600} {start + m * 60}"
        for m in range(1, minutes + 1)
    ]
    lines.append("# TYPE dnswatch_scan_duration_seconds gauge")
    lines += [f"dnswatch_scan_duration_seconds 1.2 {start + m * 60}" for m in range(1, minutes + 1)]
    # A flow follower (dnswatch flows --follow) on each node: its own per-pair series.
    lines.append("# TYPE dnswatch_flow_pair_distinct_names gauge")
    lines += [
        'dnswatch_flow_pair_distinct_names{source="default/worker-7d9f8b7c6-x2x4q",'
        f'domain="evil.example",kind="channel_behaviour",severity="warning"}} 42 {start + m * 60}'
        for m in range(1, minutes + 1)
    ]
    # A metrics-path watcher's busiest channels (dnswatch serve, or run with a Pushgateway).
    lines.append("# TYPE dnswatch_channel_names gauge")
    lines += [
        f'dnswatch_channel_names{{workload="shop/web",domain="example.com",window="short"}} '
        f"12 {start + m * 60}"
        for m in range(1, minutes + 1)
    ]
    lines.append("# TYPE dnswatch_flow_lines gauge")
    lines += [
        f'dnswatch_flow_lines{{outcome="dns"}} {m * 1000} {start + m * 60}'
        for m in range(1, minutes + 1)
    ]
    lines.append("# TYPE dnswatch_flow_active_pairs gauge")
    lines += [f"dnswatch_flow_active_pairs 120 {start + m * 60}" for m in range(1, minutes + 1)]
    lines.append("# TYPE scrape_samples_scraped gauge")
    lines += [
        f'scrape_samples_scraped{{job="hubble-metrics",instance="10.0.0.{n}:9965"}} '
        f"{4000 + 3 * m} {start + m * 60}"
        for n in (1, 2, 3)
        for m in range(1, minutes + 1)
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def rules_prom(
    cluster_history: Composite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """The composite history with DNS responses and the watcher's metrics, recording rules
    backfilled over it by promtool: what a cluster running rules/ and the watcher holds."""
    import io

    from watcher.simulate import write_openmetrics

    c = cluster_history.cluster
    buf = io.StringIO()
    write_openmetrics(c, buf, responses=True)
    text = buf.getvalue().replace(
        "# EOF\n", watcher_and_scrape_series(c.start, c.minutes) + "# EOF\n"
    )
    server = PrometheusServer(tmp_path_factory.mktemp("prom-rules"), text)
    server.backfill_rules(
        c.start,
        c.start + c.minutes * 60,
        ROOT / "rules" / "hubble-dns.rules.yml",
        ROOT / "rules" / "hubble-dns-names.rules.yml",  # the opt-in group, for its own tests
    )
    yield server
    server.stop()
