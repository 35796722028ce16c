"""Long work shows progress on a terminal only; run and serve log one structured line a cycle."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.histories import Composite
from tests.promserver import PrometheusServer

pytestmark = pytest.mark.prometheus


def _on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run dnswatch with stderr on a pseudo-terminal (stdout a pipe): what a person sees."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher.cli", *args],
        stdout=subprocess.PIPE,
        stderr=sub,
        cwd=ROOT,
        text=True,
    )
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read() if proc.stdout else ""
    os.close(main)
    return proc.wait(60), out, b"".join(chunks).decode(errors="replace")


def test_a_scan_on_a_terminal_shows_its_steps_then_clears_them(
    cluster_prom: PrometheusServer, cluster_history: Composite
) -> None:
    at = str(cluster_history.at(412))
    code, out, err = _on_a_terminal(
        "scan", "--prometheus-url", cluster_prom.url, "--at", at, "--format", "json"
    )
    assert code == 0 and json.loads(out)["findings"]
    assert "[1/5] checking the metric" in err and "counting distinct names" in err
    assert err.endswith("\r\x1b[K")  # the line is cleared: nothing left behind
    code, out, err = _on_a_terminal(
        "scan", "--prometheus-url", cluster_prom.url, "--at", at, "--format", "json", "--quiet"
    )
    assert code == 0 and err == ""


def test_no_progress_when_stderr_is_not_a_terminal(
    cluster_prom: PrometheusServer, cluster_history: Composite
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "watcher.cli",
            "scan",
            "--prometheus-url",
            cluster_prom.url,
            "--at",
            str(cluster_history.at(412)),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == ""


def test_run_logs_one_json_line_per_cycle(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
    env |= {"DNSWATCH_STATE_PATH": str(tmp_path / "s.sqlite"), "DNSWATCH_LOG_FORMAT": "json"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "watcher.cli",
            "run",
            "--prometheus-url",
            cluster_prom.url,
            "--at",
            str(cluster_history.at(356)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stderr.strip().splitlines()]
    cycles = [r for r in lines if r["msg"] == "dnswatch run"]
    assert len(cycles) == 1
    assert [r["msg"] for r in lines if r is not cycles[0]] == [
        "no Slack or Alertmanager configured: incidents recorded, nothing sent"
    ]
    rec = cycles[0]
    assert rec["level"] == "info" and rec["msg"] == "dnswatch run" and rec["ok"] is True
    assert rec["alerts"] == 5 and rec["events"] == {"firing": 5} and rec["cycle_seconds"] > 0
