"""Pure detectors: evidence + Config -> findings. No I/O; no evidence gives no findings.

Name-based findings come from one judge over per-channel records (watcher/channel.py), whatever
the source; volume is judged per source against its own past.
"""

from __future__ import annotations

from watcher.channel import from_window
from watcher.config import Config, domain_rules
from watcher.detect.judge import judge, judge_all
from watcher.detect.volume import detect_high_volume
from watcher.findings import Finding, Scanned, sort_findings
from watcher.window import Window

__all__ = ["detect_all", "detect_high_volume", "judge", "judge_all", "scanned"]


def detect_all(window: Window, cfg: Config) -> list[Finding]:
    """Every finding of a metrics window: one per channel, plus each source's volume."""
    rules = domain_rules(cfg)
    channels = judge_all(from_window(window, cfg, rules), cfg)
    return sort_findings([*channels, *detect_high_volume(window, cfg, rules)])


def scanned(window: Window, cfg: Config) -> Scanned:
    """A metrics window judged: the cycle's input, as flow lines give it."""
    return Scanned(window.at, detect_all(window, cfg), list(window.warnings))
