"""Refused queries asked again in parts: a query Prometheus will not answer whole (too many
samples, a timeout, a busy frontend) is asked per scrape target, else per namespace, halving
the parts until they pass. What never passes is named in the warnings; the scan goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watcher.config import LabelsConfig
from watcher.errors import RefusedError
from watcher.sources import promql
from watcher.sources.prometheus.client import PrometheusClient, short
from watcher.text import promql_string, regex_escape, terminal_safe


class Splitter:
    def __init__(self, client: PrometheusClient, labels: LabelsConfig, warnings: list[str]) -> None:
        self.client = client
        self.labels = labels
        self.warnings = warnings  # the scan's: appended to
        self._partition: tuple[str, list[str], bool] | None = None

    def run(self, expr: str, at: float, span: tuple[float, float] | None) -> list[dict[str, Any]]:
        """One query: instant at `at`, or over (start, step) up to `at`."""
        if span is None:
            return self.client.query(expr, at)
        return self.client.query_range(expr, span[0], at, span[1])

    def ask(
        self,
        build: Callable[[list[str]], str],
        at: float,
        what: str,
        span: tuple[float, float] | None = None,
    ) -> list[dict[str, Any]]:
        """build([]) asked; if refused, build([part matcher]) for each part of the cluster."""
        try:
            return self.run(build([]), at, span)
        except RefusedError as exc:
            label, values, prefix = self.partitions(at)
            unit = "namespace" if prefix or label.endswith("namespace") else label
            if len(values) < 2:
                self.warnings.append(f"{what}: not read, nothing to split it by ({exc})")
                return []
            self.warnings.append(
                f"{what}: refused whole ({short(exc)}); asked again per {unit} "
                f"({len(values)} parts)"
            )
        out: list[dict[str, Any]] = []
        missing: list[str] = []
        last = ""
        todo = [values[: len(values) // 2], values[len(values) // 2 :]]
        while todo:
            part = todo.pop()
            try:
                out += self.run(build([part_matcher(label, part, prefix)]), at, span)
            except RefusedError as exc:
                if len(part) == 1:
                    missing.append(part[0])
                    last = short(exc)
                else:
                    todo += [part[: len(part) // 2], part[len(part) // 2 :]]
        if missing:
            shown = ", ".join(terminal_safe(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            self.warnings.append(
                f"{what}: MISSING for {unit} {shown}{more} ({last}); findings there may be "
                "missed: raise the server's limits or --timeout"
            )
        return out

    def partitions(self, at: float) -> tuple[str, list[str], bool]:
        """What to split by, found once per scan: scrape targets (`instance`, one per node's
        agent), else the namespaces in the source label."""
        if self._partition is None:
            lab = self.labels
            rows = self.client.query(f"count by (instance) ({lab.metric})", at)
            instances = sorted({r["metric"].get("instance", "") for r in rows} - {""})
            if len(instances) >= 2:
                self._partition = ("instance", instances, False)
            else:
                label = lab.source[0]
                rows = self.client.query(f"count by ({label}) ({lab.metric})", at)
                values = {r["metric"].get(label, "") for r in rows}
                if len(lab.source) == 1:  # ns/pod in one label: split by its namespace part
                    spaces = sorted({v.split("/", 1)[0] for v in values if "/" in v})
                    self._partition = (label, spaces, True)
                else:
                    self._partition = (label, sorted(values - {""}), False)
        return self._partition


def part_matcher(label: str, values: list[str], prefix: bool) -> str:
    if not prefix:
        return promql.one_of(label, values)
    alternatives = "|".join(sorted(regex_escape(v) for v in values))
    return f"{label}=~{promql_string(f'(?s)(?:{alternatives})/.*')}"
