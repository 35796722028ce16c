"""Realistic Hubble DNS metric histories with injected incidents (demo, tests, benchmarks, drills).

Models what `hubble_dns_queries_total{source,destination,query,qtypes,rcode,ips_returned}` really
holds (see docs/hubble-metrics-caveats.md): one counter per (pod, name, qtype), created at its first
query (value 1), persisting until the pod is deleted (then gone a minute later), reset when the
node's cilium-agent restarts; search-path expansion for names with fewer than five dots; a scrape
every 60 s. Output: OpenMetrics with timestamps, ready for `promtool tsdb create-blocks-from
openmetrics` or `dnswatch scan --metrics-file`.
"""

from __future__ import annotations

import base64
import gzip
import io
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from watcher.duration import parse_duration
from watcher.errors import ConfigError

METRIC = "hubble_dns_queries_total"
RESPONSES = "hubble_dns_responses_total"
CLUSTER_DOMAIN = "cluster.local"
SCRAPE = 60  # seconds between scrapes
DEFAULT_START = 1_780_000_000  # 2026-05-28T20:26:40Z: a fixed past, so histories are reproducible

COMMON = [
    "api.github.com",
    "registry-1.docker.io",
    "auth.docker.io",
    "production.cloudflare.docker.com",
    "pypi.org",
    "files.pythonhosted.org",
    "sts.amazonaws.com",
    "s3.eu-west-1.amazonaws.com",
    "oauth2.googleapis.com",
    "storage.googleapis.com",
    "hooks.slack.com",
    "api.stripe.com",
    "sentry.io",
    "o450123.ingest.sentry.io",
    "login.microsoftonline.com",
    "www.google.com",
    "d1a2b3c4d5e6f7.cloudfront.net",
    "e12345.dscb.akamaiedge.net",
    "time.cloudflare.com",
    "a8f7e6d5c4b3a2918273645546372819-1234567890.us-west-2.elb.amazonaws.com",
    "api.datadoghq.com",
    "1-courier.push.apple.com",
    "fcm.googleapis.com",
    "objects.githubusercontent.com",
]
SERVICES = ["postgres", "redis", "kafka", "api", "auth", "payments", "search", "kube-dns"]


def _rand_token(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))


def _chunks(payload: str, size: int) -> str:
    return ".".join(payload[i : i + size] for i in range(0, len(payload), size))


# -- tunnel name encoders: (rng, sequence number) -> subdomain part, lower-cased as Hubble does
def _enc_base32(rng: np.random.Generator, i: int) -> str:  # iodine-style, hex user id first
    raw = rng.bytes(int(rng.integers(40, 110)))
    body = base64.b32encode(raw).decode().rstrip("=").lower()
    return _chunks(f"{i % 16:x}{body}", 57)


def _enc_base64(rng: np.random.Generator, i: int) -> str:  # dns2tcp-style, + and / included
    raw = rng.bytes(int(rng.integers(30, 120)))
    return _chunks(base64.b64encode(raw).decode().rstrip("=").lower(), 63)


def _enc_hex(rng: np.random.Generator, i: int) -> str:  # dnscat2-style
    return _chunks(rng.bytes(int(rng.integers(20, 60))).hex(), 62)


def _enc_numeric(rng: np.random.Generator, i: int) -> str:  # dnscapy-style short labels
    return f"{'abcd'[i % 4]}.{int(rng.integers(1, 3))}.{int(rng.integers(1000, 65535))}"


def _enc_b64url(rng: np.random.Generator, i: int) -> str:  # DNSExfiltrator-style, indexed chunks
    raw = rng.bytes(int(rng.integers(30, 45)))
    return f"{i}.{_chunks(base64.urlsafe_b64encode(raw).decode().rstrip('=').lower(), 60)}"


def _enc_octets(rng: np.random.Generator, i: int) -> str:  # payload as dotted IPv4 octets
    return ".".join(str(b) for b in rng.bytes(4))


# 256 short English words: one byte per word, a low-entropy encoding no shape score flags.
WORDS_TEXT = """
able acid aged also area army away baby back ball band bank base bath bear beat been
beer bell belt best bill bird blow blue boat body bomb bond bone book boom born boss
both bowl bulk burn bush busy call calm came camp card care case cash cast cell chat
chip city club coal coat code cold come cook cool cope copy core cost crew crop dark
data date dawn days dead deal dean dear debt deep deny desk dial diet disc disk does
done door dose down draw drew drop drug dual duke dust duty each earn ease east easy
edge else even ever evil exit face fact fail fair fall farm fast fate fear feed feel
feet fell felt file fill film find fine fire firm fish five flat flow food foot ford
form fort four free from fuel full fund gain game gate gave gear gene gift girl give
glad goal goes gold golf gone good gray grew grey grow gulf hair half hall hand hang
hard harm hate have head hear heat held hell help here hero high hill hire hold hole
holy home hope host hour huge hung hunt hurt idea inch into iron item jack jane jean
john join jump jury just keen keep kent kept kick kill kind king knee knew know lack
lady laid lake land lane last late lead left less life lift like line link list live
load loan lock logo long look lord lose loss lost love luck made mail main make male
many mark mass matt meal mean meat meet menu mere mike mile milk mill mind mine miss
mode mood moon more most move much must name navy near neck need news next nice
"""
WORDS = WORDS_TEXT.split()


def _enc_words(rng: np.random.Generator, i: int) -> str:  # word-per-byte, dash-joined labels
    words = [WORDS[b % len(WORDS)] for b in rng.bytes(int(rng.integers(8, 16)))]
    labels, cur = [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > 40:
            labels.append(cur)
            cur = w
        else:
            cur = f"{cur}-{w}" if cur else w
    labels.append(cur)
    return ".".join(labels)


ENCODERS: dict[str, Callable[[np.random.Generator, int], str]] = {
    "words": _enc_words,
    "base32": _enc_base32,
    "base64": _enc_base64,
    "hex": _enc_hex,
    "numeric": _enc_numeric,
    "base64url": _enc_b64url,
    "octets": _enc_octets,
}


@dataclass
class Pod:
    ns: str
    name: str
    node: int
    start: int  # minute it appears
    end: int  # minute it is deleted (exclusive); series vanish one minute later
    names: list[str]
    weights: np.ndarray
    rate: float  # queries per minute
    qtype: str = "A"
    # (minute -> rate multiplier), for floods and periodic bursts
    rate_at: Callable[[int], float] = field(default=lambda m: 1.0)
    # (minute) -> extra names queried that minute (tunnels), with their qtype
    extra: list[tuple[int, str, str, int]] = field(default_factory=list)
    # How the extra names are answered (their zone's server is the attacker's): "attacker"
    # (A: one fixed address or NXDOMAIN, data types: data), "addresses" (every name its own
    # address, as cover), "nxdomain", or "none" (never answered: a server that is gone).
    answers: str = "attacker"

    @property
    def source(self) -> str:
        # A host-network pod has no pod identity: Hubble's source label is empty.
        return f"{self.ns}/{self.name}" if self.ns or self.name else ""


@dataclass
class Cluster:
    minutes: int
    start: int = DEFAULT_START
    nodes: int = 3
    pods: list[Pod] = field(default_factory=list)
    restarts: list[tuple[int, int]] = field(default_factory=list)  # (minute, node)
    seed: int = 7

    def pod(self, source: str) -> Pod:
        """A pod by `ns/pod`, or the first one of a workload by prefix (`shop/checkout`)."""
        for p in self.pods:
            if p.source == source:
                return p
        for p in self.pods:
            if p.source.startswith(source + "-"):
                return p
        raise ConfigError(f"no pod {source} in the simulated cluster")


def _pod_name(rng: np.random.Generator, app: str, kind: str = "deploy") -> str:
    alnum = string.ascii_lowercase + string.digits
    suffix = _rand_token(rng, "bcdfghjklmnpqrstvwxz2456789", 5)
    if kind == "daemon":
        return f"{app}-{suffix}"
    return f"{app}-{_rand_token(rng, alnum, 9)}-{suffix}"


def _profile(
    rng: np.random.Generator, ns: str, extra: list[str], k: int
) -> tuple[list[str], np.ndarray]:
    names = [f"{s}.{ns}.svc.{CLUSTER_DOMAIN}" for s in rng.choice(SERVICES, 3, replace=False)]
    names += list(rng.choice(COMMON, k, replace=False)) + extra
    weights = rng.pareto(1.2, len(names)) + 0.05
    return names, weights / weights.sum()


def base_cluster(hours: float, seed: int = 7, start: int = DEFAULT_START) -> Cluster:
    """A small, busy, benign cluster with the traps real clusters have."""
    rng = np.random.default_rng(seed)
    minutes = int(hours * 60)
    c = Cluster(minutes=minutes, start=start, seed=seed)
    apps = [
        ("shop", "frontend", 40),
        ("shop", "checkout", 12),
        ("shop", "catalog", 25),
        ("data", "etl-worker", 8),
        ("platform", "ingress", 60),
        ("monitoring", "prometheus", 20),
    ]
    for ns, app, rate in apps:
        for _ in range(2 if app in ("frontend", "catalog") else 1):
            names, w = _profile(rng, ns, [], int(rng.integers(4, 9)))
            c.pods.append(
                Pod(
                    ns,
                    _pod_name(rng, app),
                    int(rng.integers(0, c.nodes)),
                    0,
                    minutes,
                    names,
                    w,
                    rate,
                )
            )
    # Rollout halfway: the catalog pods are replaced by new ones of the same workload.
    half = minutes // 2
    for p in [p for p in c.pods if p.name.startswith("catalog-")]:
        p.end = half
        c.pods.append(
            Pod(p.ns, _pod_name(rng, "catalog"), p.node, half, minutes, p.names, p.weights, p.rate)
        )
    # DNS-as-data look-alikes: antivirus hash lookups, DNSBL, reverse lookups.
    av = [
        f"0.0.0.{i % 8}.1.0.0.4e.{_rand_token(rng, string.ascii_lowercase + string.digits, 26)}"
        ".avqs.mcafee.com"
        for i in range(150)
    ]
    av += [f"{_rand_token(rng, '0123456789abcdef', 32)}.e5.sk" for _ in range(80)]
    ips = [".".join(str(int(x)) for x in rng.integers(1, 255, 4)) for _ in range(240)]
    dnsbl = [f"{ip}.zen.spamhaus.org" for ip in ips[:120]]
    rev = [f"{'.'.join(reversed(ip.split('.')))}.in-addr.arpa" for ip in ips[120:]]
    for app, extra, rate in (("av-scanner", av, 30), ("mail-filter", dnsbl + rev, 25)):
        names, w = _profile(rng, "security", extra, 3)
        w = np.full(len(names), 1.0 / len(names))
        c.pods.append(
            Pod(
                "security",
                _pod_name(rng, app),
                int(rng.integers(0, c.nodes)),
                0,
                minutes,
                names,
                w,
                rate,
            )
        )
    # A benign crawler: hundreds of distinct registered domains, each a handful of times.
    sites = [
        f"www.{_rand_token(rng, string.ascii_lowercase, int(rng.integers(5, 12)))}"
        f"{rng.choice(['shop', 'news', 'blog', 'online', 'media'])}"
        f".{rng.choice(['com', 'org', 'net', 'de', 'co.uk'])}"
        for _ in range(200)
    ]
    names, _ = _profile(rng, "crawler", sites, 2)
    c.pods.append(
        Pod(
            "crawler",
            _pod_name(rng, "spider"),
            0,
            0,
            minutes,
            names,
            np.full(len(names), 1.0 / len(names)),
            20,
        )
    )
    # A batch job with hourly bursts (benign periodic volume).
    names, w = _profile(rng, "data", [], 5)
    c.pods.append(
        Pod(
            "data",
            _pod_name(rng, "reporter"),
            1,
            0,
            minutes,
            names,
            w,
            3,
            rate_at=lambda m: 12.0 if m % 60 < 6 else 1.0,
        )
    )
    # A cilium-agent restart on node 1 in the middle of the history: counters reset.
    c.restarts.append((int(minutes * 0.6), 1))
    return c


def add_incident(
    c: Cluster,
    kind: str,
    rng: np.random.Generator,
    *,
    source: str | None = None,
    domain: str = "evil.example",
    at: int = 0,
    duration: int = 10,
    rate: float = 20,
    encoding: str = "base32",
    delete_after: int | None = None,
    factor: float = 20,
    replicas: int = 24,
    qtype: str | None = None,
    answers: str | None = None,
    fixed_names: int = 1,
) -> str:
    """Inject an incident; returns the source (ns/pod) it runs in (spread_leak: the workload,
    ns/app, whose `replicas` pods each leak a name now and then). `qtype` overrides the
    encoding's query type. retry_names: three encoded names asked `rate` times each within two
    minutes (a retry loop, the project's first example). heartbeat: fixed names asked in
    turn, `rate` asks a minute (below 1: every 1/rate minutes), as a beacon or a health
    check does (`fixed_names` of them). `answers`: how the incident's names are answered
    (Pod.answers). session: one-off names, `rate` a minute, rotated over `replicas` look-alike
    domains (`<i>-<domain>`), as a C2 spreading one session over several domains."""
    named = (
        "tunnel",
        "slow_leak",
        "few_names",
        "retry_names",
        "spread_leak",
        "heartbeat",
        "session",
    )
    if answers is not None and answers not in ANSWERS:
        raise ConfigError(f"unknown answers {answers!r}: one of {', '.join(ANSWERS)}")
    if kind in named and encoding not in ENCODERS:
        raise ConfigError(f"unknown encoding {encoding!r}: one of {', '.join(ENCODERS)}")
    if kind == "spread_leak":
        # One workload's replicas each leak a name now and then (`rate` per minute per pod):
        # no pod crosses a threshold alone, the workload does.
        if replicas < 1:
            raise ConfigError("spread_leak needs replicas >= 1")
        app = source.rpartition("/")[2] if source else "exporter"
        ns = source.rpartition("/")[0] if source and "/" in source else "jobs"
        rs = _rand_token(rng, string.ascii_lowercase + string.digits, 9)
        enc = ENCODERS[encoding]
        seq = 0
        for r in range(replicas):
            names, w = _profile(rng, ns, [], 3)
            suffix = _rand_token(rng, "bcdfghjklmnpqrstvwxz2456789", 5)
            pod = Pod(ns, f"{app}-{rs}-{suffix}", r % c.nodes, 0, c.minutes, names, w, 4)
            for m in range(at, min(c.minutes, at + duration)):
                if rng.random() < rate:
                    pod.extra.append((m, f"{enc(rng, seq)}.{domain}", "A", 1))
                    seq += 1
            c.pods.append(pod)
        return f"{ns}/{app}"
    if kind in ("tunnel", "slow_leak", "few_names", "retry_names", "heartbeat", "session"):
        if source is None:
            names, w = _profile(rng, "default", [], 3)
            end = (
                min(c.minutes, at + duration + delete_after)
                if delete_after is not None
                else c.minutes
            )
            pod = Pod(
                "default",
                _pod_name(rng, "worker"),
                int(rng.integers(0, c.nodes)),
                max(0, at - 30),
                end,
                names,
                w,
                4,
            )
            c.pods.append(pod)
        else:
            pod = c.pod(source)
        if answers is not None:
            pod.answers = answers
        enc = ENCODERS[encoding]
        default_qtype = {
            "base32": "NULL",
            "base64": "TXT",
            "hex": "CNAME",
            "numeric": "A",
            "base64url": "TXT",
            "words": "A",
            "octets": "A",
        }[encoding]
        qtype = qtype or default_qtype
        if kind == "retry_names":
            fixed = [f"{enc(rng, i)}.{domain}" for i in range(3)]
            asks = max(2, int(rate))
            for q in fixed:
                for m, n in ((at, asks - asks // 2), (at + 1, asks // 2)):
                    if m < c.minutes:
                        pod.extra.append((m, q, "TXT", n))
        elif kind == "session":
            seq = 0
            per = max(1, duration // max(1, replicas))
            for m in range(at, min(c.minutes, at + duration)):
                zone = f"{min((m - at) // per, replicas - 1)}-{domain}"
                for _ in range(int(rng.poisson(rate))):
                    pod.extra.append((m, f"{enc(rng, seq)}.{zone}", qtype, 1))
                    seq += 1
        elif kind == "heartbeat":
            fixed = [f"{enc(rng, i)}.{domain}" for i in range(max(1, fixed_names))]
            every = max(1, round(1 / rate)) if rate < 1 else 1
            per = max(1, round(rate)) if rate >= 1 else 1
            turn = 0
            for m in range(at, min(c.minutes, at + duration), every):
                for _ in range(per):
                    pod.extra.append((m, fixed[turn % len(fixed)], qtype, 1))
                    turn += 1
        elif kind == "few_names":
            fixed = [f"{enc(rng, i)}.{domain}" for i in range(3)]
            for m in range(at, min(c.minutes, at + duration)):
                for q in fixed:
                    pod.extra.append((m, q, "TXT", max(1, int(rate / 3))))
        else:
            seq = 0
            for m in range(at, min(c.minutes, at + duration)):
                n = int(rng.poisson(rate)) if kind == "tunnel" else int(rng.random() < rate)
                for _ in range(n):
                    pod.extra.append((m, f"{enc(rng, seq)}.{domain}", qtype, 1))
                    seq += 1
        return pod.source
    if kind == "drill":
        # `dnswatch drill`'s Job: a pod in namespace `source` (default: drills) asking the
        # drill's names, one every drill.interval seconds, starting at minute `at`.
        from watcher.config import DrillConfig
        from watcher.drill import APP
        from watcher.drill import names as drill_names

        cfg = DrillConfig() if domain == "evil.example" else DrillConfig(zone=domain)
        ns = (source or "drills").split("/", 1)[0]
        drill_asks = drill_names(cfg, c.start + at * SCRAPE)
        per_minute = max(1, int(60 / cfg.interval))
        span = -(-len(drill_asks) // per_minute)
        profile, w = _profile(rng, ns, [], 1)
        pod = Pod(
            ns,
            f"{APP}-{_rand_token(rng, 'bcdfghjklmnpqrstvwxz2456789', 5)}",
            int(rng.integers(0, c.nodes)),
            at,
            min(c.minutes, at + span + 1),
            profile,
            w,
            0.1,
        )
        for i, q in enumerate(drill_asks):
            pod.extra.append((at + i // per_minute, q.rstrip("."), "TXT", 1))
        c.pods.append(pod)
        return pod.source
    if kind == "flood":
        pod = c.pod(source) if source else c.pods[int(rng.integers(0, len(c.pods)))]
        old = pod.rate_at

        def flooded(m: int) -> float:
            return (factor if at <= m < at + duration else 1.0) * old(m)

        pod.rate_at = flooded
        return pod.source
    raise ConfigError(
        f"unknown incident kind {kind!r}: tunnel, slow_leak, few_names, retry_names, "
        "spread_leak, heartbeat, session, drill or flood"
    )


ANSWERS = ("attacker", "addresses", "nxdomain", "none")
FAMILIES = ("shared_storage", "dkim", "acme", "srv", "crawler")
# Families added by later issues' histories only (FAMILIES' histories stay as they were).
MORE_FAMILIES = ("saas_tenants", "health_check", "broken_lookup", "measurement", "wide_crawler")


def add_family(c: Cluster, family: str, rng: np.random.Generator) -> str:
    """A benign family that looks encoded but is not; returns its workload (ns/app; two,
    space-separated, for a family of two workloads).

    shared_storage: an uploader's two replicas resolve the same 36 object-storage endpoints
    named by 32 hex digits, all day (names shared by clients: hosts).
    dkim: a mail server resolves DKIM keys under 40 32-character selectors of one mail
    provider, TXT, each re-asked all day (repetition spread over time: hosts).
    acme: cert-manager polls the TXT challenge records of 60 tenants' certificates under one
    platform domain (`_acme-challenge.<tenant id>.apps.…`), each again every ~15 min.
    srv: a VoIP gateway's SRV discovery of 24 services and regions, re-asked all day.
    crawler: a crawler resolves two new hosts a minute, each under its own site's domain, once
    (one-off names, but one or two per registered domain: no channel)."""
    alnum = string.ascii_lowercase + string.digits
    if family == "shared_storage":
        hosts = [
            f"{_rand_token(rng, '0123456789abcdef', 32)}.objects.storage-cloud.example"
            for _ in range(36)
        ]
        rs = _rand_token(rng, alnum, 9)
        for _ in range(2):
            names, _w = _profile(rng, "media", hosts, 2)
            w = np.full(len(names), 1.0 / len(names))
            pod_name = f"uploader-{rs}-{_rand_token(rng, 'bcdfghjklmnpqrstvwxz2456789', 5)}"
            c.pods.append(
                Pod("media", pod_name, int(rng.integers(0, c.nodes)), 0, c.minutes, names, w, 8)
            )
        return "media/uploader"
    if family == "dkim":
        selectors = [f"{_rand_token(rng, alnum, 32)}._domainkey.bigmail.example" for _ in range(40)]
        names = list(selectors)
        w = np.full(len(names), 1.0 / len(names))
        c.pods.append(
            Pod(
                "mail",
                _pod_name(rng, "mta"),
                int(rng.integers(0, c.nodes)),
                0,
                c.minutes,
                names,
                w,
                3,
                qtype="TXT",
            )
        )
        return "mail/mta"
    if family in ("acme", "srv"):
        if family == "acme":
            ns, app, qtype, rate = "cert-manager", "cert-manager", "TXT", 4.0
            names = [
                f"_acme-challenge.{_rand_token(rng, alnum, 12)}.apps.platform-example.com"
                for _ in range(60)
            ]
        else:
            ns, app, qtype, rate = "voip", "sip-gateway", "SRV", 6.0
            names = [
                f"_{svc}._{proto}.{region}.voip-provider.example"
                for svc in ("sip", "sips", "stun", "turn")
                for proto in ("udp", "tcp")
                for region in ("eu", "us", "ap")
            ]
        w = np.full(len(names), 1.0 / len(names))
        c.pods.append(
            Pod(ns, _pod_name(rng, app), int(rng.integers(0, c.nodes)), 0, c.minutes, names, w,
                rate, qtype=qtype)
        )  # fmt: skip
        return f"{ns}/{app}"
    if family == "saas_tenants":
        # A billing service resolving its 40 tenants' hosts at a SaaS vendor, all day.
        names = [f"t-{_rand_token(rng, alnum, 8)}.tenants.saas-vendor.example" for _ in range(40)]
        w = np.full(len(names), 1.0 / len(names))
        c.pods.append(Pod("billing", _pod_name(rng, "invoicer"), int(rng.integers(0, c.nodes)),
                          0, c.minutes, names, w, 4.0))  # fmt: skip
        return "billing/invoicer"
    if family == "health_check":
        # An uptime checker asking one name of a rarely used domain every 30 s, answered.
        profile, w = _profile(rng, "ops", [], 2)
        pod = Pod("ops", _pod_name(rng, "uptime"), int(rng.integers(0, c.nodes)), 0, c.minutes,
                  profile, w, 1, answers="addresses")  # fmt: skip
        pod.extra = [(m, "status.uptime-probe.example", "A", 2) for m in range(c.minutes)]
        c.pods.append(pod)
        return "ops/uptime"
    if family == "broken_lookup":
        # A job retrying one name that no longer exists every 30 s, all day (NXDOMAIN).
        profile, w = _profile(rng, "jobs", [], 2)
        pod = Pod("jobs", _pod_name(rng, "exporter"), int(rng.integers(0, c.nodes)), 0,
                  c.minutes, profile, w, 1, answers="nxdomain")  # fmt: skip
        pod.extra = [(m, "api.retired-vendor.example", "A", 2) for m in range(c.minutes)]
        c.pods.append(pod)
        return "jobs/exporter"
    if family == "measurement":
        # A network-measurement service two agents query with base64url names, a few each.
        for agent in ("probe-a", "probe-b"):
            profile, w = _profile(rng, "netmon", [], 2)
            pod = Pod("netmon", _pod_name(rng, agent), int(rng.integers(0, c.nodes)), 0,
                      c.minutes, profile, w, 1, answers="addresses")  # fmt: skip
            for _ in range(int(rng.integers(6, 9))):
                token = _rand_token(rng, string.ascii_letters + string.digits + "-_", 22)
                m = int(rng.integers(0, c.minutes))
                pod.extra.append((m, f"{token}.msmt.netmeasure.example", "A", 1))
            c.pods.append(pod)
        return "netmon/probe-a netmon/probe-b"  # two workloads
    if family == "wide_crawler":
        # A crawler resolving thousands of sites, each once, meets three hash-named hosts.
        profile, w = _profile(rng, "index", [], 2)
        pod = Pod("index", _pod_name(rng, "fetcher"), int(rng.integers(0, c.nodes)), 0,
                  c.minutes, profile, w, 1, answers="addresses")  # fmt: skip
        for m in range(c.minutes):
            for k in range(3):
                pod.extra.append((m, f"www.site{m * 3 + k}-fetch.example", "A", 1))
        for k in range(3):
            pod.extra.append((c.minutes // 2 + k, f"{rng.bytes(16).hex()}.cdn-site7.example",
                              "A", 1))  # fmt: skip
        c.pods.append(pod)
        return "index/fetcher"
    if family == "crawler":
        profile, w = _profile(rng, "search", [], 2)
        pod = Pod("search", _pod_name(rng, "crawler"), int(rng.integers(0, c.nodes)), 0,
                  c.minutes, profile, w, 1)  # fmt: skip
        words = ["news", "shop", "blog", "docs", "forum", "media", "travel", "food", "garden"]
        for m in range(c.minutes):
            for k in range(2):
                site = f"{words[(m + k) % len(words)]}{m * 2 + k}-site.example"
                pod.extra.append((m, f"{'www' if k else 'static'}.{site}", "A", 1))
        c.pods.append(pod)
        return "search/crawler"
    raise ConfigError(f"unknown family {family!r}: {', '.join(FAMILIES + MORE_FAMILIES)}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(
    c: Cluster, out: IO[str], context: str = "pod", responses: bool = False, instance: bool = False
) -> int:
    """Write the history; returns the number of samples. `context`: "pod" names the client as
    Hubble's sourceContext=pod does (source="ns/pod"), "labels" as
    labelsContext=source_namespace,source_pod does. `responses` adds hubble_dns_responses_total
    (client in `destination`; search-path expansions answered NXDOMAIN). `instance` adds the
    scrape target label Prometheus gives each node's agent (`10.0.0.<node>:9965`)."""
    rng = np.random.default_rng(c.seed + 1)
    coredns = [f"kube-system/coredns-5d78c9869d-{s}" for s in ("x7k2p", "m9q4z")]
    # Series keys: (family, pod index, name, qtype); family 0 queries, 1 responses.
    live: dict[tuple[int, int, str, str], int] = {}
    prefix: dict[tuple[int, int, str, str], str] = {}
    extras: dict[int, list[tuple[int, str, str, int]]] = {}
    for idx, p in enumerate(c.pods):
        for m, q, qt, n in p.extra:
            extras.setdefault(m, []).append((idx, q, qt, n))
    samples = 0

    def hit(idx: int, name: str, qtype: str, n: int, extra: bool = False) -> None:
        p = c.pods[idx]
        answered = "attacker" if not extra else p.answers
        dots = name.count(".")
        fqdns = [name]
        if not name.endswith(CLUSTER_DOMAIN) and dots < 5 and p.ns:
            # ndots:5: each search suffix is tried first (NXDOMAIN), then the name itself.
            fqdns = [
                f"{name}.{p.ns}.svc.{CLUSTER_DOMAIN}",
                f"{name}.svc.{CLUSTER_DOMAIN}",
                f"{name}.{CLUSTER_DOMAIN}",
                name,
            ]
        for fq in fqdns:
            if responses and (fq != name or answered != "none"):
                rkey = (1, idx, fq, qtype)
                if rkey not in prefix:
                    nx = fq != name or answered == "nxdomain"
                    prefix[rkey] = (
                        f'{RESPONSES}{{destination="{_escape(p.source)}",'
                        f'ips_returned="{0 if nx else 1}",qtypes="{qtype}",'
                        f'query="{_escape(fq.lower() + ".")}",'
                        f'rcode="{"Non-Existent Domain" if nx else "No Error"}",'
                        f'source="{coredns[idx % 2]}"}} '
                    )
                live[rkey] = live.get(rkey, 0) + n
            key = (0, idx, fq, qtype)
            if key not in prefix:
                client = (
                    f'source="{_escape(p.source)}"'
                    if context == "pod"
                    else f'source_namespace="{_escape(p.ns)}",source_pod="{_escape(p.name)}"'
                )
                labels = (
                    f'destination="{coredns[idx % 2]}",ips_returned="0",qtypes="{qtype}",'
                    f'query="{_escape(fq.lower() + ".")}",rcode="",{client}'
                )
                if instance:
                    labels += f',instance="10.0.0.{p.node + 1}:9965"'

                prefix[key] = f"{METRIC}{{{labels}}} "
            live[key] = live.get(key, 0) + n

    # Samples are collected per series and written series by series: promtool does not need time
    # order, and a series' lines side by side compress ~10x better.
    history: dict[tuple[int, int, str, str], list[str]] = {}
    restarts = dict(c.restarts)
    for m in range(c.minutes):
        if m in restarts:
            node = restarts[m]
            for key in [k for k in live if c.pods[k[1]].node == node]:
                del live[key]
        for idx, p in enumerate(c.pods):
            if not p.start <= m < p.end:
                continue
            n = int(rng.poisson(p.rate * p.rate_at(m)))
            if n:
                counts = np.bincount(
                    rng.choice(len(p.names), n, p=p.weights), minlength=len(p.names)
                )
                for j in np.nonzero(counts)[0]:
                    hit(idx, p.names[j], p.qtype, int(counts[j]))
        for idx, q, qt, n in extras.get(m, ()):
            if c.pods[idx].start <= m < c.pods[idx].end:
                hit(idx, q, qt, n, extra=True)
        # Deleted pods: their endpoint's series are removed one minute after deletion.
        for key in [k for k in live if m >= c.pods[k[1]].end + 1]:
            del live[key]
        ts = c.start + (m + 1) * SCRAPE
        for key, value in live.items():
            history.setdefault(key, []).append(f"{value} {ts}\n")
        samples += len(live)
    for family, metric in enumerate((METRIC, RESPONSES)):
        keys = [k for k in history if k[0] == family]
        if not keys:
            continue
        help_text = "Number of DNS queries observed" if family == 0 else "Number of DNS responses"
        out.write(f"# HELP {metric[:-6]} {help_text}\n# TYPE {metric[:-6]} counter\n")
        for key in keys:
            head = prefix[key]
            out.write("".join(head + line for line in history[key]))
    out.write("# EOF\n")
    return samples


def end_time(c: Cluster) -> int:
    return c.start + c.minutes * SCRAPE


def parse_incident(spec: str) -> tuple[str, dict[str, str]]:
    """`tunnel,at=240m,duration=10m,domain=evil.example,encoding=base32` -> kind and options."""
    kind, *parts = spec.split(",")
    opts: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"incident option {part!r} is not key=value")
        opts[key.strip()] = value.strip()
    return kind.strip(), opts


def build(hours: float, incidents: list[str], seed: int = 7, start: int = DEFAULT_START) -> Cluster:
    c = base_cluster(hours, seed, start)
    rng = np.random.default_rng(seed + 2)
    allowed = {
        "source",
        "domain",
        "at",
        "duration",
        "rate",
        "encoding",
        "delete_after",
        "factor",
        "replicas",
        "qtype",
    }
    for spec in incidents:
        kind, opts = parse_incident(spec)
        unknown = set(opts) - allowed
        if unknown:
            raise ConfigError(f"unknown incident option(s): {', '.join(sorted(unknown))}")
        try:
            kwargs: dict[str, object] = {}
            for key in ("at", "duration", "delete_after"):
                if key in opts:
                    kwargs[key] = int(parse_duration(opts[key]) // 60)
            for key in ("rate", "factor"):
                if key in opts:
                    kwargs[key] = float(opts[key])
            if "replicas" in opts:
                kwargs["replicas"] = int(opts["replicas"])
            for key in ("source", "domain", "encoding", "qtype"):
                if key in opts:
                    kwargs[key] = opts[key]
        except ValueError as exc:
            raise ConfigError(f"incident {spec!r}: {exc}") from None
        add_incident(c, kind, rng, **kwargs)  # type: ignore[arg-type]
    return c


DEMO_INCIDENTS = [
    "tunnel,at=225m,duration=12m,rate=25,encoding=base32,domain=t.exfil-demo.net",
    "slow_leak,at=60m,duration=170m,rate=0.25,encoding=hex,domain=cdn-metrics.example",
    "flood,source=shop/checkout,at=283m,duration=15m,factor=25",
]


def write(c: Cluster, path: str | Path) -> int:
    p = Path(path)
    buf = io.StringIO()
    n = write_openmetrics(c, buf)
    data = buf.getvalue().encode()
    if p.suffix == ".gz":
        data = gzip.compress(data, mtime=0)  # reproducible bytes: CI regenerates and compares
    p.write_bytes(data)
    return n
