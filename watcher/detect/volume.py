"""high_volume: a source's DNS query rate against its own recent past (robust statistics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from watcher.config import Config
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.findings import Finding, Severity
from watcher.window import Window, workload_of


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


def detect_high_volume(window: Window, cfg: Config, rules: DomainRules) -> list[Finding]:
    vol = window.volume
    if vol.empty:
        return []
    v = cfg.volume
    step = window.step_seconds
    rates = vol.sort_index() / step
    recent_mask = rates.index > window.at - v.recent
    past = rates[~recent_mask]
    recent = rates[recent_mask]
    if recent.empty:
        return []
    span = max(1, round(v.smoothing / step))
    peaks = recent.fillna(0.0).rolling(span, min_periods=1).mean().max()
    workloads: dict[str, list[str]] = {}
    for src in rates.columns:
        workloads.setdefault(workload_of(str(src)), []).append(str(src))
    out: list[Finding] = []
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
        severity: Severity = "critical" if peak >= threshold * v.critical_factor else "warning"
        steady_note = None
        if base.kind == "none":
            # No history to compare with: a flood is still a change against the source's own
            # past, however short. Steady since it started is a busy new workload, not a flood.
            early = _early_rates(rates[source])
            if len(early) and peak < v.young_change * float(np.median(early)):
                severity = "info"
                steady_note = (
                    f"steady since it started ({float(np.median(early)):.1f}/s in its first "
                    f"{len(early) * step / 60:.0f} min): no change to call a flood"
                )
        ratio = peak / base.median if base.median > 0 else None
        out.append(
            Finding(
                kind="high_volume",
                severity=severity,
                source=src,
                domain=None,
                score=float(min(1.0, 0.5 + 0.5 * (peak / threshold - 1) / (v.critical_factor - 1)))
                if v.critical_factor > 1
                else 1.0,
                summary=(
                    f"{peak:.1f} DNS queries/s against a baseline of {base.median:.2f}/s "
                    f"({'no usable history' if base.kind == 'none' else base.kind + ' history'}; "
                    f"threshold {threshold:.1f}/s)"
                ),
                evidence={
                    "window": human_duration(v.recent),
                    "rate_qps": round(float(peak), 3),
                    "baseline_qps": round(base.median, 3),
                    "baseline_mad_qps": round(base.mad, 3),
                    "baseline_p99_qps": round(base.p99, 3),
                    "baseline_kind": base.kind,
                    "baseline_seconds": int(base.seconds),
                    "threshold_qps": round(threshold, 3),
                    "ratio": round(ratio, 2) if ratio is not None else None,
                    "queries": round(float(recent[source].fillna(0).sum()), 1),
                    **({"why_not_alerted": steady_note} if steady_note else {}),
                },
            )
        )
    return out
