"""Real tunnelling tools (iodine, dns2tcp) through a real resolver, captured on the wire and
rendered as Hubble's flow lines and metrics (tests/lab, tests/fixtures/lab/README.md).

The fast tests read the saved capture; the `lab` test runs the tools again in network
namespaces (root) and checks the fresh capture the same way."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import alerts, dnswatch, scan_json
from tests.lab import capture, netns, run
from tests.promserver import PrometheusServer

TUNNELS = {
    ("tunnel-lab/iodine-client-7c9d5b8f4-q2wxp", "iodinelab.test"),
    ("tunnel-lab/dns2tcp-client-5f6b7c8d9-h7k2m", "dns2tcplab.test"),
}
BENIGN = "corp/inventory-6d8f7b9c5-k4m2n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    return run.render(run.FIXTURE, tmp_path_factory.mktemp("lab"))


def flows_report(path: Path) -> dict[str, Any]:
    proc = dnswatch("flows", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def channels(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["source"], f["domain"]) for f in alerts(report)}


def assert_tools_caught_benign_quiet(report: dict[str, Any]) -> None:
    assert channels(report) == TUNNELS, [(f["source"], f["domain"]) for f in alerts(report)]
    quiet = [f for f in report["findings"] if f["source"] == BENIGN]
    assert all(f["severity"] == "info" for f in quiet)


def test_the_capture_holds_each_tools_session_and_the_ordinary_client(
    rendered: tuple[Path, Path, float], tmp_path: Path
) -> None:
    raw = tmp_path / "lab.pcap"
    raw.write_bytes(gzip.decompress(run.FIXTURE.read_bytes()))
    ex = capture.exchanges(raw, netns.RESOLVER)
    by_client: dict[str, list[capture.Exchange]] = {}
    for e in ex:
        by_client.setdefault(netns.PODS[e.client], []).append(e)
    iodine = by_client["tunnel-lab/iodine-client-7c9d5b8f4-q2wxp"]
    dns2tcp = by_client["tunnel-lab/dns2tcp-client-5f6b7c8d9-h7k2m"]
    benign = by_client[BENIGN]
    # iodine: NULL queries; its Base128 upstream puts bytes no host name has into the names,
    # presented as the DNS proxy does (\DDD).
    assert {e.qtype for e in iodine} >= {"NULL"}
    assert any("\\" in e.name for e in iodine)
    assert all(e.name.endswith(".i.iodinelab.test.") for e in iodine)
    assert {e.qtype for e in dns2tcp} == {"TXT"}
    assert all(e.name.endswith(".d.dns2tcplab.test.") for e in dns2tcp)
    # The ordinary client's hosts answer with addresses; its stale names with NXDOMAIN.
    assert sum(bool(e.ips) for e in benign) > 400
    assert sum(e.rcode == 3 for e in benign) == 40
    # Each tool's names are one-off chunks; the ordinary client asks its hosts again.
    assert len({e.name for e in iodine}) == len(iodine)
    assert len({e.name for e in benign}) < len(benign) / 2


def test_flow_lines_of_real_tools_alert_each_tool_with_its_client_and_zone(
    rendered: tuple[Path, Path, float],
) -> None:
    flows, _, _ = rendered
    assert_tools_caught_benign_quiet(flows_report(flows))


def test_the_flow_lines_keep_the_names_as_hubble_writes_them(
    rendered: tuple[Path, Path, float],
) -> None:
    flows, _, _ = rendered
    lines = [json.loads(line) for line in flows.read_text().splitlines()]
    requests = [x for x in lines if x["flow"]["l7"]["type"] == "REQUEST"]
    answers = [x for x in lines if x["flow"]["l7"]["type"] == "RESPONSE"]
    assert len(answers) <= len(requests)
    odd = [
        x["flow"]["l7"]["dns"]["query"] for x in requests if "\\" in x["flow"]["l7"]["dns"]["query"]
    ]
    assert odd and all(q.endswith(".i.iodinelab.test.") for q in odd)
    null = [x for x in answers if x["flow"]["l7"]["dns"].get("rrtypes") == ["NULL"]]
    assert null and all(
        x["flow"]["destination"]["pod_name"].startswith("iodine-client") for x in null
    )


@pytest.mark.prometheus
def test_metrics_of_real_tools_alert_each_tool_on_a_real_prometheus_and_from_the_file(
    rendered: tuple[Path, Path, float], tmp_path: Path
) -> None:
    _, metrics, at = rendered
    text = metrics.read_text()
    server = PrometheusServer(tmp_path, text)
    try:
        from_prom = scan_json("--prometheus-url", server.url, "--at", str(at))
    finally:
        server.stop()
    from_file = scan_json("--metrics-file", str(metrics), "--at", str(at))
    for report in (from_prom, from_file):
        assert_tools_caught_benign_quiet(report)
        quiet = next(f for f in report["findings"] if f["source"] == BENIGN)
        # Quiet by a principle the judge names: the responses metric shows addresses.
        assert quiet["evidence"]["quieted_by"] == "address_answers"


@pytest.mark.prometheus
def test_without_the_responses_metric_the_ordinary_clients_burst_is_not_quieted(
    rendered: tuple[Path, Path, float], tmp_path: Path
) -> None:
    """The metrics path sees answers only through hubble_dns_responses_total: without it, two
    hundred new names of one zone in a minute is a burst (docs/detection.md, blind spots)."""
    _, metrics, at = rendered
    queries_only = tmp_path / "queries.om"
    queries_only.write_text(
        "".join(
            line + "\n"
            for line in metrics.read_text().splitlines()
            if capture.RESPONSES[:-6] not in line
        )
    )
    report = scan_json("--metrics-file", str(queries_only), "--at", str(at))
    assert (BENIGN, "benignlab.test") in channels(report)


@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    why = netns.unavailable()
    if why:
        pytest.skip(f"the lab cannot run here: {why}")
    yield run.record(tmp_path_factory.mktemp("lab-run"))


@pytest.mark.lab
def test_the_lab_runs_the_real_tools_again_and_both_paths_catch_them(
    fresh_lab: Path, tmp_path: Path
) -> None:
    flows, metrics, at = run.render(fresh_lab, tmp_path)
    assert_tools_caught_benign_quiet(flows_report(flows))
    assert_tools_caught_benign_quiet(scan_json("--metrics-file", str(metrics), "--at", str(at)))
