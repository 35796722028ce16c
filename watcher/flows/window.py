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
import operator
import re
import zlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from watcher.channel import Answers, Channel, Hosts, NameSet, Span, Timing, beat_of, odd_name
from watcher.config import Config, day_history_needed
from watcher.domains import DomainRules, registered_domain_uncached, subdomain_part
from watcher.flows.model import QUERY_FEATURES, pair_vector, query_features, shipped
from watcher.flows.summary import PairSummary
from watcher.lexical import secret_bytes, shape, shape_uncached
from watcher.sources.flows import DATA_QTYPES, DnsFlow

_IPV4_IN_NAME = re.compile(
    r"(?:^|[.-])(?:ip-)?(25[0-5]|2[0-4]\d|1?\d?\d)[.-](25[0-5]|2[0-4]\d|1?\d?\d)[.-]"
    r"(25[0-5]|2[0-4]\d|1?\d?\d)[.-](25[0-5]|2[0-4]\d|1?\d?\d)(?=$|[.-])"
)


def address_shaped(payload: str) -> bool:
    """An IPv4 address written into the name (`ip-10-1-2-3`, `10-1-2-3`, `10.1.2.3`): how cloud
    host names and wildcard DNS services name hosts, and how some leaks write octets."""
    return _IPV4_IN_NAME.search(payload) is not None


# Every line's name is looked up: names recur, so a cache, bounded for the follower's memory.
_registered = lru_cache(maxsize=32768)(registered_domain_uncached)
# A name is scored when it is new to a pair; names many workloads ask (a cluster's common hosts)
# are new to each of their pairs: a small cache keeps those.
_shape = lru_cache(maxsize=4096)(shape_uncached)

# A pair's names stay a tuple up to this many (one pod asking): searched in a few steps.
SMALL_NAMES = 8

# Re-ask steps remembered per pair (evidence: repeat_slots; the principles hold per name); evidence
# beyond this many is shown as this many.
REASKS_KEPT = 24


# A pair's running figures, packed in one array('d') (boxed floats and small objects cost
# ~600 B a pair): the mean and spread (Welford: count, mean, M2) of four figures, the pair's
# first and last time, the last request's time (NaN: none yet), the highest name entropy, and
# the sums of the query features of its new names.
GAPS, SIZES, ENTROPY, SCORES = 0, 3, 6, 9
FIRST, LAST, LAST_REQUEST, ENTROPY_MAX, QSUM = 12, 13, 14, 15, 16
SAMPLE_SCORES = QSUM + len(QUERY_FEATURES)  # scores of the kept samples, best first
SAMPLES_KEPT = 5
STATS = SAMPLE_SCORES + SAMPLES_KEPT

# Buckets, 7 doubles each, in one array('d') per pair, oldest first.
B_START, B_REQUESTS, B_NEW, B_ENCODED, B_ADDRESS, B_PAYLOAD, B_BYTES = range(7)
B_SIZE = 7

# The day window (windows.day) past the long one: buckets leaving the long window that held new
# names are folded into hourly slots of (start, requests, new, encoded, bytes), oldest first.
# Only pairs that keep meeting new names hold any (a host set's pairs hold none).
D_START, D_REQUESTS, D_NEW, D_ENCODED, D_BYTES = range(5)
D_SIZE = 5
DAY_SLOT = 3600.0


# Each name's code, one int of 63 bits (array('q') holds a small pair's): flags (7 bits), how
# many further steps it was asked in (2), how often it was asked (7, up to 127), a hash of the
# pod that first asked it (12), the last repeat step it was asked in, counted from its first
# ask's step (12, up to 4095), and when it was first asked, in TIME_UNIT seconds after the
# pair's first flow (23: 2.6 years).
# The judge's principles hold per name (docs/detection.md): a name is a host when another pod
# asks it (N_SHARED), when its asks are spread over steps (N_SPREAD), or when it is asked
# again and answered with addresses, never failing (N_REASKED, N_ADDRESS, no N_FAILED; plain
# names only, never for a wildcard). Names with a character no host has (N_ODD) never are.
N_SHARED, N_REASKED, N_SPREAD, N_ADDRESS, N_FAILED, N_ENCODED, N_ODD = 1, 2, 4, 8, 16, 32, 64
TOUCH_SHIFT, ASKS_SHIFT, POD_SHIFT, LAST_SHIFT, TIME_SHIFT = 7, 9, 16, 28, 40
_FLAGS, _TOUCH, _ASKS = 0x7F, 0x3 << TOUCH_SHIFT, 0x7F << ASKS_SHIFT
_POD, _LAST = 0xFFF << POD_SHIFT, 0xFFF << LAST_SHIFT
TIME_UNIT, _TIME_MAX = 10.0, (1 << 23) - 1
# What a host count is kept by (Hosts' fields), in order: shared, spread, answered.
SHARED_I, SPREAD_I, ANSWERED_I = 0, 1, 2


@lru_cache(maxsize=4096)
def pod_tag(pod: str) -> int:
    """12 bits telling the pods of a pair apart (a collision makes two pods one: rare). A CRC,
    not hash(): Python salts str hashes per process, and a checkpoint restored by another
    process must tag the same pod alike (else its re-asks read as another pod's: shared)."""
    return zlib.crc32(pod.encode("utf-8", "surrogatepass")) & 0xFFF


def first_asked(st: PairState, code: int) -> float:
    """When the name of `code` was first asked (to TIME_UNIT)."""
    return st.first + (code >> TIME_SHIFT) * TIME_UNIT


def host_kind(code: int, wildcard: bool) -> int:
    """Which principle makes the name a host (SHARED_I, SPREAD_I, ANSWERED_I), or -1."""
    f = code & _FLAGS
    if f & N_ODD:
        return -1
    if f & N_SHARED:
        return SHARED_I
    if f & N_SPREAD:
        return SPREAD_I
    if not wildcard and f & (N_REASKED | N_ADDRESS | N_FAILED | N_ENCODED) == N_REASKED | N_ADDRESS:
        return ANSWERED_I
    return -1


def stats(first: float) -> array[float]:
    a = array("d", [0.0]) * STATS  # exact size (from bytes it is over-allocated)
    a[FIRST] = a[LAST] = first
    a[LAST_REQUEST] = math.nan
    return a


def welford_add(a: array[float], at: int, x: float) -> None:
    n = a[at] + 1
    d = x - a[at + 1]
    a[at] = n
    a[at + 1] += d / n
    a[at + 2] += d * (x - a[at + 1])


def welford_std(a: array[float], at: int) -> float:
    n = a[at]
    return math.sqrt(a[at + 2] / (n - 1)) if n > 1 else 0.0


@dataclass(slots=True)
class PairState:
    """One pair's evidence. Most pairs of a cluster are small (a pod, a qtype, an address, a
    few names): those figures stay scalars until a second value comes, and the running figures
    are packed arrays, so an active pair costs ~1.5 KB (docs/performance.md)."""

    workload: str
    domain: str
    stats: array[float]  # see STATS
    # The names, oldest first: while one pod asks them and they are few, a tuple with their
    # codes (see N_SHARED) in `codes` (a dict costs 232 B); then name -> code.
    names: tuple[str, ...] | dict[str, int] = ()
    codes: array[int] | None = None
    shared: int = 0  # names asked by two or more pods: hosts, not one sender's payload
    hosty: bool = False  # some name may be a host (then summaries look at every name)
    # Starts of the latest judge.repeat_step steps in which a name was asked again (bounded).
    reasks: array[float] | None = None
    # requests, new names, encoded-looking and address-named new names, payload characters and
    # estimated bytes per windows.step, over the long window (B_*)
    buckets: array[float] = field(default_factory=lambda: array("d"))
    requests: int = 0
    dropped: int = 0
    data_qtypes: int = 0
    qtype: str = ""  # the first query type, and how often it was asked ...
    qtype_n: int = 0
    qtypes: dict[str, int] | None = None  # ... until another type comes: all of them
    responses: int = 0
    nxdomain: int = 0
    empty: int = 0  # NOERROR with no address and no CNAME
    with_ips: int = 0
    address: str = ""  # the first answer address ...
    addresses: set[str] | None = None  # ... and, once a second comes, all of them (capped)
    data_answers: int = 0  # answers of TXT/NULL/CNAME/… records
    last_name: str = ""
    pod: str = ""  # the only pod (it asked every request) ...
    pods: dict[str, int] | None = None  # ... until another pod asks: requests per pod (capped)
    samples: tuple[str, ...] = ()  # most payload-like names, best first (scores in stats)
    longest: int = 0  # longest new name, characters
    odd: bool = False  # a new name had a character no host name has

    def __reduce__(self) -> tuple[type[PairState], tuple[object, ...]]:
        # A checkpoint pickles every pair: its fields in one C-level getter, rebuilt by the
        # constructor (the dataclass's own __getstate__ walks fields() in Python per pair).
        return (PairState, _pair_fields(self))

    def code_of(self, name: str) -> int | None:
        names = self.names
        if isinstance(names, dict):
            return names.get(name)
        if name in names and self.codes is not None:
            return self.codes[names.index(name)]
        return None

    def set_code(self, name: str, code: int) -> None:
        names = self.names
        if isinstance(names, dict):
            names[name] = code
        elif self.codes is not None:
            self.codes[names.index(name)] = code

    def all_codes(self) -> list[int] | array[int]:
        if isinstance(self.names, dict):
            return list(self.names.values())
        return self.codes if self.codes is not None else []

    def pod_counts(self) -> dict[str, int]:
        if self.pods is not None:
            return self.pods
        return {self.pod: self.requests} if self.pod else {}

    def qtype_counts(self) -> dict[str, int]:
        if self.qtypes is not None:
            return self.qtypes
        return {self.qtype: self.qtype_n} if self.qtype else {}

    def distinct_addresses(self) -> int:
        return len(self.addresses) if self.addresses is not None else int(bool(self.address))

    @property
    def first(self) -> float:
        return self.stats[FIRST]

    @property
    def last(self) -> float:
        return self.stats[LAST]

    def last_start(self) -> float | None:
        """Start of the newest bucket, None before the first request."""
        return self.buckets[-B_SIZE + B_START] if self.buckets else None

    def bucket(
        self,
        t: float,
        step: float,
        keep: int,
        day: float = 0.0,
        slots: dict[tuple[str, str], array[float]] | None = None,
    ) -> int:
        """Offset of the bucket holding t (a new one when t is past the newest). Buckets that
        leave the long window are folded into the pair's hourly day slots in `slots` (the
        window's: a field here would cost every pair 16 bytes), `day` seconds back (0: off)."""
        start = t - t % step
        b = self.buckets
        if not b or b[-B_SIZE + B_START] < start:
            b.extend((start, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
            if len(b) > keep * B_SIZE:
                gone = len(b) - keep * B_SIZE
                if day and slots is not None:
                    _fold(slots, (self.workload, self.domain), b, gone, start - day)
                del b[:gone]
        return len(b) - B_SIZE

    def spans(self, since: float) -> list[int]:
        """Offsets of the buckets starting at or after `since`."""
        b = self.buckets
        return [o for o in range(0, len(b), B_SIZE) if b[o + B_START] >= since]


_pair_fields = operator.attrgetter(*(f.name for f in fields(PairState)))


class FlowWindow:
    """Feed it DnsFlows in time order; ask it for the pairs worth judging."""

    def __init__(self, cfg: Config, rules: DomainRules) -> None:
        self.cfg = cfg
        self.rules = rules
        self.pairs: OrderedDict[tuple[str, str], PairState] = OrderedDict()
        self.prevalence: dict[str, set[str]] = {}
        # domain -> workloads asking encoded-looking names under it (up to 64 each)
        self.encoders: dict[str, set[str]] = {}
        self.breadth: dict[str, int] = {}  # workload -> its pairs held: domains it resolves
        self.now = 0.0
        self.start = 0.0  # the first flow's time: how far back this window's data reaches
        self.step = cfg.windows.step
        # The day window, where the long one is shorter: folded slots (see D_START).
        self.day = cfg.windows.day if cfg.windows.day > cfg.windows.long else 0.0
        self.day_needed = day_history_needed(cfg)
        self.day_slots: dict[tuple[str, str], array[float]] = {}  # pairs with folded slots
        self.repeat_step = cfg.judge.repeat_step
        # Asks in this many steps, or this many steps apart, are a host's (window.spread_reask).
        self.spread_steps = cfg.judge.repeat_min_slots
        # Judging live (a follower), a plain name is a payload candidate of the long and day
        # windows only once it could have been asked again: `ripe` seconds after its first ask
        # (0: judged in hindsight, a batch read). See `live`.
        self.ripe = 0.0
        self.keep = max(1, math.ceil(cfg.windows.long / self.step))
        self.short_buckets = max(1, math.ceil(cfg.windows.short / self.step))
        self.evicted: list[PairSummary] = []  # judged by the caller, then cleared
        self.closed: list[tuple[str, str]] = []  # pairs whose bucket just closed: judge them
        # source -> (bucket start, requests) pairs, flat, oldest first: a dict per source costs
        # ~300 B more for the one or two buckets most sources hold
        self.volume: dict[str, array[float]] = {}

    # What a checkpoint keeps (watcher.flows.checkpoint): everything the judge reads later.
    STATE = (
        "pairs",
        "prevalence",
        "encoders",
        "breadth",
        "now",
        "start",
        "day_slots",
        "volume",
        "closed",
    )

    def snapshot(self) -> dict[str, object]:
        """The window's state, by reference: serialize it before the next line. Taken between
        reads, when FlowSource.feed has judged the evicted pairs (none are pending). The pairs
        as a list, oldest activity first: their keys are their own fields."""
        out = {k: getattr(self, k) for k in self.STATE}
        out["pairs"] = list(self.pairs.values())
        return out

    def restore(self, state: dict[str, object]) -> None:
        for k in self.STATE:
            setattr(self, k, state[k])
        pairs = state["pairs"]
        if not isinstance(pairs, list):
            raise TypeError("pairs")
        self.pairs = OrderedDict(((st.workload, st.domain), st) for st in pairs)

    def trim(self) -> None:
        """Back under flows.max_pairs (a restored window saved under a higher cap): the least
        recently active pairs are judged (through `evicted`), then dropped."""
        while len(self.pairs) > self.cfg.flows.max_pairs:
            self._evict(next(iter(self.pairs)))

    def add(self, f: DnsFlow) -> None:
        if f.time > self.now:
            self.now = f.time
            if not self.start:
                self.start = f.time
        if not f.is_response:
            # Volume counts every request of a source, cluster names included (as the metric).
            per = self.volume.get(f.source)
            if per is None:
                per = self.volume[f.source] = array("d")
            _count(per, f.time - f.time % self.step)
        name = f.query
        if not name or self.rules.is_cluster(name) or self.rules.ignores_source(f.source):
            return
        if self.rules.ignores(name):
            return
        domain = _registered(name)
        if not domain or name == domain:
            return  # the registered domain itself carries no payload
        seen = self.prevalence.setdefault(domain, set())
        if len(seen) < 64:
            seen.add(f.workload)
        key = (f.workload, domain)
        st = self.pairs.get(key)
        if st is None:
            st = PairState(f.workload, domain, stats(f.time))
            self.pairs[key] = st
            self.breadth[f.workload] = self.breadth.get(f.workload, 0) + 1
            if len(self.pairs) > self.cfg.flows.max_pairs:
                self._evict(next(iter(self.pairs)))
        else:
            self.pairs.move_to_end(key)
        if f.time > st.stats[LAST]:
            st.stats[LAST] = f.time
        if f.is_response:
            self._answer(st, f)
        else:
            self._request(st, f, name)

    def _answer(self, st: PairState, f: DnsFlow) -> None:
        code = st.code_of(f.query)
        if code is not None:
            flag = N_ADDRESS if f.rcode == 0 and f.ips else N_FAILED if f.rcode else 0
            if flag and not code & flag:
                st.set_code(f.query, code | flag)
                st.hosty = st.hosty or bool(code & N_REASKED)
        st.responses += 1
        if f.rcode == 3:
            st.nxdomain += 1
        elif f.rcode == 0:
            if f.ips:
                st.with_ips += 1
                if st.addresses is not None:
                    if len(st.addresses) < 1024:
                        st.addresses.update(f.ips[:4])
                elif not st.address:
                    st.address = f.ips[0]
                    if len(f.ips) > 1:
                        st.addresses = set(f.ips[:4])
                elif any(ip != st.address for ip in f.ips[:4]):
                    st.addresses = {st.address, *f.ips[:4]}
            elif not f.cnames and not f.rrtypes:
                st.empty += 1
            if any(r in DATA_QTYPES for r in f.rrtypes):
                st.data_answers += 1

    def _request(self, st: PairState, f: DnsFlow, name: str) -> None:
        if st.pods is None and (not st.pod or st.pod == f.source):
            st.pod = f.source  # the only pod so far: it asked every request
        else:
            if st.pods is None:
                st.pods = {st.pod: st.requests}
            st.pods[f.source] = st.pods.get(f.source, 0) + 1
            if len(st.pods) > 64:
                del st.pods[min(st.pods, key=st.pods.__getitem__)]
        st.requests += 1
        if f.dropped:
            st.dropped += 1
        for q in f.qtypes:
            if st.qtypes is None and (not st.qtype or st.qtype == q):
                st.qtype = q
                st.qtype_n += 1
            else:
                if st.qtypes is None:
                    st.qtypes = {st.qtype: st.qtype_n}
                st.qtypes[q] = st.qtypes.get(q, 0) + 1
        if any(q in DATA_QTYPES for q in f.qtypes):
            st.data_qtypes += 1
        # The same name again within a second is one lookup (A and AAAA together, a resolver
        # retry): it neither lowers the unique ratio nor counts as an inter-arrival gap.
        a = st.stats
        last_request = a[LAST_REQUEST]  # NaN before the first: every comparison is False
        same_lookup = name == st.last_name and 0 <= f.time - last_request < 1.0
        if f.time >= last_request and not same_lookup:
            welford_add(a, GAPS, f.time - last_request)
        a[LAST_REQUEST] = f.time
        st.last_name = name
        before = st.last_start()
        o = st.bucket(f.time, self.step, self.keep, self.day, self.day_slots)
        bk = st.buckets
        if before is not None and bk[o + B_START] != before:
            self.closed.append((st.workload, st.domain))
        if not same_lookup:
            bk[o + B_REQUESTS] += 1
        names = st.names
        if isinstance(names, tuple) and (st.pods is not None or len(names) >= SMALL_NAMES):
            names = st.names = dict(zip(names, st.codes or (), strict=True))
            st.codes = None
        code = st.code_of(name)
        tag = pod_tag(f.source)
        if code is not None:
            flags = code & _FLAGS
            if not same_lookup:
                slot = f.time - f.time % self.repeat_step
                if not st.reasks or st.reasks[-1] != slot:
                    if st.reasks is None:
                        st.reasks = array("d")
                    st.reasks.append(slot)
                    if len(st.reasks) > REASKS_KEPT:
                        del st.reasks[0]
                flags |= N_REASKED
                code = self._reasked(st, code, f.time)
                if code & N_SPREAD:
                    flags |= N_SPREAD
            if (code & _POD) >> POD_SHIFT != tag and not flags & N_SHARED:
                flags |= N_SHARED
                st.shared += 1
            if flags != code & _FLAGS:
                st.set_code(name, (code & ~_FLAGS) | flags)
                st.hosty = True
            elif not same_lookup:
                st.set_code(name, code)
            return
        s = _shape(name, st.domain)
        odd = odd_name(name)
        code = (
            (min(_TIME_MAX, max(0, int((f.time - st.first) // TIME_UNIT))) << TIME_SHIFT)
            | (tag << POD_SHIFT)
            | (1 << ASKS_SHIFT)
            | (N_ENCODED if s.score >= self.cfg.names.min_score else 0)
            | (N_ODD if odd else 0)
        )
        if isinstance(names, tuple):
            st.names = (*names, name)
            if st.codes is None:
                st.codes = array("q")
            st.codes.append(code)
        else:
            names[name] = code
            if len(names) > self.cfg.flows.max_names_per_pair:
                del names[next(iter(names))]
        bk[o + B_NEW] += 1
        bk[o + B_PAYLOAD] += s.payload_chars
        bk[o + B_BYTES] += s.est_bytes
        if s.score >= self.cfg.names.min_score:
            bk[o + B_ENCODED] += 1
            users = self.encoders.setdefault(st.domain, set())
            if len(users) < 64:
                users.add(st.workload)
        payload = subdomain_part(name, st.domain)
        if address_shaped(payload):
            bk[o + B_ADDRESS] += 1
        welford_add(a, SIZES, len(payload))
        for i, v in enumerate(query_features(payload), QSUM):
            a[i] += v
        welford_add(a, ENTROPY, s.entropy)
        if s.entropy > a[ENTROPY_MAX]:
            a[ENTROPY_MAX] = s.entropy
        if len(name) > st.longest:
            st.longest = len(name)
        st.odd = st.odd or odd
        welford_add(a, SCORES, s.score)
        # The best five names by score, best first (ties: the earlier name stays ahead).
        samples, k = st.samples, len(st.samples)
        if k < SAMPLES_KEPT or s.score > a[SAMPLE_SCORES + k - 1]:
            i = k
            while i > 0 and a[SAMPLE_SCORES + i - 1] < s.score:
                i -= 1
            kept = min(k + 1, SAMPLES_KEPT)
            for j in range(kept - 1, i, -1):
                a[SAMPLE_SCORES + j] = a[SAMPLE_SCORES + j - 1]
            a[SAMPLE_SCORES + i] = s.score
            st.samples = (*samples[:i], name, *samples[i:])[:kept]

    def _reasked(self, st: PairState, code: int, t: float) -> int:
        """A name's code after a re-ask at t: one more ask, the steps it touched, N_SPREAD once
        its asks fall in spread_steps steps or span that many (window.spread_reask)."""
        if (code & _ASKS) != _ASKS:
            code += 1 << ASKS_SHIFT
        first = first_asked(st, code)
        s = min(0xFFF, max(0, int(t // self.repeat_step - first // self.repeat_step)))
        touched = (code & _TOUCH) >> TOUCH_SHIFT
        if s != (code & _LAST) >> LAST_SHIFT:
            touched = min(3, touched + 1)
            code = (code & ~(_LAST | _TOUCH)) | (s << LAST_SHIFT) | (touched << TOUCH_SHIFT)
        if touched + 1 >= self.spread_steps or s >= self.spread_steps:
            code |= N_SPREAD
        return code

    def _evict(self, key: tuple[str, str]) -> None:
        st = self.pairs.pop(key)
        left = self.breadth.get(st.workload, 1) - 1
        if left > 0:
            self.breadth[st.workload] = left
        else:
            self.breadth.pop(st.workload, None)
        self.evicted.append(self.summary(st, st.last))
        self.day_slots.pop(key, None)

    def expire(self) -> None:
        """Drop pairs idle for the long window (judged first, through `evicted`)."""
        horizon = self.now - self.cfg.windows.long
        while self.pairs:
            key, st = next(iter(self.pairs.items()))
            if st.last >= horizon:
                break
            self._evict(key)

    def summary(self, st: PairState, at: float) -> PairSummary:
        # Every bucket that overlaps the short window [at - short, at]: a burst is seen whole
        # whatever its alignment with the buckets (as a metrics scan's window sees it).
        short_from = at - self.short_buckets * self.step - self.step + 1e-6
        long_from = at - self.keep * self.step
        bk = st.buckets
        short_b = st.spans(short_from)
        long_b = st.spans(long_from)

        def total(offsets: list[int], field: int) -> float:
            return sum(bk[o + field] for o in offsets)

        responses = max(st.responses, 1)
        a = st.stats
        # The day window once the data reaches back far enough for it to add anything (as a
        # metrics scan's: burst.day_history_needed); -1: off.
        day = (-1.0, 0.0, 0.0, 0.0)
        if self.day and at - self.start >= self.day_needed:
            # The ring holds the pair's last buckets with requests, which may reach past the
            # long window (a sparse pair's); older ones were folded into hourly slots.
            day_b = st.spans(at - self.day)
            folded = _day_totals(self.day_slots.get((st.workload, st.domain)), at - self.day)
            day = (
                folded[0] + total(day_b, B_REQUESTS),
                folded[1] + total(day_b, B_NEW),
                folded[2] + total(day_b, B_ENCODED),
                folded[3] + total(day_b, B_BYTES),
            )
        gap_mean = a[GAPS + 1]
        gap_cv = welford_std(a, GAPS) / gap_mean if gap_mean > 0 else 0.0
        long_new = int(total(long_b, B_NEW))
        one_off: list[tuple[int, int, int] | None] = [None, None, None]
        hosts = (0, 0, 0)
        reasked = 0
        if st.hosty or self.ripe:
            froms = (short_from, long_from, at - self.day if day[0] >= 0 else math.inf)
            news = (total(short_b, B_NEW), long_new, day[1])
            encs = (total(short_b, B_ENCODED), total(long_b, B_ENCODED), day[2])
            wildcard = st.distinct_addresses() < 0.3 * min(max(long_new, 1), 1024)
            young = at - self.ripe if self.ripe else math.inf
            one_off, hosts, reasked = _tally(st, self.step, froms, news, encs, wildcard, young)
        pods = st.pod_counts()
        top = sorted(pods.items(), key=lambda kv: -kv[1])[:5]
        return PairSummary(
            at=at,
            workload=st.workload,
            domain=st.domain,
            source=top[0][0] if top else st.workload,
            pods=len(pods),
            short_new=int(total(short_b, B_NEW)),
            long_new=long_new,
            long_requests=int(total(long_b, B_REQUESTS)),
            encoded_new=int(total(long_b, B_ENCODED)),
            address_new=int(total(long_b, B_ADDRESS)),
            est_bytes=total(long_b, B_BYTES),
            payload_mean=a[SIZES + 1],
            payload_std=welford_std(a, SIZES),
            entropy_mean=a[ENTROPY + 1],
            entropy_std=welford_std(a, ENTROPY),
            score_mean=a[SCORES + 1],
            requests=st.requests,
            responses=st.responses,
            nxdomain_share=st.nxdomain / responses,
            empty_share=st.empty / responses,
            address_share=st.with_ips / responses,
            distinct_addresses=st.distinct_addresses(),
            data_answer_share=st.data_answers / responses,
            data_qtype_share=st.data_qtypes / max(st.requests, 1),
            denied_share=st.dropped / max(st.requests, 1),
            unanswered_share=max(0.0, 1 - st.responses / max(st.requests - st.dropped, 1))
            if st.requests > st.dropped
            else 0.0,
            gap_mean=gap_mean,
            gap_cv=gap_cv,
            prevalence=len(self.prevalence.get(st.domain, ())),
            encoded_clients=len(self.encoders.get(st.domain, ())),
            client_domains=self.breadth.get(st.workload, 0),
            samples=list(st.samples),
            first=st.first,
            last=st.last,
            qtypes=dict(sorted(st.qtype_counts().items(), key=lambda kv: -kv[1])[:6]),
            query_means=tuple(v / max(a[SIZES], 1) for v in a[QSUM:SAMPLE_SCORES]),
            shared=st.shared,
            short_requests=int(total(short_b, B_REQUESTS)),
            short_encoded=int(total(short_b, B_ENCODED)),
            short_bytes=total(short_b, B_BYTES),
            entropy_max=a[ENTROPY_MAX],
            longest=st.longest,
            odd=st.odd,
            reask_slots=sum(1 for t in st.reasks or () if t >= long_from),
            reask_steps=tuple(t for t in st.reasks or () if t >= long_from),
            reasked_names=reasked,
            pod_names=tuple(p for p, _ in top),
            day_seconds=self.day if day[0] >= 0 else 0.0,
            day_requests=int(day[0]) if day[0] >= 0 else 0,
            day_new=int(day[1]) if day[0] >= 0 else 0,
            day_encoded=int(day[2]) if day[0] >= 0 else 0,
            day_bytes=day[3] if day[0] >= 0 else 0.0,
            short_one_off=one_off[0],
            long_one_off=one_off[1],
            day_one_off=one_off[2],
            hosts=hosts,
        )

    def _worth(self, st: PairState, least: int) -> bool:
        """At least `least` names, or fewer of which the most payload-like could carry a
        secret (names.secret_min_bytes): one such name can raise the pair."""
        if len(st.names) >= least:
            return True
        n = self.cfg.names
        # 6 bits a character at most: a shorter payload cannot hold the bytes (cheap first).
        if not st.samples or st.longest - len(st.domain) - 1 < n.secret_min_bytes * 8 / 6:
            return False
        # The judge's own measure, over the names it will read (the pair's samples).
        return max(secret_bytes(x, n.min_score) for x in st.samples) >= n.secret_min_bytes

    def candidates(self, least: int) -> list[PairSummary]:
        """Summaries of the pairs with at least `least` new names in the long window, now (or
        a secret-sized one: _worth)."""
        out = []
        for st in self.pairs.values():
            if self._worth(st, least):
                s = self.summary(st, self.now)
                if s.long_new >= (least if len(st.names) >= least else 1):
                    out.append(s)
        return out

    def take_closed(self, least: int) -> list[PairSummary]:
        """Pairs whose bucket closed since the last call (judged at the close: a batch read
        sees every 5 minutes of every pair, not just the end of the file)."""
        out = []
        for key in dict.fromkeys(self.closed):
            st = self.pairs.get(key)
            if st is not None and self._worth(st, least):
                # The bucket just opened holds one request: judge as of the one before it.
                start = st.last_start()
                out.append(self.summary(st, start if start is not None else st.last))
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
            flat = self.volume[src]
            drop = 0
            while drop < len(flat) and flat[drop] < oldest:
                drop += 2
            if drop:
                del flat[:drop]
            if not flat:
                del self.volume[src]
                continue
            per = dict(zip(flat[0::2], flat[1::2], strict=True))
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


def _tally(
    st: PairState,
    step: float,
    froms: tuple[float, float, float],
    news: tuple[float, float, float],
    encs: tuple[float, float, float],
    wildcard: bool,
    young: float = math.inf,
) -> tuple[list[tuple[int, int, int] | None], tuple[int, int, int], int]:
    """Per window (short, long, day: the bucket starts at or after `froms`), the one-off
    names (new names less those that are hosts), their encoded-looking ones and queries; the
    widest window's hosts by principle; and how many names were asked again. A name forgotten
    (flows.max_names_per_pair) counts as one-off: what is not known to be a host is a payload
    candidate. Plain names first asked after `young` (a live judge's unripe names) are neither
    in the long and day windows: not yet known to be hosts or one-off."""
    hosts = [[0, 0, 0] for _ in froms]
    enc_hosts = [0, 0, 0]
    queries = [0, 0, 0]
    unripe = 0
    reasked = 0
    for code in st.all_codes():
        reasked += bool(code & N_REASKED)
        t = first_asked(st, code)
        start = t - t % step
        kind = host_kind(code, wildcard)
        waiting = kind < 0 and t > young and not code & (N_ENCODED | N_ODD)
        unripe += waiting
        for w, since in enumerate(froms):
            if start < since:
                continue
            if kind < 0:
                if not (waiting and w):
                    queries[w] += (code & _ASKS) >> ASKS_SHIFT
            else:
                hosts[w][kind] += 1
                enc_hosts[w] += bool(code & N_ENCODED)
    one_off: list[tuple[int, int, int] | None] = []
    for w in range(3):
        n = max(0, int(news[w]) - sum(hosts[w]) - (unripe if w else 0))
        one_off.append((n, max(0, int(encs[w]) - enc_hosts[w]), max(n, queries[w])))
    widest = 2 if froms[2] != math.inf else 1
    return one_off, (hosts[widest][0], hosts[widest][1], hosts[widest][2]), reasked


def _fold(
    slots: dict[tuple[str, str], array[float]],
    key: tuple[str, str],
    b: array[float],
    end: int,
    since: float,
) -> None:
    """Buckets b[:end], leaving the long window, into the pair's hourly slots (D_*); slots
    older than `since` go."""
    d = slots.get(key)
    if d is not None:
        drop = 0
        while drop < len(d) and d[drop + D_START] < since:
            drop += D_SIZE
        if drop:
            del d[:drop]
    for o in range(0, end, B_SIZE):
        if not b[o + B_NEW]:
            continue  # no new name: nothing the day's distinct count needs
        slot = b[o + B_START] - b[o + B_START] % DAY_SLOT
        if d is None:
            d = slots[key] = array("d")
        if not d or d[-D_SIZE + D_START] != slot:
            d.extend((slot, 0.0, 0.0, 0.0, 0.0))
        d[-D_SIZE + D_REQUESTS] += b[o + B_REQUESTS]
        d[-D_SIZE + D_NEW] += b[o + B_NEW]
        d[-D_SIZE + D_ENCODED] += b[o + B_ENCODED]
        d[-D_SIZE + D_BYTES] += b[o + B_BYTES]


def _day_totals(d: array[float] | None, since: float) -> tuple[float, float, float, float]:
    """(requests, new, encoded, bytes) of the day slots starting at or after `since`."""
    if not d:
        return (0.0, 0.0, 0.0, 0.0)
    offsets = [o for o in range(0, len(d), D_SIZE) if d[o + D_START] >= since]
    return (
        sum(d[o + D_REQUESTS] for o in offsets),
        sum(d[o + D_NEW] for o in offsets),
        sum(d[o + D_ENCODED] for o in offsets),
        sum(d[o + D_BYTES] for o in offsets),
    )


def _count(flat: array[float], start: float) -> None:
    """One request in the bucket `start` of a flat (start, count) array kept in time order
    (lines arrive in time order; a late one is found from the newest end)."""
    i = len(flat) - 2
    while i >= 0 and flat[i] > start:
        i -= 2
    if i >= 0 and flat[i] == start:
        flat[i + 1] += 1
    else:
        flat[i + 2 : i + 2] = array("d", (start, 1.0))


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

    def span(
        seconds: float,
        all_names: NameSet,
        one_off: tuple[int, int, int] | None,
    ) -> Span:
        if one_off is None:
            return Span(seconds, all_names, all_names)
        n, enc, queries = one_off
        share = n / all_names.distinct if all_names.distinct else 0.0
        return Span(
            seconds,
            all_names,
            replace(
                all_names,
                distinct=n,
                queries=float(queries),
                encoded=enc,
                est_bytes=round(all_names.est_bytes * share),
            ),
        )

    model = shipped()
    long = span(
        cfg.windows.long,
        names(s.long_new, s.long_requests, s.encoded_new, s.est_bytes),
        s.long_one_off,
    )
    enc_one_off = s.long_one_off[1] if s.long_one_off is not None else s.encoded_new
    return Channel(
        client=s.workload,
        domain=s.domain,
        at=s.at,
        pods=s.pod_names or (s.source,),
        pod_count=max(s.pods, 1),
        short=span(
            cfg.windows.short,
            names(s.short_new, s.short_requests, s.short_encoded, s.short_bytes),
            s.short_one_off,
        )
        if s.short_new
        else None,
        long=long,
        day=span(
            s.day_seconds,
            names(s.day_new, s.day_requests, s.day_encoded, s.day_bytes),
            s.day_one_off,
        )
        if s.day_seconds and s.day_new > s.long_new
        else None,
        encoded=replace(long.names, distinct=s.encoded_new, encoded=s.encoded_new)
        if s.encoded_new
        else None,
        encoded_one_off=replace(long.one_off, distinct=enc_one_off, encoded=enc_one_off)
        if enc_one_off
        else None,
        hosts=Hosts(*s.hosts),
        beat=beat_of(
            [round(t / cfg.judge.repeat_step) for t in s.reask_steps],
            cfg.judge.repeat_step,
            s.reasked_names,
        ),
        repeat_slots=s.reask_slots,
        shared_names=s.shared,
        prevalence=s.prevalence,
        encoded_clients=s.encoded_clients,
        client_domains=s.client_domains,
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
