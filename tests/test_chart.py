"""k8s/chart/hubble-dns-watcher: `helm lint --strict`, `helm template` for every mode and for a
values file that sets everything; every rendered object valid (kubernetes-validate strict, the
CRD schemas); the schema refuses bad values; the defaults locked down; and each mode renders the
same objects as its kustomize overlay, names and Helm's own labels aside (one source of truth)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_k8s import BASE, FLOWS, RELAY, SERVE, lockdown_problems, validation_failures
from watcher.config import Config

CHART = ROOT / "k8s" / "chart" / "hubble-dns-watcher"
EXAMPLES = ROOT / "examples" / "helm"
EVERYTHING = ROOT / "tests" / "fixtures" / "helm-everything.yaml"
MODES = ("cronjob", "service", "daemonset", "relay")
# Labels and annotations Helm adds, and the names the chart gives what rules/ and dashboards/
# name themselves in the overlays.
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}
RENAMED = {
    ("PrometheusRule", "dnswatch"): "hubble-dns-watcher",
    ("ConfigMap", "dnswatch-dashboard"): "hubble-dns-watcher-dashboard",
}
# What the chart's values must set off to render what each overlay holds.
AS_OVERLAY = {
    "cronjob": (BASE, ["prometheusRule.enabled=false", "dashboard.enabled=false"]),
    "service": (SERVE, []),
    "daemonset": (FLOWS, ["dashboard.enabled=false"]),
    "relay": (RELAY, ["prometheusRule.enabled=false", "dashboard.enabled=false"]),
}


def helm() -> str:
    found = shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")
    if found is None:
        pytest.fail(
            "helm not installed: `make test` puts it in .venv/bin (scripts/install_helm.py)"
        )
    return found


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120)


def template(*args: str, release: str = "dnswatch") -> list[dict[str, Any]]:
    proc = run_helm("template", release, str(CHART), "--namespace", "dnswatch", *args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _strip(node: Any, parent: str = "") -> Any:
    """Helm's labels out of every label set and selector; pod templates' checksum annotation."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if parent in ("labels", "matchLabels", "selector") and k in HELM_LABELS:
                continue
            if parent == "annotations" and k.startswith("checksum/"):
                continue
            v = _strip(v, k)
            if k == "annotations" and v == {}:
                continue
            out[k] = v
        return out
    if isinstance(node, list):
        return [_strip(v, parent) for v in node]
    return node


def comparable(d: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> the object as compared: names mapped, metadata's namespace and labels
    aside (the app name label rules/ gives its PrometheusRule differs), data parsed."""
    d = _strip(d)
    kind, name = d["kind"], d["metadata"]["name"]
    name = RENAMED.get((kind, name), name)
    meta = {k: v for k, v in d["metadata"].items() if k not in ("name", "namespace", "labels")}
    body = {k: v for k, v in d.items() if k != "metadata"}
    if kind == "ConfigMap":
        body["data"] = {
            k: json.loads(v) if k.endswith(".json") else yaml.safe_load(v)
            for k, v in body["data"].items()
        }
    return (kind, name), {**body, "metadata": meta}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_renders_what_its_overlay_holds(mode: str) -> None:
    overlay, sets = AS_OVERLAY[mode]
    chart = dict(
        map(comparable, template("--set", f"mode={mode}", *(x for s in sets for x in ("--set", s))))
    )
    theirs = dict(comparable(d) for d in overlay if d["kind"] != "Namespace")
    assert sorted(chart) == sorted(theirs)
    for k in theirs:
        assert chart[k] == theirs[k], k


def test_lint_strict_for_every_mode_every_example_and_everything() -> None:
    for args in (
        [],
        *(["--set", f"mode={m}"] for m in MODES),
        *(["-f", str(EXAMPLES / f"values-{m}.yaml")] for m in MODES),
        ["-f", str(EVERYTHING)],
    ):
        proc = run_helm("lint", "--strict", str(CHART), *args)
        assert proc.returncode == 0, (args, proc.stdout + proc.stderr)


def rendered_sets() -> dict[str, list[dict[str, Any]]]:
    sets = {m: template("-f", str(EXAMPLES / f"values-{m}.yaml")) for m in MODES}
    sets["everything"] = template("-f", str(EVERYTHING), release="sec")
    sets["drill job"] = template("--set", "drill.enabled=true")
    return sets


RENDERED = rendered_sets() if shutil.which("helm", path=str(Path(sys.executable).parent)) else {}


def test_every_rendered_object_is_valid() -> None:
    assert RENDERED, "helm not installed: `make test` puts it in .venv/bin"
    failures, kinds = [], set()
    for name, docs in RENDERED.items():
        kinds |= {d["kind"] for d in docs}
        placed = [{**d, "metadata": {**d["metadata"], "namespace": "dnswatch"}} for d in docs]
        failures += [f"{name}: {f}" for f in validation_failures(placed)]
    assert not failures, failures
    assert kinds >= {
        "CronJob", "Deployment", "DaemonSet", "Job", "Service", "ServiceMonitor",
        "PrometheusRule", "CiliumNetworkPolicy", "ConfigMap", "PersistentVolumeClaim",
    }  # fmt: skip


def test_everything_is_wired_where_it_belongs() -> None:
    docs = RENDERED["everything"]
    relay = next(d for d in docs if d["kind"] == "Deployment")
    pod = relay["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["DNSWATCH_PROMETHEUS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "mimir-auth",
        "key": "token",
    }
    assert env["DNSWATCH_PROMETHEUS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert env["DNSWATCH_PROMETHEUS__CA_FILE"]["value"] == "/etc/dnswatch/prometheus-ca/ca.crt"
    assert env["DNSWATCH_SLACK_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "sec-slack"
    assert env["DNSWATCH_SLACK_CHANNEL"]["value"] == "#sec-alerts"
    assert "DNSWATCH_SLACK_WEBHOOK_URL" not in env
    assert env["DNSWATCH_ALERTMANAGER_URL"]["valueFrom"]["secretKeyRef"]["name"] == "am-url"
    assert {"--tls", "--tls-cert", "--tls-key"} <= set(c["args"])
    assert c["image"] == "registry.example.com/sec/dnswatch:0.1.0-custom"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"} and pod["tolerations"]
    assert pod["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert relay["spec"]["template"]["metadata"]["labels"]["team"] == "security"
    cfg = next(d for d in docs if d["metadata"]["name"] == "sec-dnswatch-config")
    parsed = Config(**yaml.safe_load(cfg["data"]["config.yaml"]))  # a valid watcher config
    assert parsed.prometheus.headers == {"X-Scope-OrgID": "prod"}
    pvcs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert pvcs["sec-dnswatch-state"]["storageClassName"] == "fast-ssd"
    assert pvcs["sec-dnswatch-relay-state"]["storageClassName"] == ""
    rules = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PrometheusRule"}
    assert set(rules) == {"sec-dnswatch", "sec-dnswatch-names"}
    assert all(
        r["metadata"]["labels"]["release"] == "kube-prometheus-stack" for r in rules.values()
    )
    drill = next(d for d in docs if d["kind"] == "CronJob" and "drill" in d["metadata"]["name"])
    assert drill["spec"]["schedule"] == "0 9 * * 1"
    drill_pod = drill["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert drill_pod["containers"][0]["image"] == "registry.example.com/mirror/busybox:1.36"


def test_the_drill_job_is_the_watchers_own_drill() -> None:
    """The chart's drill is `dnswatch drill`'s (files/drill.yaml), run after install/upgrade."""
    from watcher.drill import manifests

    [job] = [d for d in RENDERED["drill job"] if d["kind"] == "Job"]
    ours, policy = manifests(Config().drill, "dnswatch")
    assert job["spec"] == ours["spec"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    [cnp] = [
        d
        for d in RENDERED["drill job"]
        if d["kind"] == "CiliumNetworkPolicy" and "drill" in d["metadata"]["name"]
    ]
    assert cnp["spec"] == policy["spec"]


@pytest.mark.parametrize("mode", MODES)
def test_the_defaults_are_locked_down(mode: str) -> None:
    docs = template("--set", f"mode={mode}")
    pods = []
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] == "CronJob":
            pods.append(spec["jobTemplate"]["spec"]["template"]["spec"])
        elif d["kind"] in ("Deployment", "DaemonSet"):
            pods.append(spec["template"]["spec"])
    assert pods
    for pod in pods:
        assert not lockdown_problems(pod), (mode, lockdown_problems(pod))
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret is installed"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set", "mode=sidecar"], "mode"),
        (["--set", "persistence.size=lots"], "size"),
        (["--set", "cronjob.schedule=sometimes"], "schedule"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "daemonset.port=99999"], "port"),
        (["--set", "surprise=1"], "surprise"),
    ],
)
def test_the_schema_refuses_a_bad_value_and_names_it(args: list[str], says: str) -> None:
    proc = run_helm("template", "dnswatch", str(CHART), *args)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert says in proc.stderr, proc.stderr


def test_notes_say_what_was_installed_and_how_to_check_it() -> None:
    proc = run_helm("install", "dnswatch", str(CHART), "--dry-run=client", "-n", "dnswatch",
                    "--set", "mode=daemonset")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "DaemonSet dnswatch-flows" in notes and "CronJob dnswatch" in notes
    assert "dnswatch drill --check" in notes
