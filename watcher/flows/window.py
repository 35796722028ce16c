"""The flow source's window: bounded, expiring state per (workload, registered domain).

What metrics cannot see, flows can: every request with its time, type and answer. Per pair we
keep the names seen (first-seen time and count, capped), 5-minute buckets over the long window
(requests, new names, payload characters, encoded-looking new names), and running figures over
the pair's life: answers (NXDOMAIN, empty, with addresses), denied and unanswered requests,
query-type mix, inter-arrival mean/spread, name size and entropy mean/spread. Each pod of the
workload is counted, so a leak spread over replicas adds up. State is bounded by
`flows.max_pairs` (least recently active pairs are evaluated, then dropped) and
`flows.max_names_per_pair`; a pair idle for the long window expires the same way.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from watcher.channel import Answers, Channel, NameSet, Span, Timing, odd_name
from watcher.config import Config
from watcher.domains import DomainRules, registered_domain, subdomain_part
from watcher.flows.model import QUERY_FEATURES, pair_vector, query_features, shipped
from watcher.flows.summary import PairSummary
from watcher.lexical import shape
from watcher.sources.flows import DATA_QTYPES, DnsFlow

_IPV4_IN_NAME = re.compile(
    r"(?:^|[.-])(?:ip-)?(25[0-5]|2[0-4]\d|1?\d?\d)[.-](25[0-5]|2[0-4]\d|1?\d?\d)[.-]"
    r"(25[0-5]|2[0-4]\d|1?\d?\d)[.-](25[0-5]|2[0-4]\d|1?\d?\d)(?=$|[.-])"
)


def address_shaped(payload: str) -> bool:
    """An IPv4 address written into the name (`ip-10-1-2-3`, `10-1-2-3`, `10.1.2.3`): how cloud
    host names and wildcard DNS services name hosts, and how some leaks write octets."""
    return _IPV4_IN_NAME.search(payload) is not None


# Re-ask steps remembered per pair: the judge needs judge.repeat_min_slots (4) of them; evidence
# beyond this many is shown as this many.
REASKS_KEPT = 16


@dataclass(slots=True)
class Welford:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


@dataclass(slots=True)
class Bucket:
    start: float
    requests: int = 0
    new_names: int = 0
    encoded_new: int = 0
    address_new: int = 0  # new names with an IPv4 address written in them
    payload_chars: float = 0.0
    est_bytes: float = 0.0


@dataclass(slots=True)
class PairState:
    workload: str
    domain: str
    first: float
    last: float = 0.0
    # name -> the pod that first asked it ("" once another pod asked it too), oldest first
    names: dict[str, str] = field(default_factory=dict)
    shared: int = 0  # names asked by two or more pods: hosts, not one sender's payload
    # Starts of the latest judge.repeat_step steps in which a name was asked again (bounded).
    reasks: list[float] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)  # a list: a deque costs 600 B empty
    requests: int = 0
    dropped: int = 0
    data_qtypes: int = 0
    qtypes: dict[str, int] = field(default_factory=dict)
    responses: int = 0
    nxdomain: int = 0
    empty: int = 0  # NOERROR with no address and no CNAME
    with_ips: int = 0
    addresses: set[str] | None = None  # distinct answer addresses, capped (made when needed)
    data_answers: int = 0  # answers of TXT/NULL/CNAME/… records
    gaps: Welford = field(default_factory=Welford)
    sizes: Welford = field(default_factory=Welford)  # payload characters of new names
    entropy: Welford = field(default_factory=Welford)
    scores: Welford = field(default_factory=Welford)
    last_request: float | None = None
    last_name: str = ""
    pods: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[float, str]] = field(default_factory=list)  # (score, name), best kept
    qsum: list[float] = field(default_factory=lambda: [0.0] * 7)  # query feature sums
    entropy_max: float = 0.0
    longest: int = 0  # longest new name, characters
    odd: bool = False  # a new name had a character no host name has

    def bucket(self, t: float, step: float, keep: int) -> Bucket:
        start = t - t % step
        if not self.buckets or self.buckets[-1].start < start:
            self.buckets.append(Bucket(start))
            if len(self.buckets) > keep:
                del self.buckets[: len(self.buckets) - keep]
        return self.buckets[-1]


class FlowWindow:
    """Feed it DnsFlows in time order; ask it for the pairs worth judging."""

    def __init__(self, cfg: Config, rules: DomainRules) -> None:
        self.cfg = cfg
        self.rules = rules
        self.pairs: OrderedDict[tuple[str, str], PairState] = OrderedDict()
        self.prevalence: dict[str, set[str]] = {}
        self.now = 0.0
        self.step = cfg.windows.step
        self.repeat_step = cfg.judge.repeat_step
        self.keep = max(1, math.ceil(cfg.windows.long / self.step))
        self.short_buckets = max(1, math.ceil(cfg.windows.short / self.step))
        self.evicted: list[PairSummary] = []  # judged by the caller, then cleared
        self.closed: list[tuple[str, str]] = []  # pairs whose bucket just closed: judge them
        self.volume: dict[str, dict[float, int]] = {}  # source -> bucket start -> requests

    def add(self, f: DnsFlow) -> None:
        if f.time > self.now:
            self.now = f.time
        if not f.is_response:
            # Volume counts every request of a source, cluster names included (as the metric).
            per = self.volume.get(f.source)
            if per is None:
                per = self.volume[f.source] = {}
            start = f.time - f.time % self.step
            per[start] = per.get(start, 0) + 1
        name = f.query
        if not name or self.rules.is_cluster(name) or self.rules.ignores_source(f.source):
            return
        if self.rules.ignores(name):
            return
        domain = registered_domain(name)
        if not domain or name == domain:
            return  # the registered domain itself carries no payload
        seen = self.prevalence.setdefault(domain, set())
        if len(seen) < 64:
            seen.add(f.workload)
        key = (f.workload, domain)
        st = self.pairs.get(key)
        if st is None:
            st = PairState(f.workload, domain, f.time)
            self.pairs[key] = st
            if len(self.pairs) > self.cfg.flows.max_pairs:
                self._evict(next(iter(self.pairs)))
        else:
            self.pairs.move_to_end(key)
        st.last = max(st.last, f.time)
        if f.is_response:
            self._answer(st, f)
        else:
            self._request(st, f, name)

    def _answer(self, st: PairState, f: DnsFlow) -> None:
        st.responses += 1
        if f.rcode == 3:
            st.nxdomain += 1
        elif f.rcode == 0:
            if f.ips:
                st.with_ips += 1
                if st.addresses is None:
                    st.addresses = set()
                if len(st.addresses) < 1024:
                    st.addresses.update(f.ips[:4])
            elif not f.cnames and not f.rrtypes:
                st.empty += 1
            if any(r in DATA_QTYPES for r in f.rrtypes):
                st.data_answers += 1

    def _request(self, st: PairState, f: DnsFlow, name: str) -> None:
        st.requests += 1
        st.pods[f.source] = st.pods.get(f.source, 0) + 1
        if len(st.pods) > 64:
            del st.pods[min(st.pods, key=st.pods.__getitem__)]
        if f.dropped:
            st.dropped += 1
        for q in f.qtypes:
            st.qtypes[q] = st.qtypes.get(q, 0) + 1
        if any(q in DATA_QTYPES for q in f.qtypes):
            st.data_qtypes += 1
        # The same name again within a second is one lookup (A and AAAA together, a resolver
        # retry): it neither lowers the unique ratio nor counts as an inter-arrival gap.
        same_lookup = (
            name == st.last_name
            and st.last_request is not None
            and 0 <= f.time - st.last_request < 1.0
        )
        if st.last_request is not None and f.time >= st.last_request and not same_lookup:
            st.gaps.add(f.time - st.last_request)
        st.last_request = f.time
        st.last_name = name
        before = st.buckets[-1].start if st.buckets else None
        b = st.bucket(f.time, self.step, self.keep)
        if before is not None and b.start != before:
            self.closed.append((st.workload, st.domain))
        if not same_lookup:
            b.requests += 1
        first = st.names.get(name)
        if first is not None:
            slot = f.time - f.time % self.repeat_step
            if not same_lookup and (not st.reasks or st.reasks[-1] != slot):
                st.reasks.append(slot)
                if len(st.reasks) > REASKS_KEPT:
                    del st.reasks[0]
            if first and first != f.source:
                st.names[name] = ""
                st.shared += 1
            return
        st.names[name] = f.source
        if len(st.names) > self.cfg.flows.max_names_per_pair:
            del st.names[next(iter(st.names))]
        s = shape(name)
        b.new_names += 1
        b.payload_chars += s.payload_chars
        b.est_bytes += s.est_bytes
        if s.score >= self.cfg.names.min_score:
            b.encoded_new += 1
        payload = subdomain_part(name, st.domain)
        if address_shaped(payload):
            b.address_new += 1
        st.sizes.add(len(payload))
        for i, v in enumerate(query_features(payload)):
            st.qsum[i] += v
        st.entropy.add(s.entropy)
        st.entropy_max = max(st.entropy_max, s.entropy)
        st.longest = max(st.longest, len(name))
        st.odd = st.odd or odd_name(name)
        st.scores.add(s.score)
        samples = st.samples
        if len(samples) < 5 or s.score > samples[-1][0]:
            samples.append((s.score, name))
            samples.sort(key=lambda x: -x[0])
            del samples[5:]

    def _evict(self, key: tuple[str, str]) -> None:
        st = self.pairs.pop(key)
        self.evicted.append(self.summary(st, st.last))

    def expire(self) -> None:
        """Drop pairs idle for the long window (judged first, through `evicted`)."""
        horizon = self.now - self.cfg.windows.long
        while self.pairs:
            key, st = next(iter(self.pairs.items()))
            if st.last >= horizon:
                break
            self._evict(key)

    def summary(self, st: PairState, at: float) -> PairSummary:
        short_from = at - self.short_buckets * self.step
        long_from = at - self.keep * self.step
        short_b = [b for b in st.buckets if b.start >= short_from]
        short_new = sum(b.new_names for b in short_b)
        long_b = [b for b in st.buckets if b.start >= long_from]
        responses = max(st.responses, 1)
        gap_cv = st.gaps.std / st.gaps.mean if st.gaps.mean > 0 else 0.0
        top = sorted(st.pods.items(), key=lambda kv: -kv[1])[:5]
        return PairSummary(
            at=at,
            workload=st.workload,
            domain=st.domain,
            source=top[0][0] if top else st.workload,
            pods=len(st.pods),
            short_new=short_new,
            long_new=sum(b.new_names for b in long_b),
            long_requests=sum(b.requests for b in long_b),
            encoded_new=sum(b.encoded_new for b in long_b),
            address_new=sum(b.address_new for b in long_b),
            est_bytes=sum(b.est_bytes for b in long_b),
            payload_mean=st.sizes.mean,
            payload_std=st.sizes.std,
            entropy_mean=st.entropy.mean,
            entropy_std=st.entropy.std,
            score_mean=st.scores.mean,
            requests=st.requests,
            responses=st.responses,
            nxdomain_share=st.nxdomain / responses,
            empty_share=st.empty / responses,
            address_share=st.with_ips / responses,
            distinct_addresses=len(st.addresses or ()),
            data_answer_share=st.data_answers / responses,
            data_qtype_share=st.data_qtypes / max(st.requests, 1),
            denied_share=st.dropped / max(st.requests, 1),
            unanswered_share=max(0.0, 1 - st.responses / max(st.requests - st.dropped, 1))
            if st.requests > st.dropped
            else 0.0,
            gap_mean=st.gaps.mean,
            gap_cv=gap_cv,
            prevalence=len(self.prevalence.get(st.domain, ())),
            samples=[n for _, n in st.samples],
            first=st.first,
            last=st.last,
            qtypes=dict(sorted(st.qtypes.items(), key=lambda kv: -kv[1])[:6]),
            query_means=tuple(v / max(st.sizes.n, 1) for v in st.qsum),
            shared=st.shared,
            short_requests=sum(b.requests for b in short_b),
            short_encoded=sum(b.encoded_new for b in short_b),
            short_bytes=sum(b.est_bytes for b in short_b),
            entropy_max=st.entropy_max,
            longest=st.longest,
            odd=st.odd,
            reask_slots=sum(1 for t in st.reasks if t >= long_from),
            pod_names=tuple(p for p, _ in top),
        )

    def candidates(self, least: int) -> list[PairSummary]:
        """Summaries of the pairs with at least `least` new names in the long window, now."""
        out = []
        for st in self.pairs.values():
            if len(st.names) >= least:
                s = self.summary(st, self.now)
                if s.long_new >= least:
                    out.append(s)
        return out

    def take_closed(self, least: int) -> list[PairSummary]:
        """Pairs whose bucket closed since the last call (judged at the close: a batch read
        sees every 5 minutes of every pair, not just the end of the file)."""
        out = []
        for key in dict.fromkeys(self.closed):
            st = self.pairs.get(key)
            if st is not None and len(st.names) >= least:
                # The bucket just opened holds one request: judge as of the one before it.
                out.append(self.summary(st, st.buckets[-1].start))
        self.closed.clear()
        return out

    def volume_frame(self, at: float) -> pd.DataFrame:
        """Requests per source per step up to `at`, the baseline span back (the shape the volume
        detector reads from Prometheus), for sources whose recent rate could reach min_rate;
        older buckets and silent sources are dropped as they age out."""
        v = self.cfg.volume
        oldest = at - self.cfg.windows.baseline
        recent_from = at - v.recent
        cols: dict[str, pd.Series] = {}
        for src in list(self.volume):
            per = self.volume[src]
            for t in [t for t in per if t < oldest]:
                del per[t]
            if not per:
                del self.volume[src]
                continue
            peak = max((n for t, n in per.items() if t >= recent_from and t < at), default=0)
            if peak / self.step < v.min_rate:
                continue
            kept = {t + self.step: float(n) for t, n in per.items() if t < at}
            cols[src] = pd.Series(kept, dtype=float)
        if not cols:
            return pd.DataFrame()
        frame = pd.DataFrame(cols).sort_index()
        grid = np.arange(float(frame.index[0]), at + self.step / 2, self.step)
        frame = frame.reindex(grid)
        # Steps with no request inside a source's life are zeros; before its first, unknown.
        return frame.fillna(0.0).where(frame.notna().cummax())


def to_channel(s: PairSummary, cfg: Config) -> Channel:
    """The flow source's evidence record: what metrics give, plus answers and timing."""
    alphabet = shape(s.samples[0]).alphabet if s.samples else "text"

    def names(distinct: int, queries: int, encoded: int, est_bytes: float) -> NameSet:
        return NameSet(
            distinct=distinct,
            queries=float(queries),
            encoded=encoded,
            est_bytes=est_bytes,
            mean_score=s.score_mean,
            entropy_mean=s.entropy_mean,
            entropy_max=s.entropy_max,
            max_name_length=s.longest,
            alphabet=alphabet,
            odd=s.odd,
            samples=tuple(s.samples),
        )

    model = shipped()
    long = names(s.long_new, s.long_requests, s.encoded_new, s.est_bytes)
    return Channel(
        client=s.workload,
        domain=s.domain,
        at=s.at,
        pods=s.pod_names or (s.source,),
        pod_count=max(s.pods, 1),
        short=Span(
            cfg.windows.short, names(s.short_new, s.short_requests, s.short_encoded, s.short_bytes)
        )
        if s.short_new
        else None,
        long=Span(cfg.windows.long, long),
        day=None,
        encoded=replace(long, distinct=s.encoded_new, encoded=s.encoded_new)
        if s.encoded_new
        else None,
        repeat_slots=s.reask_slots,
        shared_names=s.shared,
        prevalence=s.prevalence,
        answers=Answers(
            responses=s.responses,
            nxdomain_share=s.nxdomain_share,
            empty_share=s.empty_share,
            address_share=s.address_share,
            distinct_addresses=s.distinct_addresses,
            data_share=s.data_answer_share,
            unanswered_share=s.unanswered_share,
            denied_share=s.denied_share,
        ),
        timing=Timing(
            gap_mean=s.gap_mean,
            gap_cv=s.gap_cv,
            payload_mean=s.payload_mean,
            payload_std=s.payload_std,
            entropy_std=s.entropy_std,
            data_qtype_share=s.data_qtype_share,
            qtypes=s.qtypes,
            address_named=s.address_new,
            model_score=float(model.predict(pair_vector(s))[0]) if model is not None else None,
            query_means=dict(
                zip(QUERY_FEATURES, (round(v, 3) for v in s.query_means), strict=True)
            ),
            first=s.first,
            last=s.last,
        ),
    )
