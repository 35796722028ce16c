"""A source's DNS query rate against its own recent past (robust statistics): the volume
records the judge reads (watcher.detect.judge.judge_rate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from watcher.config import Config
from watcher.domains import DomainRules
from watcher.evidence import Volume
from watcher.window import workload_of


@dataclass(frozen=True)
class Baseline:
    kind: str  # "own", "workload" or "none"
    seconds: float
    median: float
    mad: float
    p99: float


def _lifetime(series: pd.Series) -> pd.Series:
    """Rates from a source's first activity on; quiet steps inside its life count as zero.
    The first step is left out: where the data begins (a new Prometheus, a history file), every
    series already there counts its whole value at once, a spike that never happened."""
    seen = series.notna()
    if not seen.any():
        return series.iloc[0:0]
    return series.loc[seen.idxmax() :].fillna(0.0).iloc[1:]


def _early_rates(series: pd.Series) -> np.ndarray:
    """The first half of a young source's life (at least two steps, else nothing to judge
    steadiness by). Its very first step counts unless it is where the data begins."""
    seen = series.notna()
    if not seen.any():
        return np.array([])
    first = seen.idxmax()
    life = series.loc[first:].fillna(0.0)
    if first == series.index[0]:
        life = life.iloc[1:]
    if len(life) < 2:
        return np.array([])
    return life.iloc[: max(1, len(life) // 2)].to_numpy(dtype=float)


def _baseline(rates: np.ndarray, kind: str, step: float, cfg: Config) -> Baseline:
    v = cfg.volume
    med = float(np.median(rates))
    # The median absolute deviation, as scipy.stats.median_abs_deviation gives it: written out,
    # since importing scipy.stats costs every scan ~60 MB of RSS (its distributions).
    mad = float(np.median(np.abs(rates - med))) if len(rates) else 0.0
    floor = max(v.min_rate, v.ratio * med, med + v.robust_z * 1.4826 * mad)
    # An incident that began before the recent span must not teach the baseline: drop the run of
    # elevated steps that leads straight into it. Periodic bursts elsewhere stay in (p99).
    end = len(rates)
    while end > 0 and rates[end - 1] >= floor:
        end -= 1
    kept = rates[:end] if end else rates[:0]
    p99 = float(np.percentile(kept, 99)) if len(kept) else med
    return Baseline(kind, len(rates) * step, med, mad, p99)


def _threshold(b: Baseline, cfg: Config) -> float:
    v = cfg.volume
    if b.kind == "none":
        return max(v.min_rate, v.new_source_rate)
    return max(
        v.min_rate,
        v.ratio * b.median,
        b.median + v.robust_z * 1.4826 * b.mad,
        v.peak_factor * b.p99,
    )


@dataclass(frozen=True)
class Rate:
    """One busy source's recent peak against its baseline: the volume judge's record."""

    source: str
    peak: float  # highest mean rate over volume.smoothing in the recent span (queries/s)
    baseline: Baseline
    threshold: float  # the rate the peak must reach to alert (_threshold)
    queries: float  # queries in the recent span
    # A source with no usable history: the median rate of the first half of its life, and how
    # long that is (a busy new workload is steady since it started; a flood is a change).
    early_median: float | None = None
    early_seconds: float = 0.0


def rates(volume: Volume, cfg: Config, rules: DomainRules) -> list[Rate]:
    """Sources whose recent peak reaches their threshold, with what it was measured against."""
    vol = volume.frame
    if vol.empty:
        return []
    v = cfg.volume
    step = volume.step_seconds
    per_second = vol.sort_index() / step
    recent_mask = per_second.index > volume.at - v.recent
    past = per_second[~recent_mask]
    recent = per_second[recent_mask]
    if recent.empty:
        return []
    span = max(1, round(v.smoothing / step))
    peaks = recent.fillna(0.0).rolling(span, min_periods=1).mean().max()
    workloads: dict[str, list[str]] = {}
    for src in per_second.columns:
        workloads.setdefault(workload_of(str(src)), []).append(str(src))
    out: list[Rate] = []
    for source, peak in peaks.items():
        src = str(source)
        if peak < v.min_rate or rules.ignores_source(src):
            continue
        own = _lifetime(past[source]).to_numpy(dtype=float)
        if len(own) * step >= v.min_history:
            base = _baseline(own, "own", step, cfg)
        else:
            sibs = [
                _lifetime(past[s]).to_numpy(dtype=float)
                for s in workloads[workload_of(src)]
                if s != src
            ]
            pooled = np.concatenate([own, *sibs]) if sibs else own
            if len(pooled) * step >= v.min_history and sibs:
                base = _baseline(pooled, "workload", step, cfg)
            else:
                base = Baseline(
                    "none", len(own) * step, float(np.median(own)) if len(own) else 0.0, 0.0, 0.0
                )
        threshold = _threshold(base, cfg)
        if peak < threshold:
            continue
        early = _early_rates(per_second[source]) if base.kind == "none" else np.array([])
        out.append(
            Rate(
                src,
                float(peak),
                base,
                threshold,
                float(recent[source].fillna(0).sum()) * step,  # rates back to queries
                float(np.median(early)) if len(early) else None,
                len(early) * step,
            )
        )
    return out
