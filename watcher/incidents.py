"""Incidents: what turns a stream of scans into one notification per incident.

`reconcile` is pure: the active incidents from the state, the findings of this scan and its time
in; the updated incidents and the events to deliver out. Time is the scan's time (`--at`), so a
backtest over past moments behaves like the live job did.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from watcher.config import IncidentsConfig
from watcher.findings import SEVERITY_RANK, Finding, most_severe
from watcher.window import workload_of

EventKind = Literal["firing", "escalated", "reminder", "resolved"]
Key = tuple[str, str, str]

# A burst and encoded-looking names under one domain from one source are the same channel seen
# two ways; the detectors report whichever is stronger at the moment, so one incident covers
# both and a flip between them is not a new page.
FAMILY = {
    "subdomain_burst": "channel",
    "suspicious_name": "channel",
    "channel_behaviour": "channel",
    "beacon": "channel",  # a beacon that starts sending is the same channel, one incident
    "high_volume": "volume",
    "drill": "drill",  # a drill is its own incident, never mixed with a real one
}


def family_key(kind: str, channel: str, domain: str | None) -> Key:
    """An incident is keyed by channel: (family, workload or node, domain). Pods come and go
    under it: a rollout, a restart or another replica joining continues the same incident."""
    return (FAMILY.get(kind, kind), channel, domain or "")


@dataclass(frozen=True)
class Incident:
    kind: str  # the kind first seen: stable, it labels the incident everywhere
    source: str
    domain: str  # "" for a source-wide finding
    severity: str  # as last seen
    first_seen: float
    last_seen: float
    notified_at: float  # last firing/escalated/reminder event
    notified_severity: str  # highest severity an event carried
    finding: dict[str, Any] = field(default_factory=dict)  # latest finding, JSON form
    status: Literal["active", "resolved"] = "active"
    resolved_at: float | None = None
    id: int | None = None  # row id once stored
    am_severity: str | None = None  # severity label last posted to Alertmanager

    @property
    def channel(self) -> str:
        """The workload (or node) of the incident; rows stored before incidents were keyed by
        channel name a pod, whose workload is taken here, so they continue in place."""
        evidence = self.finding.get("evidence") or {}
        return str(evidence.get("workload") or workload_of(self.source))

    @property
    def key(self) -> Key:
        return family_key(self.kind, self.channel, self.domain)


@dataclass(frozen=True)
class Event:
    kind: EventKind
    incident: Incident


def _strongest(findings: list[Finding], min_severity: str) -> dict[Key, Finding]:
    """The most severe finding per incident key. A workload's volume spike beside one of its
    channels is that leak's traffic: one page per leak, so it opens no incident of its own."""
    floor = SEVERITY_RANK[min_severity]
    leaking = {
        f.channel
        for f in findings
        if FAMILY.get(f.kind) == "channel" and SEVERITY_RANK[f.severity] >= floor
    }
    kept = [
        f
        for f in findings
        if SEVERITY_RANK[f.severity] >= floor
        and not (FAMILY.get(f.kind) == "volume" and f.channel in leaking)
    ]
    return most_severe(kept, lambda f: family_key(f.kind, f.channel, f.domain))


def reconcile(
    active: list[Incident], findings: list[Finding], now: float, policy: IncidentsConfig
) -> tuple[list[Incident], list[Event]]:
    """Fold one scan into the active incidents.

    New key: `firing`. Seen again with a higher severity than any event carried: `escalated`.
    Seen again after `renotify_interval`: `reminder`. Not seen for `resolve_after`: `resolved`.
    Returns every incident that changed (new, updated or resolved) and the events, in order.
    """
    seen = _strongest(findings, policy.min_severity)
    by_key = {i.key: i for i in active}
    changed: list[Incident] = []
    events: list[Event] = []
    for key, f in sorted(seen.items()):
        old = by_key.get(key)
        if old is None:
            inc = Incident(
                kind=f.kind,
                source=f.source,
                domain=f.domain or "",
                severity=f.severity,
                first_seen=now,
                last_seen=now,
                notified_at=now,
                notified_severity=f.severity,
                finding=f.to_json(),
            )
            changed.append(inc)
            events.append(Event("firing", inc))
            continue
        inc = replace(
            old, severity=f.severity, last_seen=max(old.last_seen, now), finding=f.to_json()
        )
        if SEVERITY_RANK[f.severity] > SEVERITY_RANK[old.notified_severity]:
            inc = replace(inc, notified_at=now, notified_severity=f.severity)
            events.append(Event("escalated", inc))
        elif now - old.notified_at >= policy.renotify_interval:
            inc = replace(inc, notified_at=now)
            events.append(Event("reminder", inc))
        changed.append(inc)
    for key, old in sorted(by_key.items()):
        if key in seen or now - old.last_seen < policy.resolve_after:
            continue
        inc = replace(old, status="resolved", resolved_at=now)
        changed.append(inc)
        events.append(Event("resolved", inc))
    return changed, events
