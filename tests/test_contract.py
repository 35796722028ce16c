"""The output contract other tools read, the bundled example, and file/Prometheus agreement."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, alerts, dnswatch, scan_json
from tests.histories import Composite
from tests.promserver import PrometheusServer

FINDING_KEYS = {"kind", "severity", "source", "domain", "score", "summary", "evidence"}
KINDS = {"subdomain_burst", "high_volume", "suspicious_name"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
EXAMPLE = ROOT / "examples" / "demo-cluster.om.gz"


def check_report(report: dict) -> None:  # type: ignore[type-arg]
    assert set(report) == {"evaluated_at", "findings", "warnings"}
    assert RFC3339.match(report["evaluated_at"])
    problems = []
    for f in report["findings"]:
        if set(f) != FINDING_KEYS:
            problems.append(("keys", sorted(f)))
        if f["kind"] not in KINDS or f["severity"] not in ("info", "warning", "critical"):
            problems.append(("enum", f["kind"], f["severity"]))
        if not 0 <= f["score"] <= 1:
            problems.append(("score", f["score"]))
        if f["kind"] == "high_volume":
            if f["domain"] is not None or "rate_qps" not in f["evidence"]:
                problems.append(("volume", f))
        else:
            d = f["domain"]
            if not d or d != d.lower() or d.endswith("."):
                problems.append(("domain", d))
            ev = f["evidence"]
            for key in (
                "window",
                "distinct_names",
                "queries",
                "entropy_mean",
                "est_bytes",
                "sample_names",
            ):
                if key not in ev:
                    problems.append(("evidence", key))
            if len(ev.get("sample_names", [])) > 5:
                problems.append(("samples", len(ev["sample_names"])))
        if "\n" in f["summary"]:
            problems.append(("summary", f["summary"]))
    assert not problems


def test_the_bundled_example_shows_every_kind_of_incident() -> None:
    report = scan_json("--metrics-file", str(EXAMPLE))
    check_report(report)
    assert report["evaluated_at"] == "2026-05-29T01:26:40Z"  # the history's last sample
    kinds = {(f["kind"], f["domain"]) for f in alerts(report)}
    assert ("subdomain_burst", "exfil-demo.net") in kinds
    assert ("high_volume", None) in kinds
    assert any(d == "cdn-metrics.example" for _, d in kinds)


def test_the_bundled_example_is_what_the_simulator_makes(tmp_path: Path) -> None:
    out = tmp_path / "demo.om.gz"
    proc = dnswatch("simulate", "--demo", "--hours", "5", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(EXAMPLE.read_bytes()), (
        "examples/demo-cluster.om.gz is stale: run `make generate`"
    )


def test_the_example_config_is_the_defaults() -> None:
    proc = dnswatch("config")
    assert proc.stdout == (ROOT / "examples" / "config.yaml").read_text(), (
        "examples/config.yaml is stale: run `make generate`"
    )


def test_the_configuration_reference_is_generated_from_the_model() -> None:
    from watcher.config import reference_markdown

    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown(), (
        "docs/configuration.md is stale: run `make generate`"
    )


def test_every_docs_path_the_code_and_docs_mention_exists() -> None:
    """A `docs/...` path named in the code, the manifests or the docs is a promise to a reader."""
    import re

    pattern = re.compile(r"docs/[A-Za-z0-9_./-]+\.md")
    missing = []
    files = [*ROOT.glob("watcher/**/*.py"), *ROOT.glob("docs/**/*.md"), ROOT / "README.md"]
    files += [*ROOT.glob("k8s/**/*.yaml"), *ROOT.glob("rules/*.yml"), *ROOT.glob("rules/*.yaml")]
    for path in files:
        for ref in set(pattern.findall(path.read_text(encoding="utf-8"))):
            if not (ROOT / ref).exists():
                missing.append((str(path.relative_to(ROOT)), ref))
    assert not missing, missing


def _alert_keys(report: dict) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return sorted((f["kind"], f["source"], f["domain"]) for f in alerts(report))


@pytest.mark.prometheus
@pytest.mark.parametrize("minute", [158, 215, 345, 365, 412, 470])
def test_file_and_prometheus_agree(
    cluster_prom: PrometheusServer, cluster_file: Path, cluster_history: Composite, minute: int
) -> None:
    at = str(cluster_history.at(minute))
    a = scan_json("--metrics-file", str(cluster_file), "--at", at)
    b = scan_json("--prometheus-url", cluster_prom.url, "--at", at)
    check_report(a)
    check_report(b)
    assert _alert_keys(a) == _alert_keys(b)


def test_text_is_a_table() -> None:
    proc = dnswatch("scan", "--metrics-file", str(EXAMPLE), "--format", "text")
    assert proc.returncode == 0
    assert "SEVERITY  KIND" in proc.stdout and "exfil-demo.net" in proc.stdout


def test_a_single_scrape_works_without_history(tmp_path: Path) -> None:
    """`curl agent:9965/metrics > m.prom`: no timestamps, counters since agent start."""
    lines = [
        "# HELP hubble_dns_queries_total Number of DNS queries observed",
        "# TYPE hubble_dns_queries_total counter",
        "# TYPE hubble_flows_processed_total counter",
        'hubble_flows_processed_total{type="L7"} 912',
    ]
    for i in range(30):
        payload = f"{i:02x}" + "3f9a8c7d6e5b4a39281706f5e4d3c2b1a0"
        lines.append(
            f'hubble_dns_queries_total{{destination="",ips_returned="0",qtypes="TXT",'
            f'query="{payload}.t.evil.example.",rcode="",source="app/x-1"}} 1'
        )
    lines.append(
        'hubble_dns_queries_total{destination="",ips_returned="0",qtypes="A",'
        'query="www.google.com.",rcode="",source="app/x-1"} 40'
    )
    path = tmp_path / "m.prom"
    path.write_text("\n".join(lines) + "\n")
    report = scan_json("--metrics-file", str(path), "--at", "1780000000")
    check_report(report)
    assert [f["domain"] for f in alerts(report)] == ["evil.example"]
    assert any("single scrape" in w for w in report["warnings"])
