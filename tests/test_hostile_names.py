"""Query names are attacker-controlled: odd bytes, quotes, braces, escapes, 253 characters."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import dnswatch, scan_json
from tests.promserver import PrometheusServer, history_text
from watcher.simulate import Cluster, Pod

pytestmark = pytest.mark.prometheus

START = 1_780_000_000
LONG = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 45]) + ".hostile.example"  # 253 chars
ODD = [
    'quote"inside{brace}.hostile.example',
    "back\\slash.hostile.example",
    "esc\x1b[31mred.hostile.example",
    "rtl\u202eelpmaxe.hostile.example",
    "q+z8anwaba/x=_y.hostile.example",
    "μ2lmgeigcafvza߽gxzwuton.hostile.example",
    "<!channel>*bold*`code`&amp.hostile.example",
    "new\nline.hostile.example",
    LONG,
]


def leaking(pod: str, names: list[str], minutes: int = 30) -> Pod:
    """A pod asking each name once (a leak's one-off chunks), spread over `minutes`."""
    ns, _, name = pod.partition("/")
    p = Pod(ns, name, 0, 0, minutes, ["api.example.com"], np.ones(1), 0)
    p.extra = [(i * minutes // len(names), n, "TXT", 1) for i, n in enumerate(names)]
    return p


def hostile_cluster() -> Cluster:
    rng = np.random.default_rng(3)
    names = ODD + [f"{rng.bytes(24).hex()}{i}.hostile.example" for i in range(60)]
    c = Cluster(minutes=30, start=START)
    c.pods.append(leaking("evil/ransom-7d9f8b7c6-x2x4q", names))
    return c


@pytest.fixture(scope="module")
def hostile() -> tuple[Cluster, str]:
    c = hostile_cluster()
    return c, history_text(c)


@pytest.fixture(scope="module")
def hostile_prom(
    hostile: tuple[Cluster, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prom-hostile"), hostile[1])
    yield server
    server.stop()


def test_253_char_names_are_legal_dns() -> None:
    assert len(LONG) == 253 and max(len(label) for label in LONG.split(".")) == 63


def test_hostile_names_survive_prometheus_and_json(
    hostile_prom: PrometheusServer, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"  # a short window spanning the whole history: every name is in it
    cfg.write_text("windows:\n  short: 30m\n")
    report = scan_json(
        "--prometheus-url", hostile_prom.url, "--at", str(START + 30 * 60), "--config", str(cfg)
    )
    burst = [f for f in report["findings"] if f["domain"] == "hostile.example"]
    assert burst and burst[0]["severity"] in ("warning", "critical")
    assert burst[0]["source"] == "evil/ransom-7d9f8b7c6-x2x4q"
    assert burst[0]["evidence"]["distinct_names"] == len(ODD) + 60


def _key(report: dict) -> list[tuple[str, str, str, int]]:  # type: ignore[type-arg]
    return sorted(
        (f["kind"], f["source"], f["domain"], f["evidence"]["distinct_names"])
        for f in report["findings"]
    )


def test_hostile_names_from_a_file_match_prometheus(
    hostile: tuple[Cluster, str], hostile_prom: PrometheusServer, tmp_path: Path
) -> None:
    path = tmp_path / "h.om"
    path.write_text(hostile[1], encoding="utf-8")
    at = str(START + 30 * 60)
    a = scan_json("--metrics-file", str(path), "--at", at)
    b = scan_json("--prometheus-url", hostile_prom.url, "--at", at)
    assert _key(a) == _key(b)


def test_text_output_has_no_terminal_escapes(hostile: tuple[Cluster, str], tmp_path: Path) -> None:
    path = tmp_path / "h.om"
    path.write_text(hostile[1], encoding="utf-8")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  sample_names: 50\n")
    proc = dnswatch("scan", "--metrics-file", str(path), "--format", "text", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout
    json_proc = dnswatch("scan", "--metrics-file", str(path), "--format", "json")
    assert all(ord(ch) < 128 for ch in json_proc.stdout)  # escaped, never raw
    samples = json.loads(json_proc.stdout)["findings"][0]["evidence"]["sample_names"]
    assert all(len(s) <= 120 for s in samples)


def test_promql_injection_through_a_source_label_is_escaped() -> None:
    import re

    from watcher.sources import promql

    hostile = ['ns/x"} or vector(1) or {a="', "ns/a.b|c"]
    m = promql.one_of("source", hostile)
    literal = m[len('source=~"') : -1]
    assert '"' not in literal.replace('\\"', "")  # no unescaped quote ends the string early
    pattern = json.loads(f'"{literal}"')  # PromQL and JSON share these string escapes
    assert all(re.fullmatch(pattern, v) for v in hostile)
    assert not re.fullmatch(pattern, "ns/aXb") and not re.fullmatch(pattern, "c")


def _mrkdwn_texts(node: object) -> list[str]:
    """Every mrkdwn text object in a Block Kit payload."""
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in _mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _mrkdwn_texts(v)]
    return []


def test_slack_messages_neutralise_hostile_names(tmp_path: Path) -> None:
    """Through a real run and a Slack stand-in: nothing in a name becomes a mention, a link,
    formatting or a control character; every name is an unbreakable code span."""
    import os

    from tests.receivers import receiver

    rng = np.random.default_rng(5)
    names = ODD + [f"{rng.bytes(20).hex()}{i}.hostile.example" for i in range(36)]  # 45 < 50
    c = Cluster(minutes=30, start=START)
    c.pods.append(leaking("evil/ransom-7d9f8b7c6-x2x4q", names))
    path = tmp_path / "h.om"
    path.write_text(history_text(c), encoding="utf-8")
    cfg = tmp_path / "c.yaml"  # show every name, and a short window covering all of them
    cfg.write_text("windows:\n  short: 30m\noutput:\n  sample_names: 50\n")
    with receiver() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
        env |= {
            "DNSWATCH_SLACK_WEBHOOK_URL": slack.url + "/hook",
            "DNSWATCH_STATE_PATH": str(tmp_path / "state.sqlite"),
        }
        proc = dnswatch(
            "run", "--metrics-file", str(path), "--at", str(START + 30 * 60), "--config",
            str(cfg), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (post,) = slack.posts("/hook")
    payload = post.json()
    raw = json.dumps(payload, ensure_ascii=False)
    assert "\x1b" not in raw and "\u202e" not in raw and "\n" + "line" not in raw
    texts = _mrkdwn_texts(payload)
    shown = next(t for t in texts if t.startswith("*Sample names*"))
    lines = shown.split("\n")[1:]
    assert len(lines) >= 40  # the payload-shaped names (short odd ones are not fetched)
    for line in lines:
        assert line.startswith("`") and line.endswith("`") and line.count("`") == 2, line
        assert len(line) <= 122
    for text in texts:
        assert "<" not in text and ">" not in text, text  # no <!channel>, <@U…> or <url|label>
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;*bold*\u02cbcode\u02cb&amp;amp.hostile.example" in joined
    assert "rtl\\u202eelpmaxe" in joined and "esc\\x1b[31mred" in joined
    assert "\\u03bc2lmgeigcafvza" in joined  # non-ASCII shown as escapes, not look-alikes
    assert all(m.get("verbatim") is True for m in _mrkdwn_nodes(payload))
    assert payload["unfurl_links"] is False


def _mrkdwn_nodes(node: object) -> list[dict]:  # type: ignore[type-arg]
    if isinstance(node, dict):
        found = [node] if node.get("type") == "mrkdwn" else []
        return found + [n for v in node.values() for n in _mrkdwn_nodes(v)]
    if isinstance(node, list):
        return [n for v in node for n in _mrkdwn_nodes(v)]
    return []


# Values PromQL's lexer refuses when written as they are (U+FFFD is its "invalid UTF-8 rune"),
# control characters, a backslash run, a 4 kB name, a character past the BMP.
BREAKERS = [
    "bad\ufffdrune.breakers.example",
    "nul\x00byte.breakers.example",
    "del\x7fx.breakers.example",
    "tab\tx.breakers.example",
    "bs\\\\\\q.breakers.example",
    "emoji\U0001f600.breakers.example",
    "x" * 4000 + ".breakers.example",
    "été.breakers.example",
]


@pytest.fixture(scope="module")
def breakers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, str]]:
    rng = np.random.default_rng(5)
    names = BREAKERS + [f"{rng.bytes(20).hex()}{i}.breakers.example" for i in range(50)]
    c = Cluster(minutes=30, start=START)
    c.pods.append(leaking("evil/odd-7d9f8b7c6-x2x4q", names))
    text = history_text(c)
    server = PrometheusServer(tmp_path_factory.mktemp("prom-breakers"), text)
    yield server, text
    server.stop()


def test_no_label_value_breaks_a_scan_and_prometheus_agrees_with_the_file(
    breakers: tuple[PrometheusServer, str], tmp_path: Path
) -> None:
    server, text = breakers
    path = tmp_path / "b.om"
    path.write_text(text, encoding="utf-8")
    at = str(START + 30 * 60)
    a = scan_json("--prometheus-url", server.url, "--at", at)
    b = scan_json("--metrics-file", str(path), "--at", at)
    assert a["warnings"] == [] and _key(a) == _key(b)
    [burst] = [f for f in a["findings"] if f["domain"] == "breakers.example"]
    assert burst["severity"] in ("warning", "critical")
    assert burst["evidence"]["distinct_names"] >= 50


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A gateway before Prometheus that rejects (HTTP 400, bad_data) every query holding one
    value, as a server refuses a name it cannot parse: the rest must still be read."""

    upstream = ""
    marker = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        form = urllib.parse.parse_qs(body.decode())
        if self.marker in form.get("query", [""])[0]:
            payload = b'{"status":"error","errorType":"bad_data","error":"invalid UTF-8 rune"}'
            self.send_response(400)
        else:
            up = requests.post(
                self.upstream + self.path,
                data=body,
                timeout=30,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            payload = up.content
            self.send_response(up.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        up = requests.get(self.upstream + self.path, timeout=30)
        self.send_response(up.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(up.content)))
        self.end_headers()
        self.wfile.write(up.content)

    def log_message(self, *args: object) -> None:
        pass


def test_a_name_whose_query_is_rejected_costs_only_itself(
    breakers: tuple[PrometheusServer, str],
) -> None:
    server, _ = breakers
    handler = type("Gateway", (_Gateway,), {"upstream": server.url, "marker": "emoji"})
    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{gateway.server_address[1]}"
        report = scan_json("--prometheus-url", url, "--at", str(START + 30 * 60))
    finally:
        gateway.shutdown()
        gateway.server_close()
    lost = [w for w in report["warnings"] if "not looked up" in w]
    assert lost and all("1 value not looked up" in w and "invalid UTF-8 rune" in w for w in lost)
    [burst] = [f for f in report["findings"] if f["domain"] == "breakers.example"]
    assert burst["severity"] in ("warning", "critical")
