"""Flow findings reach people by the same path as scan's: incidents in the state file, Slack
(a real HTTP receiver on 127.0.0.1), a real Alertmanager; the follower's own /metrics."""

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

from tests.conftest import ROOT, dnswatch
from tests.flowlines import exchange, write
from tests.promserver import free_port
from tests.receivers import receiver
from tests.test_alertmanager import Alertmanager

HOOK = "/services/T000/B000/flowhook"
T0 = 1_780_000_000.0
SOURCE = "shop/api-7d9f8b7c6-x2x4q"


def tunnel_lines(domain: str = "t.evil.example", n: int = 80) -> list[str]:
    out: list[str] = []
    for i in range(n):
        q = f"{(i * 2654435761) % (1 << 64):016x}{'5eed' * 9}{i:03x}.{domain}"
        out += exchange(T0 + i * 3, SOURCE, q, "TXT", rrtypes=["TXT"])
    return out


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
    return base | {"DNSWATCH_STATE_PATH": str(tmp_path / "state.sqlite"), **extra}


def test_a_flow_incident_is_sent_to_slack_once_across_runs(tmp_path: Path) -> None:
    path = write(tmp_path / "events.log", tunnel_lines())
    with receiver() as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        for _ in range(2):
            proc = dnswatch("flows", str(path), "--notify", "--format", "json", env=e)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["findings"]
        posts = slack.posts(HOOK)
        assert len(posts) == 1, [p.body for p in posts]
        body = json.dumps(posts[0].json())
        assert SOURCE in body and "evil.example" in body and "CRITICAL" in body
        assert "dnswatch flows:" in proc.stderr


@pytest.mark.prometheus
def test_a_flow_incident_reaches_a_real_alertmanager(tmp_path: Path) -> None:
    with receiver() as hook:
        am = Alertmanager(tmp_path, hook)
        try:
            path = write(tmp_path / "events.log", tunnel_lines())
            e = env(tmp_path, DNSWATCH_ALERTMANAGER_URL=am.url)
            proc = dnswatch("flows", str(path), "--notify", env=e)
            assert proc.returncode == 0, proc.stderr
            alerts = am.alerts()
            assert [(a["labels"]["workload"], a["labels"]["domain"]) for a in alerts] == [
                ("shop/api", "evil.example")
            ]
            assert alerts[0]["annotations"]["pods"] == SOURCE
            assert alerts[0]["labels"]["kind"] in ("subdomain_burst", "suspicious_name")
            hook.wait_for("/am", 1, timeout=30)
        finally:
            am.stop()


def test_the_follower_serves_flow_metrics_per_source_and_domain(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    log.write_text("")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watcher.cli",
            "flows",
            "--follow",
            str(log),
            "--listen",
            f"127.0.0.1:{port}",
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        write(log, tunnel_lines())
        deadline = time.time() + 30
        text = ""
        while time.time() < deadline:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                if 'domain="evil.example"' in text:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert 'dnswatch_flow_pair_distinct_names{domain="evil.example",kind=' in text
        assert f'source="{SOURCE}"' in text
        assert 'dnswatch_flow_lines{outcome="dns"} 160.0' in text
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
