"""`dnswatch run` end to end: a real Prometheus, a real Slack stand-in on 127.0.0.1, the state
file between runs. Minutes refer to the composite history (tests/histories.py): at 356 five
incidents are active (two critical channels, two warning channels, the second the numeric
tunnel of minutes 200-215 still in the 6 h window as a private channel, a volume flood); the flood
ends by 395; the tunnel under tunnel-a.example starts as a warning at 401 and is critical at 402.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, dnswatch
from tests.histories import Composite
from tests.promserver import PrometheusServer, free_port, require
from tests.receivers import Answer, Receiver, receiver
from watcher.window import workload_of

pytestmark = pytest.mark.prometheus
HOOK = "/services/T000/B000/hooksecret42"
ACTIVE_AT_356 = 5


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DNSWATCH_")}
    base["DNSWATCH_STATE_PATH"] = str(tmp_path / "state.sqlite")
    base.update(extra)
    return base


def run(
    prom: PrometheusServer, history: Composite, minute: int, e: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return dnswatch(
        "run", "--prometheus-url", prom.url, "--at", str(history.at(minute)), *extra, env=e
    )


def headers_of(r: Receiver, prefix: str = HOOK) -> list[str]:
    return [m.json()["blocks"][0]["text"]["text"] for m in r.posts(prefix)]


def test_each_incident_is_sent_once_then_resolved_once(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        first = run(cluster_prom, cluster_history, 356, e)
        assert first.returncode == 0, first.stderr
        assert len(slack.posts(HOOK)) == ACTIVE_AT_356
        heads = headers_of(slack)
        assert sum("CRITICAL" in h for h in heads) == 2 and sum("WARNING" in h for h in heads) == 3
        for minute in (360, 365, 380):
            again = run(cluster_prom, cluster_history, minute, e)
            assert again.returncode == 0, again.stderr
        assert len(slack.posts(HOOK)) == ACTIVE_AT_356, "an ongoing incident was re-sent"
        # The flood was last seen at 380; 15 minutes later it is resolved, once.
        done = run(cluster_prom, cluster_history, 395, e)
        assert done.returncode == 0, done.stderr
        resolved = slack.posts(HOOK)[ACTIVE_AT_356:]
        assert len(resolved) == 1
        body = resolved[0].json()
        assert "RESOLVED" in body["blocks"][0]["text"]["text"]
        flood_source = cluster_history.incidents["volume flood"][0]
        assert flood_source in json.dumps(body)
        run(cluster_prom, cluster_history, 400, e)
        assert len(slack.posts(HOOK)) == ACTIVE_AT_356 + 1


def test_a_rising_severity_is_sent_again_as_an_escalation(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as slack:
        e = env(
            tmp_path,
            DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK,
            DNSWATCH_GRAFANA_URL="https://grafana.example.test/",
        )
        assert run(cluster_prom, cluster_history, 401, e).returncode == 0
        before = len(slack.posts(HOOK))
        assert run(cluster_prom, cluster_history, 402, e).returncode == 0
        new = slack.posts(HOOK)[before:]
        assert len(new) == 1
        text = json.dumps(new[0].json())
        assert "tunnel-a.example" in text and "CRITICAL" in text and "(escalated)" in text
        source = cluster_history.incidents["iodine-like tunnel"][0]
        # Next steps name the workload: every pod of it, one allowlist for all.
        assert f"dnswatch policy suggest --source {workload_of(source)}" in text
        assert f"--from-pod {workload_of(source)}-" in text
        (button,) = [b for b in new[0].json()["blocks"] if b["type"] == "actions"]
        url = button["elements"][0]["url"]
        assert url.startswith("https://grafana.example.test/d/hubble-dns-watcher/")
        assert "var-source=" + source.replace("/", "%2F") in url
        assert run(cluster_prom, cluster_history, 404, e).returncode == 0
        assert len(slack.posts(HOOK)) == before + 1


def test_an_ongoing_incident_is_reminded_after_the_interval(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as slack:
        e = env(
            tmp_path,
            DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK,
            DNSWATCH_INCIDENTS__RENOTIFY_INTERVAL="10m",
        )
        run(cluster_prom, cluster_history, 356, e)
        run(cluster_prom, cluster_history, 362, e)
        assert len(slack.posts(HOOK)) == ACTIVE_AT_356
        run(cluster_prom, cluster_history, 367, e)
        reminders = headers_of(slack)[ACTIVE_AT_356:]
        assert len(reminders) == ACTIVE_AT_356
        assert all("(still active)" in h for h in reminders)


def test_a_failed_delivery_stays_pending_and_goes_out_on_the_next_run(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver(Answer(500, "internal_error")) as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK, DNSWATCH_SLACK__RETRIES="1")
        failed = run(cluster_prom, cluster_history, 356, e)
        assert failed.returncode == 5, failed.stderr
        assert "delivery failed (kept pending): slack webhook: HTTP 500" in failed.stderr
        assert "Traceback" not in failed.stderr
        # Each message: the first try and one retry after a 5xx.
        assert len(slack.posts(HOOK)) == 2 * ACTIVE_AT_356
        slack.default = Answer()
        ok = run(cluster_prom, cluster_history, 360, e)
        assert ok.returncode == 0, ok.stderr
        delivered = slack.posts(HOOK)[2 * ACTIVE_AT_356 :]
        assert len(delivered) == ACTIVE_AT_356
        assert all("(new)" in m.json()["blocks"][0]["text"]["text"] for m in delivered)
        run(cluster_prom, cluster_history, 365, e)
        assert len(slack.posts(HOOK)) == 3 * ACTIVE_AT_356


def test_429_is_retried_after_retry_after(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as slack:
        slack.then(HOOK, Answer(429, "rate_limited", {"Retry-After": "1"}))
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        proc = run(cluster_prom, cluster_history, 356, e)
        assert proc.returncode == 0, proc.stderr
        posts = slack.posts(HOOK)
        assert len(posts) == ACTIVE_AT_356 + 1
        assert posts[1].at - posts[0].at >= 1.0
        assert posts[0].body == posts[1].body


def test_a_long_retry_after_gives_up_in_bounded_time_and_keeps_it_pending(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver(Answer(429, "rate_limited", {"Retry-After": "3600"})) as slack:
        e = env(
            tmp_path,
            DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK,
            DNSWATCH_SLACK__GIVE_UP_AFTER="5s",
        )
        t0 = time.monotonic()
        proc = run(cluster_prom, cluster_history, 356, e)
        assert time.monotonic() - t0 < 60
        assert proc.returncode == 5
        assert "HTTP 429" in proc.stderr
        slack.default = Answer()
        assert run(cluster_prom, cluster_history, 358, e).returncode == 0
        assert len(slack.posts(HOOK)) == 2 * ACTIVE_AT_356


def test_an_invalid_payload_answer_is_a_failure_not_a_success(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver(Answer(400, "invalid_payload")) as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        proc = run(cluster_prom, cluster_history, 356, e)
        assert proc.returncode == 5
        assert "HTTP 400 invalid_payload" in proc.stderr
        assert len(slack.posts(HOOK)) == ACTIVE_AT_356  # a 400 is not retried in the run


def test_a_200_with_an_unexpected_body_is_not_delivered(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver(Answer(200, "<html>captive portal</html>")) as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        assert run(cluster_prom, cluster_history, 356, e).returncode == 5


def test_secrets_never_reach_stderr(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver(Answer(404, "no_service")) as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        proc = run(cluster_prom, cluster_history, 356, e)
        assert proc.returncode == 5 and "no_service" in proc.stderr
        assert "hooksecret42" not in proc.stderr + proc.stdout
    # The receiver is gone: connection refused, the URL still not echoed.
    proc = run(cluster_prom, cluster_history, 358, e)
    assert proc.returncode == 5, proc.stderr
    assert "hooksecret42" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_bot_token_posts_with_chat_post_message(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    ok = Answer(
        200, '{"ok": true, "channel": "C1", "ts": "1.2"}', {"Content-Type": "application/json"}
    )
    with receiver(ok) as slack:
        token_file = tmp_path / "token"
        token_file.write_text("xoxb-secret-token-77\n")
        e = env(
            tmp_path,
            DNSWATCH_SLACK__TOKEN_FILE=str(token_file),
            DNSWATCH_SLACK_CHANNEL="#security-alerts",
            DNSWATCH_SLACK__BASE_URL=slack.url + "/api/",
        )
        proc = run(cluster_prom, cluster_history, 356, e)
        assert proc.returncode == 0, proc.stderr
        posts = slack.posts("/api/chat.postMessage")
        assert len(posts) == ACTIVE_AT_356
        assert posts[0].headers["Authorization"] == "Bearer xoxb-secret-token-77"
        body: dict[str, Any] = posts[0].json()
        assert body["channel"] == "#security-alerts" and body["blocks"]
        slack.default = Answer(
            200, '{"ok": false, "error": "channel_not_found"}', {"Content-Type": "application/json"}
        )
        e2 = {**e, "DNSWATCH_STATE_PATH": str(tmp_path / "other.sqlite")}
        bad = run(cluster_prom, cluster_history, 356, e2)
        assert bad.returncode == 5
        assert "channel_not_found" in bad.stderr and "xoxb-secret" not in bad.stderr


def test_two_overlapping_runs_never_double_send(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        cmd = [sys.executable, "-m", "watcher.cli", "run", "--prometheus-url", cluster_prom.url]
        at = ["--at", str(cluster_history.at(356))]
        procs = [
            subprocess.Popen([*cmd, *at], env=e, cwd=ROOT, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        assert len(slack.posts(HOOK)) == ACTIVE_AT_356


def test_a_corrupt_state_file_is_a_one_line_error(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"\x00garbage" * 512)
    proc = run(cluster_prom, cluster_history, 356, env(tmp_path))
    assert proc.returncode == 4
    assert proc.stderr.strip().count("\n") == 0 and "not a database" in proc.stderr
    assert state.read_bytes().startswith(b"\x00garbage")


def test_dry_run_renders_every_message_and_sends_nothing(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as slack:
        e = env(tmp_path, DNSWATCH_SLACK_WEBHOOK_URL=slack.url + HOOK)
        proc = run(cluster_prom, cluster_history, 356, e, "--dry-run")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("# slack: firing") == ACTIVE_AT_356
        assert "# alertmanager: POST /api/v2/alerts (5 alerts)" in proc.stdout
        assert slack.requests == []
        assert not (tmp_path / "state.sqlite").exists()


def test_self_metrics_are_pushed_to_a_pushgateway(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    with receiver() as gw:
        proc = run(cluster_prom, cluster_history, 356, env(tmp_path), "--pushgateway-url", gw.url)
        assert proc.returncode == 0, proc.stderr
        (push,) = gw.posts("/metrics/job/dnswatch")
        text = push.body.decode()
        assert 'dnswatch_findings{kind="high_volume",severity="warning"} 1.0' in text
        assert "dnswatch_last_success_timestamp_seconds" in text
        assert "dnswatch_scan_duration_seconds" in text


class Pushgateway:
    """Debian's prometheus-pushgateway on 127.0.0.1, no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "pgw.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                require("prometheus-pushgateway"),
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("pushgateway did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def test_pushed_metrics_reach_prometheus_through_a_real_pushgateway(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    gw = Pushgateway(tmp_path)
    scraper = PrometheusServer(tmp_path / "scraper", None, {"pushgateway": f"127.0.0.1:{gw.port}"})
    try:
        proc = run(cluster_prom, cluster_history, 356, env(tmp_path), "--pushgateway-url", gw.url)
        assert proc.returncode == 0, proc.stderr
        assert "dnswatch_findings" in requests.get(gw.url + "/metrics", timeout=5).text
        deadline = time.monotonic() + 30
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not got:
            got = scraper.query(
                'dnswatch_findings{job="dnswatch",kind="high_volume",severity="warning"}',
                time.time(),
            )
            time.sleep(0.5)
        assert got and float(got[0]["value"][1]) == 1.0  # type: ignore[index]
        last = scraper.query('dnswatch_last_success_timestamp_seconds{job="dnswatch"}', time.time())
        assert last and abs(float(last[0]["value"][1]) - time.time()) < 600  # type: ignore[index]
    finally:
        scraper.stop()
        gw.stop()
