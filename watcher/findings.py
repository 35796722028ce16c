"""The Finding and its JSON form: the output contract other tools read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from watcher.window import workload_of

Kind = Literal[
    "subdomain_burst", "high_volume", "suspicious_name", "channel_behaviour", "beacon", "drill"
]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
ALERT_SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Finding:
    kind: Kind
    severity: Severity
    source: str
    domain: str | None  # registered domain, lower-case, no trailing dot; None: source-wide
    score: float  # 0..1
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def is_alert(self) -> bool:
        return self.severity in ALERT_SEVERITIES

    @property
    def channel(self) -> str:
        """The client a leak is: the workload (or node), whichever pod the finding names, so
        a rollout, a restart or another replica is the same channel."""
        return str(self.evidence.get("workload") or workload_of(self.source))

    def key(self) -> tuple[str, str, str]:
        """Identity of the finding: (kind, channel, domain)."""
        return (self.kind, self.channel, self.domain or "")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "source": self.source,
            "domain": self.domain,
            "score": round(self.score, 3),
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Scanned:
    """What one scan found, as of `at`, whatever the source: the cycle's one input."""

    at: float
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)
    busiest: list[ChannelNames] = field(default_factory=list)


@dataclass(frozen=True)
class ChannelNames:
    """Distinct names of one of the busiest channels in one window: what the dashboard's
    names panels read (dnswatch_channel_names), bounded by output.export_channels."""

    workload: str
    domain: str
    window: str  # "short" | "long"
    names: int
    one_off: int


def most_severe(findings: list[Finding], key: Any) -> dict[Any, Finding]:
    """The most severe finding per key(finding); the first seen wins a tie."""
    best: dict[Any, Finding] = {}
    for f in findings:
        k = key(f)
        if k not in best or SEVERITY_RANK[f.severity] > SEVERITY_RANK[best[k].severity]:
            best[k] = f
    return best


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then highest score; stable for equal ones."""
    return sorted(
        findings,
        key=lambda f: (-SEVERITY_RANK[f.severity], -f.score, f.source, f.domain or "", f.kind),
    )


def report(at: float, findings: list[Finding], warnings: list[str] | None = None) -> dict[str, Any]:
    return {
        "evaluated_at": rfc3339(at),
        "findings": [f.to_json() for f in sort_findings(findings)],
        "warnings": list(warnings or []),
    }
