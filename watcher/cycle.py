"""One watcher cycle: scan -> compare with state -> deliver -> record.

Shared by `dnswatch run` (one cycle, a CronJob) and `dnswatch serve` (a cycle per interval).
Deliveries are recorded as pending before anything is sent, so a crash or a failed send leaves
them to the next cycle: at least once, never lost; the state lock makes it at most once across
overlapping runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from watcher.config import Config
from watcher.errors import DeliveryError, DnswatchError
from watcher.findings import Finding, Scanned
from watcher.incidents import Event, Incident, reconcile
from watcher.notify import alertmanager, slack
from watcher.selfmetrics import SelfMetrics
from watcher.state import Delivery, Store


@dataclass
class CycleReport:
    at: float | None = None
    findings: list[Finding] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    scan_error: DnswatchError | None = None
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def all_deliveries_failed(self) -> bool:
        return self.failed > 0 and self.sent == 0

    def fields(self) -> dict[str, Any]:
        """The cycle as one structured log record (JSON logs)."""
        kinds: dict[str, int] = {}
        for ev in self.events:
            kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
        return {
            "evaluated_at": self.at,
            "ok": self.scan_error is None,
            "error": str(self.scan_error) if self.scan_error else None,
            "findings": len(self.findings),
            "alerts": sum(f.is_alert for f in self.findings),
            "events": kinds,
            "sent": self.sent,
            "failed": self.failed,
            "delivery_errors": self.errors,
        }

    def line(self) -> str:
        alerts = sum(f.is_alert for f in self.findings)
        kinds: dict[str, int] = {}
        for ev in self.events:
            kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
        evs = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no new events"
        scan = (
            f"scan failed ({self.scan_error})"
            if self.scan_error
            else f"{len(self.findings)} findings ({alerts} alerts)"
        )
        return f"{scan}; {evs}; {self.sent} sent, {self.failed} failed"


def channels(
    cfg: Config,
) -> tuple[slack.SlackChannel | None, alertmanager.AlertmanagerChannel | None]:
    """Build the configured channels (ConfigError on a bad secret, before any scan)."""
    s = slack.SlackChannel(cfg.slack) if slack.SlackChannel.configured(cfg.slack) else None
    a = alertmanager.AlertmanagerChannel(cfg.alertmanager) if cfg.alertmanager.url else None
    return s, a


def _scan(read: Callable[[], Scanned], metrics: SelfMetrics, report: CycleReport) -> None:
    t0 = time.monotonic()
    try:
        got = read()
        report.findings = got.findings
        report.at = got.at
    except DnswatchError as exc:
        report.scan_error = exc
        metrics.scan_failed(time.monotonic() - t0)
        return
    metrics.scanned(time.monotonic() - t0, report.findings, time.time())
    metrics.channels(got.busiest)


def _latest_per_incident(pending: list[Delivery]) -> tuple[list[Delivery], list[int]]:
    """The newest pending event of each incident; the older ones are superseded by it."""
    latest: dict[int, Delivery] = {}
    older: list[int] = []
    for d in pending:
        key = d.incident.id or 0
        if key in latest:
            older.append(latest[key].id)
        latest[key] = d
    return list(latest.values()), older


def _deliver_slack(
    store: Store, ch: slack.SlackChannel, cfg: Config, m: SelfMetrics, r: CycleReport
) -> None:
    todo, older = _latest_per_incident(store.pending(ch.name))
    if older:
        store.mark_superseded(older)
    for d in todo:
        try:
            ch.send(slack.render(d.incident, d.event, cfg))
        except DeliveryError as exc:
            store.mark_failed([d.id], str(exc))
            m.notified(ch.name, "failed")
            r.failed += 1
            r.errors.append(str(exc))
            continue
        store.mark_sent([d.id])
        m.notified(ch.name, "sent")
        r.sent += 1
    m.pending.labels(ch.name).set(len(store.pending(ch.name)))


def _am_batch(
    store: Store, cfg: Config, now: float
) -> tuple[list[dict[str, Any]], list[Delivery], list[Incident], list[Incident]]:
    pending = store.pending(alertmanager.AlertmanagerChannel.name)
    active = store.active()
    seen: set[int] = set()
    resolved: list[Incident] = []
    for d in pending:
        if d.incident.status == "resolved" and d.incident.id not in seen:
            seen.add(d.incident.id or 0)
            resolved.append(d.incident)
    return alertmanager.batch(active, resolved, cfg, now), pending, active, resolved


def _deliver_alertmanager(
    store: Store, ch: alertmanager.AlertmanagerChannel, cfg: Config, m: SelfMetrics, r: CycleReport
) -> None:
    alerts, pending, active, resolved = _am_batch(store, cfg, time.time())
    if not alerts:
        return
    try:
        ch.send(alerts)
    except DeliveryError as exc:
        if pending:
            store.mark_failed([d.id for d in pending], str(exc))
        m.notified(ch.name, "failed", len(alerts))
        r.failed += 1
        r.errors.append(str(exc))
        m.pending.labels(ch.name).set(len(pending))
        return
    store.mark_sent([d.id for d in pending])
    incs = [*active, *resolved]
    sevs: list[str | None] = [*(i.severity for i in active), *(None for _ in resolved)]
    store.set_am_severity([i.id or 0 for i in incs], sevs)
    m.notified(ch.name, "sent", len(alerts))
    m.pending.labels(ch.name).set(0)
    r.sent += 1


def run_cycle(
    read: Callable[[], Scanned],
    cfg: Config,
    metrics: SelfMetrics,
    *,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> CycleReport:
    """Scan, fold into the state, deliver what is pending. State errors raise StateError."""
    slack_ch, am_ch = channels(cfg)
    report = CycleReport()
    _scan(read, metrics, report)
    if dry_run:
        _dry_run(cfg, report, out, metrics)
        return report
    with Store.open(cfg.state.path, cfg.state.lock_timeout) as store:
        if report.scan_error is None and report.at is not None:
            changed, events = reconcile(store.active(), report.findings, report.at, cfg.incidents)
            names = [c.name for c in (slack_ch, am_ch) if c is not None]
            store.record(changed, events, names)
            report.events = events
        # Pending deliveries are retried even when this scan failed.
        if slack_ch is not None:
            _deliver_slack(store, slack_ch, cfg, metrics, report)
        if am_ch is not None:
            _deliver_alertmanager(store, am_ch, cfg, metrics, report)
    return report


def _dry_run(cfg: Config, report: CycleReport, out: TextIO | None, m: SelfMetrics) -> None:
    """Render every message this cycle would send, for both media; write nothing anywhere."""
    write = out.write if out is not None else print
    with Store.read_only(cfg.state.path) as store:
        active = store.active() if store is not None else []
        pending = store.pending("slack") if store is not None else []
        events: list[Event] = []
        if report.scan_error is None and report.at is not None:
            _, events = reconcile(active, report.findings, report.at, cfg.incidents)
        report.events = events
    for d in pending:
        events.append(Event(d.event, d.incident))  # type: ignore[arg-type]
    n = 0
    for ev in events:
        i = ev.incident
        write(f"# slack: {ev.kind} {i.severity} {i.kind} {i.source} {i.domain or '-'}\n")
        write(json.dumps(slack.render(i, ev.kind, cfg), indent=2, ensure_ascii=False) + "\n")
        n += 1
    now = time.time()
    firing = {e.incident.key: e.incident for e in events if e.kind != "resolved"}
    for inc in active:
        firing.setdefault(inc.key, inc)
    ended = [e.incident for e in events if e.kind == "resolved"]
    live = [inc for key, inc in firing.items() if key not in {e.key for e in ended}]
    alerts = alertmanager.batch(live, ended, cfg, now)
    if alerts:
        write(f"# alertmanager: POST /api/v2/alerts ({len(alerts)} alerts)\n")
        write(json.dumps(alerts, indent=2, ensure_ascii=False) + "\n")
        n += 1
    m.notified("slack", "dry_run", len(events))
    m.notified("alertmanager", "dry_run", 1 if alerts else 0)
    if n == 0:
        write("# nothing to send\n")
