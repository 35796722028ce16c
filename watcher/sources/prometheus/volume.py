"""Queries per source per step, fetched where the volume judge could alert: the recent span for
every source (a few steps), each busy source's past median as one instant query, and the full
baseline only for sources whose recent peak could be far above it, with their workload's other
pods (the baseline of a rolled-out pod). Cost follows what changed, not the cluster's size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from watcher.sources import promql
from watcher.sources.prometheus.scope import Scope

SCREEN = 1.5  # below this many times its past median a source cannot alert (see fetch)
SCREEN_STEP = 1800.0  # the screen's step: coarse, so one pass costs little per step
BATCH = 100  # sources per history query: a regex of thousands of alternatives is slow


def fetch(scope: Scope, at: float) -> tuple[pd.DataFrame, bool]:
    """(queries per step, one column per source; whether the recent volume has a value at
    `at`: if not, the metric may have gone absent and the checks count to tell)."""
    cfg, lab, v = scope.cfg, scope.cfg.labels, scope.cfg.volume
    step = cfg.windows.step
    # Volume counts all of a source's DNS, cluster domain included.
    recent = scope.splitter.ask(
        lambda extra: promql.volume(promql.selector(lab.metric, extra), step, lab.source),
        at,
        "recent query volume",
        (at - v.recent + step, step),
    )
    live = any(r["values"] and float(r["values"][-1][0]) >= at - 1 for r in recent)
    top = peaks(recent, max(1, round(v.smoothing / step)), step, scope.source_of)
    del recent
    busy = {s for s, p in top.items() if p >= v.min_rate}
    if not busy:
        return pd.DataFrame(), live
    medians: dict[str, float] = {}
    past = cfg.windows.baseline - v.recent
    if past >= SCREEN_STEP:
        rows = scope.splitter.ask(
            lambda extra: promql.volume_median(
                promql.selector(lab.metric, extra), SCREEN_STEP, past, v.recent, lab.source
            ),
            at,
            "past query volume",
        )
        medians = {scope.source_of(r["metric"]): float(r["value"][1]) / SCREEN_STEP for r in rows}
    # The judge alerts only above twice the baseline's 99th percentile of 5-min rates
    # (peak_factor), which is at least the median of its 30-min rates: a peak under 1.5x
    # that median can never alert. New sources (no past) and any source over
    # new_source_rate are always fetched.
    candidates = sorted(
        s
        for s in busy
        if s not in medians or top[s] >= v.new_source_rate or top[s] >= SCREEN * medians[s]
    )
    full: dict[str, pd.Series] = {}
    for i in range(0, len(candidates), BATCH):
        wanted = scope.workload_matchers(set(candidates[i : i + BATCH]))
        rows = scope.splitter.ask(
            lambda extra, w=wanted: promql.volume(  # type: ignore[misc]
                promql.selector(lab.metric, [*w, *extra]), step, lab.source
            ),
            at,
            "query volume history of busy sources",
            (at - cfg.windows.baseline + step, step),
        )
        for src, s in series(rows, scope.source_of).items():
            full[src] = full[src].add(s, fill_value=0) if src in full else s
    return (pd.DataFrame(full).sort_index() if full else pd.DataFrame()), live


def peaks(
    rows: list[dict[str, Any]], span: int, step: float, source_of: Callable[[dict[str, str]], str]
) -> dict[str, float]:
    """Each source's highest mean rate over `span` consecutive steps (as pandas'
    rolling(span, min_periods=1).mean().max(), per second) with numpy: every source of a big
    cluster is here (45k at 1M series), and a pandas Series each cost ~2 KB and ~0.5 ms."""
    parts: dict[str, list[list[Any]]] = {}
    for r in rows:
        parts.setdefault(source_of(r["metric"]), []).append(r["values"])
    out: dict[str, float] = {}
    for src, values in parts.items():
        if len(values) == 1:
            counts = np.array([float(v) for _, v in values[0]])
        else:  # parts of a split query each hold a piece of the source: add them by step
            merged: dict[float, float] = {}
            for part in values:
                for t, v in part:
                    merged[float(t)] = merged.get(float(t), 0.0) + float(v)
            counts = np.array([merged[t] for t in sorted(merged)])
        if not len(counts):
            continue
        csum = np.concatenate(([0.0], np.cumsum(counts)))
        end = np.arange(1, len(counts) + 1)
        start = np.maximum(0, end - span)
        out[src] = float(((csum[end] - csum[start]) / (end - start)).max()) / step
    return out


def series(
    rows: list[dict[str, Any]], source_of: Callable[[dict[str, str]], str]
) -> dict[str, pd.Series]:
    """One Series of counts per source, indexed by time."""
    out: dict[str, pd.Series] = {}
    for r in rows:
        src = source_of(r["metric"])
        s = pd.Series([float(v) for _, v in r["values"]], index=[float(t) for t, _ in r["values"]])
        # Parts of a split query may each hold a piece of one source: add them.
        out[src] = out[src].add(s, fill_value=0) if src in out else s
    return out
