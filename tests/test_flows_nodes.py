"""A leak spread over nodes: each node's follower sees half of it, below every threshold; a real
Prometheus scraping both followers sums their per-channel evidence with the shipped rule and
raises exactly one alert naming the workload. A benign workload spread the same way (hosts
asked again and answered with addresses each time) is not exported by either node, and stays
quiet."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT
from tests.flowlines import exchange
from tests.promserver import PrometheusServer, free_port

pytestmark = pytest.mark.prometheus

T0 = 1_780_000_000.0
WORDS = ["amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper"]
LEAK = ("jobs/exporter", "leak-example.net")


def node_lines(node: str, pod_suffix: str, first: int) -> list[str]:
    """One node's share: an exporter pod asking 25 one-off word names (NXDOMAIN), and a
    frontend pod resolving 25 hosts, each twice, answered with their own addresses."""
    out: list[str] = []
    for k in range(25):
        i = first + k
        leak = f"{WORDS[i % 10]}-{WORDS[(i // 10) % 10]}-{i}.leak-example.net"
        out += exchange(T0 + k * 8, f"jobs/exporter-7d9f8b7c6-{pod_suffix}", leak, "TXT",
                        rcode=3, app="exporter")  # fmt: skip
        host = f"img-{i}.cdn-example.net"
        for again in (3, 5):
            out += exchange(T0 + k * 8 + again, f"web/frontend-5c6d7e8f9-{pod_suffix}", host,
                            "A", ips=[f"198.51.100.{i + 1}"], app="frontend")  # fmt: skip
    return [line.replace('"kind-worker"', f'"{node}"') for line in out]


def follower(path: Path, port: int, config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher.cli", "flows", "--follow", str(path), "--listen",
         f"127.0.0.1:{port}", "--config", str(config), "--format", "json"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[PrometheusServer, list[Path]]]:
    config = tmp_path / "dnswatch.yaml"
    config.write_text("flows:\n  report_interval: 0.2\n")
    logs, procs, targets = [], [], {}
    for n, (node, suffix, first) in enumerate((("node-1", "aaaaa", 0), ("node-2", "bbbbb", 25))):
        path = tmp_path / f"{node}.jsonl"
        path.write_text("".join(line + "\n" for line in node_lines(node, suffix, first)))
        port = free_port()
        logs.append(tmp_path / f"{node}.out")
        procs.append(follower(path, port, config, logs[-1]))
        targets[f"follower{n}"] = f"127.0.0.1:{port}"
    # The shipped rule as it is, but without its `for:` wait.
    rules = tmp_path / "rules.yml"
    rules.write_text(
        (ROOT / "rules" / "hubble-dns.rules.yml").read_text().replace("for: 2m", "for: 0s")
    )
    server = PrometheusServer(tmp_path / "prom", None, scrape=targets, rules=rules)
    try:
        yield server, logs
    finally:
        server.stop()
        for p in procs:
            p.terminate()
            p.wait(10)


def firing(url: str) -> list[dict[str, Any]]:
    alerts = requests.get(url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "DNSExfiltrationAcrossNodes"]


def exported(url: str) -> list[dict[str, Any]]:
    q = requests.get(
        url + "/api/v1/query", params={"query": "dnswatch_flow_channel_names"}, timeout=5
    )
    result: list[dict[str, Any]] = q.json()["data"]["result"]
    return result


def test_a_leak_below_the_threshold_on_each_node_is_one_alert_for_the_workload(
    two_nodes: tuple[PrometheusServer, list[Path]],
) -> None:
    server, logs = two_nodes
    deadline = time.time() + 60
    got: list[dict[str, Any]] = []
    while time.time() < deadline:
        got = firing(server.url)
        if got and len({s["metric"]["instance"] for s in exported(server.url)}) == 2:
            break
        time.sleep(1)
    time.sleep(3)  # a few more evaluations: nothing else may fire
    got = firing(server.url)
    assert [(a["labels"]["workload"], a["labels"]["domain"]) for a in got] == [LEAK]
    assert got[0]["state"] == "firing" and float(got[0]["value"]) == 50
    # Each node exported its half and nothing of the benign workload.
    series = exported(server.url)
    assert {(s["metric"]["workload"], s["metric"]["domain"]) for s in series} == {LEAK}
    assert sorted(float(s["value"][1]) for s in series if s["metric"]["window"] == "short") == [
        25,
        25,
    ]
    # Neither follower alerted on its own: the rule is the only page.
    for log in logs:
        assert not [ln for ln in log.read_text().splitlines() if ln.startswith("{")], (
            log.read_text()
        )
