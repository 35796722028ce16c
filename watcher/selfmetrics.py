"""The watcher's own metrics: what `DNSWatcherStale` and the dashboard's health panels read."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import push_to_gateway

from watcher.findings import Finding

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only add cardinality here

KINDS = ("subdomain_burst", "high_volume", "suspicious_name")
SEVERITIES = ("info", "warning", "critical")
OUTCOMES = ("sent", "failed", "dry_run")


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scan_duration = Gauge(
            "dnswatch_scan_duration_seconds",
            "Wall time of the last scan (query and detection).",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "dnswatch_last_success_timestamp_seconds",
            "Unix time the last scan succeeded.",
            registry=self.registry,
        )
        self.scans = Counter(
            "dnswatch_scans_total",
            "Scans by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.findings = Gauge(
            "dnswatch_findings",
            "Findings of the last successful scan.",
            ["kind", "severity"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "dnswatch_notifications_total",
            "Notifications by channel and outcome (a failed one stays pending).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "dnswatch_notifications_pending",
            "Deliveries waiting for a retry, by channel.",
            ["channel"],
            registry=self.registry,
        )
        # Export zeros up front: absent series would read as "no data", not "no findings".
        for kind in KINDS:
            for sev in SEVERITIES:
                self.findings.labels(kind, sev).set(0)
        self.scans.labels("success")
        self.scans.labels("failure")

    def scanned(self, duration: float, findings: list[Finding], finished_at: float) -> None:
        self.scan_duration.set(duration)
        self.last_success.set(finished_at)
        self.scans.labels("success").inc()
        counts: dict[tuple[str, str], int] = {(k, s): 0 for k in KINDS for s in SEVERITIES}
        for f in findings:
            counts[(f.kind, f.severity)] = counts.get((f.kind, f.severity), 0) + 1
        for (kind, sev), n in counts.items():
            self.findings.labels(kind, sev).set(n)

    def scan_failed(self, duration: float) -> None:
        self.scan_duration.set(duration)
        self.scans.labels("failure").inc()

    def notified(self, channel: str, outcome: str, n: int = 1) -> None:
        if n:
            self.notifications.labels(channel, outcome).inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def push(self, url: str, timeout: float = 10.0) -> None:
        push_to_gateway(url, job="dnswatch", registry=self.registry, timeout=timeout)
