"""dashboards/hubble-dns.json: structure checked as a whole, every query run in Prometheus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics import exposition as openmetrics

from tests.conftest import ROOT
from tests.histories import Composite
from tests.promserver import PrometheusServer
from watcher.config import load_config
from watcher.detect import scanned
from watcher.selfmetrics import SelfMetrics
from watcher.sources.opener import read_evidence
from watcher.sources.prometheus import PrometheusSource
from watcher.window import workload_of

DASHBOARD: dict[str, Any] = json.loads((ROOT / "dashboards" / "hubble-dns.json").read_text())
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
VARIABLES = {"$namespace": ".*", "$source": ".*", "$__range": "6h", "$sample_limit": "100000"}


def substitute(expr: str) -> str:
    for var, value in VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def test_structure_lists_every_offender() -> None:
    offenders: list[tuple[Any, ...]] = []
    if DASHBOARD.get("id") is not None:
        offenders.append(("id must be null",))
    if DASHBOARD.get("uid") != "hubble-dns-watcher":
        offenders.append(("fixed uid",))
    names = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    if names.get("datasource", {}).get("type") != "datasource":
        offenders.append(("datasource variable",))
    for var in ("namespace", "source"):
        if var not in names or names[var]["datasource"] != {
            "type": "prometheus",
            "uid": "${datasource}",
        }:
            offenders.append(("variable", var))
    ids = [p["id"] for p in PANELS]
    offenders += [("duplicate id", i) for i in set(ids) if ids.count(i) > 1]
    for p in PANELS:
        if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            offenders.append(("panel datasource", p["id"]))
        for t in p["targets"]:
            if t.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
                offenders.append(("target datasource", p["id"], t["refId"]))
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            offenders.append(("wider than the grid", p["id"]))
    for i, a in enumerate(PANELS):
        for b in PANELS[i + 1 :]:
            ga, gb = a["gridPos"], b["gridPos"]
            if (
                ga["x"] < gb["x"] + gb["w"]
                and gb["x"] < ga["x"] + ga["w"]
                and ga["y"] < gb["y"] + gb["h"]
                and gb["y"] < ga["y"] + ga["h"]
            ):
                offenders.append(("overlap", a["id"], b["id"]))
    text = json.dumps(DASHBOARD)
    if "${DS_" in text or "__inputs" in text:
        offenders.append(("import-only datasource input",))
    assert not offenders


def test_the_required_panels_are_there() -> None:
    titles = " | ".join(p["title"].lower() for p in PANELS)
    for words in (
        "query rate by source",
        "names per workload, 10 min",
        "per workload and domain",
        "long names",
        "watcher findings",
        "last successful scan",
        "vs scrape limit",
        "nxdomain ratio",
        "flow logs: sources and domains",
    ):
        assert words in titles, words


def test_no_panel_needs_the_opt_in_names_rules() -> None:
    """With the default rules only (issue 33), every panel still has its data."""
    import yaml

    opt_in = yaml.safe_load((ROOT / "rules" / "hubble-dns-names.rules.yml").read_text())
    records = [r["record"] for g in opt_in["groups"] for r in g["rules"] if "record" in r]
    exprs = [t["expr"] for p in PANELS for t in p["targets"]] + [
        v["query"]["query"] for v in DASHBOARD["templating"]["list"] if v["type"] == "query"
    ]
    assert records and not [(r, e) for r in records for e in exprs if r in e]


@pytest.mark.prometheus
@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_query_returns_data(
    rules_prom: PrometheusServer, cluster_history: Composite, panel: dict[str, Any]
) -> None:
    at = cluster_history.at(412)
    for t in panel["targets"]:
        r = requests.get(
            f"{rules_prom.url}/api/v1/query",
            params={"query": substitute(t["expr"]), "time": at},
            timeout=30,
        )
        assert r.status_code == 200, (t["refId"], r.text)
        assert r.json()["data"]["result"], (t["refId"], substitute(t["expr"]))


@pytest.mark.prometheus
def test_the_variables_have_values(
    rules_prom: PrometheusServer, cluster_history: Composite
) -> None:
    for var in DASHBOARD["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = substitute(var["query"]["query"].removeprefix("label_values(").rsplit(",", 1)[0])
        r = requests.get(
            f"{rules_prom.url}/api/v1/label/source/values",
            params={
                "match[]": match,
                "start": cluster_history.at(400),
                "end": cluster_history.at(412),
            },
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["data"], var["name"]


@pytest.mark.prometheus
def test_the_domain_panel_shows_the_tunnel_from_the_watchers_own_series(
    rules_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    """The real chain with no names rule: the watcher scans the history at the tunnel's minute,
    exports its busiest channels (dnswatch_channel_names), a Prometheus holds them, and the
    panel's query shows the tunnel among its ten rows."""
    source, _, minute = cluster_history.incidents["iodine-like tunnel"]
    at = cluster_history.at(minute)
    cfg = load_config(environ={})
    got = scanned(read_evidence(PrometheusSource(rules_prom.url, cfg), at), cfg)
    metrics = SelfMetrics()
    metrics.channels(got.busiest)
    assert len(got.busiest) <= 2 * cfg.output.export_channels
    text = openmetrics.generate_latest(metrics.registry).decode()
    # Two scrapes of it, a minute apart, as Prometheus would hold them.
    stamped = "".join(
        f"{ln}\n" if ln.startswith("#") else f"{ln} {int(at) - 60}\n{ln} {int(at)}\n"
        for ln in text.splitlines()
    )
    prom = PrometheusServer(tmp_path, stamped)
    try:
        panel = next(p for p in PANELS if "per workload and domain" in p["title"])
        rows = prom.query(substitute(panel["targets"][0]["expr"]), int(at))
    finally:
        prom.stop()
    shown = {(r["metric"]["workload"], r["metric"]["domain"]) for r in rows}  # type: ignore[index]
    assert (workload_of(source), "tunnel-a.example") in shown and len(rows) <= 10, shown


@pytest.mark.prometheus
def test_the_long_names_panel_shows_only_the_incidents(
    rules_prom: PrometheusServer, cluster_history: Composite
) -> None:
    """Rarely queried long names are the payloads: busy ELB names stay out of the panel."""
    incident_sources = {s for s, _, _ in cluster_history.incidents.values()}
    panel = next(p for p in PANELS if p["title"].startswith("Long names"))
    rows = rules_prom.query(substitute(panel["targets"][0]["expr"]), cluster_history.at(412))
    assert len(rows) == 20
    assert {r["metric"]["source"] for r in rows} <= incident_sources  # type: ignore[index]
