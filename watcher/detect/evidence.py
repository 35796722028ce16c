"""Per-name annotation and per-group evidence shared by the name-based detectors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from watcher.domains import DomainRules
from watcher.lexical import shape
from watcher.text import truncate
from watcher.window import workload_of


def annotate(names: pd.DataFrame, rules: DomainRules) -> pd.DataFrame:
    """Add domain and shape columns; drop the cluster domain, allowlisted names and sources."""
    if names.empty:
        return names.assign(
            domain=[], score=[], entropy=[], alphabet=[], est_bytes=[], payload_chars=[]
        )
    uniq = names["name"].unique()
    shapes = {n: shape(n) for n in uniq}
    ignored = {n for n in uniq if rules.ignores(n)}
    keep = ~names["name"].isin(ignored)
    if rules.source_globs:
        keep &= ~names["source"].map(rules.ignores_source).astype(bool)
    out = names[keep].copy()
    out["domain"] = out["name"].map(lambda n: shapes[n].domain)
    out["score"] = out["name"].map(lambda n: shapes[n].score)
    out["entropy"] = out["name"].map(lambda n: shapes[n].entropy)
    out["alphabet"] = out["name"].map(lambda n: shapes[n].alphabet)
    out["est_bytes"] = out["name"].map(lambda n: shapes[n].est_bytes)
    out["payload_chars"] = out["name"].map(lambda n: shapes[n].payload_chars)
    return out[out["domain"] != ""]


def group_evidence(
    group: pd.DataFrame, window: str, samples: int, max_chars: int, min_score: float
) -> dict[str, Any]:
    """Evidence of one (source, domain) group of distinct names."""
    distinct = int(group["name"].nunique())
    queries = float(group["queries"].sum())
    alph = Counter(group["alphabet"]).most_common(1)[0][0] if distinct else "text"
    # Samples: the most payload-like names first, so a reader sees the evidence.
    top = group.sort_values(["score", "payload_chars"], ascending=False)["name"].head(samples)
    return {
        "window": window,
        "distinct_names": distinct,
        "queries": round(queries, 1),
        "unique_ratio": round(min(1.0, distinct / queries) if queries else 1.0, 3),
        "encoded_fraction": round(float((group["score"] >= min_score).mean()), 3),
        "mean_score": round(float(group["score"].mean()), 3),
        "entropy_mean": round(float(group["entropy"].mean()), 3),
        "entropy_max": round(float(group["entropy"].max()), 3),
        "max_name_length": int(group["name"].str.len().max()),
        "alphabet": alph,
        "est_bytes": int(np.round(group["est_bytes"].sum())),
        "sample_names": [truncate(n, max_chars) for n in top],
    }


def by_workload(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `workload` column (`ns/app-<hash>-<id>` -> `ns/app`)."""
    return table.assign(workload=table["source"].map(workload_of)) if not table.empty else table


def workload_groups(
    table: pd.DataFrame, least: int
) -> list[tuple[tuple[str, str], pd.DataFrame, list[str]]]:
    """(workload, domain) groups of two or more pods with at least `least` distinct names: a
    leak spread over replicas, each pod below every threshold, is one channel."""
    if table.empty:
        return []
    out = []
    for (workload, domain), group in by_workload(table).groupby(["workload", "domain"]):
        pods = sorted(str(p) for p in group["source"].unique())
        if len(pods) >= 2 and group["name"].nunique() >= least:
            out.append(((str(workload), str(domain)), group, pods))
    return out


def workload_evidence(workload: str, pods: list[str], samples: int) -> dict[str, Any]:
    return {"workload": workload, "pods": len(pods), "sample_pods": pods[:samples]}
