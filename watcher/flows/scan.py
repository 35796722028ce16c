"""The flow pipeline: lines -> DnsFlow -> FlowWindow -> flow detectors -> findings.

A batch read (`dnswatch flows FILE…`) judges every pair each time one of its 5-minute buckets
closes, when it is evicted and at the end, and keeps the most severe finding per (workload,
domain): an incident early in a long file is reported as well as one at its end. `follow`
tails a growing, rotating file and reports a finding as soon as the pair crosses a threshold.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from watcher.config import Config, domain_rules
from watcher.detect import detect_high_volume, judge, judge_all
from watcher.detect.judge import hosts_reason
from watcher.findings import SEVERITY_RANK, Finding, report, sort_findings
from watcher.flows.summary import PairSummary
from watcher.flows.window import FlowWindow, to_channel
from watcher.sources.flows import LineCounts, parse_stream
from watcher.window import Window, empty_names


@dataclass(frozen=True)
class Exported:
    """One channel's evidence on this node, for the cluster-wide sum (selfmetrics)."""

    workload: str
    domain: str
    short: int  # new names in the short window
    long: int  # ... in the long window
    encoded: int  # encoded-looking names in the long window
    alerting: bool  # this node's judge already alerts on it (the rule leaves it alone)


@dataclass
class FlowScan:
    cfg: Config
    window: FlowWindow = field(init=False)
    counts: LineCounts = field(default_factory=LineCounts)
    best: dict[tuple[str, str], Finding] = field(default_factory=dict)
    next_volume: float = 0.0

    def __post_init__(self) -> None:
        self.window = FlowWindow(self.cfg, domain_rules(self.cfg))
        self.least = min(
            self.cfg.burst.info_min_distinct,
            self.cfg.burst.encoded_min_distinct,
            self.cfg.flows.min_distinct,
            self.cfg.names.min_distinct,
        )

    def feed(self, lines: Iterable[bytes]) -> list[Finding]:
        """Consume lines; return findings that are new or more severe than before."""
        changed: list[Finding] = []
        w = self.window
        for n, flow in enumerate(parse_stream(lines, self.counts)):
            w.add(flow)
            if w.closed:
                changed += self._judge(w.take_closed(self.least))
            if n % 4096 == 0:
                w.expire()
            if w.evicted:
                changed += self._judge(w.evicted)
                w.evicted.clear()
            if flow.time >= self.next_volume:
                changed += self.judge_volume(flow.time)
        return changed

    def judge_volume(self, at: float) -> list[Finding]:
        """Each source's rate against its own past, as the metrics path judges it."""
        step = self.cfg.windows.step
        self.next_volume = at - at % step + self.cfg.volume.recent / 2
        at = at - at % step  # whole buckets only: a half-filled one reads as a drop
        frame = self.window.volume_frame(at)
        if frame.empty:
            return []
        win = self._volume_window(at, frame)
        return self._keep(detect_high_volume(win, self.cfg, self.window.rules))

    def _volume_window(self, at: float, frame: Any) -> Window:
        return Window(
            at=at,
            short_seconds=self.cfg.windows.short,
            long_seconds=self.cfg.windows.long,
            step_seconds=self.cfg.windows.step,
            short=empty_names(),
            long=empty_names(),
            shaped=empty_names(),
            volume=frame,
        )

    def current(self) -> list[Finding]:
        """What is true now, for incident tracking: findings of the active pairs and of the
        sources' recent volume (a pair that went quiet and expired is absent: it resolves)."""
        found = self._channels(self.window.candidates(self.least))
        at = self.window.now
        if at:
            step = self.cfg.windows.step
            frame = self.window.volume_frame(at - at % step)
            if not frame.empty:
                found += detect_high_volume(
                    self._volume_window(at - at % step, frame), self.cfg, self.window.rules
                )
        return sort_findings(found)

    def exported(self) -> list[Exported]:
        """Channels worth summing across nodes: at least flows.export_min_distinct new names
        that this node's judge does not call hosts (addresses, repetition, shared names), most
        names first, at most flows.export_max_channels."""
        f = self.cfg.flows
        out = []
        for s in self.window.candidates(f.export_min_distinct):
            ch = to_channel(s, self.cfg)
            if ch.long is None or hosts_reason(ch, self.cfg) is not None:
                continue
            found = judge(ch, self.cfg)
            out.append(
                Exported(
                    ch.client,
                    ch.domain,
                    ch.short.names.distinct if ch.short else 0,
                    ch.long.names.distinct,
                    ch.long.names.encoded,
                    found is not None and found.is_alert,
                )
            )
        out.sort(key=lambda e: (-e.long, e.workload, e.domain))
        return out[: f.export_max_channels]

    def judge_now(self) -> list[Finding]:
        return self._judge(self.window.candidates(self.least))

    def _channels(self, summaries: list[PairSummary]) -> list[Finding]:
        return judge_all([to_channel(s, self.cfg) for s in summaries], self.cfg)

    def _judge(self, summaries: list[PairSummary]) -> list[Finding]:
        return self._keep(self._channels(summaries))

    def _keep(self, found: list[Finding]) -> list[Finding]:
        changed = []
        for f in found:
            key = (str(f.evidence.get("workload", f.source)), f.domain or "")
            old = self.best.get(key)
            # Most severe first; at the same severity, the fuller picture (more names) wins.
            # Hosts are hosts for their whole life: a channel first judged before its names
            # had been re-asked or shared is quieted once they are (a file read in hindsight).
            hosts = "quieted_by" in f.evidence and old is not None and old.is_alert
            if old is None or hosts or _rank(f) > _rank(old):
                # Keep the source that was reported first for a stable incident identity.
                if old is not None and old.source != f.source:
                    f = Finding(
                        f.kind, f.severity, old.source, f.domain, f.score, f.summary, f.evidence
                    )
                self.best[key] = f
                if old is None or SEVERITY_RANK[f.severity] > SEVERITY_RANK[old.severity]:
                    changed.append(f)
        return changed

    def warnings(self) -> list[str]:
        out = []
        assert self.counts.skipped is not None
        lost = self.counts.skipped["lost_events"]
        if lost:
            out.append(
                f"{lost} lost-event record(s): Hubble dropped flows before the exporter wrote "
                "them (raise the agent's event buffer or filter the exporter to DNS)"
            )
        bad = self.counts.skipped["malformed"]
        if bad:
            out.append(f"{bad} malformed or truncated line(s) skipped")
        nt = self.counts.skipped["no_time"]
        if nt:
            out.append(f"{nt} DNS flow(s) without a time: keep `time` in the exporter's field mask")
        if self.counts.lines and not self.counts.dns_flows:
            out.append("no DNS flows in the input: is the exporter filtered to DNS (l7 dns)?")
        return out

    def result(self) -> dict[str, Any]:
        self.judge_now()
        if self.window.now:
            self.judge_volume(self.window.now + self.cfg.windows.step)
        at = self.window.now or time.time()
        findings = sort_findings(list(self.best.values()))
        out = report(at, findings, self.warnings())
        out.update(self.counts.to_json())
        return out


def _rank(f: Finding) -> tuple[int, float, float]:
    return (SEVERITY_RANK[f.severity], float(f.evidence.get("distinct_names") or 0), f.score)
