"""`dnswatch serve`: the cycle on an APScheduler interval, /metrics and /healthz over HTTP.

One cycle at a time (`max_instances=1`), missed runs coalesced into one, SIGTERM/SIGINT stop the
scheduler after the running cycle and close the listener: a Deployment's rollout never cuts a
delivery in half.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.config import Config
from watcher.errors import ConfigError, DnswatchError
from watcher.selfmetrics import SelfMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    """Healthy while the last successful cycle is recent (or the first is still due)."""

    def __init__(self, allowed: float) -> None:
        self.started = time.time()
        self.allowed = allowed
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.lock = threading.Lock()

    def ok(self) -> None:
        with self.lock:
            self.last_ok, self.last_error = time.time(), None

    def failed(self, error: str) -> None:
        with self.lock:
            self.last_error = error

    def status(self) -> tuple[bool, str]:
        allowed = self.allowed
        with self.lock:
            ref = self.last_ok if self.last_ok is not None else self.started
            age = time.time() - ref
            if age <= allowed:
                return True, "ok"
            why = self.last_error or "no successful cycle yet"
            return False, f"last success {age:.0f}s ago: {why}"


def handler(metrics: SelfMetrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE)
            elif path in ("/healthz", "/readyz"):
                good, text = health.status()
                self._send(200 if good else 503, (text + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would drown the cycle log

    return Handler


def start_http(listen: str, metrics: SelfMetrics, health: Health) -> ThreadingHTTPServer:
    """/metrics and /healthz on `listen` (host:port), served by a daemon thread."""
    host, port = parse_listen(listen)
    try:
        server = ThreadingHTTPServer((host, port), handler(metrics, health))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"serve.listen must be host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(
    cycle: Callable[[], tuple[bool, str] | tuple[bool, str, dict[str, Any]]],
    cfg: Config,
    metrics: SelfMetrics,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). `cycle` returns (scan ok, log line)."""
    stop = stop or threading.Event()
    health = Health(cfg.serve.unhealthy_after or 3 * cfg.serve.interval + 60)
    server = start_http(cfg.serve.listen, metrics, health)

    def job() -> None:
        t0 = time.monotonic()
        try:
            got = cycle()
        except DnswatchError as exc:
            health.failed(str(exc))
            log(f"cycle failed: {exc}", ok=False, error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the service; it is logged
            health.failed(f"{type(exc).__name__}: {exc}")
            log(f"cycle crashed: {type(exc).__name__}: {exc}", ok=False, error=str(exc))
            return
        good, line = got[0], got[1]
        extra: dict[str, Any] = got[2] if len(got) > 2 else {}
        if not good:
            health.failed(line)
        else:
            health.ok()
        log(line, **{"cycle_seconds": round(time.monotonic() - t0, 3), **extra})

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        job,
        IntervalTrigger(seconds=cfg.serve.interval),
        id="cycle",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=int(cfg.serve.interval),
        next_run_time=datetime.now(UTC),  # the first cycle at once, then on the interval
    )
    scheduler.start()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    log(
        f"serving /metrics and /healthz on {parse_listen(cfg.serve.listen)[0]}:"
        f"{server.server_address[1]}, "
        f"a cycle every {cfg.serve.interval:.0f}s"
    )
    stop.wait()
    log("stopping: waiting for the running cycle")
    scheduler.shutdown(wait=True)
    server.shutdown()
    server.server_close()
    log("stopped")
    return 0


LOG_FORMAT = {"value": "text"}  # set once by the CLI: "text" or "json"


def log(text: str, **fields: Any) -> None:
    """One line on stderr: `<time> <text>`, or with JSON logs one object a line (the shape
    Kubernetes log pipelines parse: time, level, msg, then the fields)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if LOG_FORMAT["value"] == "json":
        level = fields.pop("level", None) or ("error" if fields.get("ok") is False else "info")
        record = {"time": stamp, "level": level, "msg": text, **fields}
        print(json.dumps(record, ensure_ascii=True, default=str), file=sys.stderr, flush=True)
    else:
        print(f"{stamp} {text}", file=sys.stderr, flush=True)
