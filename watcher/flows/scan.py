"""The flow pipeline: lines -> FlowSource (DnsFlow -> FlowWindow -> Evidence) -> judge -> findings.

A batch read (`dnswatch flows FILE…`) judges every pair each time one of its 5-minute buckets
closes, when it is evicted and at the end, and keeps the most severe finding per (workload,
domain): an incident early in a long file is reported as well as one at its end. `follow`
tails a growing, rotating file and reports a finding as soon as the pair crosses a threshold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from watcher.config import Config
from watcher.detect import judge, judge_evidence
from watcher.evidence import Evidence
from watcher.findings import SEVERITY_RANK, Finding, report, sort_findings
from watcher.flows.source import FlowSource
from watcher.flows.window import to_channel
from watcher.sources.flows import DnsFlow


@dataclass(frozen=True)
class Exported:
    """One channel's evidence on this node, for the cluster-wide sum (selfmetrics)."""

    workload: str
    domain: str
    short: int  # new names in the short window
    long: int  # ... in the long window
    encoded: int  # encoded-looking names in the long window
    alerting: bool  # this node's judge already alerts on it (the rule leaves it alone)


class FlowScan:
    """The flow source's evidence judged as it comes, keeping the most severe per channel."""

    def __init__(self, cfg: Config, live: bool = False) -> None:
        """`live`: a follower, whose findings are printed and sent as they come and cannot be
        taken back: plain names count as one-off in the long and day windows only once they
        could have been asked again (judge.repeat_min_slots steps after their first ask). A
        batch read judges in hindsight (a channel first judged before its names were re-asked
        is quieted once they are), so it needs no wait."""
        self.cfg = cfg
        self.source = FlowSource(cfg)
        self.window = self.source.window
        if live:
            self.window.ripe = cfg.judge.repeat_step * cfg.judge.repeat_min_slots
        self.counts = self.source.counts
        self.rules = self.window.rules
        self.best: dict[tuple[str, str], Finding] = {}

    def snapshot(self) -> dict[str, Any]:
        """Everything a restarted follower needs to go on as if it never stopped: the source's
        window and the findings already reported (so they are not reported again)."""
        best = [
            (f.kind, f.severity, f.source, f.domain, f.score, f.summary, json.dumps(f.evidence))
            for f in self.best.values()
        ]
        return {"source": self.source.snapshot(), "best": best}

    def restore(self, state: dict[str, Any]) -> None:
        self.source.restore(state["source"])
        self.counts = self.source.counts
        self.best = {}
        for kind, sev, source, domain, score, summary, evidence in state["best"]:
            f = Finding(kind, sev, source, domain, score, summary, json.loads(evidence))
            self.best[(str(f.evidence.get("workload", f.source)), f.domain or "")] = f

    def feed(self, lines: Iterable[bytes]) -> list[Finding]:
        """Consume lines; return findings that are new or more severe than before."""
        changed: list[Finding] = []
        for ev in self.source.feed(lines):
            changed += self._keep(self._judge(ev))
        return changed

    def feed_flows(self, flows: Iterable[DnsFlow]) -> list[Finding]:
        """As feed, for flows that came parsed (Hubble Relay's messages)."""
        changed: list[Finding] = []
        for ev in self.source.feed_flows(flows):
            changed += self._keep(self._judge(ev))
        return changed

    def judge_volume(self, at: float) -> list[Finding]:
        """Each source's rate against its own past, as the metrics path judges it."""
        return self._keep(self._judge(self.source.volume_at(at)))

    def current(self) -> list[Finding]:
        """What is true now, for incident tracking: findings of the active pairs and of the
        sources' recent volume (a pair that went quiet and expired is absent: it resolves)."""
        return sort_findings(self._judge(self.source.evidence()))

    def exported(self) -> list[Exported]:
        """Channels worth summing across nodes: at least flows.export_min_distinct one-off
        names (names this node's judge does not call hosts), most names first, at most
        flows.export_max_channels."""
        f = self.cfg.flows
        out = []
        for s in self.window.candidates(f.export_min_distinct):
            ch = to_channel(s, self.cfg)
            short = ch.short.one_off.distinct if ch.short else 0
            # The short window counts a live judge's unripe names too (the long waits for
            # them): either may make the channel worth summing.
            if ch.long is None or max(short, ch.long.one_off.distinct) < f.export_min_distinct:
                continue
            found = judge(ch, self.cfg)
            out.append(
                Exported(
                    ch.client,
                    ch.domain,
                    short,
                    ch.long.one_off.distinct,
                    ch.long.one_off.encoded,
                    found is not None and found.is_alert,
                )
            )
        out.sort(key=lambda e: (-max(e.short, e.long), e.workload, e.domain))
        return out[: f.export_max_channels]

    def judge_now(self) -> list[Finding]:
        return self._keep(self._judge(self.source.pending()))

    def _judge(self, ev: Evidence) -> list[Finding]:
        return judge_evidence(ev, self.cfg, self.rules)

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
        return self.source.warnings()

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
