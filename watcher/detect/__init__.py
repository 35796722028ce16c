"""Pure detectors: evidence + Config -> findings. No I/O; no evidence gives no findings.

One judge (watcher.detect.judge) reads every source's evidence (watcher.evidence): one record
per channel, and each source's volume measured against its own past (watcher.detect.volume).
"""

from __future__ import annotations

from watcher.config import Config, domain_rules
from watcher.detect.judge import judge, judge_all, judge_evidence, judge_volume
from watcher.evidence import Evidence, busiest, of_window
from watcher.findings import Finding, Scanned, sort_findings
from watcher.window import Window

__all__ = ["detect_all", "judge", "judge_all", "judge_evidence", "judge_volume", "scanned"]


def detect_all(window: Window, cfg: Config) -> list[Finding]:
    """Every finding of a metrics window: one per channel, plus each source's volume."""
    return sort_findings(judge_evidence(of_window(window, cfg), cfg, domain_rules(cfg)))


def scanned(ev: Evidence, cfg: Config) -> Scanned:
    """One source's evidence judged: the cycle's input."""
    return Scanned(
        ev.at,
        sort_findings(judge_evidence(ev, cfg, domain_rules(cfg))),
        list(ev.warnings),
        busiest(ev.channels, cfg.output.export_channels),
    )
