"""Before a scan: is the metric there, with the labels the scan needs? The answer is a decision
(which source labels the metric carries) and warnings, returned to the caller: the
configuration is not changed here."""

from __future__ import annotations

from dataclasses import dataclass, field

from watcher.config import LABELS_CONTEXT, SOURCE_CONTEXT, Config, with_source_labels
from watcher.errors import MissingDataError
from watcher.sources import promql
from watcher.sources.prometheus.client import PrometheusClient

HELM_HINT = (
    "enable it in Cilium's Helm values: hubble.metrics.enabled=\"{dns:query;ignoreAAAA;"
    'sourceContext=pod;destinationContext=pod}"'
)
LOOKBACK = 300.0  # Prometheus's default lookback: a series is "present" this long after a sample


@dataclass(frozen=True)
class Checked:
    source: list[str]  # the source labels the metric carries: the configured ones, or
    # labelsContext's when the default `source` is absent and `source_pod` is there
    warnings: list[str] = field(default_factory=list)

    def config(self, cfg: Config) -> Config:
        """The configuration to scan with: `cfg` with the source labels found."""
        return cfg if self.source == cfg.labels.source else with_source_labels(cfg, self.source)


def check(client: PrometheusClient, cfg: Config, at: float) -> Checked:
    """Fail in one line if the metric or a needed label is missing; warn if it went absent.
    The usual case from the index alone: the label names of the series with every needed
    label in the last lookback (no samples read: 2.5 s at 1M series, where counting those
    series took 17.8 s). That cannot tell a metric absent at scan time from one present:
    the scan runs diagnose() too when its recent volume ends silent."""
    lab = cfg.labels
    needed = {lab.query, *lab.source}
    ready = promql.selector(lab.metric, [f'{label}!=""' for label in sorted(needed)])
    if needed <= client.label_names(ready, at - LOOKBACK, at):
        return Checked(list(lab.source))
    return diagnose(client, cfg, at)


def diagnose(client: PrometheusClient, cfg: Config, at: float) -> Checked:
    """check() by counting series: which of metric and labels is missing (an error), or
    whether the metric went absent at scan time (a warning)."""
    lab = cfg.labels
    source = list(lab.source)
    warnings: list[str] = []
    span: float | None = None

    def count(sel: str, seconds: float | None) -> float:
        expr = (
            f"count({sel})" if seconds is None else f"count(last_over_time({sel}[{int(seconds)}s]))"
        )
        res = client.query(expr, at)
        return float(res[0]["value"][1]) if res else 0.0

    ready = [f'{label}!=""' for label in (lab.query, *source)]
    if count(promql.selector(lab.metric, ready), None) > 0:
        return Checked(source)
    if count(lab.metric, None) == 0:
        if count(lab.metric, cfg.windows.long) == 0:
            raise MissingDataError(
                f"metric {lab.metric} not found in Prometheus at {client.url}; {HELM_HINT}"
            )
        span = cfg.windows.long
        warnings.append(
            f"{lab.metric} is absent at scan time but present earlier: a scrape failing "
            "(e.g. sample_limit hit by a flood of unique names) or the agents down"
        )
    if count(f'{lab.metric}{{{lab.query}!=""}}', span) == 0:
        raise MissingDataError(f"metric {lab.metric} has no '{lab.query}' label; {HELM_HINT}")
    if (
        source == SOURCE_CONTEXT
        and count(f'{lab.metric}{{source!=""}}', span) == 0
        and count(f'{lab.metric}{{source_pod!=""}}', span) > 0
    ):
        source = list(LABELS_CONTEXT)  # the default fits both of Hubble's namings
    for label in source:
        if count(f'{lab.metric}{{{label}!=""}}', span) == 0:
            raise MissingDataError(
                f"metric {lab.metric} has no '{label}' label: set labels.source in the config "
                "(e.g. [source] for sourceContext=pod, [source_namespace, source_pod] for "
                "labelsContext)"
            )
    return Checked(source, warnings)
