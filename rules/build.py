"""Build the rule files from the watcher's own pieces:

    rules/hubble-dns.rules.yml        the default: per-source rates (every 2 min) and the alerts
    rules/prometheusrule.yaml         the same as a Prometheus Operator PrometheusRule
    rules/hubble-dns-names.rules.yml  opt-in: distinct names per source and zone from every
    rules/prometheusrule-names.yaml   Hubble series (the dear group) and HubbleDNSSubdomainBurst

    python rules/build.py          # rewrite them
    python rules/build.py --check  # exit 1 if one is stale (CI)
    python rules/build.py --docs-url https://git.example.corp/sec/dnswatch/-/blob/main/docs \
        --out my-rules/             # runbook_url links into your copy of the docs

Shipped files link runbooks as `docs/runbooks/<Alert>.md`, the path in this repository: no
address is made up for you. Set the base where your team reads the docs.

The rules reuse the watcher's activity rule (first increments counted, persisting series not) in
its instant-comparison form (no range selectors: cheap every minute on a big cluster),
its cluster-domain matcher and its default allowlist, so the alerts and the watcher agree on what
"names queried" means and on what is never a channel.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.config import Config  # noqa: E402
from watcher.domains import DEFAULT_ALLOWLIST, PRIVATE_USE_TLDS  # noqa: E402
from watcher.sources import promql  # noqa: E402
from watcher.text import promql_string, regex_escape  # noqa: E402

METRIC = "hubble_dns_queries_total"
DOCS_URL = "docs"  # the docs shipped in this repository (watcher config links.docs_url)
RULES_FILE = ROOT / "rules" / "hubble-dns.rules.yml"
OPERATOR_FILE = ROOT / "rules" / "prometheusrule.yaml"
NAMES_RULES_FILE = ROOT / "rules" / "hubble-dns-names.rules.yml"
NAMES_OPERATOR_FILE = ROOT / "rules" / "prometheusrule-names.yaml"
# Only host-name characters make a zone: a label value from an attacker-chosen name stays printable.
ZONE_REGEX = r"(?:.*\.)?([a-z0-9_-]+\.[a-z0-9_-]+)\.?"
BURST_MIN_NAMES = 40  # the watcher's burst.short_min_distinct
NAMES_INTERVAL = (
    "2m"  # the names group: half the cost of every minute, still under `for: 2m`+lookback
)
# The rate group reads every Hubble DNS series: every 2 minutes halves its cost (~8 s a minute
# at 1M series every minute, docs/performance.md); the rate is over 5 minutes, the alert
# waits 5 minutes, so nothing is lost between evaluations.
RATE_INTERVAL = "2m"
RATE_SAMPLES_HOUR = 30  # evaluations in an hour at RATE_INTERVAL: the history the alert needs


def _allowlisted_zones() -> str:
    zones = sorted({".".join(s.split(".")[-2:]) for s in DEFAULT_ALLOWLIST})
    return "|".join(regex_escape(z) for z in zones)


def _names_expr(by: str) -> str:
    sel = promql.selector(METRIC, promql.base_matchers("query", "cluster.local", PRIVATE_USE_TLDS))
    act = promql.activity_now(sel, 600)
    if "zone" in by:
        act = f'label_replace({act}, "zone", "$1", "query", {promql_string(ZONE_REGEX)})'
    return f"count by ({by}) (count by ({by}, query) ({act}))"


def _across_nodes_expr() -> str:
    """The flow followers' per-node channel evidence summed over nodes, judged with the
    watcher's own thresholds: a channel spread over nodes, below them on every node. A channel
    some node already alerts on is left to that node's follower (one page per leak)."""
    cfg = Config()
    names, encoded = "dnswatch_flow_channel_names", "dnswatch_flow_channel_encoded_names"
    key = "workload, domain"
    return (
        f'(\n  sum by ({key}) ({names}{{window="short"}}) >= {cfg.burst.short_min_distinct}\n'
        f'  or sum by ({key}) ({names}{{window="long"}}) >= {cfg.burst.long_min_distinct}\n'
        f"  or sum by ({key}) ({encoded}) >= {cfg.names.min_distinct}\n)\n"
        f'unless on ({key}) {names}{{alerting="true"}}'
    )


def rules(docs_url: str = DOCS_URL, names_group: bool = False) -> dict[str, Any]:
    """The default rule groups, or (names_group) the opt-in one: distinct names from every
    Hubble series, with the alert that reads it."""
    rate = "source:hubble_dns_queries:rate5m"
    past = f"{rate}[1d] offset 30m"
    # The one rule of the default set that reads every Hubble series: one pass of rate(). The
    # series count comes free from scrape_samples_scraped; distinct names per channel come
    # from the watcher's own bounded series (dnswatch_channel_names), not from a rule.
    cheap = [{"record": rate, "expr": f"sum by (source) (rate({METRIC}[5m]))"}]
    # Distinct names: set operations over every series, ~4x the rate's cost. Every
    # NAMES_INTERVAL (the 10 min windows overlap, so nothing is missed); opt-in: `dnswatch
    # scan` finds bursts without it, and the dashboard reads the watcher's series.
    names = [
        {"record": "source:hubble_dns_names_queried:count10m", "expr": _names_expr("source")},
        {
            "record": "source_zone:hubble_dns_names_queried:count10m",
            "expr": _names_expr("source, zone"),
        },
    ]

    def alert(
        name: str, expr: str, for_: str, summary: str, description: str, severity: str = "warning"
    ) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": {"severity": severity},
            "annotations": {
                "summary": summary,
                "description": description,
                "runbook_url": f"{docs_url.rstrip('/')}/runbooks/{name}.md",
            },
        }

    alerts = [
        alert(
            "HubbleDNSQueryRateHigh",
            f"{rate} > 3\nand {rate} > 6 * quantile_over_time(0.5, {past})\n"
            f"and {rate} > 2 * quantile_over_time(0.99, {past})\n"
            f"and count_over_time({past}) >= {RATE_SAMPLES_HOUR}",
            "5m",
            "DNS query rate of {{ $labels.source }} is far above its own past.",
            '{{ $labels.source }} sends {{ $value | printf "%.1f" }} DNS queries/s: over 6 '
            "times its median and twice its 99th percentile of the previous day. A query flood, "
            "a DNS tunnel or a client whose cache broke.",
        ),
        alert(
            "HubbleDNSSubdomainBurst",
            f"source_zone:hubble_dns_names_queried:count10m"
            f"{{zone!~{promql_string(_allowlisted_zones())}}} >= {BURST_MIN_NAMES}",
            "2m",
            "{{ $labels.source }} queried {{ $value }} distinct names under one zone in 10 min.",
            "{{ $labels.source }} queried {{ $value }} distinct names under {{ $labels.zone }} "
            "within 10 minutes: the shape of a DNS tunnel or encoded exfiltration. The zone is "
            "the last two labels of the names (approximate: co.uk-style suffixes group many "
            "domains); dnswatch scan names the registered domain.",
        ),
        alert(
            "HubbleDNSMetricsAbsent",
            # The recorded rate, not the raw metric: absent() over every Hubble series costs
            # ~7 s a minute at 1M; the rate exists exactly while some series gets samples.
            f"absent({rate})",
            "15m",
            "Hubble DNS metrics are absent: DNS exfiltration detection is blind.",
            f"No {METRIC} series for 15 minutes. Either the DNS metric is not enabled, no pod "
            "has L7 DNS visibility, or the scrapes fail (a flood of unique names can exceed "
            "sample_limit and fail the whole scrape).",
        ),
        alert(
            "HubbleMetricsScrapeFailing",
            'up{job=~".*hubble.*"} == 0',
            "10m",
            "Hubble metrics scrape of {{ $labels.instance }} is failing.",
            "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}). When "
            "only Hubble's scrape fails while the node is healthy, suspect a scrape limit hit "
            "by a burst of unique DNS names: the symptom of exfiltration itself.",
        ),
        alert(
            "DNSExfiltrationAcrossNodes",
            _across_nodes_expr(),
            "2m",
            "{{ $labels.workload }} sends many new names under {{ $labels.domain }} across nodes.",
            "Summed over the nodes' flow followers, {{ $labels.workload }} asked "
            "{{ $value }} new names under {{ $labels.domain }} that no node calls hosts, though "
            "no node alone crossed a threshold: a leak spread over replicas on several nodes. "
            "dnswatch flows on each node's log, or dnswatch scan, shows the names.",
        ),
        alert(
            "DNSWatcherStale",
            "time() - dnswatch_last_success_timestamp_seconds > 1800",
            "5m",
            "hubble-dns-watcher has not completed a scan for over 30 minutes.",
            "The last successful dnswatch scan was {{ $value | humanizeDuration }} ago: "
            "exfiltration detection is not running. Check the CronJob or Deployment.",
        ),
    ]
    if names_group:
        burst = [a for a in alerts if a["alert"] == "HubbleDNSSubdomainBurst"]
        return {
            "groups": [
                {"name": "hubble-dns.names", "interval": NAMES_INTERVAL, "rules": names},
                {"name": "hubble-dns.names.alerts", "rules": burst},
            ]
        }
    return {
        "groups": [
            {"name": "hubble-dns.rules", "interval": RATE_INTERVAL, "rules": cheap},
            {
                "name": "hubble-dns.alerts",
                "rules": [a for a in alerts if a["alert"] != "HubbleDNSSubdomainBurst"],
            },
        ]
    }


def operator_resource(spec: dict[str, Any], name: str = "hubble-dns-watcher") -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "hubble-dns-watcher",
                "prometheus": "k8s",
                "role": "alert-rules",
            },
        },
        "spec": spec,
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(docs_url: str = DOCS_URL) -> dict[Path, str]:
    spec, names = rules(docs_url), rules(docs_url, names_group=True)
    head = (
        "# Generated by rules/build.py from the watcher's own PromQL and allowlist. Do not edit.\n"
    )
    opt_in = (
        "# Opt-in (docs/rules-and-dashboard.md): reads every Hubble DNS series with set\n"
        "# operations, ~30 s per evaluation at 1M series.\n"
    )
    dump = lambda d: yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=10000)  # noqa: E731
    return {
        RULES_FILE: head + dump(spec),
        OPERATOR_FILE: head + dump(operator_resource(spec)),
        NAMES_RULES_FILE: head + opt_in + dump(names),
        NAMES_OPERATOR_FILE: head
        + opt_in
        + dump(operator_resource(names, "hubble-dns-watcher-names")),
    }


def main() -> int:
    if "--docs-url" in sys.argv:
        args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
        out = Path(args.get("--out", "."))
        out.mkdir(parents=True, exist_ok=True)
        for p, text in render(args["--docs-url"]).items():
            (out / p.name).write_text(text)
            print(f"wrote {out / p.name}", file=sys.stderr)
        return 0
    stale = [p for p, text in render().items() if not p.exists() or p.read_text() != text]
    if "--check" in sys.argv:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is stale: run python rules/build.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in render().items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
