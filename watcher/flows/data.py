"""Labelled (workload, domain) pairs for the flow model, built by the project itself.

Each family instance gets its own workload and registered domain (the real tool names share
theirs), runs for up to two hours as DnsFlows, and is seen through the same FlowWindow as
`dnswatch flows`, snapshot at every bucket close and at the end (early views with few names
included). Benign families (label 0) are the hard negatives: host sets and CDN hashes re-queried,
IP-named hosts and wildcard DNS, antivirus hash and DNSBL lookups used by many workloads,
search-path expansions, DKIM/DMARC. Channels (label 1): base32, base64, hex, numeric,
base64url and word encodings at rates from one name an hour to several a second, with data,
NXDOMAIN, fixed-address or no answers, and the real iodine, dns2tcp and dnscapy names of
tests/fixtures/netrack (Apache-2.0, see its LICENSE).
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watcher.config import Config, domain_rules
from watcher.flows.summary import PairSummary
from watcher.flows.window import FlowWindow
from watcher.simulate import WORDS
from watcher.sources.flows import DnsFlow

T0 = 1_780_000_000.0
SPAN = 7200.0
NETRACK = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "netrack"


@dataclass(frozen=True)
class Sample:
    summary: PairSummary
    label: int
    family: str
    domain: str


def _flow(t: float, src: str, wl: str, q: str, qt: str, resp: bool, **kw: object) -> DnsFlow:
    return DnsFlow(
        time=t,
        node="node-0",
        source=src,
        workload=wl,
        query=q,
        qtypes=(qt,),
        is_response=resp,
        rcode=int(kw.get("rcode", 0)),  # type: ignore[call-overload]
        ips=tuple(kw.get("ips", ())),  # type: ignore[arg-type]
        cnames=int(kw.get("cnames", 0)),  # type: ignore[call-overload]
        rrtypes=tuple(kw.get("rrtypes", ())),  # type: ignore[arg-type]
        dropped=bool(kw.get("dropped", False)),
    )


def _tok(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))


def _ip(rng: np.random.Generator) -> str:
    return ".".join(str(int(x)) for x in rng.integers(1, 250, 4))


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.events: list[DnsFlow] = []
        self.labels: dict[tuple[str, str], tuple[int, str]] = {}
        self.n = 0

    def _ids(self, family: str, domain: str | None = None) -> tuple[str, str, str]:
        self.n += 1
        wl = f"ns{self.n % 40}/{family}{self.n}"
        dom = domain or f"{_tok(self.rng, 'abcdefghijklmnopqrstuvwxyz', 7)}{self.n}.example"
        return f"{wl}-7d9f8b7c6-x2x4q", wl, dom

    def _times(self, rate_per_min: float, start: float | None = None) -> np.ndarray:
        start = T0 + float(self.rng.uniform(0, SPAN / 2)) if start is None else start
        n = max(1, int(self.rng.poisson(rate_per_min * (T0 + SPAN - start) / 60)))
        gaps = self.rng.exponential(60 / rate_per_min, n)
        t = start + np.cumsum(gaps)
        return t[t < T0 + SPAN]

    def _emit(self, src: str, wl: str, t: float, q: str, qt: str, **ans: object) -> None:
        self.events.append(_flow(t, src, wl, q, qt, False))
        if not ans.get("unanswered"):
            ans.pop("unanswered", None)
            self.events.append(_flow(t + 0.01, src, wl, q, qt, True, **ans))

    # -- benign ---------------------------------------------------------------------------------
    def hosts(self, kind: str) -> None:
        src, wl, dom = self._ids(kind)
        rng = self.rng
        k = int(rng.integers(1, 80))
        if kind == "cdn_hashes":
            names = [
                f"{_tok(rng, '0123456789abcdef', int(rng.integers(8, 33)))}.{dom}" for _ in range(k)
            ]
        elif kind == "ip_named":
            k = int(rng.integers(20, 400))
            names = [
                "ip-10-{}-{}-{}.r1.{}".format(*rng.integers(0, 255, 3), dom)
                if rng.random() < 0.5
                else f"{rng.integers(1, 250)}-{rng.integers(0, 255)}-{rng.integers(0, 255)}-"
                f"{rng.integers(1, 255)}.{dom}"
                for _ in range(k)
            ]
        else:
            names = [
                f"{WORDS[int(rng.integers(0, len(WORDS)))]}-{int(rng.integers(0, 30))}."
                f"{['eu', 'us', 'api', 'svc', 'prod'][int(rng.integers(0, 5))]}.{dom}"
                for _ in range(k)
            ]
        addrs = {n: [_ip(rng) for _ in range(int(rng.integers(1, 4)))] for n in names}
        for t in self._times(float(rng.uniform(0.5, 40))):
            q = names[int(rng.integers(0, len(names)))]
            self._emit(src, wl, float(t), q, "A", ips=addrs[q], rrtypes=["A"])
        self.labels[(wl, dom)] = (0, kind)

    def shared_lookups(self, kind: str) -> None:
        """Antivirus hash or DNSBL lookups: one-off names, many workloads, 127.x or NXDOMAIN."""
        rng = self.rng
        _, _, dom = self._ids(kind)
        for _ in range(int(rng.integers(4, 10))):
            src, wl, _ = self._ids(kind, dom)
            for t in self._times(float(rng.uniform(0.2, 6))):
                if kind == "av_lookup":
                    q = f"{_tok(rng, '0123456789abcdef', 32)}.av.{dom}"
                else:
                    q = f"{_ip(rng)}.zen.{dom}"
                if rng.random() < 0.7:
                    self._emit(src, wl, float(t), q, "A", rcode=3)
                else:
                    self._emit(src, wl, float(t), q, "A", ips=[f"127.0.0.{rng.integers(2, 12)}"])
            self.labels[(wl, dom)] = (0, kind)

    def search_path(self) -> None:
        src, wl, dom = self._ids("search_path")
        rng = self.rng
        outside = [
            "{}.{}.com".format(*(WORDS[int(i)] for i in rng.integers(0, len(WORDS), 2)))
            for _ in range(int(rng.integers(3, 40)))
        ]
        for t in self._times(float(rng.uniform(1, 30))):
            q = f"{outside[int(rng.integers(0, len(outside)))]}.corp.{dom}"
            self._emit(src, wl, float(t), q, "A", rcode=3)
        self.labels[(wl, dom)] = (0, "search_path")

    def dkim(self) -> None:
        src, wl, dom = self._ids("dkim")
        rng = self.rng
        names = [f"s{i}._domainkey.{dom}" for i in range(int(rng.integers(1, 6)))] + [
            f"_dmarc.{dom}"
        ]
        for t in self._times(float(rng.uniform(0.2, 5))):
            self._emit(
                src, wl, float(t), names[int(rng.integers(0, len(names)))], "TXT", rrtypes=["TXT"]
            )
        self.labels[(wl, dom)] = (0, "dkim")

    # -- channels -------------------------------------------------------------------------------
    def channel(
        self, encoding: str, names: list[str] | None = None, domain: str | None = None
    ) -> None:
        rng = self.rng
        src, wl, dom = self._ids(f"ch_{encoding}", domain)
        rate = float(np.exp(rng.uniform(np.log(0.02), np.log(20))))  # names a minute
        qt = str(rng.choice(["TXT", "NULL", "CNAME", "MX", "A", "A", "AAAA"]))
        answer = str(rng.choice(["data", "nx", "fixed", "none"]))
        fixed = _ip(rng)
        for i, t in enumerate(self._times(rate)):
            if names is not None:
                sub = names[i % len(names)]
                q = sub if sub.endswith(dom) else f"{sub}.{dom}"
            else:
                q = f"{_encode(rng, encoding, i)}.{dom}"
            if answer == "data" and qt not in ("A", "AAAA"):
                self._emit(src, wl, float(t), q, qt, rrtypes=[qt], cnames=int(qt == "CNAME"))
            elif answer in ("nx", "data"):
                self._emit(src, wl, float(t), q, qt, rcode=3)
            elif answer == "fixed":
                self._emit(src, wl, float(t), q, qt, ips=[fixed], rrtypes=["A"])
            else:
                self._emit(src, wl, float(t), q, qt, unanswered=True)
        self.labels[(wl, dom)] = (1, f"channel_{encoding}")

    def netrack(self) -> None:
        for tool, dom in (
            ("iodine", "hidemyself.org"),
            ("dns2tcp", "hidemyself.org"),
            ("dnscapy", "example.org"),
        ):
            path = NETRACK / f"{tool}.csv"
            if not path.exists():
                continue
            with path.open() as fh:
                names = [r["qname"].lower().rstrip(".") for r in csv.DictReader(fh)]
            self.rng.shuffle(names)
            self.channel(f"real_{tool}", names, dom)

    def build(self, instances: int) -> list[Sample]:
        rng = self.rng
        for _ in range(instances):
            r = rng.random()
            if r < 0.22:
                self.hosts(str(rng.choice(["service_hosts", "cdn_hashes", "ip_named"])))
            elif r < 0.32:
                self.shared_lookups(str(rng.choice(["av_lookup", "dnsbl"])))
            elif r < 0.40:
                self.search_path()
            elif r < 0.46:
                self.dkim()
            else:
                self.channel(
                    str(
                        rng.choice(
                            ["base32", "base64", "hex", "numeric", "b64url", "words", "words"]
                        )
                    )
                )
        for _ in range(6):
            self.netrack()
        self.events.sort(key=lambda f: f.time)
        cfg = Config.model_validate({"flows": {"max_pairs": 1_000_000}})
        window = FlowWindow(cfg, domain_rules(cfg))
        out: list[Sample] = []

        def keep(summaries: list[PairSummary]) -> None:
            for s in summaries:
                label, family = self.labels.get((s.workload, s.domain), (-1, ""))
                if label >= 0:
                    out.append(Sample(s, label, family, s.domain))

        for f in self.events:
            window.add(f)
            if window.closed:
                keep(window.take_closed(5))
        keep(window.candidates(5))
        return out


def _encode(rng: np.random.Generator, encoding: str, i: int) -> str:
    raw = rng.bytes(int(rng.integers(12, 60)))
    if encoding == "base32":
        body = base64.b32encode(raw).decode().rstrip("=").lower()
    elif encoding == "base64":
        body = base64.b64encode(raw).decode().rstrip("=").lower()
    elif encoding == "b64url":
        body = f"{i}" + base64.urlsafe_b64encode(raw).decode().rstrip("=").lower()
    elif encoding == "hex":
        body = raw.hex()
    elif encoding == "numeric":
        return f"{'abcd'[i % 4]}.{int(rng.integers(1, 3))}.{int(rng.integers(1000, 65535))}"
    else:  # words: one byte a word, dash-joined
        body = "-".join(WORDS[b % len(WORDS)] for b in raw[: int(rng.integers(6, 14))])
        return ".".join(body[j : j + 40].strip("-") for j in range(0, len(body), 40))
    return ".".join(body[j : j + 57] for j in range(0, len(body), 57))


def samples(seed: int = 1, instances: int = 1500) -> Iterator[Sample]:
    yield from Builder(seed).build(instances)
