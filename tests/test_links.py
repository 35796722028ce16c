"""Links that work for the user: runbooks point to the docs base the user configures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from watcher.config import Config
from watcher.incidents import Incident
from watcher.notify import alertmanager, slack

ROOT = Path(__file__).resolve().parent.parent


def _incident() -> Incident:
    finding = {"kind": "subdomain_burst", "severity": "critical", "score": 1.0, "evidence": {}}
    return Incident(
        "subdomain_burst",
        "app/web-1",
        "evil.example",
        "critical",
        1.0,
        2.0,
        2.0,
        "critical",
        finding,
    )


def _cfg(**links: str) -> Config:
    return Config.model_validate({"links": links} if links else {})


def test_with_a_docs_url_slack_shows_a_runbook_button_under_it() -> None:
    msg = slack.render(_incident(), "firing", _cfg(docs_url="https://wiki.corp/dnswatch/docs/"))
    urls = [e["url"] for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert urls == ["https://wiki.corp/dnswatch/docs/runbooks/DNSExfiltrationSuspected.md"]


def test_without_a_docs_url_slack_names_the_repository_path_and_links_nothing() -> None:
    msg = slack.render(_incident(), "firing", _cfg())
    text = json.dumps(msg)
    assert not any(b["type"] == "actions" for b in msg["blocks"])
    assert "docs/runbooks/DNSExfiltrationSuspected.md" in text
    assert "github.com" not in text and "http" not in text
    assert (ROOT / "docs/runbooks/DNSExfiltrationSuspected.md").exists()


def test_alertmanager_runbook_url_follows_the_docs_url_from_the_environment() -> None:
    env = {"DNSWATCH_DOCS_URL": "https://docs.corp/dns"}
    from watcher.config import load_config

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        cfg = load_config(None)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = json.dumps(alertmanager.alert(_incident(), cfg, 10.0))
    assert "https://docs.corp/dns/runbooks/DNSExfiltrationSuspected.md" in text


def test_shipped_rules_link_repository_docs_that_exist_and_build_takes_a_docs_url(
    tmp_path: Path,
) -> None:
    rules = yaml.safe_load((ROOT / "rules/hubble-dns.rules.yml").read_text())
    urls = [
        r["annotations"]["runbook_url"] for g in rules["groups"] for r in g["rules"] if "alert" in r
    ]
    assert urls and all((ROOT / u).exists() for u in urls), urls
    subprocess.run(
        [
            sys.executable,
            "rules/build.py",
            "--docs-url",
            "https://git.corp/d/docs",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    built = yaml.safe_load((tmp_path / "hubble-dns.rules.yml").read_text())
    got = [
        r["annotations"]["runbook_url"] for g in built["groups"] for r in g["rules"] if "alert" in r
    ]
    assert got == [u.replace("docs/", "https://git.corp/d/docs/", 1) for u in urls]


def test_a_message_names_the_workload_and_a_few_of_its_pods_then_how_many_more() -> None:
    pods = [f"jobs/exporter-6c9f7d5b8-{i:05d}" for i in range(5)]
    finding = {
        "kind": "subdomain_burst",
        "severity": "warning",
        "score": 0.8,
        "summary": "416 distinct names under spread.example in 6h from 24 pods of jobs/exporter",
        "evidence": {"workload": "jobs/exporter", "pods": 24, "sample_pods": pods},
    }
    inc = Incident(
        "subdomain_burst", "jobs/exporter", "spread.example", "warning", 1.0, 2.0, 2.0,
        "warning", finding,
    )  # fmt: skip
    text = json.dumps(slack.render(inc, "firing", _cfg()))
    assert "*Workload*\\n`jobs/exporter`" in text
    assert f"{pods[0]}, {pods[1]}, {pods[2]} +21 more" in text
    am = alertmanager.alert(inc, _cfg(), 3.0)
    assert am["labels"]["workload"] == "jobs/exporter" and am["labels"]["namespace"] == "jobs"
    assert "pod" not in am["labels"] and am["annotations"]["pods"].endswith("+19 more")
