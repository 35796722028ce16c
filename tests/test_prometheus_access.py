"""Talking to Prometheus as deployments do: label namings, auth, tenant headers, retries."""

from __future__ import annotations

import base64
import http.server
import io
import os
import shutil
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from tests.conftest import alerts, dnswatch, scan_json
from tests.promserver import PrometheusServer
from watcher.simulate import Cluster, Pod, add_incident, write_openmetrics

pytestmark = pytest.mark.prometheus
START = 1_780_000_000
TOKEN = "s3cr3t-token-value"
BASIC = "Basic " + base64.b64encode(b"watcher:pa55word").decode()


def small_cluster() -> tuple[Cluster, str]:
    c = Cluster(minutes=90, start=START)
    rng = np.random.default_rng(4)
    c.pods.append(Pod("web", "front-7d9f8b7c6-x2x4q", 0, 0, 90, ["api.github.com"], np.ones(1), 10))
    src = add_incident(c, "tunnel", rng, domain="t.lc.example", at=70, duration=15, rate=10)
    return c, src


@pytest.fixture(scope="module")
def labels_context_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    buf = io.StringIO()
    write_openmetrics(small_cluster()[0], buf, context="labels")
    server = PrometheusServer(tmp_path_factory.mktemp("prom-lc"), buf.getvalue())
    yield server
    server.stop()


def test_labels_context_works_with_the_default_config(
    labels_context_prom: PrometheusServer,
) -> None:
    report = scan_json("--prometheus-url", labels_context_prom.url, "--at", str(START + 85 * 60))
    [f] = alerts(report)
    assert f["source"] == small_cluster()[1] and f["domain"] == "lc.example"


def test_labels_context_from_a_metrics_file_works_with_the_default_config(tmp_path: Path) -> None:
    """The file source settles on labelsContext for its read (the config is not changed)."""
    path = tmp_path / "lc.om"
    with path.open("w", encoding="utf-8") as out:
        write_openmetrics(small_cluster()[0], out, context="labels")
    report = scan_json("--metrics-file", str(path), "--at", str(START + 85 * 60))
    [f] = alerts(report)
    assert f["source"] == small_cluster()[1] and f["domain"] == "lc.example"


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A gateway in front of Prometheus: checks the bearer token and tenant header, can fail."""

    upstream = ""
    fail_first = 0
    seen: ClassVar[list[dict[str, str]]] = []

    def _forward(self) -> None:
        type(self).seen.append(dict(self.headers))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_error(503)
            return
        if self.headers.get("Authorization") not in (f"Bearer {TOKEN}", BASIC):
            self.send_error(401)
            return
        if self.headers.get("X-Scope-OrgID") != "tenant-a":
            self.send_error(400, "no tenant")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(
            self.upstream + self.path, data=body or None, method=self.command
        )
        if body:
            req.add_header("Content-Type", self.headers["Content-Type"])
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        pass


def _serve(upstream: str, context: ssl.SSLContext | None = None) -> http.server.HTTPServer:
    _Proxy.upstream, _Proxy.fail_first, _Proxy.seen = upstream, 0, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if context else "http"
    _Proxy.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    return server


@pytest.fixture()
def proxy(labels_context_prom: PrometheusServer) -> Iterator[type[_Proxy]]:
    server = _serve(labels_context_prom.url)
    yield _Proxy
    server.shutdown()


@pytest.fixture()
def tls_proxy(
    labels_context_prom: PrometheusServer, tmp_path: Path
) -> Iterator[tuple[type[_Proxy], Path]]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _serve(labels_context_prom.url, context)
    yield _Proxy, cert
    server.shutdown()


def test_bearer_token_file_and_tenant_header(proxy: type[_Proxy], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    report = scan_json(
        "--prometheus-url",
        proxy.url,
        "--at",
        str(START + 85 * 60),  # type: ignore[attr-defined]
        "--bearer-token-file",
        str(token),
        "--header",
        "X-Scope-OrgID=tenant-a",
    )
    assert alerts(report)


def test_token_from_env_and_header_from_config(proxy: type[_Proxy], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prometheus:\n  headers:\n    X-Scope-OrgID: tenant-a\n")
    env = {**os.environ, "DNSWATCH_PROMETHEUS_TOKEN": TOKEN}
    report = scan_json(
        "--prometheus-url",
        proxy.url,
        "--at",
        str(START + 85 * 60),  # type: ignore[attr-defined]
        "--config",
        str(cfg),
        env=env,
    )
    assert alerts(report)


def test_a_rejected_token_is_one_line_and_never_echoed(proxy: type[_Proxy]) -> None:
    env = {**os.environ, "DNSWATCH_PROMETHEUS_TOKEN": "wrong-" + TOKEN}
    proc = dnswatch(
        "scan",
        "--prometheus-url",
        proxy.url,
        "--header",
        "X-Scope-OrgID=tenant-a",  # type: ignore[attr-defined]
        env=env,
    )
    assert proc.returncode == 3 and "HTTP 401" in proc.stderr
    assert TOKEN not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_5xx_answers_are_retried_a_bounded_number_of_times(proxy: type[_Proxy]) -> None:
    env = {**os.environ, "DNSWATCH_PROMETHEUS_TOKEN": TOKEN}
    proxy.fail_first = 2  # two 503s, then the real answer: the default 2 retries absorb them
    report = scan_json(
        "--prometheus-url",
        proxy.url,
        "--at",
        str(START + 85 * 60),  # type: ignore[attr-defined]
        "--header",
        "X-Scope-OrgID=tenant-a",
        env=env,
    )
    assert alerts(report)
    proxy.fail_first, proxy.seen = 1000, []
    proc = dnswatch("scan", "--prometheus-url", proxy.url, env=env)  # type: ignore[attr-defined]
    assert proc.returncode == 3 and len(proxy.seen) == 3  # one try and two retries, then stop


def test_basic_auth_from_env(proxy: type[_Proxy]) -> None:
    env = {
        **os.environ,
        "DNSWATCH_PROMETHEUS_USERNAME": "watcher",
        "DNSWATCH_PROMETHEUS_PASSWORD": "pa55word",
    }
    report = scan_json(
        "--prometheus-url",
        proxy.url,
        "--at",
        str(START + 85 * 60),  # type: ignore[attr-defined]
        "--header",
        "X-Scope-OrgID=tenant-a",
        env=env,
    )
    assert alerts(report)


def test_tls_with_a_private_ca(tls_proxy: tuple[type[_Proxy], Path]) -> None:
    proxy, ca = tls_proxy
    env = {**os.environ, "DNSWATCH_PROMETHEUS_TOKEN": TOKEN}
    args = [
        "--prometheus-url",
        proxy.url,
        "--at",
        str(START + 85 * 60),  # type: ignore[attr-defined]
        "--header",
        "X-Scope-OrgID=tenant-a",
    ]
    untrusted = dnswatch("scan", *args, env=env)
    assert untrusted.returncode == 3 and "TLS error" in untrusted.stderr
    assert alerts(scan_json(*args, "--ca-file", str(ca), env=env))
    insecure = dnswatch("scan", *args, "--insecure", "--format", "json", env=env)
    assert insecure.returncode == 0 and insecure.stderr == ""
