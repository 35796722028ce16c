"""Alertmanager: post incidents to /api/v2/alerts as Prometheus does.

Every run re-posts each active incident with `endsAt = now + ends_after`, so it stays firing while
the watcher sees it and ends by itself if the watcher dies; a resolved incident is posted once
with `endsAt = now`. Labels are stable (alertname, severity, namespace, workload, domain, kind
+ extra; the pods are an annotation), so Alertmanager groups, silences and routes them; when the
severity changes, the alert under the old severity label is ended in the same post.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from watcher.config import AlertmanagerConfig, Config
from watcher.errors import DeliveryError
from watcher.incidents import Incident
from watcher.notify import message
from watcher.text import plain

ALERTNAME = "DNSExfiltrationSuspected"
DRILL_ALERTNAME = "DNSExfiltrationDrill"


def _ts(t: float) -> str:
    return (
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def labels(incident: Incident, severity: str, cfg: AlertmanagerConfig) -> dict[str, str]:
    """Labels of the channel, not of a pod: pods come and go under an incident, and a label that
    changes would split Alertmanager's grouping and inhibition. The pods are annotations."""
    out = {
        **cfg.extra_labels,
        "alertname": DRILL_ALERTNAME if incident.kind == "drill" else ALERTNAME,
        "severity": severity,
        "kind": incident.kind,
        "workload": incident.channel,
    }
    # An empty label is no label in Alertmanager: a source-wide finding has no domain label.
    ns = message.namespace(incident)
    if ns:
        out["namespace"] = ns
    if incident.domain:
        out["domain"] = incident.domain
    if incident.kind == "drill":
        out["drill"] = "true"  # route drills apart (docs/install.md)
    return out


def alert(
    incident: Incident, cfg: Config, now: float, *, severity: str | None = None, ended: bool = False
) -> dict[str, Any]:
    limit = cfg.output.max_name_chars
    sev = severity or incident.severity
    figures = "; ".join(f"{k}: {v}" for k, v in message.figures(incident))
    names = ", ".join(plain(n, limit) for n in message.sample_names(incident, 5))
    steps = " | ".join(message.next_steps(incident))
    description = f"{figures}. Sample names: {names or '-'}. Next: {steps}"
    out: dict[str, Any] = {
        "labels": labels(incident, sev, cfg.alertmanager),
        "annotations": {
            "summary": plain(
                str(incident.finding.get("summary", message.title(incident.kind))), 400
            ),
            "description": description[:4000],
            "pods": plain(message.pods(incident, 10), 1000),
            "runbook_url": cfg.alertmanager.runbook_url
            or cfg.links.runbook("DNSExfiltrationSuspected"),
        },
        "startsAt": _ts(min(incident.first_seen, now)),
        "endsAt": _ts(now if ended else now + cfg.alertmanager.ends_after),
    }
    link = message.grafana_link(cfg.grafana, incident)
    if link:
        out["generatorURL"] = link
    return out


def batch(
    active: list[Incident], resolved: list[Incident], cfg: Config, now: float
) -> list[dict[str, Any]]:
    """The alerts of one post: every active incident, the newly resolved, ended old severities."""
    alerts: list[dict[str, Any]] = []
    for inc in active:
        alerts.append(alert(inc, cfg, now))
        if inc.am_severity and inc.am_severity != inc.severity:
            alerts.append(alert(inc, cfg, now, severity=inc.am_severity, ended=True))
    for inc in resolved:
        alerts.append(alert(inc, cfg, now, severity=inc.am_severity or inc.severity, ended=True))
    return alerts


class AlertmanagerChannel:
    name = "alertmanager"

    def __init__(self, cfg: AlertmanagerConfig) -> None:
        assert cfg.url
        self.url = cfg.url.rstrip("/") + "/api/v2/alerts"
        parts = urlsplit(self.url)  # errors name the URL without any user:password in it
        self.shown = urlunsplit(parts._replace(netloc=parts.hostname or "")) + (
            f" (port {parts.port})" if parts.port else ""
        )
        self.timeout = cfg.timeout
        self.session = requests.Session()
        retry = Retry(
            total=cfg.retries,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=None,
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def send(self, alerts: list[dict[str, Any]]) -> None:
        try:
            resp = self.session.post(self.url, json=alerts, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DeliveryError(
                f"alertmanager: {type(exc).__name__} posting to {self.shown}"
            ) from None
        if resp.status_code != 200:
            raise DeliveryError(
                f"alertmanager: HTTP {resp.status_code} {resp.text.strip()[:120]}".rstrip()
            )
