"""What `dnswatch policy suggest` reads and judges before watcher.policy writes the allowlist:
every name the workload's pods asked over the lookback (Prometheus), and the domains the
detectors flag, now and over the whole lookback (a tunnel that ran three days ago must not
enter the allowlist)."""

from __future__ import annotations

import pandas as pd

from watcher import policy
from watcher.config import Config
from watcher.detect import detect_all
from watcher.errors import ConfigError, DnswatchError
from watcher.findings import rfc3339
from watcher.sources.prometheus import PrometheusSource
from watcher.window import Window, apply_prefilter, empty_names, workload_of


def suggest(
    cfg: Config,
    source: str,
    at: float,
    lookback: float,
    lookback_text: str,
    selector: dict[str, str] | None,
) -> str:
    """The suggested CiliumNetworkPolicy (YAML text) for `source`'s workload."""
    if not cfg.prometheus.url:
        raise ConfigError("no data source: give --prometheus-url URL (or DNSWATCH_PROMETHEUS_URL)")
    prom = PrometheusSource(cfg.prometheus.url, cfg)
    names = prom.workload_names(source, at, lookback)
    workload = workload_of(source)
    if names.empty:
        raise DnswatchError(
            f"no DNS names from the pods of {workload} in the {lookback_text} before "
            f"{rfc3339(at)}: nothing to build an allowlist from"
        )
    # Flagged: what the watcher reports now, and what its detectors find over the whole lookback
    # (a tunnel that ran three days ago must not enter the allowlist).
    flagged: dict[str, str] = {}
    now = detect_all(prom.window(at), cfg)
    span_seconds = max(lookback, cfg.windows.short)
    lb_windows = cfg.windows.model_copy(update={"long": span_seconds})
    lb_cfg = cfg.model_copy(update={"windows": lb_windows})
    pods = names.assign(source=workload)
    span = Window(
        at=at,
        short_seconds=cfg.windows.short,
        long_seconds=span_seconds,
        step_seconds=cfg.windows.step,
        short=empty_names(),
        long=pods,
        shaped=apply_prefilter(
            pods, cfg.names.prefilter_label_length, cfg.names.prefilter_name_length
        ),
        volume=pd.DataFrame(),
    )
    for f in [*now, *detect_all(span, lb_cfg)]:
        if f.domain and f.is_alert and workload_of(f.source) == workload:
            flagged.setdefault(f.domain, f"{f.severity} {f.kind}: {f.summary}")
    ns, _, base = workload.partition("/")
    suggestion = policy.build(
        ns,
        base,
        sorted({s.split("/", 1)[1] for s in names["source"]}),
        {str(k): float(v) for k, v in names.groupby("name")["queries"].sum().items()},
        flagged,
        cfg.labels.cluster_domain,
        selector,
    )
    return policy.render(suggestion, source, at, lookback_text)
