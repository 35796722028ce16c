"""The evidence record the judge reads: one per channel, (client, registered domain).

A channel is what a leak is: a client talking to a domain. The client is the workload
(`ns/app`: pods of one Deployment, DaemonSet or Job together, StatefulSet ordinals apart) or,
with no pod identity, the node. Every source fills the same record over the same windows:

- Prometheus and metrics files through `from_window` (per-pod name tables, grouped here);
- flow lines through the flow window (watcher/flows/), which adds what only flows show
  (answers, timing, the per-query model score).

Fields a source cannot see stay None (timing from anything but flows; answers where the
responses metric is missing); the judge says so in the evidence instead of guessing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from watcher.config import Config
from watcher.domains import DomainRules
from watcher.duration import human_duration
from watcher.lexical import shape
from watcher.text import truncate
from watcher.window import (
    ANSWER_ADDRESS,
    ANSWER_EMPTY,
    ANSWER_NXDOMAIN,
    ANSWER_OTHER,
    Window,
    spread_reask,
    workload_of,
)

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def odd_name(name: str) -> bool:
    """A character no host name has (`+ / =`, non-ASCII, ...): never a host, whatever repeats."""
    return not set(name.lower()) <= _HOST_CHARS


@dataclass(frozen=True, slots=True)
class NameSet:
    """Distinct names of a channel in one window, with their lexical evidence."""

    distinct: int
    queries: float
    encoded: int  # distinct names scoring >= names.min_score
    est_bytes: float
    mean_score: float = 0.0
    entropy_mean: float = 0.0
    entropy_max: float = 0.0
    max_name_length: int = 0
    alphabet: str = "text"
    odd: bool = False  # some name has a character no host name has
    samples: tuple[str, ...] = ()  # most payload-like first

    @property
    def unique_ratio(self) -> float:
        return min(1.0, self.distinct / self.queries) if self.queries else 1.0

    @property
    def encoded_fraction(self) -> float:
        return self.encoded / self.distinct if self.distinct else 0.0

    def evidence(self, label: str, max_chars: int) -> dict[str, Any]:
        return {
            "window": label,
            "distinct_names": self.distinct,
            "queries": round(self.queries, 1),
            "unique_ratio": round(self.unique_ratio, 3),
            "encoded_fraction": round(self.encoded_fraction, 3),
            "mean_score": round(self.mean_score, 3),
            "entropy_mean": round(self.entropy_mean, 3),
            "entropy_max": round(self.entropy_max, 3),
            "max_name_length": self.max_name_length,
            "alphabet": self.alphabet,
            "est_bytes": round(self.est_bytes),
            "sample_names": [truncate(n, max_chars) for n in self.samples],
        }


@dataclass(frozen=True, slots=True)
class Span:
    """The channel's names in one window (short, long or day): all of them, and the one-off
    ones, the payload candidates the rules count (names that are not hosts, see Hosts)."""

    seconds: float
    names: NameSet
    one_off: NameSet

    @property
    def label(self) -> str:
        return human_duration(self.seconds)

    @property
    def hosts(self) -> int:
        return self.names.distinct - self.one_off.distinct


# The principles that make a name a host, in the order they are tried (evidence.quieted_by).
SHARED, SPREAD, ANSWERED = "shared_names", "spread_repetition", "address_answers"


@dataclass(frozen=True, slots=True)
class Hosts:
    """Names of the channel's widest window that are hosts, each counted by the first
    principle that holds for it: asked by another client too (shared), asked again long after
    its first ask (spread), asked again and always answered with addresses (answered: only
    where answers are seen per name, and never for a wildcard answering every name alike).
    A name with a character no host name has is never a host."""

    shared: int = 0
    spread: int = 0
    answered: int = 0

    @property
    def total(self) -> int:
        return self.shared + self.spread + self.answered

    def counts(self) -> dict[str, int]:
        return {SHARED: self.shared, SPREAD: self.spread, ANSWERED: self.answered}

    def principle(self) -> str | None:
        """The principle that set aside most names, or None."""
        counts = self.counts()
        best = max(counts, key=lambda k: counts[k])
        return best if counts[best] else None


@dataclass(frozen=True, slots=True)
class Answers:
    """What the resolver answered the channel (flow lines; None where a source cannot see it)."""

    responses: int
    nxdomain_share: float
    empty_share: float  # NOERROR with no address and no CNAME
    address_share: float  # answers carrying addresses
    distinct_addresses: int
    data_share: float  # answers carrying TXT/NULL/... records
    unanswered_share: float
    denied_share: float  # requests dropped by policy
    # From the responses metric: a count of addresses per answer, not the addresses, so a
    # wildcard record cannot be told from hosts (the judge trusts such answers less).
    addresses_known: bool = True

    def used_share(self) -> float:
        """Answers a client can use: addresses or data. The responses metric cannot tell an
        empty answer from data (TXT, NULL, CNAME), so there both count."""
        data = self.data_share if self.addresses_known else self.empty_share
        return min(1.0, self.address_share + data)

    def real_address_share(self, distinct_names: int) -> float:
        """The address share, discounted when one or two addresses answer every name: a
        wildcard record on an attacker's server, not hosts of their own."""
        if not self.addresses_known:
            return self.address_share
        names = max(min(distinct_names, 1024), 1)
        spread = min(1.0, self.distinct_addresses / (0.3 * names))
        return self.address_share * spread


@dataclass(frozen=True, slots=True)
class Beat:
    """The channel's names asked again and again, as a beacon or a health check does: from
    the first repeat step with a re-ask to the last (long window), in how many steps, how
    regularly (1 - the spread of the gaps between those steps over their mean), by how many
    names."""

    seconds: float
    steps: int
    regularity: float
    names: int


@dataclass(frozen=True, slots=True)
class Timing:
    """What only flow lines show: pace, size regularity, query types, the model's score."""

    gap_mean: float
    gap_cv: float  # inter-arrival spread / mean: machines are regular, people are not
    payload_mean: float
    payload_std: float
    entropy_std: float
    data_qtype_share: float
    qtypes: Mapping[str, int]
    address_named: int  # new names with an IPv4 address written in them (long window)
    model_score: float | None
    query_means: Mapping[str, float] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0


@dataclass(frozen=True, slots=True)
class Channel:
    """Everything known of one (client, registered domain) at time `at`."""

    client: str  # workload (`ns/app`) or `node/...`
    domain: str
    at: float
    pods: tuple[str, ...]  # most active first, bounded by output.sample_names
    pod_count: int
    short: Span | None
    long: Span | None
    day: Span | None  # only where the history reaches far enough (windows.day)
    encoded: NameSet | None  # the encoded-looking names of the long window
    encoded_one_off: NameSet | None = None  # ... that are not hosts
    hosts: Hosts = Hosts()  # the widest window's names that are hosts, by principle
    # Distinct steps (judge.repeat_step) of the long window in which the channel asked again a
    # name it had asked before (evidence only: the principles hold per name).
    repeat_slots: int = 0
    shared_names: int = 0  # its names also asked by another client (another pod or workload)
    prevalence: int = 0  # clients resolving the domain (this one included); 0: unknown
    # Clients asking encoded-looking names under the domain (this one included): a zone
    # whose encoded-looking names come from several workloads is a service's naming.
    encoded_clients: int = 0
    client_domains: int = 0  # registered domains (zones) the client resolves: its breadth
    answers: Answers | None = None
    timing: Timing | None = None
    beat: Beat | None = None

    @property
    def source(self) -> str:
        """Who the finding names: the pod when there is one, else the workload."""
        return self.pods[0] if self.pod_count == 1 and self.pods else self.client

    def spans(self) -> list[Span]:
        return [s for s in (self.short, self.long, self.day) if s is not None]

    def widest(self) -> NameSet | None:
        """The names of the longest window the source saw (at least the encoded-looking ones)."""
        for s in (self.day, self.long, self.short):
            if s is not None:
                return s.names
        return self.encoded  # a Prometheus scan fetches only these for a quiet pair

    def widest_one_off(self) -> NameSet | None:
        """The one-off names of the longest window the source saw."""
        for s in (self.day, self.long, self.short):
            if s is not None:
                return s.one_off
        return self.encoded_one_off


# -- from per-pod name tables (Prometheus, metrics files) ----------------------------------------


def annotate(names: pd.DataFrame, rules: DomainRules) -> pd.DataFrame:
    """Add domain, workload and shape columns; drop the cluster domain, allowlisted names and
    sources."""
    cols = ("domain", "workload", "score", "entropy", "alphabet", "est_bytes", "payload_chars")
    if names.empty:
        return names.assign(**{c: [] for c in cols})
    uniq = names["name"].unique()
    shapes = {n: shape(n) for n in uniq}
    ignored = {n for n in uniq if rules.ignores(n)}
    keep = ~names["name"].isin(ignored)
    if rules.source_globs:
        keep &= ~names["source"].map(rules.ignores_source).astype(bool)
    out = names[keep].copy()
    out["domain"] = out["name"].map(lambda n: shapes[n].domain)
    out["workload"] = out["source"].map(workload_of)
    out["score"] = out["name"].map(lambda n: shapes[n].score)
    out["entropy"] = out["name"].map(lambda n: shapes[n].entropy)
    out["alphabet"] = out["name"].map(lambda n: shapes[n].alphabet)
    out["est_bytes"] = out["name"].map(lambda n: shapes[n].est_bytes)
    out["payload_chars"] = out["name"].map(lambda n: shapes[n].payload_chars)
    return out[out["domain"] != ""]


def name_set(group: pd.DataFrame, samples: int, min_score: float) -> NameSet:
    """A NameSet from the annotated rows of one channel (a name may appear once per pod)."""
    per_name = group.groupby("name", sort=False).agg(
        queries=("queries", "sum"),
        score=("score", "first"),
        entropy=("entropy", "first"),
        alphabet=("alphabet", "first"),
        est_bytes=("est_bytes", "first"),
        payload_chars=("payload_chars", "first"),
    )
    distinct = len(per_name)
    top = per_name.sort_values(["score", "payload_chars"], ascending=False).index[:samples]
    names = per_name.index.astype(str)
    return NameSet(
        distinct=distinct,
        queries=float(per_name["queries"].sum()),
        encoded=int((per_name["score"] >= min_score).sum()),
        est_bytes=float(np.round(per_name["est_bytes"].sum())),
        mean_score=float(per_name["score"].mean()) if distinct else 0.0,
        entropy_mean=float(per_name["entropy"].mean()) if distinct else 0.0,
        entropy_max=float(per_name["entropy"].max()) if distinct else 0.0,
        max_name_length=int(names.str.len().max()) if distinct else 0,
        alphabet=Counter(per_name["alphabet"]).most_common(1)[0][0] if distinct else "text",
        odd=any(odd_name(n) for n in names),
        samples=tuple(str(n) for n in top),
    )


def _groups(table: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    if table.empty:
        return {}
    return {(str(w), str(d)): g for (w, d), g in table.groupby(["workload", "domain"], sort=False)}


def _mask_of(reasks: Mapping[tuple[str, str], int], rows: pd.DataFrame) -> tuple[int, int]:
    """The steps any of the rows' names was asked again in (reasks bits), and how many of
    the names were."""
    mask = 0
    names = set()
    for pair in zip(rows["source"], rows["name"], strict=True):
        bits = reasks.get(pair, 0)
        if bits:
            mask |= bits
            names.add(pair[1])
    return mask, len(names)


def from_window(window: Window, cfg: Config, rules: DomainRules) -> list[Channel]:
    """Group a Window's per-pod name tables into channels (the metrics sources' record)."""
    samples, min_score = cfg.output.sample_names, cfg.names.min_score
    short_t = annotate(window.short, rules)
    long_t = annotate(window.long, rules)
    day_t = annotate(window.day, rules) if window.day_seconds > window.long_seconds else None
    shaped = annotate(window.shaped, rules)
    extra = [day_t] if day_t is not None else []
    shared = _shared(long_t, shaped, *extra)
    host_of = _host_names(window, cfg, shared, long_t, shaped, *extra)
    short = _groups(short_t)
    long = _groups(long_t)
    day = _groups(day_t) if day_t is not None else {}
    hits = _groups(shaped[shaped["score"] >= min_score]) if not shaped.empty else {}
    prevalence = _prevalence(window, long_t)
    encoders = _encoders(shaped, min_score)
    breadth = _breadth(window, long_t)
    out = []
    for key in dict.fromkeys([*short, *long, *day, *hits]):
        client, domain = key
        rows = [
            g for g in (short.get(key), long.get(key), day.get(key), hits.get(key)) if g is not None
        ]
        pods: Counter[str] = Counter()
        for g in rows:
            for src, q in zip(g["source"], g["queries"], strict=True):
                pods[str(src)] += int(q)
        longest = long.get(key)
        if longest is None:
            longest = hits.get(key)
        mask, reasked = _mask_of(window.reasks, longest) if longest is not None else (0, 0)
        names = set(longest["name"]) if longest is not None else set()
        answers = _answers(window.answers, longest) if longest is not None else None
        spans = (day.get(key), long.get(key), short.get(key), hits.get(key))
        widest = next(g for g in spans if g is not None)
        kinds = Counter(host_of.get((client, n)) for n in set(widest["name"]))
        enc = hits.get(key)
        enc_one_off = _one_off(enc, client, host_of) if enc is not None else None
        out.append(
            Channel(
                client=client,
                domain=domain,
                at=window.at,
                pods=tuple(p for p, _ in pods.most_common(max(samples, 1))),
                pod_count=len(pods),
                short=_span(short.get(key), window.short_seconds, client, host_of, cfg),
                long=_span(long.get(key), window.long_seconds, client, host_of, cfg),
                day=_span(day.get(key), window.day_seconds, client, host_of, cfg),
                encoded=name_set(enc, samples, min_score) if enc is not None else None,
                encoded_one_off=name_set(enc_one_off, samples, min_score)
                if enc_one_off is not None and not enc_one_off.empty
                else None,
                hosts=Hosts(kinds[SHARED], kinds[SPREAD], kinds[ANSWERED]),
                repeat_slots=mask.bit_count(),
                shared_names=len(names & shared),
                prevalence=prevalence.get(domain) or prevalence.get(zone_of(domain), 0),
                encoded_clients=encoders.get(domain, 0),
                client_domains=breadth.get(client, 0),
                answers=answers,
                beat=beat_of(
                    [-k for k in range(mask.bit_length()) if mask >> k & 1],
                    cfg.judge.repeat_step,
                    reasked,
                ),
            )
        )
    return out


def _one_off(
    group: pd.DataFrame, client: str, host_of: Mapping[tuple[str, str], str]
) -> pd.DataFrame:
    """The rows of a channel's names that are not hosts."""
    if not host_of:
        return group
    keep = [(client, n) not in host_of for n in group["name"]]
    return group[keep]


_RANK = {SHARED: 3, SPREAD: 2, ANSWERED: 1}


def _answered_alike(bits: int) -> bool:
    """Answered with addresses and never failed (an empty answer is AAAA's beside A)."""
    return bool(bits & ANSWER_ADDRESS) and not bits & (ANSWER_NXDOMAIN | ANSWER_OTHER)


def _host_names(
    window: Window,
    cfg: Config,
    shared: set[str],
    *tables: pd.DataFrame,
) -> dict[tuple[str, str], str]:
    """(workload, name) -> the principle that makes the name a host (Hosts), for the names of
    the annotated tables that are hosts; names with a character no host name has never are."""
    steps, min_score = cfg.judge.repeat_min_slots, cfg.names.min_score
    out: dict[tuple[str, str], str] = {}
    for t in tables:
        if t.empty:
            continue
        for src, name, workload, score, queries in zip(
            t["source"], t["name"], t["workload"], t["score"], t["queries"], strict=True
        ):
            if odd_name(name):
                continue
            key = (workload, name)
            pair = (src, name)
            if name in shared:
                found = SHARED
            elif spread_reask(window.reasks.get(pair, 0), window.births.get(pair), steps):
                found = SPREAD
            elif (
                # Re-asked and answered with addresses, never failed. The responses metric
                # counts addresses without naming them, so a wildcard cannot be told from
                # hosts: only plain names are trusted to it, never encoded-looking ones.
                queries >= 2 and _answered_alike(window.answers.get(pair, 0)) and score < min_score
            ):
                found = ANSWERED
            else:
                continue
            if _RANK[found] > _RANK.get(out.get(key, ""), 0):
                out[key] = found
    return out


def _answers(answers: Mapping[tuple[str, str], int], rows: pd.DataFrame) -> Answers | None:
    """The channel's answers from the responses metric, per name looked up (a name counts
    once per kind of answer it got; 0: looked up, never answered). None when no name of the
    channel was looked up."""
    kinds: Counter[int] = Counter()
    looked = answered = 0
    for pair in zip(rows["source"], rows["name"], strict=True):
        bits = answers.get(pair)
        if bits is None:
            continue
        looked += 1
        answered += bool(bits)
        for bit in (ANSWER_ADDRESS, ANSWER_NXDOMAIN, ANSWER_EMPTY, ANSWER_OTHER):
            kinds[bit] += bool(bits & bit)
    if not looked:
        return None
    return Answers(
        responses=answered,
        nxdomain_share=kinds[ANSWER_NXDOMAIN] / looked,
        empty_share=kinds[ANSWER_EMPTY] / looked,
        address_share=kinds[ANSWER_ADDRESS] / looked,
        distinct_addresses=0,
        data_share=0.0,
        unanswered_share=(looked - answered) / looked,
        denied_share=0.0,
        addresses_known=False,
    )


def beat_of(steps: list[int], step: float, names: int) -> Beat | None:
    """The Beat of a channel whose names were asked again in these steps (indices of
    repeat steps, any origin), by `names` names; None below two steps."""
    s = sorted(set(steps))
    if len(s) < 2:
        return None
    gaps = np.diff(np.array(s, dtype=float))
    cv = float(gaps.std() / gaps.mean())
    return Beat((s[-1] - s[0]) * step, len(s), max(0.0, 1.0 - cv), names)


def _span(
    group: pd.DataFrame | None,
    seconds: float,
    client: str,
    host_of: Mapping[tuple[str, str], str],
    cfg: Config,
) -> Span | None:
    if group is None:
        return None
    samples, min_score = cfg.output.sample_names, cfg.names.min_score
    one_off = _one_off(group, client, host_of)
    return Span(seconds, name_set(group, samples, min_score), name_set(one_off, samples, min_score))


def _distinct_per(
    window: Window, long_t: pd.DataFrame, key: str, counted: str, sent: Mapping[str, int]
) -> dict[str, int]:
    """Distinct `counted` per `key` in the long window: from the complete name table where the
    source has one (files), else from the counts the source sent (Prometheus, in PromQL)."""
    out: dict[str, int] = {}
    if window.complete and not long_t.empty:
        counts = long_t.groupby(key)[counted].nunique()
        out.update({str(k): int(n) for k, n in counts.items()})
    for k, n in sent.items():
        out.setdefault(k, n)
    return out


def _prevalence(window: Window, long_t: pd.DataFrame) -> dict[str, int]:
    """Clients (workloads or nodes) resolving each domain in the long window."""
    return _distinct_per(window, long_t, "domain", "workload", window.prevalence)


def _encoders(shaped: pd.DataFrame, min_score: float) -> dict[str, int]:
    """Workloads asking encoded-looking names under each domain (long window, all sources)."""
    if shaped.empty:
        return {}
    hits = shaped[shaped["score"] >= min_score]
    return {str(d): int(n) for d, n in hits.groupby("domain")["workload"].nunique().items()}


def _breadth(window: Window, long_t: pd.DataFrame) -> dict[str, int]:
    """Domains each workload resolves in the long window."""
    return _distinct_per(window, long_t, "workload", "domain", window.breadth)


def zone_of(domain: str) -> str:
    """The two-label zone Prometheus counts clients by (a superset of the registered domain)."""
    return ".".join(domain.rsplit(".", 2)[-2:])


def _shared(*tables: pd.DataFrame) -> set[str]:
    """Names asked by two or more clients (pods): a payload is unique to its sender."""
    rows = [t[["source", "name"]] for t in tables if not t.empty]
    if not rows:
        return set()
    askers = pd.concat(rows).drop_duplicates().groupby("name")["source"].nunique()
    return set(askers[askers >= 2].index.astype(str))
