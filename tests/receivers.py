"""Real HTTP receivers on 127.0.0.1: stand-ins for Slack (webhook and Web API), a Pushgateway
and Alertmanager's webhook receiver. They record every request and answer from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Answers queued per path prefix (first match), then the default; records everything."""

    def __init__(self, default: Answer | None = None) -> None:
        self.default = default or Answer()
        self.script: list[tuple[str, Answer]] = []
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def then(self, prefix: str, *answers: Answer) -> Receiver:
        with self.lock:
            self.script.extend((prefix, a) for a in answers)
        return self

    def _answer(self, path: str) -> Answer:
        with self.lock:
            for i, (prefix, ans) in enumerate(self.script):
                if path.startswith(prefix):
                    del self.script[i]
                    return ans
        return self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, dict(self.headers), body, time.time())
                with outer.lock:
                    outer.requests.append(req)
                ans = outer._answer(self.path)
                data = ans.body.encode()
                self.send_response(ans.status)
                for k, v in ans.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def posts(self, prefix: str = "/") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method != "GET" and r.path.startswith(prefix)]

    def wait_for(self, prefix: str, n: int, timeout: float = 30) -> list[Request]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.posts(prefix)
            if len(got) >= n:
                return got
            time.sleep(0.1)
        raise AssertionError(f"expected {n} requests to {prefix}, got {len(self.posts(prefix))}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver(default: Answer | None = None) -> Iterator[Receiver]:
    r = Receiver(default)
    try:
        yield r
    finally:
        r.close()
