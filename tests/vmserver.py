"""A real VictoriaMetrics (Debian's victoria-metrics) on 127.0.0.1, the history loaded through
its Prometheus import API: the second backend big clusters use behind the same HTTP API."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import requests

from tests.promserver import PrometheusServer, free_port, require

_SAMPLE = re.compile(r"^(?P<series>[^#\s][^ ]*(?:\{.*\})?) (?P<value>\S+) (?P<ts>\d+(?:\.\d+)?)$")


def prometheus_text(openmetrics: str) -> str:
    """OpenMetrics (timestamps in seconds) to the text format VictoriaMetrics imports
    (timestamps in milliseconds); comments and # EOF dropped."""
    out = []
    for line in openmetrics.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value, ts = line.rsplit(" ", 2)
        out.append(f"{head} {value} {int(float(ts) * 1000)}")
    return "\n".join(out) + "\n"


class VictoriaMetricsServer(PrometheusServer):
    """Queried and stopped like PrometheusServer (same HTTP API); started and loaded its own way."""

    # VictoriaMetrics' increase() counts the first value of a series born inside the window.
    increase_counts_new_series = True

    def __init__(self, workdir: Path, history: str | None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "vm.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                require("victoria-metrics"),
                f"-storageDataPath={workdir / 'vm-data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",  # a history, not a live scrape: no hidden tail
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError((workdir / "vm.log").read_text())
            time.sleep(0.2)
        if history is not None:
            self.load(history)

    def load(self, openmetrics: str) -> None:
        data = prometheus_text(openmetrics).encode()
        step = 8 << 20
        start = 0
        while start < len(data):  # whole lines, in chunks
            end = (
                data.rfind(b"\n", start, start + step) + 1
                if start + step < len(data)
                else len(data)
            )
            r = requests.post(
                f"{self.url}/api/v1/import/prometheus", data=data[start:end], timeout=300
            )
            r.raise_for_status()
            start = end
        requests.get(f"{self.url}/internal/force_flush", timeout=60).raise_for_status()
