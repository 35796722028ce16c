"""PromQL the watcher sends. Every value from outside (names, sources, domains) is escaped here."""

from __future__ import annotations

import re
from collections.abc import Iterable

from watcher.duration import promql_duration
from watcher.text import promql_string, regex_escape
from watcher.window import HOST_LABELS

# Every pattern starts with (?s): names may hold newlines, and RE2's `.` skips them otherwise.
# Cut the last two labels of a name: a superset of its registered domain (`co.uk` gathers all of
# `*.co.uk`), so a (source, zone) count never under-counts a (source, registered domain) pair.
ZONE_REGEX = r"(?s)(?:.*\.)?([^.]+\.[^.]+)\.?"
# A pod's workload: the shortest prefix followed by `-<hash>-<id>` or `-<id>`, else the whole
# value (leftmost-first, as in Python: window.workload_of gives the same for `ns/pod`).
WORKLOAD_REGEX = r"(?s)(.+?)(?:(?:-[a-z0-9]{6,10})?-[a-z0-9]{5})?"


def selector(metric: str, matchers: Iterable[str]) -> str:
    return f"{metric}{{{', '.join(matchers)}}}"


def base_matchers(
    query_label: str, cluster_domain: str, private_tlds: Iterable[str] = ()
) -> list[str]:
    """Names worth a look: not empty, not the cluster domain, not under a private-use TLD
    (never reaches an attacker's server: the watcher drops them, so do the rules)."""
    cluster = rf"(?s)(?:.*\.)?{regex_escape(cluster_domain.strip('.').lower())}\.?"
    out = [f'{query_label}!=""', f"{query_label}!~{promql_string(cluster)}"]
    tlds = sorted({regex_escape(t.strip(".").lower()) for t in private_tlds if t.strip(".")})
    if tlds:
        pattern = r"(?s).*\.(?:" + "|".join(tlds) + r")\.?"
        out.append(f"{query_label}!~{promql_string(pattern)}")
    return out


def under_zones(query_label: str, zones: Iterable[str]) -> str:
    """Names under any of these zones: one grouped fetch instead of a query per zone."""
    alternatives = "|".join(sorted({regex_escape(z) for z in zones}))
    pattern = r"(?s)(?:.+\.)?(?:" + alternatives + r")\.?"
    return f"{query_label}=~{promql_string(pattern)}"


_ZONE = re.compile(ZONE_REGEX)


def zone_of(name: str) -> str:
    """The zone ZONE_REGEX gives a name in PromQL, computed here to sort a grouped fetch."""
    m = _ZONE.fullmatch(name)
    return m.group(1) if m else ""


def one_of(label: str, values: Iterable[str]) -> str:
    alternatives = "|".join(sorted({regex_escape(v) for v in values}))
    return f"{label}=~{promql_string(alternatives)}"


def prefixed(label: str, values: Iterable[str]) -> str:
    """The value, or the value followed by `-anything` (the pods of a workload)."""
    alternatives = "|".join(sorted({regex_escape(v) for v in values}))
    return f"{label}=~{promql_string(f'(?s)(?:{alternatives})(?:-.*)?')}"


def activity(sel: str, seconds: float) -> str:
    """Per-series queries within the last `seconds`: a series new in the span counts its whole value
    (its first query is invisible to increase()), an older one its reset-aware increase; a series
    that merely persists counts nothing and is dropped."""
    w = promql_duration(seconds)
    return (
        f"(((last_over_time({sel}[{w}]) unless {sel} offset {w})"
        f" or (increase({sel}[{w}]) and {sel} offset {w})) > 0)"
    )


def activity_now(sel: str, seconds: float) -> str:
    """activity() from instant comparisons only (no range selectors): series new since the
    window began, grown in it, or restarted (reset) in it. Cheap enough to evaluate every minute
    as a recording rule; rules run while a pod lives, so a pod deleted before a one-off scan (what
    activity()'s range selectors are for) is no concern there."""
    w = promql_duration(seconds)
    return (
        f"(({sel} unless {sel} offset {w}) or ({sel} - {sel} offset {w} > 0)"
        f" or ({sel} < {sel} offset {w}))"
    )


def by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def zone_counts(
    sel: str, seconds: float, source_labels: list[str], query_label: str, now: bool = False
) -> str:
    """Distinct names queried per (workload, zone) in the span: the pods of one workload together
    (a leak spread over replicas is one channel), and a superset of each pod's own count, so a
    workload's pods are candidates whenever one of them is. The workload is the last source
    label with its pod suffix cut (WORKLOAD_REGEX, as window.workload_of does). `now`: from
    instant comparisons (activity_now), for the day window: no range selector reads a day of
    samples of every series; pods deleted since are missed there (the long window sees them)."""
    last = source_labels[-1]
    act = activity_now(sel, seconds) if now else activity(sel, seconds)
    keys = by([*source_labels[:-1], "dnswatch_workload", "dnswatch_zone"])
    zoned = (
        f'label_replace(label_replace({act}, "dnswatch_zone", "$1", '
        f"{promql_string(query_label)}, {promql_string(ZONE_REGEX)}), "
        f'"dnswatch_workload", "$1", {promql_string(last)}, {promql_string(WORKLOAD_REGEX)})'
    )
    return f"count by ({keys}) (count by ({keys}, {query_label}) ({zoned}))"


def with_host(source_labels: list[str]) -> list[str]:
    """The source labels and the labels naming the node (for clients with no pod identity)."""
    return [*source_labels, *HOST_LABELS]


def names(
    sel: str, seconds: float, source_labels: list[str], query_label: str, now: bool = False
) -> str:
    """Queries per (source, name) in the span (per node too: see window.source_name). `now`:
    by instant comparisons, as zone_counts(now=True)."""
    act = activity_now(sel, seconds) if now else activity(sel, seconds)
    return f"sum by ({by(with_host(source_labels))}, {query_label}) ({act})"


BORN = -1e9  # reasks(): the value of a step in which the series was born


def reasks(source_labels: list[str], query_label: str, sel: str, step: float) -> str:
    """Per (source, name) and step (a range query at this step): BORN where the series is
    new (its first ask), else its increase where it was asked again. Only those steps come
    back, not a point per step of every series. The increase looks 1.5 steps back, so a
    re-ask between two ranges is never lost (at most seen in two steps)."""
    w, back = promql_duration(step), promql_duration(step * 1.5)
    born = f"(({sel} unless {sel} offset {w}) * 0 + {BORN:g})"
    again = f"(increase({sel}[{back}]) > 0)"
    return f"sum by ({by([*with_host(source_labels), query_label])}) ({born} or {again})"


def volume(sel: str, step: float, source_labels: list[str]) -> str:
    """Queries per source per step (evaluate as a range query with this step). increase() handles
    agent restarts; a name's very first query is not in it (the burst detector counts those), so
    the per-step set operations of activity() are not paid over every series of a big cluster."""
    return f"sum by ({by(with_host(source_labels))}) (increase({sel}[{promql_duration(step)}]))"


def volume_median(sel: str, step: float, span: float, offset: float, labels: list[str]) -> str:
    """Each source's median queries per `step` over `span` ending `offset` before the scan, as one
    instant query: the cheap screen that picks which sources' whole history is worth fetching
    (a coarse step keeps the per-step work small)."""
    inner = f"sum by ({by(with_host(labels))}) (increase({sel}[{promql_duration(step)}]))"
    return (
        f"quantile_over_time(0.5, ({inner})[{promql_duration(span)}:{promql_duration(step)}] "
        f"offset {promql_duration(offset)})"
    )
