"""What one scan reads with: the configuration (with the source labels the checks found), the
client, the splitting of refused queries, the warnings so far, and who is who (a series'
source, its workload, and the selectors that fetch a workload's pods back)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from watcher.config import Config
from watcher.domains import normalize
from watcher.progress import QUIET, Progress
from watcher.sources import promql
from watcher.sources.prometheus.client import PrometheusClient
from watcher.sources.prometheus.splitting import Splitter
from watcher.window import empty_names, source_name, workload_of


@dataclass
class Scope:
    cfg: Config
    client: PrometheusClient
    progress: Progress = QUIET
    warnings: list[str] = field(default_factory=list)
    node_sources: set[str] = field(default_factory=set)  # clients with no pod identity
    splitter: Splitter = field(init=False)

    def __post_init__(self) -> None:
        self.splitter = Splitter(self.client, self.cfg.labels, self.warnings)

    def source_of(self, metric: dict[str, str]) -> str:
        labels = self.cfg.labels.source
        name = source_name(metric, labels)
        if not any(metric.get(label) for label in labels) and name:
            self.node_sources.add(name)  # selected back by its empty source labels
        return name

    def workload_key(self, source: str) -> str:
        """The workload a source is fetched by: "" (empty source labels) for a node's client."""
        return "" if source in self.node_sources else workload_of(source)

    def names_frame(self, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
        """(source, name, queries) of name rows, parts of one pair (split queries) added."""
        q = self.cfg.labels.query
        data = [
            (self.source_of(r["metric"]), normalize(r["metric"].get(q, "")), float(r["value"][1]))
            for r in rows
        ]
        if not data:
            return empty_names()
        frame = pd.DataFrame(data, columns=["source", "name", "queries"])
        return frame.groupby(["source", "name"], as_index=False).agg(queries=("queries", "sum"))

    def workload_of_row(self, metric: dict[str, str]) -> str:
        """`ns/app` of a zone count row: the source labels, the last one cut by PromQL."""
        labels = self.cfg.labels.source
        values = [metric.get(label, "") for label in labels[:-1]]
        values.append(metric.get("dnswatch_workload", ""))
        return "/".join(values) if any(values) else ""  # no pod identity: as workload_of("/")

    def workload_matchers(self, sources: set[str]) -> list[str]:
        """Select every pod of these sources' workloads (`ns/app-<hash>-<id>` -> `ns/app-*`)."""
        return self.workload_selector({self.workload_key(s) for s in sources})

    def workload_selector(self, workloads: set[str]) -> list[str]:
        labels = self.cfg.labels.source
        if len(labels) == 1:
            return [promql.prefixed(labels[0], workloads)]
        # "" is the client with no pod identity: every source label empty.
        parts = [w.split("/", len(labels) - 1) if w else [""] * len(labels) for w in workloads]
        parts = [p for p in parts if len(p) == len(labels)]
        return [
            promql.one_of(label, {p[i] for p in parts}) for i, label in enumerate(labels[:-1])
        ] + [promql.prefixed(labels[-1], {p[-1] for p in parts})]
