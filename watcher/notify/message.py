"""What every notification says, whatever the medium: titles, figures, links, next steps."""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlencode

from watcher.config import GrafanaConfig
from watcher.findings import rfc3339
from watcher.incidents import Incident

TITLES = {
    "subdomain_burst": "DNS subdomain burst",
    "high_volume": "High DNS query volume",
    "suspicious_name": "Encoded-looking DNS names",
    "beacon": "DNS beacon (a rare domain polled, never answered)",
    "drill": "DRILL: DNS exfiltration drill seen (not a leak)",
}
EVENT_WORDS = {
    "firing": "new",
    "escalated": "escalated",
    "reminder": "still active",
    "resolved": "resolved",
}


def title(kind: str) -> str:
    return TITLES.get(kind, kind.replace("_", " "))


def figures(incident: Incident) -> list[tuple[str, str]]:
    """(label, value) pairs from the evidence; values are numbers we computed, safe anywhere."""
    ev: dict[str, Any] = incident.finding.get("evidence", {})
    out: list[tuple[str, str]] = []
    if "window" in ev:
        out.append(("Window", str(ev["window"])))
    if "distinct_names" in ev:
        out.append(
            ("Distinct names / queries", f"{ev['distinct_names']} / {ev.get('queries', 0):.0f}")
        )
    if ev.get("host_names"):
        out.append(("One-off / host names", f"{ev.get('one_off_names', 0)} / {ev['host_names']}"))
    if "beacon_seconds" in ev:
        out.append(
            (
                "Polled",
                f"{ev.get('beacon_names', 0)} names, {ev.get('beacon_steps', 0)} steps over "
                f"{int(ev['beacon_seconds']) // 60} min, regularity {ev.get('regularity', 0):.2f}",
            )
        )
    elif "queries" in ev:
        out.append(("Queries", f"{ev['queries']:.0f}"))
    if "rate_qps" in ev:
        base = ev.get("baseline_qps")
        kind = ev.get("baseline_kind", "own")
        shown = f"{base:.2f} q/s ({kind})" if isinstance(base, (int, float)) else "none"
        out.append(("Rate / baseline", f"{ev['rate_qps']:.2f} q/s vs {shown}"))
    if "est_bytes" in ev:
        out.append(("Estimated bytes", f"~{int(ev['est_bytes']):,}"))
    if ev.get("alphabet"):
        out.append(
            ("Alphabet / entropy", f"{ev['alphabet']} / {ev.get('entropy_mean', 0):.2f} bits")
        )
    out.append(("Score", f"{float(incident.finding.get('score', 0)):.2f}"))
    return out


def pods(incident: Incident, limit: int = 3) -> str:
    """The pods of the incident's channel, most active first: a few, then "+N more"."""
    ev: dict[str, Any] = incident.finding.get("evidence", {})
    shown = [str(p) for p in ev.get("sample_pods", [])][:limit]
    total = int(ev.get("pods") or len(shown))
    if not shown:
        return incident.source
    more = total - len(shown)
    return ", ".join(shown) + (f" +{more} more" if more > 0 else "")


def namespace(incident: Incident) -> str:
    """The channel's namespace ("" for a node's client)."""
    channel = incident.channel
    return "" if channel.startswith("node/") or "/" not in channel else channel.split("/", 1)[0]


def sample_names(incident: Incident, limit: int = 5) -> list[str]:
    names = incident.finding.get("evidence", {}).get("sample_names", [])
    return [str(n) for n in names[:limit]]


def grafana_link(cfg: GrafanaConfig, incident: Incident) -> str | None:
    """The shipped dashboard filtered to the source, around the incident."""
    if not cfg.url:
        return None
    namespace = incident.source.split("/", 1)[0] if "/" in incident.source else ".*"
    start = int((incident.first_seen - 3600) * 1000)
    end = int(((incident.resolved_at or incident.last_seen) + 900) * 1000)
    query = urlencode(
        {"var-namespace": namespace, "var-source": incident.source, "from": start, "to": end}
    )
    return f"{cfg.url.rstrip('/')}/d/{cfg.dashboard_uid}/hubble-dns?{query}"


def next_steps(incident: Incident) -> list[str]:
    """Shell commands to paste; the source is shell-quoted (it is data, not trusted)."""
    if incident.kind == "drill":
        return ["dnswatch drill --check  # the drill's stages and its end-to-end delay"]
    src = shlex.quote(incident.source)
    channel = incident.channel
    if incident.kind != "high_volume" and "/" in channel and not channel.startswith("node/"):
        # The channel is the workload: every pod of it (hubble's --from-pod is a name prefix),
        # and one allowlist for all of them.
        pods = shlex.quote(channel + "-")
        return [
            f"hubble observe --protocol dns --from-pod {pods} --last 500 -o compact",
            f"dnswatch policy suggest --source {shlex.quote(channel)}",
        ]
    steps = [f"hubble observe --protocol dns --from-pod {src} --last 200 -o compact"]
    if incident.kind in ("subdomain_burst", "suspicious_name", "channel_behaviour", "beacon"):
        steps.append(f"dnswatch policy suggest --source {src}")
    else:
        ns, _, pod = incident.source.partition("/")
        steps.append(f"kubectl -n {shlex.quote(ns)} describe pod {shlex.quote(pod or ns)}")
    return steps


def when(ts: float | None) -> str:
    return rfc3339(ts) if ts is not None else "-"
