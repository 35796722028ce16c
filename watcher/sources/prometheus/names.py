"""Names fetched where the judge could alert: distinct names counted per (workload, zone) in
PromQL, names fetched for the candidate pairs only (grouped by zone), names shaped like
payloads looked up by value, and for a sample of each busy pair's names when they were asked
again and what they were answered."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from watcher.domains import DomainRules, normalize
from watcher.errors import QueryError, RefusedError, SourceError
from watcher.sources import promql
from watcher.sources.prometheus.client import short
from watcher.sources.prometheus.scope import Scope
from watcher.text import promql_string, regex_escape
from watcher.window import (
    RESPONSES,
    answer_of,
    empty_names,
    response_labels,
    shape_prefilter,
    step_of,
)

Selector = Callable[..., Callable[[list[str]], str]]  # matchers -> (split part -> selector)

BATCH = 100  # zones per grouped fetch: a regex of thousands of alternatives is slow
# Exact names per query, by escaped characters: activity() repeats the selector four times
# and VictoriaMetrics refuses queries over 16 KB (-search.maxQueryLen) by default.
VALUES_CHARS = 3000
VALUES_QUERIES = 20  # beyond this many, one regex query costs less
ANSWER_NAMES = 256  # names per (workload, zone) whose answers are looked up
REASK_NAMES = 256  # repeated names of one client looked up per (workload, zone)


def span_names(
    scope: Scope,
    name: str,
    seconds: float,
    at: float,
    sel: Selector,
    rules: DomainRules,
    min_distinct: int,
    now: bool = False,
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """Names of the (workload, zone) pairs with enough distinct names in one window: counted
    in PromQL, then fetched for the candidates only. Also: how many clients resolve each zone
    in the window (its prevalence), and how many zones each client resolves (its breadth)."""
    lab = scope.cfg.labels
    base = sel()
    counts = scope.splitter.ask(
        lambda extra: promql.zone_counts(base(extra), seconds, lab.source, lab.query, now),
        at,
        f"distinct names per source and zone ({name} window)",
    )
    clients: dict[str, int] = {}
    breadth: dict[str, int] = {}  # workload -> zones it resolves
    by_zone: dict[str, set[str]] = {}  # zone -> workloads worth fetching names of
    for r in counts:
        zone = r["metric"].get("dnswatch_zone", "")
        clients[zone] = clients.get(zone, 0) + 1
        who = scope.workload_of_row(r["metric"])
        breadth[who] = breadth.get(who, 0) + 1
        if zone and float(r["value"][1]) >= min_distinct and not rules.is_allowlisted(zone):
            by_zone.setdefault(zone, set()).add(who)
    del counts  # every (workload, zone) pair of the cluster: ~80k rows at 1M series
    parts = [empty_names()]
    batches = zone_batches(by_zone)
    done = [0]

    def fetch(batch: list[str]) -> list[dict[str, Any]]:
        done[0] += 1
        scope.progress.step(
            f"fetching names of candidate zones ({name} window)", done[0], len(batches)
        )
        workloads = set().union(*(by_zone[zone] for zone in batch))
        zsel = sel(promql.under_zones(lab.query, batch), *scope.workload_selector(workloads))
        return scope.splitter.ask(
            lambda extra: promql.names(zsel(extra), seconds, lab.source, lab.query, now),
            at,
            f"names under {len(batch)} candidate zones ({name} window)",
        )

    for rows in each_batch(scope, batches, fetch, f"names of candidate zones ({name} window)"):
        frame = scope.names_frame(rows)
        # The grouped fetch over-fetches (every workload x every zone): keep the pairs.
        wanted = frame["name"].map(promql.zone_of)
        keep = [
            zone in by_zone and scope.workload_key(src) in by_zone[zone]
            for src, zone in zip(frame["source"], wanted, strict=True)
        ]
        parts.append(frame[keep])
    return pd.concat(parts, ignore_index=True), clients, breadth


def each_batch(
    scope: Scope,
    batches: list[list[str]],
    run: Callable[[list[str]], list[dict[str, Any]]],
    what: str,
) -> list[list[dict[str, Any]]]:
    """run(batch) for each batch of names or zones, one result each. Names are the
    attacker's: a batch whose query Prometheus rejects (QueryError) is halved until the values
    that break it stand alone, and only those are lost, with a warning saying how many."""
    out: list[list[dict[str, Any]]] = []
    lost, reason = 0, ""
    todo = list(reversed(batches))
    while todo:
        batch = todo.pop()
        try:
            out.append(run(batch))
        except QueryError as exc:
            if len(batch) == 1:
                lost, reason = lost + 1, short(exc)
            else:
                todo += [batch[len(batch) // 2 :], batch[: len(batch) // 2]]
    if lost:
        scope.warnings.append(
            f"{what}: {lost} value{'s' if lost != 1 else ''} not looked up, their query "
            f"rejected ({reason}); findings that need them may be missed"
        )
    return out


def zone_batches(by_zone: dict[str, set[str]]) -> list[list[str]]:
    """Candidate zones cut into grouped fetches of at most BATCH zones and about
    VALUES_CHARS characters of zones and workloads in the selector (names() repeats it four
    times; VictoriaMetrics refuses queries over 16 KB by default)."""

    def chars(zone: str, workloads: set[str]) -> int:
        return len(regex_escape(zone)) + 1 + sum(len(regex_escape(w)) + 2 for w in workloads)

    out: list[list[str]] = []
    size, seen = 0, set[str]()
    for zone in sorted(by_zone):
        cost = chars(zone, by_zone[zone] - seen)
        if out and len(out[-1]) < BATCH and size + cost <= VALUES_CHARS:
            out[-1].append(zone)
            size, seen = size + cost, seen | by_zone[zone]
        else:
            out.append([zone])
            size, seen = chars(zone, by_zone[zone]), set(by_zone[zone])
    return out


def shaped(scope: Scope, at: float, sel: Selector) -> pd.DataFrame:
    """Long-window names passing the shape prefilter. The names are looked up once (label
    values: one regex pass over the index), then fetched by exact value, which Prometheus
    resolves from its index without a regex: the prefilter's regex is not re-run for each
    of activity()'s four selectors, nor are the base matchers' (the lookup applied them).
    Servers without label-values matching, or many odd names, get the one regex query."""
    cfg, lab = scope.cfg, scope.cfg.labels
    pattern = shape_prefilter(cfg.names.prefilter_label_length, cfg.names.prefilter_name_length)
    what = "long and odd names for shape scoring"
    by_shape = sel(f"{lab.query}=~{promql_string(pattern)}")
    try:
        found = scope.client.label_values(lab.query, by_shape([]), at - cfg.windows.long, at)
    except SourceError:
        found = None  # RefusedError included: the regex query below splits itself
    rx = re.compile(pattern)
    values = sorted({v for v in found or () if isinstance(v, str) and rx.fullmatch(v)})
    batches = value_batches(values)
    if found is None or len(batches) > VALUES_QUERIES:
        return scope.names_frame(
            scope.splitter.ask(
                lambda extra: promql.names(
                    by_shape(extra), cfg.windows.long, lab.source, lab.query
                ),
                at,
                what,
            )
        )

    def fetch(batch: list[str]) -> list[dict[str, Any]]:
        exact = f"{lab.query}=~{promql_string('|'.join(batch))}"
        return scope.splitter.ask(
            lambda extra: promql.names(
                promql.selector(lab.metric, [exact, *extra]),
                cfg.windows.long,
                lab.source,
                lab.query,
            ),
            at,
            what,
        )

    frames = [
        empty_names(),
        *(scope.names_frame(r) for r in each_batch(scope, batches, fetch, what)),
    ]
    return pd.concat(frames, ignore_index=True)


def contested(
    scope: Scope,
    short: pd.DataFrame,
    long: pd.DataFrame,
    day: pd.DataFrame,
    shaped: pd.DataFrame,
    prevalence: dict[str, int],
) -> set[str]:
    """Keys (_keyed) of the pairs whose hosts could change the verdict, the only
    ones whose re-asks and answers are looked up: counting all their names as one-off, a rule
    could fire (a burst in some window, three names long or odd enough to be scored), or only
    they resolve their zone (private thresholds, beacons, sessions). A shared zone's pair of
    forty plain names can raise nothing whatever its names are: no query for it."""
    cfg, b = scope.cfg, scope.cfg.burst
    out: set[str] = set()
    for table, least in (
        (short, b.short_min_distinct),
        (long, b.long_min_distinct),
        (day, b.day_min_distinct),
        (shaped, cfg.names.min_distinct),
    ):
        if not table.empty:
            counts = _keyed(scope, table).groupby("key")["name"].nunique()
            out.update(str(k) for k in counts[counts >= least].index)
    if not long.empty:
        keys = set(_keyed(scope, long)["key"])
        out.update(k for k in keys if prevalence.get(k.partition(KEY_SEP)[2], 0) <= 1)
    return out


def reasks(
    scope: Scope, at: float, tables: list[pd.DataFrame], keys: set[str]
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """For names only one client asked in the long window (a name two clients ask is a host
    already), most asked first: the steps in which each was asked again and the step of its
    first ask (births; the window's start for a name first asked before it), one sparse range
    query a batch (promql.reasks). At most REASK_NAMES per (workload, zone), fetched by exact
    value; the others stay one-off."""
    cfg, lab = scope.cfg, scope.cfg.labels
    frames = [t for t in tables if not t.empty]
    if not frames:
        return {}, {}
    rows = pd.concat(frames, ignore_index=True).drop_duplicates(["source", "name"])
    askers = rows.groupby("name")["source"].transform("size")
    # Names asked more than once first; then the others too: after an agent restart a
    # name's count in the window can be its count since the restart (activity()).
    rows = _keyed(scope, rows[askers == 1])
    rows = rows[rows["key"].isin(keys)]  # contested(): where hosts can matter
    if rows.empty:
        return {}, {}
    top = rows.sort_values("queries", ascending=False).groupby("key", sort=False).head(REASK_NAMES)
    step = cfg.judge.repeat_step
    start = at - cfg.windows.long + step
    before = int(cfg.windows.long // step)  # the birth of a series older than the window
    out: dict[tuple[str, str], int] = {}
    births: dict[tuple[str, str], int] = {}

    def fetch(batch: list[str]) -> list[dict[str, Any]]:
        exact = f"{lab.query}=~{promql_string(_exact_names(batch))}"
        return scope.splitter.ask(
            lambda extra: promql.reasks(
                lab.source, lab.query, promql.selector(lab.metric, [exact, *extra]), step
            ),
            at,
            "re-asks of repeated names",
            (start, step),
        )

    batches = value_batches(sorted(set(top["name"])))
    for res in each_batch(scope, batches, fetch, "re-asks of repeated names"):
        for r in res:
            pair = (scope.source_of(r["metric"]), normalize(r["metric"].get(lab.query, "")))
            mask, birth = out.get(pair, 0), births.get(pair, -1)
            for t, v in r.get("values", ()):
                k = step_of(at, float(t), step)
                if float(v) < 0:  # promql.BORN (a re-ask in the same step is no spread)
                    birth = max(birth, k)
                else:
                    mask |= 1 << k
            out[pair], births[pair] = mask, birth if birth >= 0 else before
    return out, births


def answers(
    scope: Scope, at: float, long: pd.DataFrame, keys: set[str]
) -> dict[tuple[str, str], int]:
    """ANSWER_* bits per (client, name) for a sample of each busy pair's long-window names,
    from the answers `hubble_dns_responses_total` counted in the window (its client is
    `destination`); 0 for a name looked up and never answered. Evidence only: a server
    without that metric, or refusing the query, leaves the answers unknown (a warning for the
    latter)."""
    cfg, lab = scope.cfg, scope.cfg.labels
    if long.empty or not has_responses(scope, at):
        return {}
    rows = _keyed(scope, long)
    rows = rows[rows["key"].isin(keys)]  # contested(): where answers can matter
    if rows.empty:
        return {}
    # Names asked again first: only they can be hosts by their answers (watcher.channel);
    # then one-off names, for the channel's answer shares.
    rows = rows.assign(again=rows["queries"] >= 2)
    sample = (
        rows.sort_values(["again", "name"], ascending=[False, True])
        .groupby("key", sort=False)
        .head(ANSWER_NAMES)
    )
    clients = response_labels(lab.source)
    wanted = set(zip(sample["source"], sample["name"], strict=True))
    out: dict[tuple[str, str], int] = {}
    labels = promql.by([*promql.with_host(clients), lab.query, "rcode", "ips_returned"])

    looked: set[str] = set()  # escaped names whose answers were read (none: never answered)

    def fetch(batch: list[str]) -> list[dict[str, Any]]:
        sel = promql.selector(RESPONSES, [f"{lab.query}=~{promql_string(_exact_names(batch))}"])
        expr = f"count by ({labels}) ({promql.activity(sel, cfg.windows.long)})"
        res = scope.splitter.run(expr, at, None)
        looked.update(batch)
        return res

    try:
        results = each_batch(
            scope, value_batches(sorted(set(sample["name"]))), fetch, "answers to candidate names"
        )
    except RefusedError as exc:
        scope.warnings.append(f"answers to candidate names: not read ({short(exc)})")
        return out
    for pair in wanted:
        if regex_escape(pair[1]) in looked:
            out[pair] = 0
    for res in results:
        for r in res:
            pair, bit = answer_of(r["metric"], clients, lab.query)
            if pair in wanted:
                out[pair] = out.get(pair, 0) | bit
    return out


def has_responses(scope: Scope, at: float) -> bool:
    """Whether the responses metric has series at the scan time: without it, no answers query
    is sent at all, and no name counts as never answered. `group()` is one row whatever the
    series count (a label-names lookup would do, but VictoriaMetrics may ignore its match[])."""
    try:
        return bool(scope.client.query(f"group({RESPONSES})", at))
    except SourceError:
        return False


def reaches_back(scope: Scope, at: float, seconds: float) -> bool:
    """Whether the metric has series older than `seconds` before `at` (label names of the
    series in [at - day, at - seconds]: an index lookup, no samples read). Unsure: yes."""
    if not seconds:
        return False
    lab = scope.cfg.labels
    try:
        found = scope.client.label_names(lab.metric, at - scope.cfg.windows.day, at - seconds)
    except SourceError:
        return True
    return lab.query in found


def value_batches(values: list[str]) -> list[list[str]]:
    """Names escaped for a regex, cut into runs of at most VALUES_CHARS characters joined (at
    least one each)."""
    out: list[list[str]] = []
    size = VALUES_CHARS
    for item in (regex_escape(v) for v in values):
        if size + len(item) + 1 > VALUES_CHARS:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item) + 1
    return out


def _exact_names(batch: list[str]) -> str:
    return "(?s)(?:" + "|".join(batch) + r")\.?"  # stored with the trailing dot


def _keyed(scope: Scope, rows: pd.DataFrame) -> pd.DataFrame:
    """rows with key = workload KEY_SEP zone: the pair a name belongs to."""
    workload = rows["source"].map(scope.workload_key)
    return rows.assign(key=workload + KEY_SEP + rows["name"].map(promql.zone_of))


# Between a key's workload and zone: a character neither has (pandas' string columns drop
# NUL when concatenating).
KEY_SEP = "\x1f"
