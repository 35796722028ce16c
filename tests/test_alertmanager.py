"""A real Alertmanager (Debian's prometheus-alertmanager) between the watcher and a webhook
receiver on 127.0.0.1: an incident arrives once, grouped, and resolves."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import dnswatch
from tests.histories import Composite
from tests.promserver import PrometheusServer, free_port, require
from tests.receivers import Receiver, receiver
from watcher.window import workload_of

pytestmark = pytest.mark.prometheus

CONFIG = """
route:
  receiver: hook
  group_by: [alertname, workload, domain]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}/am
        send_resolved: true
"""


class Alertmanager:
    def __init__(self, workdir: Path, hook: Receiver) -> None:
        (workdir / "am.yml").write_text(CONFIG.format(url=hook.url))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "am.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                require("prometheus-alertmanager"),
                f"--config.file={workdir / 'am.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("alertmanager did not become ready")

    def alerts(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = requests.get(self.url + "/api/v2/alerts", timeout=5).json()
        return got

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def am(tmp_path: Path) -> Iterator[tuple[Alertmanager, Receiver]]:
    with receiver() as hook:
        server = Alertmanager(tmp_path, hook)
        yield server, hook
        server.stop()


def am_env(url: str, state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
    return env | {"DNSWATCH_ALERTMANAGER_URL": url, "DNSWATCH_STATE_PATH": str(state), **extra}


def notifications(hook: Receiver, source: str) -> list[tuple[str, str]]:
    """(status, severity) of each webhook notification for the source's workload."""
    out = []
    for req in hook.posts("/am"):
        body = req.json()
        if body["groupLabels"].get("workload") == workload_of(source):
            out.append((body["status"], body["alerts"][0]["labels"]["severity"]))
    return out


def test_an_incident_reaches_alertmanager_once_grouped_and_resolves(
    am: tuple[Alertmanager, Receiver],
    cluster_prom: PrometheusServer,
    cluster_history: Composite,
    tmp_path: Path,
) -> None:
    server, hook = am
    env = am_env(
        server.url,
        tmp_path / "state.sqlite",
        DNSWATCH_ALERTMANAGER__EXTRA_LABELS="{cluster: test}",
    )

    def run(minute: int) -> None:
        at = str(cluster_history.at(minute))
        proc = dnswatch("run", "--prometheus-url", cluster_prom.url, "--at", at, env=env)
        assert proc.returncode == 0, proc.stderr

    flood = cluster_history.incidents["volume flood"][0]
    run(356)
    posted = {(a["labels"]["workload"], a["labels"].get("domain")): a for a in server.alerts()}
    # The flood, three channels, and the numeric tunnel of minute 200-215 still seen as a
    # private channel (one-off names to a zone only it resolves) in the 6 h window.
    assert len(posted) == 5
    labels = posted[(workload_of(flood), None)]["labels"]
    # The channel's labels, no pod label (pods come and go under an incident): the pods are
    # an annotation.
    assert labels == {
        "alertname": "DNSExfiltrationSuspected",
        "severity": "warning",
        "kind": "high_volume",
        "namespace": "shop",
        "workload": workload_of(flood),
        "cluster": "test",
    }
    assert posted[(workload_of(flood), None)]["annotations"]["pods"] == flood
    channel = next(a for a in posted.values() if a["labels"].get("domain") == "leak-c.example")
    assert channel["labels"]["severity"] == "critical"
    assert set(channel["annotations"]) == {"summary", "description", "runbook_url", "pods"}
    assert channel["annotations"]["runbook_url"].endswith("DNSExfiltrationSuspected.md")
    hook.wait_for("/am", 4)
    # Re-posted on every run while active: Alertmanager does not notify again.
    run(360)
    run(365)
    time.sleep(4)  # past group_interval: a second notification would have gone out by now
    assert notifications(hook, flood) == [("firing", "warning")]
    # The flood ends; the watcher sends endsAt and Alertmanager sends the resolved notification.
    run(395)
    deadline = time.time() + 20
    while time.time() < deadline and len(notifications(hook, flood)) < 2:
        time.sleep(0.2)
    assert notifications(hook, flood) == [("firing", "warning"), ("resolved", "warning")]
    still = {
        (a["labels"]["workload"], a["labels"].get("domain"))
        for a in server.alerts()
        if a["status"]["state"] == "active"
    }
    assert (workload_of(flood), None) not in still and len(still) == 4


def test_an_escalation_ends_the_alert_under_the_old_severity(
    am: tuple[Alertmanager, Receiver],
    cluster_prom: PrometheusServer,
    cluster_history: Composite,
    tmp_path: Path,
) -> None:
    server, _ = am
    env = am_env(server.url, tmp_path / "s")
    for minute in (401, 402):
        at = str(cluster_history.at(minute))
        proc = dnswatch("run", "--prometheus-url", cluster_prom.url, "--at", at, env=env)
        assert proc.returncode == 0, proc.stderr
    tunnel = [a for a in server.alerts() if a["labels"].get("domain") == "tunnel-a.example"]
    active = [a["labels"]["severity"] for a in tunnel if a["status"]["state"] == "active"]
    assert active == ["critical"]


def test_an_unreachable_alertmanager_fails_the_run_and_retries_later(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    env = am_env(
        f"http://127.0.0.1:{free_port()}",
        tmp_path / "state.sqlite",
        DNSWATCH_ALERTMANAGER__RETRIES="0",
    )
    at = str(cluster_history.at(356))
    proc = dnswatch("run", "--prometheus-url", cluster_prom.url, "--at", at, env=env)
    assert proc.returncode == 5
    assert "alertmanager: ConnectionError" in proc.stderr and "Traceback" not in proc.stderr
    with receiver() as hook:
        server = Alertmanager(tmp_path, hook)
        try:
            env["DNSWATCH_ALERTMANAGER_URL"] = server.url
            at = str(cluster_history.at(358))
            proc = dnswatch("run", "--prometheus-url", cluster_prom.url, "--at", at, env=env)
            assert proc.returncode == 0, proc.stderr
            assert len(server.alerts()) == 5
        finally:
            server.stop()


def test_alertmanager_errors_never_show_url_credentials() -> None:
    from watcher.config import AlertmanagerConfig
    from watcher.errors import DeliveryError
    from watcher.notify.alertmanager import AlertmanagerChannel

    port = free_port()
    ch = AlertmanagerChannel(
        AlertmanagerConfig(url=f"http://am:s3cret@127.0.0.1:{port}", retries=0)
    )
    with pytest.raises(DeliveryError) as err:
        ch.send([])
    assert "s3cret" not in str(err.value) and f"port {port}" in str(err.value)
