"""Build dashboards/hubble-dns.json, the Grafana dashboard (no SDK: plain dicts, pinned by a test).

    python dashboards/build.py          # rewrite it
    python dashboards/build.py --check  # exit 1 if stale (CI)

Works imported through the UI and provisioned from a file or the Grafana sidecar alike: a
`datasource` variable used by every panel and target (never a hard-wired uid or ${DS_…} input),
a fixed `uid`, `id: null`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards" / "hubble-dns.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'source=~"$source", source=~"$namespace/.*"'
# Names with a label of 40+ characters, and names with characters no host name has.
LONG_LABEL = r"(?s)(?:.*\\.)?[^.]{40,}(?:\\..*)?"
ODD_CHARS = r"(?s).*[^-a-z0-9._].*"
# The busiest channels' distinct names, from the watcher's own bounded series: a metrics scan
# (dnswatch_channel_names) or the flow followers (one series per node, summed).
CHANNEL_NAMES = (
    'max by (workload, domain) (dnswatch_channel_names{window="short", workload=~"$namespace/.*"})'
    " or sum by (workload, domain) "
    '(dnswatch_flow_channel_names{window="short", workload=~"$namespace/.*"})'
)
SOURCES = 'label_values(source:hubble_dns_queries:rate5m{source=~"$namespace/.*"}, source)'


def target(expr: str, legend: str = "", instant: bool = False, ref: str = "A") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend}
    if instant:
        t.update({"instant": True, "range": False, "format": "table"})
    return t


def panel(
    pid: int,
    title: str,
    kind: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    description: str,
    unit: str = "short",
    **extra: Any,
) -> dict[str, Any]:
    x, y, w, h = grid
    p: dict[str, Any] = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    p.update(extra)
    return p


def dashboard() -> dict[str, Any]:
    panels = [
        panel(
            1,
            "DNS query rate by source (top 10)",
            "timeseries",
            (0, 0, 12, 8),
            [target(f"topk(10, source:hubble_dns_queries:rate5m{{{SEL}}})", "{{source}}")],
            "Queries/s per source pod (rate(); a name's very first query is in the names panels) "
            "(recording rule source:hubble_dns_queries:rate5m).",
            unit="reqps",
        ),
        panel(
            2,
            "Distinct names per workload, 10 min (top 10)",
            "timeseries",
            (12, 0, 12, 8),
            [target(f"topk(10, sum by (workload) ({CHANNEL_NAMES}))", "{{workload}}")],
            "Names queried in the last 10 minutes, summed over each workload's busiest "
            "channels (workload, registered domain) as the watcher exports them "
            "(dnswatch_channel_names, output.export_channels per window; a flow follower's "
            "dnswatch_flow_channel_names, summed over nodes). Cluster domain excluded. No "
            "rule reads every Hubble series for it (docs/rules-and-dashboard.md).",
        ),
        panel(
            3,
            "Distinct names per workload and domain, 10 min (top 10)",
            "table",
            (0, 8, 12, 8),
            [target(f"topk(10, {CHANNEL_NAMES})", instant=True)],
            "The busiest channels of the watcher's last scan: the registered domain, as "
            "`dnswatch scan` reports it.",
        ),
        panel(
            4,
            "Long names seen, rarest first (a label of 40+ characters)",
            "table",
            (12, 8, 12, 8),
            [
                target(
                    "bottomk(20, sum by (source, query) (last_over_time(hubble_dns_queries_total"
                    f'{{{SEL}, query=~"{LONG_LABEL}"}}[$__range])))',
                    instant=True,
                )
            ],
            "Names with a label of 40 or more characters within the dashboard's time range, "
            "least queried first: a tunnel queries each encoded name once. PromQL cannot rank "
            "by length; entropy and encoding are in the watcher's findings "
            "(`dnswatch scan`).",
        ),
        panel(
            5,
            "Names with characters no host name has, rarest first",
            "table",
            (0, 16, 12, 8),
            [
                target(
                    "bottomk(20, sum by (source, query) (last_over_time(hubble_dns_queries_total"
                    f'{{{SEL}, query=~"{ODD_CHARS}"}}[$__range])))',
                    instant=True,
                )
            ],
            "`+ / =`, non-ASCII and other characters outside host names: base64 and base128 "
            "encodings (dns2tcp, iodine).",
        ),
        panel(
            6,
            "Hubble samples per scrape vs scrape limit",
            "timeseries",
            (12, 16, 12, 8),
            [
                target(
                    'sum(scrape_samples_scraped{job=~".*hubble.*"})',
                    "all Hubble samples (every node)",
                ),
                target(
                    'max(scrape_samples_scraped{job=~".*hubble.*"})',
                    "largest Hubble scrape",
                    ref="B",
                ),
                target("vector($sample_limit)", "sample_limit", ref="C"),
            ],
            "A flood of unique names grows the series count; past sample_limit the whole "
            "scrape fails and every Hubble metric of that node goes blank.",
        ),
        panel(
            7,
            "NXDOMAIN ratio by client",
            "timeseries",
            (0, 24, 12, 8),
            [
                target(
                    'sum by (destination) (rate(hubble_dns_responses_total{rcode="Non-Existent '
                    'Domain", destination=~"$source", destination=~"$namespace/.*"}[5m])) / sum '
                    'by (destination) (rate(hubble_dns_responses_total{destination=~"$source", '
                    'destination=~"$namespace/.*"}[5m]))',
                    "{{destination}}",
                )
            ],
            "Needs hubble_dns_responses_total (on responses the client is `destination`). "
            "Search-path expansion makes some NXDOMAIN normal; tunnels often raise it.",
            unit="percentunit",
        ),
        panel(
            8,
            "Watcher findings",
            "timeseries",
            (12, 24, 12, 8),
            [target("sum by (kind, severity) (dnswatch_findings)", "{{kind}} {{severity}}")],
            "Findings of the last dnswatch scan by kind and severity (the watcher's own metrics).",
        ),
        panel(
            9,
            "Watcher: time since last successful scan",
            "stat",
            (0, 32, 12, 6),
            [target("time() - max(dnswatch_last_success_timestamp_seconds)")],
            "Alert DNSWatcherStale fires past 30 minutes.",
            unit="s",
        ),
        panel(
            10,
            "Watcher: scan duration",
            "timeseries",
            (12, 32, 12, 6),
            [target("max(dnswatch_scan_duration_seconds)", "scan duration")],
            "How long each scan takes.",
            unit="s",
        ),
        panel(
            11,
            "Flow logs: sources and domains worth a look",
            "table",
            (0, 38, 12, 8),
            [
                target(
                    "topk(20, max by (source, domain, kind, severity) "
                    "(dnswatch_flow_pair_distinct_names"
                    '{source=~"$source", source=~"$namespace/.*"}))',
                    instant=True,
                )
            ],
            "From `dnswatch flows --follow` (the DaemonSet): one-off names per (source, "
            "registered domain), only for pairs with a finding. Works without the `query` label "
            "on Hubble's metric.",
        ),
        panel(
            12,
            "Flow logs: lines read and pairs held",
            "timeseries",
            (12, 38, 12, 8),
            [
                target("sum by (outcome) (dnswatch_flow_lines)", "{{outcome}}"),
                target("sum(dnswatch_flow_active_pairs)", "active pairs", ref="B"),
            ],
            "Lines each node's follower has read, by outcome (DNS flows or the reason a line "
            "was skipped: lost_events means Hubble dropped flows), and (workload, domain) pairs "
            "in memory.",
        ),
    ]
    var = {
        "datasource": DS,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "sort": 1,
    }
    return {
        "id": None,
        "uid": "hubble-dns-watcher",
        "title": "Hubble DNS exfiltration",
        "description": "DNS query rate, names and zones per pod from Cilium Hubble DNS metrics, "
        "and the health of hubble-dns-watcher.",
        "tags": ["cilium", "hubble", "dns", "security"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    **var,
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "query": {
                        "query": "label_values(source:hubble_dns_queries:rate5m, source)",
                        "refId": "namespace",
                    },
                    "definition": "label_values(source:hubble_dns_queries:rate5m, source)",
                    "regex": "/^([^/]+)\\/.*/",
                },
                {
                    **var,
                    "name": "source",
                    "label": "Source pod",
                    "type": "query",
                    "query": {
                        "query": SOURCES,
                        "refId": "source",
                    },
                    "definition": SOURCES,
                },
                {
                    "name": "sample_limit",
                    "label": "Hubble scrape sample_limit",
                    "type": "custom",
                    "query": "100000",
                    "current": {"text": "100000", "value": "100000"},
                    "hide": 0,
                    "options": [{"selected": True, "text": "100000", "value": "100000"}],
                },
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(
                "dashboards/hubble-dns.json is stale: run python dashboards/build.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
