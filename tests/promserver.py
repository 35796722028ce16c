"""A real Prometheus (Debian package) on 127.0.0.1, its TSDB backfilled with promtool."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from watcher.simulate import Cluster, write_openmetrics


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        # In CI a missing binary is a broken set-up, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail(f"{binary} not installed: .ci/run must install Debian's prometheus")
        pytest.skip(f"{binary} not installed (apt-get install prometheus)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    def __init__(
        self,
        workdir: Path,
        history: str | None,
        scrape: dict[str, str] | None = None,
        flags: list[str] | None = None,
        rules: Path | None = None,
    ) -> None:
        """`scrape`: job name -> host:port, scraped every second (honor_labels, as for a
        Pushgateway). `flags`: extra command-line flags (limits). `rules`: a rule file,
        evaluated every second."""
        self.workdir = workdir
        self.flags: list[str] = list(flags or [])  # changed before a restart by some tests
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        if history is not None:
            src = workdir / "history.om"
            src.write_text(history, encoding="utf-8")
            # One block (up to 30 days) rather than per 2 h: promtool parses the whole file again
            # for every block it writes (a 26 h history: 145 s with 2 h blocks, 34 s with one).
            self._promtool(
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=720h",
                str(src),
                str(self.data),
            )
        config = "global:\n  scrape_interval: 60s\n"
        if rules is not None:
            config += f"  evaluation_interval: 1s\nrule_files:\n  - {rules}\n"
        if scrape:
            config += "scrape_configs:\n" + "".join(
                f"  - job_name: {job}\n    scrape_interval: 1s\n    honor_labels: true\n"
                f"    static_configs:\n      - targets: ['{target}']\n"
                for job, target in scrape.items()
            )
        (workdir / "prometheus.yml").write_text(config)
        self.start()

    def _promtool(self, *args: str) -> None:
        subprocess.run([require("promtool"), *args], check=True, capture_output=True, timeout=600)

    def start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                require("prometheus"),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.flags,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"Prometheus did not start: {(self.workdir / 'prometheus.log').read_text()}"
        )

    def backfill_rules(self, start: int, end: int, *rule_files: Path) -> None:
        """Evaluate recording rules over the history (promtool), then restart to load them."""
        out = self.workdir / "rule-blocks"
        self._promtool(
            "tsdb",
            "create-blocks-from",
            "rules",
            f"--start={start}",
            f"--end={end}",
            f"--url={self.url}",
            f"--output-dir={out}",
            "--eval-interval=60s",
            *map(str, rule_files),
        )
        self.stop()
        for block in out.iterdir():
            if block.is_dir():
                shutil.move(str(block), self.data / block.name)
        self.start()

    def query(self, expr: str, at: float) -> list[dict[str, object]]:
        r = requests.get(
            f"{self.url}/api/v1/query", params={"query": expr, "time": str(at)}, timeout=30
        )
        r.raise_for_status()
        result: list[dict[str, object]] = r.json()["data"]["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def history_text(cluster: Cluster, instance: bool = False, responses: bool = False) -> str:
    buf = io.StringIO()
    write_openmetrics(cluster, buf, instance=instance, responses=responses)
    return buf.getvalue()
