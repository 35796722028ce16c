"""`dnswatch drill`: a Job sending a harmless, recognisable leak, recognised as a drill on every
path (real Prometheus, real Alertmanager, flow lines), and `--check` naming the stage that
failed from histories that lack it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT, dnswatch
from tests.promserver import PrometheusServer
from tests.receivers import Answer, receiver
from tests.test_alertmanager import Alertmanager, am_env
from tests.test_k8s import KUBERNETES_VERSION
from watcher import drill
from watcher.config import Config
from watcher.simulate import build, end_time, write_openmetrics
from watcher.simulate_flows import write as write_flows

DRILL_AT = 150  # minute the drill starts in a 3 h history
NS = "payments"


def rendered(*args: str) -> list[dict[str, Any]]:
    proc = dnswatch("drill", "--namespace", NS, *args)
    assert proc.returncode == 0, proc.stderr
    return list(yaml.safe_load_all(proc.stdout))


@pytest.mark.parametrize("schedule", [None, "0 9 * * 1"])
def test_the_drill_job_and_its_weekly_cronjob_render_valid_and_locked_down(
    schedule: str | None,
) -> None:
    docs = rendered(*(["--schedule", schedule] if schedule else []))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["CronJob" if schedule else "Job", "CiliumNetworkPolicy"]
    kubernetes_validate.validate(docs[0], KUBERNETES_VERSION, strict=True)
    schema = json.loads((ROOT / "tests" / "schemas" / "ciliumnetworkpolicy_v2.json").read_text())
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(docs[1]))
    spec = docs[0]["spec"]["jobTemplate"]["spec"] if schedule else docs[0]["spec"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    # The policy lets the drill's pod reach the cluster DNS only, through the DNS proxy.
    egress = docs[1]["spec"]["egress"]
    assert len(egress) == 1 and egress[0]["toPorts"][0]["rules"]["dns"]
    assert docs[1]["spec"]["endpointSelector"]["matchLabels"] == {"app": drill.APP}
    assert spec["template"]["metadata"]["labels"]["app"] == drill.APP
    assert "CiliumNetworkPolicy" not in [d["kind"] for d in rendered("--no-policy")]


def test_the_pods_script_asks_exactly_the_names_the_watcher_recognises(tmp_path: Path) -> None:
    """The Job's shell script run with stand-ins for date, nslookup and sleep on PATH."""
    cfg = Config().drill
    bindir = tmp_path / "bin"
    bindir.mkdir()
    asked = tmp_path / "asked"
    for name, body in {
        "date": "echo 1796190000",
        "nslookup": f'echo "$1 $2" >> {asked}',
        "sleep": "true",
    }.items():
        p = bindir / name
        p.write_text(f"#!/bin/sh\n{body}\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
    out = subprocess.run(
        ["sh", "-c", drill.script(cfg)], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    lines = asked.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["-type=TXT"] * cfg.names
    assert [line.split()[1] for line in lines] == drill.names(cfg, 1796190000)
    assert "dwdrill-1796190000" in out.stdout


def _history(tmp_path: Path, *incidents: str, flows: bool = False) -> tuple[Path, int]:
    c = build(3, list(incidents), seed=5)
    if flows:
        path = tmp_path / "flows.jsonl"
        write_flows(c, path)
    else:
        path = tmp_path / "history.om"
        with path.open("w") as fh:
            write_openmetrics(c, fh)
    return path, end_time(c)


def _check(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = dnswatch("drill", "--check", "--format", "json", "--namespace", NS, *args, env=env)
    assert proc.returncode in (0, 6), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.prometheus
def test_a_drill_goes_end_to_end_through_prometheus_and_alertmanager_as_a_drill(
    tmp_path: Path,
) -> None:
    history, end = _history(tmp_path, f"drill,at={DRILL_AT}m,source={NS}")
    at = str(end - (180 - DRILL_AT - 5) * 60)  # five minutes after the drill began
    prom = PrometheusServer(tmp_path / "prom", history.read_text())
    try:
        with receiver() as hook:
            am = Alertmanager(tmp_path, hook)
            try:
                env = am_env(am.url, tmp_path / "state.sqlite")
                run = dnswatch("run", "--prometheus-url", prom.url, "--at", at, env=env)
                assert run.returncode == 0, run.stderr
                alerts = am.alerts()
                code, report = _check("--prometheus-url", prom.url, "--at", at, env=env)
            finally:
                am.stop()
    finally:
        prom.stop()
    drills = [a for a in alerts if a["labels"].get("drill") == "true"]
    assert len(drills) == 1, alerts
    labels = drills[0]["labels"]
    assert labels["alertname"] == "DNSExfiltrationDrill"
    assert labels["kind"] == "drill" and labels["namespace"] == NS
    assert labels["domain"] == "dnswatch-drill.invalid"
    # Nothing else pages: the drill is not a real incident too.
    assert all(a["labels"].get("drill") == "true" for a in alerts)
    assert code == 0 and report["seen"], report
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["delivery"]["ok"] is True and "alertmanager" in stages["delivery"]["detail"]
    # The end-to-end delay: from the marker in the names to the scan that saw it.
    assert report["drill"]["delay_seconds"] == pytest.approx(300, abs=60)


def test_a_drill_in_flow_lines_is_recognised_and_checked(tmp_path: Path) -> None:
    flows, _ = _history(tmp_path, f"drill,at={DRILL_AT}m,source={NS}", flows=True)
    proc = dnswatch("flows", str(flows), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    found = [f for f in json.loads(proc.stdout)["findings"] if f["kind"] == "drill"]
    assert len(found) == 1 and found[0]["severity"] == "warning"
    assert found[0]["evidence"]["drill"]["marker"].startswith("dwdrill-")
    assert not [
        f
        for f in json.loads(proc.stdout)["findings"]
        if f["severity"] != "info" and f["kind"] != "drill"
    ]
    code, report = _check("--flows", str(flows), "--state", str(tmp_path / "none.sqlite"))
    assert code == 0 and report["seen"]


def _stage_failed(report: dict[str, Any]) -> str | None:
    return report["failed_stage"]


def test_check_names_a_missing_hubble_metric(tmp_path: Path) -> None:
    path = tmp_path / "other.prom"
    path.write_text("# TYPE node_load1 gauge\nnode_load1 0.5\n")
    code, report = _check("--metrics-file", str(path))
    assert code == 6 and _stage_failed(report) == "hubble_metric"
    assert "scrape" in report["stages"][0]["detail"]


def test_check_names_a_missing_query_label(tmp_path: Path) -> None:
    path = tmp_path / "noquery.prom"
    path.write_text(
        "# TYPE hubble_dns_queries_total counter\n"
        'hubble_dns_queries_total{source="payments/api-7d9f8b7c6-x2x4q",qtypes="A",rcode=""} 5\n'
    )
    code, report = _check("--metrics-file", str(path))
    assert code == 6 and _stage_failed(report) == "query_label"


def test_check_names_the_dns_proxy_when_no_pod_of_the_namespace_is_seen(tmp_path: Path) -> None:
    history, _ = _history(tmp_path, "drill,at=150m,source=elsewhere")
    code, report = _check("--metrics-file", str(history))
    assert code == 6 and _stage_failed(report) == "dns_proxy"
    assert (
        "CiliumNetworkPolicy"
        in next(s for s in report["stages"] if s["stage"] == "dns_proxy")["detail"]
    )


def test_check_says_the_drill_did_not_run_when_the_namespace_is_seen(tmp_path: Path) -> None:
    history, _ = _history(tmp_path)
    code, report = _check("--metrics-file", str(history), "--namespace", "shop")
    assert code == 6 and _stage_failed(report) == "drill_queries"


def test_check_names_detection_when_the_judge_keeps_the_drill_quiet(tmp_path: Path) -> None:
    history, _ = _history(tmp_path, f"drill,at={DRILL_AT}m,source={NS}")
    config = tmp_path / "strict.yaml"
    config.write_text(
        "burst:\n  encoded_min_distinct: 200\n  short_min_distinct: 200\n"
        "names:\n  min_distinct: 200\n  critical_distinct: 400\n  secret_min_bytes: 1000\n"
    )
    code, report = _check("--metrics-file", str(history), "--config", str(config))
    assert code == 6 and _stage_failed(report) == "detection"
    assert (
        "judged quiet" in next(s for s in report["stages"] if s["stage"] == "detection")["detail"]
    )


def test_check_names_the_exporters_field_mask(tmp_path: Path) -> None:
    flows, _ = _history(tmp_path, f"drill,at={DRILL_AT}m,source={NS}", flows=True)
    masked = tmp_path / "masked.jsonl"
    with flows.open() as src, masked.open("w") as dst:
        for n, line in enumerate(src):
            if n > 2000:
                break
            obj = json.loads(line)
            obj["flow"].pop("l7", None)  # a field mask without l7
            dst.write(json.dumps(obj) + "\n")
    code, report = _check("--flows", str(masked))
    assert code == 6 and _stage_failed(report) == "exporter_fields"


def test_check_names_delivery_when_every_send_failed(tmp_path: Path) -> None:
    history, end = _history(tmp_path, f"drill,at={DRILL_AT}m,source={NS}")
    at = str(end - (180 - DRILL_AT - 5) * 60)
    with receiver(Answer(status=500, body="down")) as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")} | {
            "DNSWATCH_STATE_PATH": str(tmp_path / "state.sqlite"),
            "DNSWATCH_SLACK_WEBHOOK_URL": slack.url + "/hook",
        }
        run = dnswatch("run", "--metrics-file", str(history), "--at", at, env=env)
    assert run.returncode == 5, run.stderr  # every delivery failed: kept pending
    code, report = _check("--metrics-file", str(history), "--at", at, env=env)
    assert code == 6 and _stage_failed(report) == "delivery"
    assert "not delivered" in report["stages"][-1]["detail"]
