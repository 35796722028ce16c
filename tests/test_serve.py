"""`dnswatch serve`: APScheduler runs the cycle, /metrics and /healthz answer, SIGTERM stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.histories import Composite
from tests.promserver import PrometheusServer, free_port
from tests.receivers import receiver

pytestmark = pytest.mark.prometheus


def wait_for_metric(url: str, needle: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        try:
            text = requests.get(url + "/metrics", timeout=2).text
            if needle in text:
                return text
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared in /metrics:\n{text[-2000:]}")


def test_serve_runs_cycles_exposes_metrics_and_stops_on_sigterm(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with receiver() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
        env |= {
            "DNSWATCH_SLACK_WEBHOOK_URL": slack.url + "/hook",
            "DNSWATCH_STATE_PATH": str(tmp_path / "state.sqlite"),
        }
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "watcher.cli", "serve",
                "--prometheus-url", cluster_prom.url,
                "--at", str(cluster_history.at(356)),
                "--listen", f"127.0.0.1:{port}",
                "--interval", "2s",
            ],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            text = wait_for_metric(url, 'dnswatch_scans_total{outcome="success"} 3.0')
            assert 'dnswatch_findings{kind="high_volume",severity="warning"} 1.0' in text
            # The dashboard's names panels: the busiest channels, bounded per window.
            names = [ln for ln in text.splitlines() if ln.startswith("dnswatch_channel_names{")]
            for window in ("short", "long"):
                rows = [ln for ln in names if f'window="{window}"' in ln]
                assert 0 < len(rows) <= 50, (window, len(rows))
            assert all('workload="' in ln and 'domain="' in ln for ln in names)
            assert 'dnswatch_notifications_total{channel="slack",outcome="sent"} 5.0' in text
            last = [ln for ln in text.splitlines() if ln.startswith("dnswatch_last_success")]
            assert float(last[0].split()[-1]) > time.time() - 60
            assert requests.get(url + "/healthz", timeout=2).status_code == 200
            assert requests.get(url + "/nope", timeout=2).status_code == 404
            # Three cycles, the incidents sent once.
            assert len(slack.posts("/hook")) == 5
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/healthz", timeout=2)


def test_healthz_turns_503_when_cycles_keep_failing(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
    env["DNSWATCH_STATE_PATH"] = str(tmp_path / "state.sqlite")
    dead = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "watcher.cli", "serve",
            "--prometheus-url", dead, "--listen", f"127.0.0.1:{port}", "--interval", "1s",
            "--log-format", "json",
        ],
        env={**env, "DNSWATCH_PROMETHEUS__RETRIES": "0", "DNSWATCH_SERVE__UNHEALTHY_AFTER": "3s"},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        text = wait_for_metric(url, 'dnswatch_scans_total{outcome="failure"} 2.0')
        assert "dnswatch_last_success_timestamp_seconds 0.0" in text
        deadline = time.time() + 20
        code = 200
        while time.time() < deadline and code == 200:
            code = requests.get(url + "/healthz", timeout=2).status_code
            time.sleep(0.3)
        assert code == 503
        body = requests.get(url + "/healthz", timeout=2).text
        assert "no successful cycle" in body or "cannot reach" in body or "Prometheus" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    # JSON logs: one object a line, what Kubernetes log pipelines parse.
    records = [json.loads(line) for line in err.strip().splitlines()]
    assert all({"time", "level", "msg"} <= set(r) for r in records)
    failed = [r for r in records if r.get("ok") is False]
    assert failed and all(r["level"] == "error" and "cannot reach" in r["error"] for r in failed)
    assert any(r["msg"] == "stopped" for r in records)
