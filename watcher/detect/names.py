"""suspicious_name: names shaped like encoded payloads, even when there are only a few."""

from __future__ import annotations

from watcher.config import Config
from watcher.detect.evidence import annotate, group_evidence
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.findings import Finding, Severity
from watcher.window import Window

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def _odd_name(name: str) -> bool:
    return not set(name.lower()) <= _HOST_CHARS


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
        per_name = ev["queries"] / k if k else 0.0
        if (
            severity != "info"
            and per_name >= n.repeat_quiet
            and not any(_odd_name(str(x)) for x in group["name"])
        ):
            # Host-name-legal names, each re-queried all window long: a steady set of hosts
            # (storage accounts, tenant IDs), not payload. `+ / =` names stay reported.
            severity = "info"
            ev["why_not_alerted"] = (
                f"each name re-queried ~{per_name:.0f} times in {label}, host-name characters "
                "only: a steady set of hosts"
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
