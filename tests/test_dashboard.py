"""dashboards/hubble-dns.json: structure checked as a whole, every query run in Prometheus."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.conftest import ROOT
from tests.histories import Composite
from tests.promserver import PrometheusServer

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
        "names queried per source",
        "per source and zone",
        "long names",
        "watcher findings",
        "last successful scan",
        "series vs scrape limit",
        "nxdomain ratio",
        "flow logs: sources and domains",
    ):
        assert words in titles, words


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
def test_the_zone_panel_shows_the_tunnel(
    rules_prom: PrometheusServer, cluster_history: Composite
) -> None:
    source, _, minute = cluster_history.incidents["iodine-like tunnel"]
    panel = next(p for p in PANELS if "per source and zone" in p["title"])
    rows = rules_prom.query(substitute(panel["targets"][0]["expr"]), cluster_history.at(minute))
    # The panel is a top-10 table of raw counts: the tunnel is in it (a wildcard-DNS router with
    # 250 re-queried names may rank above it; the watcher tells the two apart, a count cannot).
    shown = {(r["metric"]["source"], r["metric"]["zone"]) for r in rows}  # type: ignore[index]
    assert (source, "tunnel-a.example") in shown and len(rows) <= 10


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
