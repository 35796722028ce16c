"""Pure detectors: Window + Config -> findings. No I/O; an empty window gives no findings."""

from __future__ import annotations

from watcher.config import Config
from watcher.detect.burst import detect_subdomain_burst
from watcher.detect.names import detect_suspicious_name
from watcher.detect.volume import detect_high_volume
from watcher.domains import DomainRules
from watcher.findings import SEVERITY_RANK, Finding, sort_findings
from watcher.window import Window, workload_of

DETECTORS = (detect_subdomain_burst, detect_suspicious_name, detect_high_volume)


def rules_for(cfg: Config) -> DomainRules:
    return DomainRules.build(
        cfg.labels.cluster_domain,
        cfg.allowlist.suffixes,
        cfg.allowlist.use_defaults,
        cfg.allowlist.sources,
        cfg.allowlist.address_lookups,
        cfg.allowlist.private_tlds,
    )


def detect_all(window: Window, cfg: Config) -> list[Finding]:
    """Run every detector. One channel, one finding: of a subdomain_burst and a suspicious_name
    for the same (source, domain), the more severe stays (the burst on a tie)."""
    rules = rules_for(cfg)
    found = [f for detector in DETECTORS for f in detector(window, cfg, rules)]
    best: dict[tuple[str, str], Finding] = {}
    kept: list[Finding] = []
    for f in found:
        if f.kind == "high_volume":
            kept.append(f)
            continue
        key = (f.source, f.domain or "")
        old = best.get(key)
        rank = (SEVERITY_RANK[f.severity], f.kind == "subdomain_burst")
        if old is None or rank > (SEVERITY_RANK[old.severity], old.kind == "subdomain_burst"):
            best[key] = f
    # A workload's alert (a leak spread over its pods) stands for its pods' info findings.
    spread = {(f.source, f.domain) for f in best.values() if f.is_alert and "pods" in f.evidence}
    named = [
        f
        for f in best.values()
        if f.is_alert or "pods" in f.evidence or (workload_of(f.source), f.domain) not in spread
    ]
    return sort_findings([*kept, *named])
