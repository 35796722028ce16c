"""suspicious_name: names shaped like encoded payloads, even when there are only a few."""

from __future__ import annotations

from typing import Any

import pandas as pd

from watcher.config import Config
from watcher.detect.evidence import annotate, group_evidence, workload_evidence, workload_groups
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.findings import Finding, Severity
from watcher.window import Window

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def _odd_name(name: str) -> bool:
    return not set(name.lower()) <= _HOST_CHARS


def _finding(
    group: pd.DataFrame, who: str, domain: str, label: str, cfg: Config, extra: dict[str, Any]
) -> Finding:
    n = cfg.names
    ev = group_evidence(
        group, label, cfg.output.sample_names, cfg.output.max_name_chars, n.min_score
    )
    ev.update(extra)
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
    pods = f" from {extra['pods']} pods of {who}" if "pods" in extra else ""
    return Finding(
        kind="suspicious_name",
        severity=severity,
        source=who,
        domain=domain,
        score=min(1.0, ev["mean_score"] * min(1.0, 0.5 + k / (2 * n.min_distinct))),
        summary=(
            f"{k} encoded-looking name{'s' if k != 1 else ''} under {domain} in {label}{pods} "
            f"({ev['alphabet']}, longest {ev['max_name_length']} chars, "
            f"{ev['queries']:.0f} queries)"
        ),
        evidence=ev,
    )


def detect_suspicious_name(window: Window, cfg: Config, rules: DomainRules) -> list[Finding]:
    table = annotate(window.shaped, rules)
    if table.empty:
        return []
    hits = table[table["score"] >= cfg.names.min_score]
    label = human_duration(window.long_seconds)
    out = [
        _finding(group, str(source), str(domain), label, cfg, {})
        for (source, domain), group in hits.groupby(["source", "domain"])
    ]
    # Per workload: encoded names spread over replicas, one or two per pod.
    alerted = {(f.source, f.domain) for f in out if f.is_alert}
    for (workload, domain), group, pods in workload_groups(hits, cfg.names.min_distinct):
        if any((p, domain) in alerted for p in pods):
            continue
        extra = workload_evidence(workload, pods, cfg.output.sample_names)
        found = _finding(group, workload, domain, label, cfg, extra)
        if found.is_alert:
            out.append(found)
    return out
