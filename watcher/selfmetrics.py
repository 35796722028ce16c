"""The watcher's own metrics: what `DNSWatcherStale` and the dashboard's health panels read."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import push_to_gateway

from watcher.findings import ChannelNames, Finding

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only add cardinality here

KINDS = (
    "subdomain_burst",
    "high_volume",
    "suspicious_name",
    "channel_behaviour",
    "beacon",
    "drill",
)
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

    def channels(self, busiest: list[ChannelNames]) -> None:
        """Distinct names of the busiest channels of the last scan: the dashboard's names
        panels, at most 2 x output.export_channels series."""
        if not hasattr(self, "busiest_names"):
            self.busiest_names = Gauge(
                "dnswatch_channel_names",
                "Distinct names of the busiest (workload, registered domain) channels in the "
                "last scan, by window (short: 10 min, long: 6 h).",
                ["workload", "domain", "window"],
                registry=self.registry,
            )
            self.busiest_one_off = Gauge(
                "dnswatch_channel_one_off_names",
                "Of those, names not judged hosts (not asked again later, nor by others).",
                ["workload", "domain", "window"],
                registry=self.registry,
            )
        self.busiest_names.clear()
        self.busiest_one_off.clear()
        for c in busiest:
            labels = (c.workload[:200], c.domain[:200], c.window)
            self.busiest_names.labels(*labels).set(c.names)
            self.busiest_one_off.labels(*labels).set(c.one_off)

    def scan_failed(self, duration: float) -> None:
        self.scan_duration.set(duration)
        self.scans.labels("failure").inc()

    def notified(self, channel: str, outcome: str, n: int = 1) -> None:
        if n:
            self.notifications.labels(channel, outcome).inc(n)

    def flows(self, counts: dict[str, object], active_pairs: int, findings: list[Finding]) -> None:
        """The flow watcher's own series: lines by outcome, active pairs, and per (source,
        registered domain) only the pairs worth a look (a finding, info included), so clusters
        without the `query` label on Hubble's metric still get dashboards and rules."""
        if not hasattr(self, "flow_lines"):
            self.flow_lines = Gauge(
                "dnswatch_flow_lines",
                "Flow lines read since start, by outcome (dns or a skip reason).",
                ["outcome"],
                registry=self.registry,
            )
            self.flow_pairs = Gauge(
                "dnswatch_flow_active_pairs",
                "(workload, registered domain) pairs held in memory.",
                registry=self.registry,
            )
            self.flow_names = Gauge(
                "dnswatch_flow_pair_distinct_names",
                "One-off names in the long window, for pairs with a finding.",
                ["source", "domain", "kind", "severity"],
                registry=self.registry,
            )
            self.flow_score = Gauge(
                "dnswatch_flow_pair_score",
                "Finding score (0-1), for pairs with a finding.",
                ["source", "domain", "kind", "severity"],
                registry=self.registry,
            )
            self.flow_last = Gauge(
                "dnswatch_flow_last_line_timestamp_seconds",
                "Time of the newest flow read (a stalled exporter shows here).",
                registry=self.registry,
            )
        skipped = counts.get("skipped") or {}
        assert isinstance(skipped, dict)
        self.flow_lines.labels("dns").set(float(counts.get("dns_flows") or 0))  # type: ignore[arg-type]
        for reason, n in skipped.items():
            self.flow_lines.labels(str(reason)).set(float(n))
        self.flow_pairs.set(active_pairs)
        self.flow_names.clear()
        self.flow_score.clear()
        for f in findings[:500]:  # bounded whatever happens
            if f.domain is None:
                continue
            labels = (f.source[:200], f.domain[:200], f.kind, f.severity)
            self.flow_names.labels(*labels).set(float(f.evidence.get("distinct_names") or 0))
            self.flow_score.labels(*labels).set(f.score)

    def flow_channels(self, exported: list[Any]) -> None:
        """Per channel on this node, new names not judged hosts (watcher.flows.scan.Exported):
        what the DNSExfiltrationAcrossNodes rule sums over nodes."""
        if not hasattr(self, "channel_names"):
            self.channel_names = Gauge(
                "dnswatch_flow_channel_names",
                "New names of a (workload, registered domain) channel on this node, in the short "
                "or long window; only channels the node's judge does not call hosts.",
                ["workload", "domain", "window", "alerting"],
                registry=self.registry,
            )
            self.channel_encoded = Gauge(
                "dnswatch_flow_channel_encoded_names",
                "Encoded-looking new names of the channel on this node (long window).",
                ["workload", "domain", "alerting"],
                registry=self.registry,
            )
        self.channel_names.clear()
        self.channel_encoded.clear()
        for e in exported:
            labels = (e.workload[:200], e.domain[:200])
            alerting = "true" if e.alerting else "false"
            self.channel_names.labels(*labels, "short", alerting).set(e.short)
            self.channel_names.labels(*labels, "long", alerting).set(e.long)
            self.channel_encoded.labels(*labels, alerting).set(e.encoded)

    def checkpoint(self, failed: str | None = None, written: Any = None) -> None:
        """A follower's checkpoint: a failure by stage ("read": not restored, "write": not
        saved; the follower runs on), or the last write (watcher.flows.checkpoint.Written)."""
        if not hasattr(self, "checkpoint_failures"):
            self.checkpoint_failures = Counter(
                "dnswatch_checkpoint_failures_total",
                "Checkpoints not restored (read) or not written (write); the follower ran on.",
                ["stage"],
                registry=self.registry,
            )
            self.checkpoint_failures.labels("read")
            self.checkpoint_failures.labels("write")
            self.checkpoint_bytes = Gauge(
                "dnswatch_checkpoint_bytes",
                "Size of the last checkpoint written.",
                registry=self.registry,
            )
            self.checkpoint_seconds = Gauge(
                "dnswatch_checkpoint_write_seconds",
                "Wall time the last checkpoint took to write.",
                registry=self.registry,
            )
        if failed is not None:
            self.checkpoint_failures.labels(failed).inc()
        if written is not None:
            self.checkpoint_bytes.set(written.bytes)
            self.checkpoint_seconds.set(written.seconds)

    def relay(self, coverage: Any) -> None:
        """Hubble Relay's blind spots (watcher.sources.relay.stream.Coverage): events lost by
        source and node, nodes by state, and whether the stream is up."""
        if not hasattr(self, "relay_lost"):
            self.relay_lost = Gauge(
                "dnswatch_relay_lost_events_total",
                "Events Hubble Relay reported lost since start, by where (source) and node.",
                ["source", "node"],
                registry=self.registry,
            )
            self.relay_nodes = Gauge(
                "dnswatch_relay_nodes",
                "Nodes by the state Relay last reported (connected, unavailable).",
                ["state"],
                registry=self.registry,
            )
            self.relay_up = Gauge(
                "dnswatch_relay_connected",
                "1 while the GetFlows stream is up, 0 while reconnecting.",
                registry=self.registry,
            )
            self.relay_reconnects = Gauge(
                "dnswatch_relay_reconnects_total",
                "Times the stream was lost and resumed since start.",
                registry=self.registry,
            )
        for (source, node), n in list(coverage.lost.items())[:500]:
            self.relay_lost.labels(source, node[:200]).set(n)
        down = len(coverage.unavailable())
        self.relay_nodes.labels("unavailable").set(down)
        self.relay_nodes.labels("connected").set(len(coverage.nodes) - down)
        self.relay_up.set(1 if coverage.connected else 0)
        self.relay_reconnects.set(coverage.reconnects)

    def flow_seen(self, at: float) -> None:
        if hasattr(self, "flow_last"):
            self.flow_last.set(at)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def push(self, url: str, timeout: float = 10.0) -> None:
        push_to_gateway(url, job="dnswatch", registry=self.registry, timeout=timeout)
