"""subdomain_burst: many distinct names under one registered domain from one source."""

from __future__ import annotations

from watcher.config import Config
from watcher.detect.evidence import annotate, group_evidence
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.findings import SEVERITY_RANK, Finding, Severity
from watcher.window import Window


def _judge(distinct: int, encoded: float, unique: float, base: int, cfg: Config) -> Severity | None:
    b = cfg.burst
    looks_encoded = encoded >= b.encoded_fraction
    # Tunnels use a fresh name per query; pollers repeat theirs. Repeating, plain names: no alert.
    if unique < b.min_unique_ratio and not looks_encoded:
        return "info" if distinct >= b.info_min_distinct else None
    threshold = min(base, b.encoded_min_distinct) if looks_encoded else base
    if distinct >= threshold:
        critical_at = (
            max(base, b.encoded_min_distinct * b.critical_factor)
            if looks_encoded
            else base * b.critical_factor
        )
        return "critical" if distinct >= critical_at else "warning"
    return "info" if distinct >= b.info_min_distinct else None


def _long_unique(window: Window, rules: DomainRules) -> dict[tuple[str, str], float]:
    """Distinct names / queries per (source, domain) over the long window: names that looked
    new in 10 minutes but are re-queried all day are hosts (service discovery, storage, wildcard
    DNS), not a channel's chunks."""
    table = annotate(window.long, rules)
    if table.empty:
        return {}
    g = table.groupby(["source", "domain"], sort=False).agg(
        names=("name", "nunique"), queries=("queries", "sum")
    )
    out: dict[tuple[str, str], float] = {}
    for (source, domain), names, queries in zip(g.index, g["names"], g["queries"], strict=True):
        out[(str(source), str(domain))] = float(names) / float(queries) if queries else 1.0
    return out


def detect_subdomain_burst(window: Window, cfg: Config, rules: DomainRules) -> list[Finding]:
    best: dict[tuple[str, str], Finding] = {}
    long_unique = _long_unique(window, rules)
    spans = (
        (window.short, window.short_seconds, cfg.burst.short_min_distinct),
        (window.long, window.long_seconds, cfg.burst.long_min_distinct),
    )
    for names, seconds, base in spans:
        table = annotate(names, rules)
        if table.empty:
            continue
        least = min(cfg.burst.info_min_distinct, cfg.burst.encoded_min_distinct)
        label = human_duration(seconds)
        for (source, domain), group in table.groupby(["source", "domain"], sort=False):
            if group["name"].nunique() < least:
                continue
            ev = group_evidence(
                group,
                label,
                cfg.output.sample_names,
                cfg.output.max_name_chars,
                cfg.names.min_score,
            )
            unique = ev["unique_ratio"]
            repeat = long_unique.get((str(source), str(domain)), 1.0)
            if repeat < unique:
                ev["unique_ratio_long"] = round(repeat, 3)
                unique = repeat
            severity = _judge(ev["distinct_names"], ev["encoded_fraction"], unique, base, cfg)
            if severity is None:
                continue
            plain = _judge(
                ev["distinct_names"], ev["encoded_fraction"], ev["unique_ratio"], base, cfg
            )
            if severity == "info" and plain != "info":
                ev["why_not_alerted"] = (
                    f"names re-queried over {human_duration(window.long_seconds)} "
                    f"(distinct/queries {repeat:.2f}): hosts, not one-off chunks"
                )
            ev["threshold_distinct"] = base
            score = min(
                1.0,
                0.5 * min(1.0, ev["distinct_names"] / (2 * base))
                + 0.5 * ev["encoded_fraction"]
                + 0.25 * (severity == "critical"),
            )
            finding = Finding(
                kind="subdomain_burst",
                severity=severity,
                source=str(source),
                domain=str(domain),
                score=score,
                summary=(
                    f"{ev['distinct_names']} distinct names under {domain} in {label} "
                    f"({ev['encoded_fraction']:.0%} encoded-looking, ~{ev['est_bytes']} bytes)"
                ),
                evidence=ev,
            )
            key = (str(source), str(domain))
            old = best.get(key)
            # Most severe wins; on a tie, the window holding more of the incident.
            if old is None or (
                SEVERITY_RANK[finding.severity],
                finding.score,
                ev["distinct_names"],
            ) > (SEVERITY_RANK[old.severity], old.score, old.evidence["distinct_names"]):
                best[key] = finding
    return list(best.values())
