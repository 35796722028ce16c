"""Prometheus over HTTP (prometheus-api-client): aggregate in PromQL, fetch names only where needed.

Requests per scan: 1 label check, 2 zone counts (per workload and zone), 1 grouped name fetch per
100 candidate zones (or 3,000 characters of selector) and window, 1 label-values lookup and 1
exact fetch per 3,000 characters of shape-prefilter names, then volume: the recent span, one
median screen, and the history of the sources that changed. Memory follows the candidates, not
the series count. The four chains (short names, long names, shaped names, volume) are
independent and run `prometheus.parallel_queries` at a time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from watcher.config import (
    LABELS_CONTEXT,
    SOURCE_CONTEXT,
    Config,
    day_candidate_min,
    day_history_needed,
    with_source_labels,
)
from watcher.domains import DomainRules, normalize
from watcher.duration import promql_duration
from watcher.errors import ConfigError, MissingDataError, RefusedError, SourceError
from watcher.progress import QUIET
from watcher.sources import promql
from watcher.text import promql_string, regex_escape, terminal_safe
from watcher.window import (
    RESPONSES,
    Window,
    answer_bit,
    empty_names,
    reask_bit,
    response_labels,
    shape_prefilter,
    source_name,
    workload_of,
)

HELM_HINT = (
    "enable it in Cilium's Helm values: hubble.metrics.enabled=\"{dns:query;ignoreAAAA;"
    'sourceContext=pod;destinationContext=pod}"'
)


def _secret(name: str) -> str | None:
    """A secret from DNSWATCH_<NAME> or the file named by DNSWATCH_<NAME>_FILE."""
    value = os.environ.get(f"DNSWATCH_{name}")
    path = os.environ.get(f"DNSWATCH_{name}_FILE")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read DNSWATCH_{name}_FILE: {exc.strerror or exc}") from None
    return value or None


class PrometheusSource:
    def __init__(self, url: str, cfg: Config, session: requests.Session | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"Prometheus URL must start with http:// or https://: {url!r}")
        self.cfg = cfg
        self.progress = QUIET  # the CLI sets a terminal Progress
        self.warnings: list[str] = []
        self._partition: tuple[str, list[str], bool] | None = None
        self._node_sources: set[str] = set()
        self._live = True  # window(): the recent volume has a value at scan time
        self._prevalence: dict[str, int] = {}
        p = cfg.prometheus
        headers = dict(p.headers)
        token = _secret("PROMETHEUS_TOKEN")
        if p.bearer_token_file:
            try:
                token = Path(p.bearer_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read bearer token file: {exc.strerror or exc}") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        user, password = _secret("PROMETHEUS_USERNAME"), _secret("PROMETHEUS_PASSWORD")
        sess = session or requests.Session()
        sess.verify = p.ca_file if (p.ca_file and p.verify_tls) else p.verify_tls
        if not p.verify_tls:
            # Asked for with --insecure: one warning per request would bury the output.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        retry = Retry(
            total=p.retries,
            # A query that outlasted the timeout once will again, and Prometheus goes on
            # evaluating the abandoned one: not retried but split (RefusedError -> _ask).
            read=False,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        self.client = PrometheusConnect(
            url=url.rstrip("/"),
            headers=headers or None,
            retry=retry,
            auth=(user, password or "") if user else None,
            session=sess,
            timeout=int(p.timeout) or 1,
            method="POST",
        )
        self.url = url
        self._form = (sess, headers, (user, password or "") if user else None, p.timeout or 1)

    BATCH = 100  # sources or zones per query: a regex of thousands of alternatives is slow
    # Exact names per query, by escaped characters: activity() repeats the selector four times
    # and VictoriaMetrics refuses queries over 16 KB (-search.maxQueryLen) by default.
    VALUES_CHARS = 3000
    VALUES_QUERIES = 20  # beyond this many, one regex query costs less

    # -- HTTP ------------------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        try:
            result = fn(*args, **kwargs)
        except requests.exceptions.JSONDecodeError:
            raise SourceError(f"{self.url} did not answer like a Prometheus API") from None
        except requests.exceptions.SSLError:
            raise SourceError(f"TLS error talking to Prometheus at {self.url}") from None
        except requests.exceptions.Timeout as exc:
            raise RefusedError(self._timeout_message(exc)) from None
        except requests.exceptions.ConnectionError as exc:
            # Retries exhausted on read timeouts arrive as a ConnectionError wrapping them.
            if _timed_out(exc):
                raise RefusedError(self._timeout_message(exc)) from None
            raise SourceError(
                f"cannot reach Prometheus at {self.url} ({_connect_reason(exc)})"
            ) from None
        except requests.exceptions.RequestException as exc:
            reason = type(exc).__name__
            raise SourceError(f"cannot reach Prometheus at {self.url} ({reason})") from None
        except PrometheusApiClientException as exc:
            text = f"Prometheus answered with an error: {_api_error(str(exc))}"
            if re.search(r"HTTP Status Code (422|503|504)\b", str(exc)):
                raise RefusedError(text) from None  # too big or too busy: worth splitting
            raise SourceError(text) from None
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"{self.url} did not answer like a Prometheus API") from None
        if not isinstance(result, list):
            raise SourceError(f"{self.url} did not answer like a Prometheus API")
        return result

    def _timeout_message(self, exc: Exception) -> str:
        p = self.cfg.prometheus
        if _connect_timeout(exc):
            tries = p.retries + 1
            what = f"no connection within {p.timeout:g}s ({tries} tr{'y' if tries == 1 else 'ies'})"
        else:
            what = f"no answer within {p.timeout:g}s (not retried: it would be as slow again)"
        return (
            f"Prometheus at {self.url} timed out: {what}; a slow or overloaded server: raise "
            "--timeout (prometheus.timeout) or scan a smaller cluster"
        )

    def _post(self, path: str, form: dict[str, str]) -> list[dict[str, Any]]:
        """A query as a POST form body. The client library puts the query in the URL even for
        POST, and gateways cap URLs (nginx: 8 KB; Python's http.server: 64 KB) below what a
        fetch of a thousand exact names needs. Errors read as the library's, for _call."""
        sess, headers, auth, timeout = self._form
        response = sess.post(
            f"{self.client.url}{path}",
            data=form,
            headers=headers,
            auth=auth,
            timeout=timeout,
            verify=sess.verify,  # explicit, as the client library does
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        # orjson from the bytes: no decoded copy of a big answer's text beside its objects
        # (a 1M-series scan's zone counts are ~80k rows), and about 3x faster.
        result = orjson.loads(response.content)["data"]["result"]
        return result if isinstance(result, list) else []

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        return self._call(self._post, "/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        form = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{int(step)}s",
        }
        return self._call(self._post, "/api/v1/query_range", form)

    # -- checks ----------------------------------------------------------------------------------
    def _count(self, sel: str, at: float, seconds: float | None) -> float:
        expr = (
            f"count({sel})"
            if seconds is None
            else (f"count(last_over_time({sel}[{int(seconds)}s]))")
        )
        res = self.query(expr, at)
        return float(res[0]["value"][1]) if res else 0.0

    def check(self, at: float) -> list[str]:
        """Fail in one line if the metric or a needed label is missing; warn if it went absent.
        The usual case from the index alone: the label names of the series with every needed
        label in the last lookback (no samples read: 2.5 s at 1M series, where counting those
        series took 17.8 s). That cannot tell a metric absent at scan time from one present:
        window() runs the diagnosis too when the scan's recent volume ends silent."""
        lab = self.cfg.labels
        needed = {lab.query, *lab.source}
        params = {
            "match[]": promql.selector(lab.metric, [f'{label}!=""' for label in sorted(needed)]),
            "start": f"{at - LOOKBACK:.3f}",
            "end": f"{at:.3f}",
        }
        if needed <= {str(n) for n in self._call(self.client.get_label_names, params=params)}:
            return []
        return self.diagnose(at)

    def diagnose(self, at: float) -> list[str]:
        """check() by counting series: which of metric and labels is missing (an error), or
        whether the metric went absent at scan time (a warning)."""
        lab = self.cfg.labels
        warnings: list[str] = []
        span: float | None = None
        ready = [f'{label}!=""' for label in (lab.query, *lab.source)]
        if self._count(promql.selector(lab.metric, ready), at, None) > 0:
            return warnings
        if self._count(lab.metric, at, None) == 0:
            if self._count(lab.metric, at, self.cfg.windows.long) == 0:
                raise MissingDataError(
                    f"metric {lab.metric} not found in Prometheus at {self.url}; {HELM_HINT}"
                )
            span = self.cfg.windows.long
            warnings.append(
                f"{lab.metric} is absent at scan time but present earlier: a scrape failing "
                "(e.g. sample_limit hit by a flood of unique names) or the agents down"
            )
        if self._count(f'{lab.metric}{{{lab.query}!=""}}', at, span) == 0:
            raise MissingDataError(f"metric {lab.metric} has no '{lab.query}' label; {HELM_HINT}")
        if (
            lab.source == SOURCE_CONTEXT
            and self._count(f'{lab.metric}{{source!=""}}', at, span) == 0
            and self._count(f'{lab.metric}{{source_pod!=""}}', at, span) > 0
        ):
            # The default fits both of Hubble's namings: labelsContext it is.
            self.cfg = with_source_labels(self.cfg, LABELS_CONTEXT)
            lab = self.cfg.labels
        for label in lab.source:
            if self._count(f'{lab.metric}{{{label}!=""}}', at, span) == 0:
                raise MissingDataError(
                    f"metric {lab.metric} has no '{label}' label: set labels.source in the config "
                    "(e.g. [source] for sourceContext=pod, [source_namespace, source_pod] for "
                    "labelsContext)"
                )
        return warnings

    # -- window ----------------------------------------------------------------------------------
    def _source_of(self, metric: dict[str, str]) -> str:
        name = source_name(metric, self.cfg.labels.source)
        if not any(metric.get(label) for label in self.cfg.labels.source) and name:
            self._node_sources.add(name)  # selected back by its empty source labels
        return name

    def _workload_key(self, source: str) -> str:
        """The workload a source is fetched by: "" (empty source labels) for a node's client."""
        return "" if source in self._node_sources else workload_of(source)

    def _names_frame(self, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
        q = self.cfg.labels.query
        data = [
            (self._source_of(r["metric"]), normalize(r["metric"].get(q, "")), float(r["value"][1]))
            for r in rows
        ]
        if not data:
            return empty_names()
        frame = pd.DataFrame(data, columns=["source", "name", "queries"])
        return frame.groupby(["source", "name"], as_index=False).agg(queries=("queries", "sum"))

    def window(self, at: float) -> Window:
        show = self.progress.step
        show("checking the metric and its labels", 1, 5)
        warnings = self.check(at)  # may settle the source labels: read the config after it
        self.warnings = warnings
        self._partition = None
        cfg, lab = self.cfg, self.cfg.labels
        matchers = promql.base_matchers(lab.query, lab.cluster_domain, cfg.allowlist.private_tlds)

        def sel(*more: str) -> Callable[[list[str]], str]:
            return lambda extra: promql.selector(lab.metric, [*matchers, *more, *extra])

        rules = DomainRules.build(
            lab.cluster_domain, cfg.allowlist.suffixes, cfg.allowlist.use_defaults
        )
        min_distinct = min(cfg.burst.info_min_distinct, cfg.burst.encoded_min_distinct)

        def span_names(name: str, seconds: float) -> pd.DataFrame:
            return self._span_names(name, seconds, at, sel, rules, min_distinct)

        # The day window only where the history reaches back far enough for it to see what the
        # long window cannot (burst.day_history_needed; a 7 h history: no).
        day = cfg.windows.day if self._reaches_back(at, day_history_needed(cfg)) else 0.0

        # Independent chains of queries. Prometheus evaluates each query on one core, so
        # up to prometheus.parallel_queries of them run at once; the longest are started first.
        jobs: dict[str, Callable[[], pd.DataFrame]] = {
            "volume": lambda: self._volume(at),
            "long": lambda: span_names("long", cfg.windows.long),
            "short": lambda: span_names("short", cfg.windows.short),
            "shaped": lambda: self._shaped(at, sel),
        }
        if day:
            jobs["day"] = lambda: self._span_names(
                "day", day, at, sel, rules, day_candidate_min(cfg, day), now=True
            )
        show("counting distinct names per source and zone, fetching candidates", 2, 5)
        self._live = False
        got = _run_all(jobs, cfg.prometheus.parallel_queries)
        if not self._live:  # no query in the last step (or a server that ignored match[]
            # in check()): count, to tell a missing metric or one gone absent
            warnings += self.diagnose(at)
        show("looking up when repeated names were asked again", 3, 5)
        reasks = self._reasks(at, [got["long"], got["shaped"]])
        answers = self._answers(at, got["long"])
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
            warnings=warnings,
            day_seconds=day,
            day=got.get("day", empty_names()),
            reasks=reasks,
            prevalence=self._prevalence,
            answers=answers,
        )

    ANSWER_NAMES = 48  # names per (workload, zone) whose answers are looked up: a fair sample

    def _answers(self, at: float, long: pd.DataFrame) -> dict[tuple[str, str], int]:
        """ANSWER_* bits per (client, name) for a sample of each busy pair's long-window names,
        from the answers `hubble_dns_responses_total` counted in the window (its client is
        `destination`). Evidence only: a server without that metric, or refusing the query,
        leaves the answers unknown (a warning for the latter)."""
        lab, cfg = self.cfg.labels, self.cfg
        if long.empty or not self._has_responses(at):
            return {}
        rows = long.assign(
            key=long["source"].map(self._workload_key) + "\0" + long["name"].map(promql.zone_of)
        )
        sizes = rows.groupby("key")["name"].transform("size")
        rows = rows[sizes >= cfg.burst.info_min_distinct]
        if rows.empty:
            return {}
        sample = rows.sort_values("name").groupby("key", sort=False).head(self.ANSWER_NAMES)
        clients = response_labels(lab.source)
        wanted = set(zip(sample["source"], sample["name"], strict=True))
        out: dict[tuple[str, str], int] = {}
        values = sorted(set(sample["name"]))
        for batch in _batches([regex_escape(v) for v in values], self.VALUES_CHARS):
            pattern = "(?s)(?:" + "|".join(batch) + r")\.?"
            sel = promql.selector(RESPONSES, [f"{lab.query}=~{promql_string(pattern)}"])
            labels = promql.by([*promql.with_host(clients), lab.query, "rcode", "ips_returned"])
            expr = f"count by ({labels}) ({promql.activity(sel, cfg.windows.long)})"
            try:
                res = self._run(expr, at, None)
            except RefusedError as exc:
                self.warnings.append(f"answers to candidate names: not read ({_short(exc)})")
                return out
            for r in res:
                m = r["metric"]
                pair = (source_name(m, clients), normalize(m.get(lab.query, "")))
                if pair in wanted:
                    bit = answer_bit(m.get("rcode", ""), m.get("ips_returned", ""))
                    out[pair] = out.get(pair, 0) | bit
        return out

    def _has_responses(self, at: float) -> bool:
        """Whether the responses metric has series in the long window (an index lookup, no
        samples read): without it, no answers query is sent at all."""
        params = {
            "match[]": RESPONSES,
            "start": f"{at - self.cfg.windows.long:.3f}",
            "end": f"{at:.3f}",
        }
        try:
            return bool(self._call(self.client.get_label_names, params=params))
        except SourceError:
            return False

    REASK_NAMES = 32  # repeated names looked up per (workload, zone): enough to see a spread

    def _reasks(self, at: float, tables: list[pd.DataFrame]) -> dict[tuple[str, str], int]:
        """For names asked more than once in the long window (the only ones repetition can
        quiet), the steps in which each was asked again: increase() per step, which never sees
        a series' first ask. The most queried REASK_NAMES per (workload, zone), fetched by
        exact value."""
        cfg, lab = self.cfg, self.cfg.labels
        frames = [t for t in tables if not t.empty]
        if not frames:
            return {}
        rows = pd.concat(frames).drop_duplicates(["source", "name"])
        rows = rows[rows["queries"] >= 2]
        if rows.empty:
            return {}
        rows = rows.assign(
            key=rows["source"].map(self._workload_key) + "\0" + rows["name"].map(promql.zone_of)
        )
        top = (
            rows.sort_values("queries", ascending=False)
            .groupby("key", sort=False)
            .head(self.REASK_NAMES)
        )
        step = cfg.judge.repeat_step
        start = at - cfg.windows.long + step
        out: dict[tuple[str, str], int] = {}
        values = sorted(set(top["name"]))
        for batch in _batches([regex_escape(v) for v in values], self.VALUES_CHARS):
            pattern = "(?s)(?:" + "|".join(batch) + r")\.?"  # stored with the trailing dot
            exact = f"{lab.query}=~{promql_string(pattern)}"
            res = self._ask(
                lambda extra, e=exact: promql.reasks(  # type: ignore[misc]
                    promql.selector(lab.metric, [e, *extra]), step, lab.source, lab.query
                ),
                at,
                "re-asks of repeated names",
                (start, step),
            )
            for r in res:
                pair = (self._source_of(r["metric"]), normalize(r["metric"].get(lab.query, "")))
                mask = out.get(pair, 0)
                for t, v in r.get("values", ()):
                    if float(v) > 0:
                        mask |= reask_bit(at, float(t), step)
                out[pair] = mask
        return out

    def _reaches_back(self, at: float, seconds: float) -> bool:
        """Whether the metric has series older than `seconds` before `at` (label names of the
        series in [at - day, at - seconds]: an index lookup, no samples read). Unsure: yes."""
        if not seconds:
            return False
        lab = self.cfg.labels
        params = {
            "match[]": lab.metric,
            "start": f"{at - self.cfg.windows.day:.3f}",
            "end": f"{at - seconds:.3f}",
        }
        try:
            found = self._call(self.client.get_label_names, params=params)
        except SourceError:
            return True
        return lab.query in {str(name) for name in found}

    def _span_names(
        self,
        name: str,
        seconds: float,
        at: float,
        sel: Callable[..., Callable[[list[str]], str]],
        rules: DomainRules,
        min_distinct: int,
        now: bool = False,
    ) -> pd.DataFrame:
        """Names of the (workload, zone) pairs with enough distinct names in one window: counted
        in PromQL, then fetched for the candidates only."""
        lab = self.cfg.labels
        base = sel()
        counts = self._ask(
            lambda extra: promql.zone_counts(base(extra), seconds, lab.source, lab.query, now),
            at,
            f"distinct names per source and zone ({name} window)",
        )
        by_zone: dict[str, set[str]] = {}  # zone -> workloads worth fetching names of
        if name == "long":  # clients per zone: how private a channel's domain is
            clients: dict[str, int] = {}
            for r in counts:
                zone = r["metric"].get("dnswatch_zone", "")
                clients[zone] = clients.get(zone, 0) + 1
            self._prevalence = clients
        for r in counts:
            zone = r["metric"].get("dnswatch_zone", "")
            if zone and float(r["value"][1]) >= min_distinct and not rules.is_allowlisted(zone):
                by_zone.setdefault(zone, set()).add(self._workload_of_row(r["metric"]))
        del counts  # every (workload, zone) pair of the cluster: ~80k rows at 1M series
        parts = [empty_names()]
        batches = self._zone_batches(by_zone)
        for n, batch in enumerate(batches, 1):
            self.progress.step(
                f"fetching names of candidate zones ({name} window)", n, len(batches)
            )
            workloads = set().union(*(by_zone[zone] for zone in batch))
            zsel = sel(promql.under_zones(lab.query, batch), *self._workload_selector(workloads))
            frame = self._names_frame(
                self._ask(
                    lambda extra, zs=zsel: promql.names(  # type: ignore[misc]
                        zs(extra), seconds, lab.source, lab.query, now
                    ),
                    at,
                    f"names under {len(batch)} candidate zones ({name} window)",
                )
            )
            # The grouped fetch over-fetches (every workload x every zone): keep the pairs.
            wanted = frame["name"].map(promql.zone_of)
            keep = [
                zone in by_zone and self._workload_key(src) in by_zone[zone]
                for src, zone in zip(frame["source"], wanted, strict=True)
            ]
            parts.append(frame[keep])
        return pd.concat(parts, ignore_index=True)

    def _zone_batches(self, by_zone: dict[str, set[str]]) -> list[list[str]]:
        """Candidate zones cut into grouped fetches of at most BATCH zones and about
        VALUES_CHARS characters of zones and workloads in the selector (names() repeats it four
        times; VictoriaMetrics refuses queries over 16 KB by default)."""

        def chars(zone: str, workloads: set[str]) -> int:
            return len(regex_escape(zone)) + 1 + sum(len(regex_escape(w)) + 2 for w in workloads)

        out: list[list[str]] = []
        size, seen = 0, set[str]()
        for zone in sorted(by_zone):
            cost = chars(zone, by_zone[zone] - seen)
            if out and len(out[-1]) < self.BATCH and size + cost <= self.VALUES_CHARS:
                out[-1].append(zone)
                size, seen = size + cost, seen | by_zone[zone]
            else:
                out.append([zone])
                size, seen = chars(zone, by_zone[zone]), set(by_zone[zone])
        return out

    def _shaped(self, at: float, sel: Callable[..., Callable[[list[str]], str]]) -> pd.DataFrame:
        """Long-window names passing the shape prefilter. The names are looked up once (label
        values: one regex pass over the index), then fetched by exact value, which Prometheus
        resolves from its index without a regex: the prefilter's regex is not re-run for each
        of activity()'s four selectors, nor are the base matchers' (the lookup applied them).
        Servers without label-values matching, or many odd names, get the one regex query."""
        cfg, lab = self.cfg, self.cfg.labels
        pattern = shape_prefilter(cfg.names.prefilter_label_length, cfg.names.prefilter_name_length)
        what = "long and odd names for shape scoring"
        by_shape = sel(f"{lab.query}=~{promql_string(pattern)}")
        try:
            found = self.label_values(lab.query, by_shape([]), at - cfg.windows.long, at)
        except SourceError:
            found = None  # RefusedError included: the regex query below splits itself
        rx = re.compile(pattern)
        values = sorted({v for v in found or () if isinstance(v, str) and rx.fullmatch(v)})
        batches = _batches([regex_escape(v) for v in values], self.VALUES_CHARS)
        if found is None or len(batches) > self.VALUES_QUERIES:
            return self._names_frame(
                self._ask(
                    lambda extra: promql.names(
                        by_shape(extra), cfg.windows.long, lab.source, lab.query
                    ),
                    at,
                    what,
                )
            )
        frames = [empty_names()]
        for batch in batches:
            exact = f"{lab.query}=~{promql_string('|'.join(batch))}"
            frames.append(
                self._names_frame(
                    self._ask(
                        lambda extra, e=exact: promql.names(  # type: ignore[misc]
                            promql.selector(lab.metric, [e, *extra]),
                            cfg.windows.long,
                            lab.source,
                            lab.query,
                        ),
                        at,
                        what,
                    )
                )
            )
        return pd.concat(frames, ignore_index=True)

    def label_values(self, label: str, sel: str, start: float, end: float) -> list[Any]:
        """Values of `label` on series matching `sel` between start and end."""
        params = {"match[]": sel, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return self._call(self.client.get_label_values, label, params=params)

    # -- splitting refused queries ---------------------------------------------------------------
    def _ask(
        self,
        build: Callable[[list[str]], str],
        at: float,
        what: str,
        span: tuple[float, float] | None = None,
    ) -> list[dict[str, Any]]:
        """One query; if Prometheus refuses it (too many samples, a timeout, a busy frontend),
        the same query per part of the cluster (by scrape target, else by namespace), halving
        parts until they pass. A part that never passes is named in the warnings; the rest of
        the scan goes on."""
        try:
            return self._run(build([]), at, span)
        except RefusedError as exc:
            label, values, prefix = self._partitions(at)
            unit = "namespace" if prefix or label.endswith("namespace") else label
            if len(values) < 2:
                self.warnings.append(f"{what}: not read, nothing to split it by ({exc})")
                return []
            self.warnings.append(
                f"{what}: refused whole ({_short(exc)}); asked again per {unit} "
                f"({len(values)} parts)"
            )
        out: list[dict[str, Any]] = []
        missing: list[str] = []
        last = ""
        todo = [values[: len(values) // 2], values[len(values) // 2 :]]
        while todo:
            part = todo.pop()
            try:
                out += self._run(build([_part_matcher(label, part, prefix)]), at, span)
            except RefusedError as exc:
                if len(part) == 1:
                    missing.append(part[0])
                    last = _short(exc)
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

    def _run(self, expr: str, at: float, span: tuple[float, float] | None) -> list[dict[str, Any]]:
        if span is None:
            return self.query(expr, at)
        return self.query_range(expr, span[0], at, span[1])

    def _partitions(self, at: float) -> tuple[str, list[str], bool]:
        """What to split by, found once per scan: scrape targets (`instance`, one per node's
        agent), else the namespaces in the source label."""
        if self._partition is None:
            lab = self.cfg.labels
            rows = self.query(f"count by (instance) ({lab.metric})", at)
            instances = sorted({r["metric"].get("instance", "") for r in rows} - {""})
            if len(instances) >= 2:
                self._partition = ("instance", instances, False)
            else:
                label = lab.source[0]
                rows = self.query(f"count by ({label}) ({lab.metric})", at)
                values = {r["metric"].get(label, "") for r in rows}
                if len(lab.source) == 1:  # ns/pod in one label: split by its namespace part
                    spaces = sorted({v.split("/", 1)[0] for v in values if "/" in v})
                    self._partition = (label, spaces, True)
                else:
                    self._partition = (label, sorted(values - {""}), False)
        return self._partition

    def latest(self) -> float | None:
        """A live server: scan as of now (the Source protocol)."""
        return None

    def namespace_series(self, namespace: str, at: float) -> int:
        """Series of the metric from pods of `namespace` over the long window (drill --check:
        zero means no pod there goes through the DNS proxy)."""
        self.check(at)
        lab = self.cfg.labels
        if len(lab.source) == 1:
            pattern = f"(?s){regex_escape(namespace)}/.+"
            matcher = f"{lab.source[0]}=~{promql_string(pattern)}"
        else:
            matcher = f"{lab.source[0]}={promql_string(namespace)}"
        sel = promql.selector(lab.metric, [matcher])
        w = promql_duration(self.cfg.windows.long)
        rows = self.query(f"count(last_over_time({sel}[{w}]))", at)
        return int(float(rows[0]["value"][1])) if rows else 0

    def workload_names(self, source: str, at: float, seconds: float) -> pd.DataFrame:
        """Every name (cluster domain included) the pods of `source`'s workload queried in the
        span, per pod: what a DNS allowlist for the workload must keep allowed."""
        self.check(at)
        lab = self.cfg.labels
        sel = promql.selector(lab.metric, [f'{lab.query}!=""', *self._workload_matchers({source})])
        frame = self._names_frame(self.query(promql.names(sel, seconds, lab.source, lab.query), at))
        wanted = workload_of(source)
        return frame[frame["source"].map(workload_of) == wanted].reset_index(drop=True)

    def _volume(self, at: float) -> pd.DataFrame:
        """Queries per source per step. First the recent span for every source (cheap: a few
        steps), then each busy source's past median (30-min steps) as one instant query, and the
        full baseline only for sources whose recent peak could be far above it, with their
        workload's other pods (the baseline of a rolled-out pod). Cost follows what changed."""
        cfg, lab, v = self.cfg, self.cfg.labels, self.cfg.volume
        step = cfg.windows.step
        # Volume counts all of a source's DNS, cluster domain included.
        recent = self._ask(
            lambda extra: promql.volume(promql.selector(lab.metric, extra), step, lab.source),
            at,
            "recent query volume",
            (at - v.recent + step, step),
        )
        self._live = any(r["values"] and float(r["values"][-1][0]) >= at - 1 for r in recent)
        peaks = self._peaks(recent, max(1, round(v.smoothing / step)), step)
        del recent
        busy = {s for s, p in peaks.items() if p >= v.min_rate}
        if not busy:
            return pd.DataFrame()
        medians: dict[str, float] = {}
        past = cfg.windows.baseline - v.recent
        if past >= SCREEN_STEP:
            rows = self._ask(
                lambda extra: promql.volume_median(
                    promql.selector(lab.metric, extra), SCREEN_STEP, past, v.recent, lab.source
                ),
                at,
                "past query volume",
            )
            medians = {
                self._source_of(r["metric"]): float(r["value"][1]) / SCREEN_STEP for r in rows
            }
        # The detector alerts only above twice the baseline's 99th percentile of 5-min rates
        # (peak_factor), which is at least the median of its 30-min rates: a peak under 1.5x
        # that median can never alert. New sources (no past) and any source over
        # new_source_rate are always fetched.
        candidates = sorted(
            s
            for s in busy
            if s not in medians or peaks[s] >= v.new_source_rate or peaks[s] >= SCREEN * medians[s]
        )
        full: dict[str, pd.Series] = {}
        for i in range(0, len(candidates), self.BATCH):
            wanted = self._workload_matchers(set(candidates[i : i + self.BATCH]))
            rows = self._ask(
                lambda extra, w=wanted: promql.volume(  # type: ignore[misc]
                    promql.selector(lab.metric, [*w, *extra]), step, lab.source
                ),
                at,
                "query volume history of busy sources",
                (at - cfg.windows.baseline + step, step),
            )
            for src, series in self._series(rows).items():
                full[src] = full[src].add(series, fill_value=0) if src in full else series
        return pd.DataFrame(full).sort_index() if full else pd.DataFrame()

    def _peaks(self, rows: list[dict[str, Any]], span: int, step: float) -> dict[str, float]:
        """Each source's highest mean rate over `span` consecutive steps (as pandas'
        rolling(span, min_periods=1).mean().max(), per second) with numpy: every source of a big
        cluster is here (45k at 1M series), and a pandas Series each cost ~2 KB and ~0.5 ms."""
        parts: dict[str, list[list[Any]]] = {}
        for r in rows:
            parts.setdefault(self._source_of(r["metric"]), []).append(r["values"])
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

    def _series(self, rows: list[dict[str, Any]]) -> dict[str, pd.Series]:
        out: dict[str, pd.Series] = {}
        for r in rows:
            src = self._source_of(r["metric"])
            series = pd.Series(
                [float(v) for _, v in r["values"]], index=[float(t) for t, _ in r["values"]]
            )
            # Parts of a split query may each hold a piece of one source: add them.
            out[src] = out[src].add(series, fill_value=0) if src in out else series
        return out

    def _workload_of_row(self, metric: dict[str, str]) -> str:
        """`ns/app` of a zone count row: the source labels, the last one cut by PromQL."""
        labels = self.cfg.labels.source
        values = [metric.get(label, "") for label in labels[:-1]]
        values.append(metric.get("dnswatch_workload", ""))
        return "/".join(values) if any(values) else ""  # no pod identity: as workload_of("/")

    def _workload_matchers(self, sources: set[str]) -> list[str]:
        """Select every pod of these sources' workloads (`ns/app-<hash>-<id>` -> `ns/app-*`)."""
        return self._workload_selector({self._workload_key(s) for s in sources})

    def _workload_selector(self, workloads: set[str]) -> list[str]:
        labels = self.cfg.labels.source
        if len(labels) == 1:
            return [promql.prefixed(labels[0], workloads)]
        # "" is the client with no pod identity: every source label empty.
        parts = [w.split("/", len(labels) - 1) if w else [""] * len(labels) for w in workloads]
        parts = [p for p in parts if len(p) == len(labels)]
        return [
            promql.one_of(label, {p[i] for p in parts}) for i, label in enumerate(labels[:-1])
        ] + [promql.prefixed(labels[-1], {p[-1] for p in parts})]


LOOKBACK = 300.0  # Prometheus's default lookback: a series is "present" this long after a sample
SCREEN = 1.5  # see _volume: below this many times its past median a source cannot alert
SCREEN_STEP = 1800.0  # the screen's step: coarse, so one pass costs little per step


def _run_all(jobs: dict[str, Callable[[], pd.DataFrame]], workers: int) -> dict[str, pd.DataFrame]:
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


def _batches(items: list[str], chars: int) -> list[list[str]]:
    """Items in order, cut into runs of at most `chars` characters joined (at least one each)."""
    out: list[list[str]] = []
    size = chars
    for item in items:
        if size + len(item) + 1 > chars:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item) + 1
    return out


def _part_matcher(label: str, values: list[str], prefix: bool) -> str:
    if not prefix:
        return promql.one_of(label, values)
    alternatives = "|".join(sorted(regex_escape(v) for v in values))
    return f"{label}=~{promql_string(f'(?s)(?:{alternatives})/.*')}"


def _short(exc: Exception) -> str:
    return str(exc).split(": ", 1)[-1][:160]


def _api_error(raw: str) -> str:
    """Pull Prometheus' own error text out of the client's exception message."""
    status = re.search(r"HTTP Status Code (\d+)", raw)
    error = re.search(r'"error":"((?:[^"\\]|\\.)*)"', raw)
    text = error.group(1) if error else raw
    code = f"HTTP {status.group(1)}: " if status else ""
    return terminal_safe(code + text)[:240]


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (requests puts urllib3's error in args) and its causes."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 12:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        if e.__cause__ is not None:
            todo.append(e.__cause__)
        if e.__context__ is not None:
            todo.append(e.__context__)
    return seen


def _is_timeout(e: BaseException, kind: type[BaseException]) -> bool:
    # urllib3's NewConnectionError (refused, unresolvable) subclasses ConnectTimeoutError.
    return isinstance(e, kind) and not isinstance(e, urllib3.exceptions.NewConnectionError)


def _timed_out(exc: BaseException) -> bool:
    return any(_is_timeout(e, urllib3.exceptions.TimeoutError) for e in _chain(exc))


def _connect_timeout(exc: BaseException) -> bool:
    return any(_is_timeout(e, urllib3.exceptions.ConnectTimeoutError) for e in _chain(exc))


def _connect_reason(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, urllib3.exceptions.NameResolutionError):
            return "name not resolved"
        if isinstance(e, (ConnectionResetError, urllib3.exceptions.ProtocolError)):
            return "connection closed by the server"
    return type(exc).__name__
