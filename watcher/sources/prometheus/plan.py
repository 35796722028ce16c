"""The query plan of a scan: which queries a window takes and in what order.

Requests per scan: 1 label check, 2 zone counts (per workload and zone), 1 grouped name fetch per
100 candidate zones (or 3,000 characters of selector) and window, 1 label-values lookup and 1
exact fetch per 3,000 characters of shape-prefilter names, then volume: the recent span, one
median screen, and the history of the sources that changed; last, for the contested pairs only
(names.contested: a rule could fire counting all their names one-off, or only they resolve
their zone), one sparse range query of re-asks and first asks per 3,000 characters of names,
one `group()` of the responses metric and one answers query per 3,000 characters of names.
Memory follows the candidates, not the series count. The four chains (short names, long names,
shaped names, volume) are independent and run `prometheus.parallel_queries` at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pandas as pd
import requests

from watcher.config import Config, day_candidate_min, day_history_needed
from watcher.domains import DomainRules
from watcher.duration import promql_duration
from watcher.progress import QUIET
from watcher.sources import promql
from watcher.sources.base import Source, WindowSource
from watcher.sources.prometheus import checks, names, volume
from watcher.sources.prometheus.client import PrometheusClient
from watcher.sources.prometheus.scope import Scope
from watcher.text import promql_string, regex_escape
from watcher.window import Window, empty_names, workload_of


class PrometheusSource(WindowSource):
    """A Prometheus (or a server speaking its API) as a Source."""

    def __init__(self, url: str, cfg: Config, session: requests.Session | None = None) -> None:
        self.client = PrometheusClient(url, cfg.prometheus, session)
        self.cfg = cfg
        self.url = url
        self.progress = QUIET  # the CLI sets a terminal Progress

    def _scope(self, at: float) -> Scope:
        """A scan's scope, its labels settled by the checks (which may raise MissingDataError)."""
        found = checks.check(self.client, self.cfg, at)
        return Scope(found.config(self.cfg), self.client, self.progress, list(found.warnings))

    def window(self, at: float) -> Window:
        show = self.progress.step
        show("checking the metric and its labels", 1, 5)
        scope = self._scope(at)
        cfg, lab = scope.cfg, scope.cfg.labels
        matchers = promql.base_matchers(lab.query, lab.cluster_domain, cfg.allowlist.private_tlds)

        def sel(*more: str) -> Callable[[list[str]], str]:
            return lambda extra: promql.selector(lab.metric, [*matchers, *more, *extra])

        rules = DomainRules.build(
            lab.cluster_domain, cfg.allowlist.suffixes, cfg.allowlist.use_defaults
        )
        min_distinct = min(cfg.burst.info_min_distinct, cfg.burst.encoded_min_distinct)
        prevalence: dict[str, int] = {}
        breadth: dict[str, int] = {}
        live = [False]  # the recent volume has a value at scan time

        def span(name: str, seconds: float, least: int, now: bool = False) -> pd.DataFrame:
            frame, clients, zones = names.span_names(
                scope, name, seconds, at, sel, rules, least, now
            )
            if name == "long":  # clients per zone: how private a channel's domain is
                prevalence.update(clients)
                breadth.update(zones)
            return frame

        def recent_volume() -> pd.DataFrame:
            frame, live[0] = volume.fetch(scope, at)
            return frame

        # The day window only where the history reaches back far enough for it to see what the
        # long window cannot (burst.day_history_needed; a 7 h history: no).
        day = cfg.windows.day if names.reaches_back(scope, at, day_history_needed(cfg)) else 0.0

        # Independent chains of queries. Prometheus evaluates each query on one core, so
        # up to prometheus.parallel_queries of them run at once; the longest are started first.
        jobs: dict[str, Callable[[], pd.DataFrame]] = {
            "volume": recent_volume,
            "long": lambda: span("long", cfg.windows.long, min_distinct),
            "short": lambda: span("short", cfg.windows.short, min_distinct),
            "shaped": lambda: names.shaped(scope, at, sel),
        }
        if day:
            jobs["day"] = lambda: span("day", day, day_candidate_min(cfg, day), now=True)
        show("counting distinct names per source and zone, fetching candidates", 2, 5)
        got = run_all(jobs, cfg.prometheus.parallel_queries)
        if not live[0]:  # no query in the last step (or a server that ignored match[] in
            # the label check): count, to tell a missing metric or one gone absent
            scope.warnings.extend(checks.diagnose(self.client, cfg, at).warnings)
        show("looking up when repeated names were asked again", 3, 5)
        wanted = names.contested(
            scope, got["short"], got["long"], got.get("day", empty_names()), got["shaped"],
            prevalence,
        )  # fmt: skip
        reasks, births = names.reasks(scope, at, [got["long"], got["shaped"]], wanted)
        answers = names.answers(scope, at, got["long"], wanted)
        self.progress.finish()
        return Window(
            at=at,
            short_seconds=cfg.windows.short,
            long_seconds=cfg.windows.long,
            step_seconds=cfg.windows.step,
            short=got["short"],
            long=got["long"],
            shaped=got["shaped"],
            volume=got["volume"],
            complete=False,
            warnings=scope.warnings,
            day_seconds=day,
            day=got.get("day", empty_names()),
            reasks=reasks,
            births=births,
            prevalence=prevalence,
            breadth=breadth,
            answers=answers,
        )

    def latest(self) -> float | None:
        """A live server: scan as of now (the Source protocol)."""
        return None

    def namespace_series(self, namespace: str, at: float) -> int:
        """Series of the metric from pods of `namespace` over the long window (drill --check:
        zero means no pod there goes through the DNS proxy)."""
        lab = self._scope(at).cfg.labels
        if len(lab.source) == 1:
            pattern = f"(?s){regex_escape(namespace)}/.+"
            matcher = f"{lab.source[0]}=~{promql_string(pattern)}"
        else:
            matcher = f"{lab.source[0]}={promql_string(namespace)}"
        sel = promql.selector(lab.metric, [matcher])
        w = promql_duration(self.cfg.windows.long)
        rows = self.client.query(f"count(last_over_time({sel}[{w}]))", at)
        return int(float(rows[0]["value"][1])) if rows else 0

    def workload_names(self, source: str, at: float, seconds: float) -> pd.DataFrame:
        """Every name (cluster domain included) the pods of `source`'s workload queried in the
        span, per pod: what a DNS allowlist for the workload must keep allowed."""
        scope = self._scope(at)
        lab = scope.cfg.labels
        sel = promql.selector(lab.metric, [f'{lab.query}!=""', *scope.workload_matchers({source})])
        rows = self.client.query(promql.names(sel, seconds, lab.source, lab.query), at)
        frame = scope.names_frame(rows)
        wanted = workload_of(source)
        return frame[frame["source"].map(workload_of) == wanted].reset_index(drop=True)


def run_all(jobs: dict[str, Callable[[], pd.DataFrame]], workers: int) -> dict[str, pd.DataFrame]:
    """Run the jobs on up to `workers` threads; the first error is raised once all stopped
    (jobs not started are cancelled)."""
    if workers <= 1:
        return {name: job() for name, job in jobs.items()}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dnswatch-query")
    futures = {name: pool.submit(job) for name, job in jobs.items()}
    try:
        return {name: f.result() for name, f in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


if TYPE_CHECKING:  # the type checker proves PrometheusSource implements the Source protocol
    _source: type[Source] = PrometheusSource
