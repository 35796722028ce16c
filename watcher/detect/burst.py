"""subdomain_burst: many distinct names under one registered domain from one source, or from
the pods of one workload together (a leak spread over replicas, each below the thresholds)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from watcher.config import Config
from watcher.detect.evidence import (
    annotate,
    by_workload,
    group_evidence,
    workload_evidence,
    workload_groups,
)
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.findings import SEVERITY_RANK, Finding, Severity
from watcher.window import Window


def _judge(
    distinct: int,
    encoded: float,
    unique: float,
    base: int,
    cfg: Config,
    encoded_min: int | None = None,
) -> Severity | None:
    b = cfg.burst
    least = encoded_min or b.encoded_min_distinct
    looks_encoded = encoded >= b.encoded_fraction
    # Tunnels use a fresh name per query; pollers repeat theirs. Repeating, plain names: no alert.
    if unique < b.min_unique_ratio and not looks_encoded:
        return "info" if distinct >= b.info_min_distinct else None
    threshold = min(base, least) if looks_encoded else base
    if distinct >= threshold:
        critical_at = (
            max(base, least * b.critical_factor) if looks_encoded else base * b.critical_factor
        )
        return "critical" if distinct >= critical_at else "warning"
    return "info" if distinct >= b.info_min_distinct else None


def _long_unique(table: pd.DataFrame, key: str) -> dict[tuple[str, str], float]:
    """Distinct names / queries per (source or workload, domain) over the long window: names
    that looked new in 10 minutes but are re-queried all day are hosts (service discovery,
    storage, wildcard DNS), not a channel's chunks."""
    if table.empty:
        return {}
    g = table.groupby([key, "domain"], sort=False).agg(
        names=("name", "nunique"), queries=("queries", "sum")
    )
    out: dict[tuple[str, str], float] = {}
    for (who, domain), names, queries in zip(g.index, g["names"], g["queries"], strict=True):
        out[(str(who), str(domain))] = float(names) / float(queries) if queries else 1.0
    return out


def _finding(
    group: pd.DataFrame,
    who: str,
    domain: str,
    seconds: float,
    base: int,
    repeat: float,
    window: Window,
    cfg: Config,
    extra: dict[str, Any],
    encoded_min: int | None = None,
) -> Finding | None:
    label = human_duration(seconds)
    ev = group_evidence(
        group, label, cfg.output.sample_names, cfg.output.max_name_chars, cfg.names.min_score
    )
    ev.update(extra)
    unique = ev["unique_ratio"]
    if repeat < unique:
        ev["unique_ratio_long"] = round(repeat, 3)
        unique = repeat
    severity = _judge(ev["distinct_names"], ev["encoded_fraction"], unique, base, cfg, encoded_min)
    if severity is None:
        return None
    plain = _judge(
        ev["distinct_names"], ev["encoded_fraction"], ev["unique_ratio"], base, cfg, encoded_min
    )
    if severity == "info" and plain != "info":
        ev["why_not_alerted"] = (
            f"names re-queried over {human_duration(max(window.long_seconds, window.day_seconds))} "
            f"(distinct/queries {repeat:.2f}): hosts, not one-off chunks"
        )
    ev["threshold_distinct"] = base
    score = min(
        1.0,
        0.5 * min(1.0, ev["distinct_names"] / (2 * base))
        + 0.5 * ev["encoded_fraction"]
        + 0.25 * (severity == "critical"),
    )
    pods = f" from {extra['pods']} pods of {who}" if "pods" in extra else ""
    return Finding(
        kind="subdomain_burst",
        severity=severity,
        source=who,
        domain=domain,
        score=score,
        summary=(
            f"{ev['distinct_names']} distinct names under {domain} in {label}{pods} "
            f"({ev['encoded_fraction']:.0%} encoded-looking, ~{ev['est_bytes']} bytes)"
        ),
        evidence=ev,
    )


def _keep(best: dict[tuple[str, str], Finding], finding: Finding | None) -> None:
    """Most severe wins; on a tie, the window holding more of the incident."""
    if finding is None:
        return
    key = (finding.source, finding.domain or "")
    old = best.get(key)
    if old is None or (
        SEVERITY_RANK[finding.severity],
        finding.score,
        finding.evidence["distinct_names"],
    ) > (SEVERITY_RANK[old.severity], old.score, old.evidence["distinct_names"]):
        best[key] = finding


def _repeats(tables: list[pd.DataFrame], key: str) -> dict[tuple[str, str], float]:
    """The lowest distinct/queries ratio of each pair over the long and the day windows."""
    out: dict[tuple[str, str], float] = {}
    for table in tables:
        for pair, ratio in _long_unique(table, key).items():
            out[pair] = min(ratio, out.get(pair, 1.0))
    return out


def detect_subdomain_burst(window: Window, cfg: Config, rules: DomainRules) -> list[Finding]:
    b = cfg.burst
    least = min(b.info_min_distinct, b.encoded_min_distinct)
    # (names, seconds, threshold, encoded threshold, alerts only)
    tables: list[tuple[pd.DataFrame, float, int, int | None, bool]] = [
        (annotate(window.short, rules), window.short_seconds, b.short_min_distinct, None, False),
        (annotate(window.long, rules), window.long_seconds, b.long_min_distinct, None, False),
    ]
    if window.day_seconds > window.long_seconds and not window.day.empty:
        tables.append(
            (
                annotate(window.day, rules),
                window.day_seconds,
                b.day_min_distinct,
                day_encoded_min(cfg, window.day_seconds),
                True,  # a day's worth of names: page or stay quiet, no info noise
            )
        )
    long_tables = [t[0] for t in tables[1:]]
    per_pod: dict[tuple[str, str], Finding] = {}
    repeats = _repeats(long_tables, "source")
    for table, seconds, base, enc_min, alerts_only in tables:
        if table.empty:
            continue
        for (source, domain), group in table.groupby(["source", "domain"], sort=False):
            if group["name"].nunique() < least:
                continue
            repeat = repeats.get((str(source), str(domain)), 1.0)
            found = _finding(
                group, str(source), str(domain), seconds, base, repeat, window, cfg, {}, enc_min
            )
            if found is not None and (found.is_alert or not alerts_only):
                _keep(per_pod, found)
    # The same, per workload: only where no single pod of it already alerts for the domain.
    alerted = {(f.source, f.domain) for f in per_pod.values() if f.is_alert}
    per_workload: dict[tuple[str, str], Finding] = {}
    wl_repeats = _repeats([by_workload(t) for t in long_tables], "workload")
    for table, seconds, base, enc_min, _ in tables:
        for (workload, domain), group, pods in workload_groups(table, least):
            if any((p, domain) in alerted for p in pods):
                continue
            repeat = wl_repeats.get((workload, domain), 1.0)
            found = _finding(
                group,
                workload,
                domain,
                seconds,
                base,
                repeat,
                window,
                cfg,
                workload_evidence(workload, pods, cfg.output.sample_names),
                enc_min,
            )
            if found is not None and found.is_alert:
                _keep(per_workload, found)
    return [*per_pod.values(), *per_workload.values()]


def day_encoded_min(cfg: Config, day_seconds: float) -> int:
    """Encoded-looking names needed over the day: the long window's minimum at the same rate."""
    w, b = cfg.windows, cfg.burst
    return max(b.encoded_min_distinct, round(b.encoded_min_distinct * day_seconds / w.long))


def day_history_needed(cfg: Config) -> float:
    """History the day window needs to see a leak the long window misses (12 h by default):
    over less, its threshold is the long window's rate or above, so it adds nothing. 0: off."""
    w, b = cfg.windows, cfg.burst
    if not w.day:
        return 0.0
    return max(w.long, w.day * b.long_min_distinct / b.day_min_distinct)


def day_candidate_min(cfg: Config, day_seconds: float) -> int:
    """The fewest distinct names a pair needs over the day to alert at all."""
    return min(cfg.burst.day_min_distinct, day_encoded_min(cfg, day_seconds))
