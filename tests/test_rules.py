"""rules/: promtool-checked, unit-tested, complete, rendered for the Operator, and run over a
history with incidents in a real Prometheus."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT
from tests.histories import Composite
from tests.promserver import PrometheusServer, require
from watcher.domains import DEFAULT_ALLOWLIST

RULES = ROOT / "rules" / "hubble-dns.rules.yml"
NAMES_RULES = ROOT / "rules" / "hubble-dns-names.rules.yml"  # opt-in
TESTS = ROOT / "rules" / "tests" / "hubble-dns.test.yml"


def groups() -> list[dict[str, Any]]:
    """The default groups and the opt-in names groups."""
    return [g for f in (RULES, NAMES_RULES) for g in yaml.safe_load(f.read_text())["groups"]]


def alerts() -> list[dict[str, Any]]:
    return [r for g in groups() for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    proc = subprocess.run(
        [require("promtool"), "check", "rules", str(RULES), str(NAMES_RULES)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_pass() -> None:
    proc = subprocess.run(
        [require("promtool"), "test", "rules", TESTS.name],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("builder", ["rules/build.py", "dashboards/build.py"])
def test_generated_files_are_current(builder: str) -> None:
    proc = subprocess.run(
        [sys.executable, builder, "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_every_alert_is_complete_and_has_a_runbook() -> None:
    offenders = []
    for a in alerts():
        name = a["alert"]
        if a.get("labels", {}).get("severity") not in ("info", "warning", "critical"):
            offenders.append((name, "severity"))
        for key in ("summary", "description", "runbook_url"):
            if not a.get("annotations", {}).get(key):
                offenders.append((name, key))
        if a.get("annotations", {}).get("runbook_url") != f"docs/runbooks/{name}.md":
            offenders.append((name, "runbook_url path"))
        book = ROOT / "docs" / "runbooks" / f"{name}.md"
        text = book.read_text() if book.exists() else ""
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            if section not in text:
                offenders.append((name, f"runbook {section}"))
        if "```" not in text:
            offenders.append((name, "runbook has no commands to paste"))
    assert not offenders


def test_recording_rules_are_named_level_metric_operation() -> None:
    bad = [
        r["record"]
        for g in groups()
        for r in g["rules"]
        if "record" in r and not re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r["record"])
    ]
    assert not bad


def test_every_alert_has_a_firing_and_a_quiet_test_named_as_sentences() -> None:
    names = [t["name"] for t in yaml.safe_load(TESTS.read_text())["tests"]]
    missing = [
        (a["alert"], kind)
        for a in alerts()
        for kind in ("fires when", "does not fire")
        if not any(n.startswith(f"{a['alert']} {kind}") for n in names)
    ]
    assert not missing


@pytest.mark.parametrize(
    ("operator", "rules"),
    [("prometheusrule.yaml", RULES), ("prometheusrule-names.yaml", NAMES_RULES)],
)
def test_the_prometheusrule_is_valid_and_carries_the_same_rules(operator: str, rules: Path) -> None:
    resource = yaml.safe_load((ROOT / "rules" / operator).read_text())
    schema = json.loads((ROOT / "tests" / "schemas" / "prometheusrule_v1.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(resource), key=str)
    assert not [e.message for e in errors]
    assert resource["spec"] == yaml.safe_load(rules.read_text())


def test_the_default_rules_read_every_hubble_series_once_and_the_names_group_is_opt_in() -> None:
    """The footprint (issue 33): by default one rule touches hubble_dns_queries_total (the
    rate); the set operations over every series (distinct names) ship apart."""
    default = yaml.safe_load(RULES.read_text())["groups"]
    heavy = [r for g in default for r in g["rules"] if "hubble_dns_queries_total" in r["expr"]]
    assert [r.get("record") for r in heavy if "absent(" not in r["expr"]] == [
        "source:hubble_dns_queries:rate5m"
    ]
    assert not [g for g in default if g["name"] == "hubble-dns.names"]
    assert [g["name"] for g in yaml.safe_load(NAMES_RULES.read_text())["groups"]] == [
        "hubble-dns.names",
        "hubble-dns.names.alerts",
    ]


def test_the_burst_alert_skips_every_default_allowlisted_zone() -> None:
    burst = next(a for a in alerts() if a["alert"] == "HubbleDNSSubdomainBurst")
    pattern = re.search(r'zone!~"([^"]+)"', burst["expr"]).group(1).replace("\\\\", "\\")  # type: ignore[union-attr]
    missing = [
        s for s in DEFAULT_ALLOWLIST if not re.fullmatch(pattern, ".".join(s.split(".")[-2:]))
    ]
    assert not missing


def _alert_sources(prom: PrometheusServer, name: str, at: int) -> set[str]:
    expr = next(a["expr"] for a in alerts() if a["alert"] == name)
    return {r["metric"]["source"] for r in prom.query(expr, at)}  # type: ignore[index]


@pytest.mark.prometheus
def test_the_burst_alert_fires_on_the_tunnels_of_the_history(
    rules_prom: PrometheusServer, cluster_history: Composite
) -> None:
    for incident in (
        "iodine-like tunnel",
        "dnscapy-like numeric tunnel",
        "tunnel from a deleted pod",
    ):
        source, _, minute = cluster_history.incidents[incident]
        at = cluster_history.at(minute if incident != "tunnel from a deleted pod" else 448)
        assert source in _alert_sources(rules_prom, "HubbleDNSSubdomainBurst", at), incident


@pytest.mark.prometheus
def test_the_burst_alert_spares_dns_as_data_crawlers_and_the_cluster_domain(
    rules_prom: PrometheusServer, cluster_history: Composite
) -> None:
    offenders = set()
    for minute in range(30, cluster_history.cluster.minutes + 1, 15):
        for src in _alert_sources(
            rules_prom, "HubbleDNSSubdomainBurst", cluster_history.at(minute)
        ):
            if src.startswith(("security/", "crawler/", "shop/", "platform/", "monitoring/")):
                offenders.add((minute, src))
    assert not offenders


@pytest.mark.prometheus
def test_the_rate_alert_fires_on_the_flood_and_not_on_the_agent_restart(
    rules_prom: PrometheusServer, cluster_history: Composite
) -> None:
    source, _, minute = cluster_history.incidents["volume flood"]
    assert source in _alert_sources(
        rules_prom, "HubbleDNSQueryRateHigh", cluster_history.at(minute)
    )
    restart, _ = cluster_history.cluster.restarts[0]
    for m in (restart + 2, restart + 10):
        assert not _alert_sources(rules_prom, "HubbleDNSQueryRateHigh", cluster_history.at(m))


def test_runbooks_only_for_alerts() -> None:
    from watcher.notify.alertmanager import ALERTNAME  # the watcher's own alert

    names = {a["alert"] for a in alerts()} | {ALERTNAME}
    extra = [p.stem for p in (ROOT / "docs" / "runbooks").glob("*.md") if p.stem not in names]
    assert not extra, Path("docs/runbooks")
