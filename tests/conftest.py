from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.histories import Composite, composite
from tests.promserver import PrometheusServer, history_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cluster_history() -> Composite:
    return composite()


@pytest.fixture(scope="session")
def cluster_prom(
    cluster_history: Composite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        tmp_path_factory.mktemp("prom-cluster"), history_text(cluster_history.cluster)
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_file(cluster_history: Composite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("file") / "cluster.om"
    path.write_text(history_text(cluster_history.cluster), encoding="utf-8")
    return path


def dnswatch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed console entry point exactly as users do."""
    return subprocess.run(
        [sys.executable, "-m", "watcher.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def scan_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = dnswatch("scan", *args, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def alerts(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] in ("warning", "critical")]
