"""suspicious_name: names shaped like encoded payloads, even when there are only a few."""

from __future__ import annotations

from watcher.config import Config
from watcher.detect.evidence import annotate, group_evidence
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.findings import Finding, Severity
from watcher.window import Window


def detect_suspicious_name(window: Window, cfg: Config, rules: DomainRules) -> list[Finding]:
    table = annotate(window.shaped, rules)
    if table.empty:
        return []
    n = cfg.names
    hits = table[table["score"] >= n.min_score]
    label = human_duration(window.long_seconds)
    out: list[Finding] = []
    for (source, domain), group in hits.groupby(["source", "domain"]):
        ev = group_evidence(
            group, label, cfg.output.sample_names, cfg.output.max_name_chars, n.min_score
        )
        k = ev["distinct_names"]
        severity: Severity = (
            "critical" if k >= n.critical_distinct else "warning" if k >= n.min_distinct else "info"
        )
        out.append(
            Finding(
                kind="suspicious_name",
                severity=severity,
                source=str(source),
                domain=str(domain),
                score=min(1.0, ev["mean_score"] * min(1.0, 0.5 + k / (2 * n.min_distinct))),
                summary=(
                    f"{k} encoded-looking name{'s' if k != 1 else ''} under {domain} in {label} "
                    f"({ev['alphabet']}, longest {ev['max_name_length']} chars, "
                    f"{ev['queries']:.0f} queries)"
                ),
                evidence=ev,
            )
        )
    return out
