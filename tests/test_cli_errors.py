"""Errors from outside: one line on stderr, a documented exit code, never a traceback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import dnswatch, scan_json
from tests.promserver import PrometheusServer, free_port

pytestmark = pytest.mark.prometheus


def _one_line_error(proc, code: int, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnswatch: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


class _Garbage(http.server.BaseHTTPRequestHandler):
    def _reply(self) -> None:
        status = 500 if "fail" in self.path else 200
        body = b"<html>not prometheus</html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def garbage_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def empty_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prom-empty"), None)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def no_query_label_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    lines = ["# TYPE hubble_dns_queries counter"]
    for i in range(10):
        lines.append(
            f'hubble_dns_queries_total{{source="app/web-1",qtypes="A",rcode=""}} {i + 1} '
            f"{1780000000 + i * 60}"
        )
    server = PrometheusServer(
        tmp_path_factory.mktemp("prom-noquery"), "\n".join(lines) + "\n# EOF\n"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gone_silent_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """DNS metrics for the first hour, then none (a scrape failing: sample_limit hit by a flood
    of unique names), while the agents' `up` goes on: one block up to minute 120."""
    lines = ["# TYPE hubble_dns_queries counter", "# TYPE up gauge"]
    for m in range(121):
        t = 1780000000 + m * 60
        lines.append(f'up{{job="hubble"}} 1 {t}')
        if m <= 60:
            lines.append(
                f'hubble_dns_queries_total{{source="app/web-1",query="example.com.",'
                f'qtypes="A"}} {m * 5 + 1} {t}'
            )
    server = PrometheusServer(
        tmp_path_factory.mktemp("prom-silent"), "\n".join(lines) + "\n# EOF\n"
    )
    yield server
    server.stop()


def test_a_metric_gone_silent_before_the_scan_is_a_warning(
    gone_silent_prom: PrometheusServer,
) -> None:
    at = 1780000000 + 120 * 60
    # The index still lists the labels at scan time (its block reaches minute 120): the cheap
    # check passes, and it is the scan's silent recent volume that asks for the diagnosis.
    labels = requests.get(
        f"{gone_silent_prom.url}/api/v1/labels",
        params={"match[]": 'hubble_dns_queries_total{query!=""}', "start": at - 300, "end": at},
        timeout=10,
    ).json()["data"]
    assert "query" in labels
    report = scan_json("--prometheus-url", gone_silent_prom.url, "--at", str(at))
    assert any("absent at scan time but present earlier" in w for w in report["warnings"])


def test_unreachable_prometheus_exits_3() -> None:
    port = free_port()  # nothing listens there
    proc = dnswatch("scan", "--prometheus-url", f"http://127.0.0.1:{port}", "--format", "json")
    _one_line_error(proc, 3, "cannot reach Prometheus", f"127.0.0.1:{port}")


def test_something_that_is_not_prometheus_exits_3(garbage_server: str) -> None:
    proc = dnswatch("scan", "--prometheus-url", garbage_server, "--format", "json")
    _one_line_error(proc, 3, "did not answer like a Prometheus API")
    proc = dnswatch("scan", "--prometheus-url", garbage_server + "/fail", "--format", "json")
    _one_line_error(proc, 3)


def test_missing_metric_exits_3_with_the_helm_value(empty_prom: PrometheusServer) -> None:
    proc = dnswatch("scan", "--prometheus-url", empty_prom.url, "--format", "json")
    _one_line_error(
        proc, 3, "hubble_dns_queries_total not found", 'hubble.metrics.enabled="{dns:query;'
    )


def test_missing_query_label_exits_3_with_the_helm_value(
    no_query_label_prom: PrometheusServer,
) -> None:
    proc = dnswatch("scan", "--prometheus-url", no_query_label_prom.url, "--at", "1780000500")
    _one_line_error(proc, 3, "no 'query' label", "dns:query")


def test_missing_source_label_names_the_config_key(
    no_query_label_prom: PrometheusServer, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("labels:\n  query: qtypes\n  source: [source_namespace, source_pod]\n")
    proc = dnswatch(
        "scan",
        "--prometheus-url",
        no_query_label_prom.url,
        "--at",
        "1780000500",
        "--config",
        str(cfg),
    )
    _one_line_error(proc, 3, "source_namespace", "labels.source")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("burst: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("burst:\n  short_min_distinct: -4\n", "burst.short_min_distinct"),
        ("burst:\n  no_such_threshold: 3\n", "burst.no_such_threshold"),
        ("windows:\n  short: ten minutes\n", "windows.short"),
        ("windows:\n  short: 7h\n", "step <= short <= long"),
        ("\xff\xfe garbage", "config"),
    ],
)
def test_malformed_config_exits_2(tmp_path: Path, content: str, needle: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content.encode("latin-1"))
    proc = dnswatch("scan", "--metrics-file", "/nonexistent", "--config", str(cfg))
    _one_line_error(proc, 2, needle)


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    proc = dnswatch("scan", "--metrics-file", "x", "--config", str(tmp_path / "nope.yaml"))
    _one_line_error(proc, 2, "cannot read config")


def test_env_override_is_validated(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "DNSWATCH_BURST__SHORT_MIN_DISTINCT": "many"}
    proc = dnswatch("scan", "--metrics-file", "x", env=env)
    _one_line_error(proc, 2, "burst.short_min_distinct")


@pytest.mark.parametrize(
    "args",
    [
        ["--at", "yesterday", "--metrics-file", "x"],
        ["--at", "2026-05-28T20:00:00", "--metrics-file", "x"],
        ["--prometheus-url", "ftp://x", "--at", "0"],
        ["--prometheus-url", "http://127.0.0.1:1", "--metrics-file", "x"],
        ["--prometheus-url", "http://127.0.0.1:1", "--header", "novalue"],
    ],
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    _one_line_error(dnswatch("scan", *args), 2)


def test_no_source_at_all_exits_2() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "DNSWATCH_PROMETHEUS_URL"}
    _one_line_error(dnswatch("scan", env=env), 2, "--prometheus-url")


@pytest.mark.parametrize(
    ("content", "code", "needle"),
    [
        (None, 3, "cannot read metrics file"),
        (b"\x1f\x8b\x08\x00broken", 3, "damaged gzip"),
        (b"hello world\n", 3, "not a valid Prometheus sample line"),
        (b"", 3, "holds no Prometheus metrics"),
        (b'hubble_dns_queries_total{source="a/b",query="x.example." 3\n', 3, "not a valid"),
        (b"# TYPE up gauge\nup 1\n", 3, "not found"),
    ],
)
def test_bad_metrics_files_exit_3(
    tmp_path: Path, content: bytes | None, code: int, needle: str
) -> None:
    path = tmp_path / "m.prom"
    if content is not None:
        path.write_bytes(content)
    proc = dnswatch("scan", "--metrics-file", str(path), "--format", "json")
    _one_line_error(proc, code, needle)


def test_debug_shows_the_traceback() -> None:
    proc = dnswatch("--debug", "scan", "--prometheus-url", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


class _Silent(http.server.BaseHTTPRequestHandler):
    """Accepts the connection, reads the request, never answers (a hung Prometheus)."""

    def _hang(self) -> None:
        self.server.hung.wait(20)  # type: ignore[attr-defined]

    do_GET = do_POST = _hang

    def log_message(self, *args: object) -> None:
        pass


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every query like Prometheus refusing it (422, its own JSON error)."""

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = (
            b'{"status":"error","errorType":"execution","error":"query processing would load '
            b'too many samples into memory in query execution"}'
        )
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.hung = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.hung.set()  # type: ignore[attr-defined]
    server.shutdown()


def test_a_prometheus_that_never_answers_is_a_timeout_with_its_length() -> None:
    for url in _serve(_Silent):
        env = {**__import__("os").environ, "DNSWATCH_PROMETHEUS__RETRIES": "1"}
        proc = dnswatch("scan", "--prometheus-url", url, "--timeout", "1s", env=env)
        # A read timeout is not retried (retries=1 notwithstanding): the server would still be
        # evaluating the first query while it answered the second.
        _one_line_error(proc, 3, "timed out", "within 1s", "not retried", "--timeout")
        assert "cannot reach" not in proc.stderr


def test_a_refused_query_shows_prometheus_own_error_once() -> None:
    for url in _serve(_Refusing):
        proc = dnswatch("scan", "--prometheus-url", url, "--format", "json")
        _one_line_error(proc, 3, "HTTP 422", "would load too many samples")
        assert proc.stderr.count("too many samples") == 1
        assert "\\" not in proc.stderr and "b'" not in proc.stderr


def test_a_refused_connection_says_so(tmp_path: Path) -> None:
    proc = dnswatch("scan", "--prometheus-url", f"http://127.0.0.1:{free_port()}")
    _one_line_error(proc, 3, "cannot reach Prometheus", "connection refused")
