"""k8s/: rendered like kustomize, every built-in object valid (`kubernetes-validate --strict`),
every Cilium and Prometheus Operator object valid against its CRD schema, security asserted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from watcher.config import load_config

K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30.0"
SCHEMAS = {
    "CiliumNetworkPolicy": "ciliumnetworkpolicy_v2.json",
    "CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicy_v2.json",
    "ServiceMonitor": "servicemonitor_v1.json",
    "PrometheusRule": "prometheusrule_v1.json",
}
CLUSTER_SCOPED = {"Namespace", "CiliumClusterwideNetworkPolicy"}


def render(directory: Path) -> list[dict[str, Any]]:
    """kustomize build for what k8s/ uses: resources (files and folders), namespace, and
    `$patch: delete` patches. Anything else in a kustomization fails loudly here."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kust) - {"apiVersion", "kind", "namespace", "resources", "patches"}
    assert not unknown, f"{directory}: render() does not implement {unknown}"
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = (directory / res).resolve()
        assert path.is_relative_to(K8S), f"{res} is outside k8s/ (kustomize refuses it)"
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kust.get("patches", []):
        body = yaml.safe_load(patch["patch"])
        assert body.pop("$patch") == "delete", "only $patch: delete is implemented"
        target = patch["target"]
        before = len(docs)
        docs = [
            d
            for d in docs
            if not (d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"])
        ]
        assert len(docs) == before - 1, f"patch target {target} not found"
    ns = kust.get("namespace")
    if ns:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d["metadata"]["namespace"] = ns
            elif d["kind"] == "Namespace":
                d["metadata"]["name"] = ns
    return docs


def key(d: dict[str, Any]) -> tuple[str, str]:
    return (d["kind"], d["metadata"]["name"])


BASE = render(K8S / "base")
SERVE = render(K8S / "overlays" / "serve")
FLOWS = render(K8S / "overlays" / "flows")
RELAY = render(K8S / "overlays" / "relay")


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("folder", ["base", "overlays/serve", "overlays/flows", "overlays/relay"])
def test_render_matches_kubectl_kustomize(folder: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: render() alone checked the manifests")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / folder)], capture_output=True, text=True, check=True
    ).stdout
    theirs = sorted((d for d in yaml.safe_load_all(out) if d), key=key)
    rendered = {
        "base": BASE,
        "overlays/serve": SERVE,
        "overlays/flows": FLOWS,
        "overlays/relay": RELAY,
    }
    ours = sorted(rendered[folder], key=key)
    assert [key(d) for d in theirs] == [key(d) for d in ours]
    assert theirs == ours


def test_base_and_overlay_hold_what_each_mode_needs() -> None:
    assert {k for k, _ in map(key, BASE)} == {
        "Namespace", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "CronJob",
        "CiliumNetworkPolicy",
    }  # fmt: skip
    kinds = [k for k, _ in map(key, SERVE)]
    assert "CronJob" not in kinds
    for kind in ("Deployment", "Service", "ServiceMonitor", "PrometheusRule"):
        assert kind in kinds
    assert not [d for d in BASE + SERVE if d["kind"] == "Secret"], "no Secret is applied"


def validation_failures(docs: list[dict[str, Any]]) -> list[str]:
    """Every built-in object checked by kubernetes-validate (strict), every Cilium and
    Prometheus Operator object against its CRD schema (shared with the chart's tests)."""
    failures = []
    for d in docs:
        name = f"{d['kind']} {d['metadata']['name']}"
        if d["kind"] in SCHEMAS:
            schema = json.loads((ROOT / "tests" / "schemas" / SCHEMAS[d["kind"]]).read_text())
            failures += [
                f"{name}: {e.message} at {list(e.path)}"
                for e in jsonschema.Draft7Validator(schema).iter_errors(d)
            ]
            continue
        try:
            kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{name}: {exc.message}")
    return failures


def test_every_object_is_valid() -> None:
    docs = BASE + SERVE + FLOWS + RELAY
    assert not validation_failures(docs)
    assert {d["kind"] for d in docs} & set(SCHEMAS) == {
        "CiliumNetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    }


def pod_specs() -> dict[str, dict[str, Any]]:
    cron = by_kind(BASE, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    deploy = by_kind(SERVE, "Deployment")["spec"]["template"]["spec"]
    daemon = by_kind(FLOWS, "DaemonSet")["spec"]["template"]["spec"]
    relay = by_kind(RELAY, "Deployment")["spec"]["template"]["spec"]
    return {"CronJob": cron, "Deployment": deploy, "DaemonSet": daemon, "Relay": relay}


@pytest.mark.parametrize("workload", ["CronJob", "Deployment", "DaemonSet", "Relay"])
def test_the_pod_is_locked_down(workload: str) -> None:
    problems = lockdown_problems(pod_specs()[workload])
    assert not problems, problems


def lockdown_problems(spec: dict[str, Any]) -> list[str]:
    """What in a pod spec is not locked down (shared with the chart's tests)."""
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("service account token mounted")
    psc = spec["securityContext"]
    if not psc.get("runAsNonRoot") or psc.get("runAsUser", 0) == 0:
        problems.append("pod may run as root")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccomp not RuntimeDefault")
    volumes = {v["name"]: v for v in spec["volumes"]}
    for c in spec["containers"]:
        sc = c["securityContext"]
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{c['name']}: root filesystem writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: privilege escalation allowed")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            problems.append(f"{c['name']}: capabilities not all dropped")
        if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{c['name']}: seccomp not RuntimeDefault")
        if not c.get("resources", {}).get("requests") or not c["resources"].get("limits"):
            problems.append(f"{c['name']}: no resources")
        for m in c["volumeMounts"]:
            v = volumes[m["name"]]
            writable = not m.get("readOnly")
            if "hostPath" in v and writable:
                problems.append(f"{c['name']}: hostPath {m['mountPath']} mounted writable")
            if writable and "emptyDir" not in v and "persistentVolumeClaim" not in v:
                problems.append(f"{c['name']}: writable mount {m['mountPath']} not emptyDir/PVC")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        if "/tmp" not in mounts:
            problems.append(f"{c['name']}: /tmp not on an emptyDir")
    return problems


def test_the_cronjob_runs_one_cycle_at_a_time() -> None:
    cron = by_kind(BASE, "CronJob")["spec"]
    job = cron["jobTemplate"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["startingDeadlineSeconds"] > 0
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    assert job["backoffLimit"] <= 2 and job["activeDeadlineSeconds"] < 300  # < the interval
    c = job["template"]["spec"]["containers"][0]
    assert c["args"][0] == "run" and "--config" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["DNSWATCH_SLACK_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True and ref["name"] == "dnswatch-slack"


def test_the_configmap_is_a_valid_watcher_config() -> None:
    text = by_kind(BASE, "ConfigMap")["data"]["config.yaml"]
    path = K8S / "base" / ".config-check.yaml"
    try:
        path.write_text(text)
        cfg = load_config(path, environ={})
    finally:
        path.unlink(missing_ok=True)
    mounts = pod_specs()["CronJob"]["containers"][0]["volumeMounts"]
    state_dir = next(m["mountPath"] for m in mounts if m["name"] == "state")
    assert cfg.state.path.startswith(state_dir + "/")
    assert cfg.prometheus.url and "svc.cluster.local" in cfg.prometheus.url
    assert "hooks.slack.com" not in text and "xoxb" not in text  # no secret in the ConfigMap


def test_the_secret_is_only_an_example() -> None:
    (secret,) = yaml.safe_load_all((K8S / "base" / "secret.example.yaml").read_text())
    assert "REPLACE" in secret["stringData"]["webhook-url"]
    assert (
        "secret.example.yaml"
        not in (K8S / "base" / "kustomization.yaml")
        .read_text()
        .split("resources:")[1]
        .split("#")[0]
    )


def test_the_watchers_own_policy_allows_only_what_it_needs() -> None:
    cnp = by_kind(BASE, "CiliumNetworkPolicy")["spec"]
    assert cnp["endpointSelector"]["matchLabels"] == {"app.kubernetes.io/name": "dnswatch"}
    egress = cnp["egress"]
    assert all(r.get("toPorts") for r in egress), "a rule without ports allows every port"
    dns = [r for r in egress if any(p["port"] == "53" for p in r["toPorts"][0]["ports"])]
    assert dns and dns[0]["toEndpoints"][0]["matchLabels"]["k8s:k8s-app"] == "kube-dns"
    names = dns[0]["toPorts"][0]["rules"]["dns"]
    assert {"matchName": "hooks.slack.com"} in names
    fqdn = [r for r in egress if "toFQDNs" in r]
    assert fqdn and {"matchName": "hooks.slack.com"} in fqdn[0]["toFQDNs"]
    assert fqdn[0]["toPorts"][0]["ports"] == [{"port": "443", "protocol": "TCP"}]
    ports = {p["port"] for r in egress for p in r["toPorts"][0]["ports"]}
    assert ports == {"53", "9090", "9093", "443"}
    assert "ingress" not in cnp  # the CronJob takes no connections


def test_serve_is_scraped_and_probed_on_its_metrics_port() -> None:
    deploy = by_kind(SERVE, "Deployment")["spec"]
    c = deploy["template"]["spec"]["containers"][0]
    assert c["args"][0] == "serve"
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
    assert c["args"][c["args"].index("--listen") + 1].endswith(f":{port}")
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deploy["replicas"] == 1 and deploy["strategy"]["type"] == "Recreate"
    svc = by_kind(SERVE, "Service")["spec"]
    mon = by_kind(SERVE, "ServiceMonitor")["spec"]
    assert mon["endpoints"][0]["port"] == svc["ports"][0]["name"] == "metrics"
    labels = deploy["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["selector"].items())
    assert all(labels.get(k) == v for k, v in mon["selector"]["matchLabels"].items())
    ingress = [d for d in SERVE if d["kind"] == "CiliumNetworkPolicy" and "ingress" in d["spec"]]
    assert ingress and {p["port"] for r in ingress[0]["spec"]["ingress"] for p in
                        r["toPorts"][0]["ports"]} == {str(port)}  # fmt: skip


def test_generated_copies_are_fresh() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_build", K8S / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for path, make in mod.OUTPUTS.items():
        assert path.read_text() == make(), f"{path.name} is stale: run `make generate`"
    cm = by_kind([d for d in SERVE if d["metadata"]["name"].endswith("dashboard")], "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["hubble-dns.json"])["uid"] == "hubble-dns-watcher"


def test_the_manifests_run_the_image_the_dockerfile_builds() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for spec in pod_specs().values() for c in spec["containers"]}
    assert images == {f"ghcr.io/hubble-dns-watcher/dnswatch:{version}"}
    docker = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", docker, re.M)
    assert bases and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", bases[0])
    assert re.search(r"^USER 10001:10001$", docker, re.M)
    assert re.search(r'^ENTRYPOINT \["dnswatch"\]$', docker, re.M)
    uid = {spec["securityContext"]["runAsUser"] for spec in pod_specs().values()}
    assert uid == {10001}


def test_the_dns_visibility_policy_is_valid_and_denies_nothing() -> None:
    (ccnp,) = yaml.safe_load_all(
        (K8S / "dns-visibility" / "ciliumclusterwidenetworkpolicy.yaml").read_text()
    )
    schema = json.loads((ROOT / "tests" / "schemas" / SCHEMAS[ccnp["kind"]]).read_text())
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(ccnp)]
    assert not errors, errors
    assert ccnp["spec"]["enableDefaultDeny"] == {"egress": False, "ingress": False}
    assert ccnp["spec"]["endpointSelector"] == {}
    assert ccnp["spec"]["egress"][0]["toPorts"][0]["rules"]["dns"] == [{"matchPattern": "*"}]


def test_the_flow_daemonset_reads_the_nodes_exporter_file_read_only_beside_the_cronjob() -> None:
    kinds = {k for k, _ in map(key, FLOWS)}
    assert {"CronJob", "DaemonSet", "Service", "ServiceMonitor"} <= kinds
    ds = by_kind(FLOWS, "DaemonSet")["spec"]["template"]["spec"]
    c = ds["containers"][0]
    args = c["args"]
    assert args[0] == "flows" and "--notify" in args and "--position-file" in args
    follow = args[args.index("--follow") + 1]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    hubble = next(p for p in mounts if follow.startswith(p + "/"))
    assert mounts[hubble]["readOnly"] is True
    volumes = {v["name"]: v for v in ds["volumes"]}
    assert volumes[mounts[hubble]["name"]]["hostPath"]["path"] == hubble
    position = args[args.index("--position-file") + 1]
    state = {e["name"]: e.get("value") for e in c["env"]}["DNSWATCH_STATE_PATH"]
    for path in (position, state):
        home = next(p for p in mounts if path.startswith(p + "/"))
        assert "emptyDir" in volumes[mounts[home]["name"]], path
    assert ds["tolerations"] == [{"operator": "Exists"}]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
    assert args[args.index("--listen") + 1].endswith(f":{port}")
    mon = by_kind([d for d in FLOWS if d["metadata"]["name"] == "dnswatch-flows"], "ServiceMonitor")
    assert mon["spec"]["endpoints"][0]["port"] == "metrics"


def test_the_relay_follower_is_one_unprivileged_deployment_reaching_only_relay() -> None:
    deploy = by_kind(RELAY, "Deployment")["spec"]
    spec = deploy["template"]["spec"]
    assert deploy["replicas"] == 1 and deploy["strategy"]["type"] == "Recreate"
    assert not any("hostPath" in v for v in spec["volumes"]), "no hostPath"
    c = spec["containers"][0]
    args = c["args"]
    assert args[0] == "flows" and "--follow" in args and "--notify" in args
    assert args[args.index("--relay") + 1] == "hubble-relay.kube-system.svc.cluster.local:80"
    checkpoint = args[args.index("--checkpoint") + 1]
    volumes = {v["name"]: v for v in spec["volumes"]}
    home = next(m for m in c["volumeMounts"] if checkpoint.startswith(m["mountPath"] + "/"))
    claim = volumes[home["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim in {d["metadata"]["name"] for d in RELAY if d["kind"] == "PersistentVolumeClaim"}
    assert claim != "dnswatch-state"  # not the CronJob's ReadWriteOnce volume
    assert volumes["relay-tls"]["secret"]["optional"] is True
    policies = [d for d in RELAY if d["kind"] == "CiliumNetworkPolicy"]
    egress = [r for p in policies for r in p["spec"].get("egress", [])]
    ports = {p["port"] for r in egress for p in r["toPorts"][0]["ports"]}
    assert ports == {"53", "9090", "9093", "443", "4245"}
    to_relay = [r for r in egress if r["toPorts"][0]["ports"][0]["port"] == "4245"]
    assert to_relay[0]["toEndpoints"][0]["matchLabels"]["k8s:k8s-app"] == "hubble-relay"
    mon = by_kind([d for d in RELAY if d["metadata"]["name"] == "dnswatch-relay"], "ServiceMonitor")
    svc = by_kind([d for d in RELAY if d["metadata"]["name"] == "dnswatch-relay"], "Service")
    assert mon["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
