"""Test histories built with the simulator: each incident and trap at a known minute."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from watcher.simulate import (
    FAMILIES,
    MORE_FAMILIES,
    SCRAPE,
    Cluster,
    Pod,
    add_family,
    add_incident,
    base_cluster,
)


@dataclass
class Composite:
    cluster: Cluster
    incidents: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)
    # name -> (source, registered domain or None for volume, minute to scan at)
    benign_burst_source: str = ""
    private_hosts_source: str = ""
    rerequeried_sources: list[str] = field(default_factory=list)
    benign: list[str] = field(default_factory=list)  # workloads of benign look-alike families
    responses: bool = False  # the history has hubble_dns_responses_total too

    def at(self, minute: int) -> int:
        return self.cluster.start + minute * SCRAPE


def composite(seed: int = 11) -> Composite:
    """8 h of a busy cluster (rollout at 4 h, agent restart on node 1 at 4.8 h, antivirus, DNSBL
    and reverse lookups, CDN/ELB names, a crawler, hourly batch bursts) with incidents."""
    c = base_cluster(8, seed=seed)
    rng = np.random.default_rng(seed + 5)
    comp = Composite(c)
    src = add_incident(
        c,
        "tunnel",
        rng,
        domain="t.tunnel-a.example",
        at=400,
        duration=12,
        rate=15,
        encoding="base32",
    )
    comp.incidents["iodine-like tunnel"] = (src, "tunnel-a.example", 412)
    src = add_incident(
        c,
        "tunnel",
        rng,
        domain="exfil-b.example",
        at=440,
        duration=10,
        rate=12,
        encoding="base64",
        delete_after=3,
    )
    comp.incidents["tunnel from a deleted pod"] = (src, "exfil-b.example", 460)
    src = add_incident(
        c, "slow_leak", rng, domain="leak-c.example", at=120, duration=350, rate=0.2, encoding="hex"
    )
    comp.incidents["low-and-slow hex leak"] = (src, "leak-c.example", 470)
    src = add_incident(
        c, "few_names", rng, domain="few-d.example", at=300, duration=43, rate=3, encoding="base64"
    )
    comp.incidents["three encoded names repeated 43 times"] = (src, "few-d.example", 345)
    src = add_incident(
        c,
        "tunnel",
        rng,
        domain="tunnel.example.org",
        at=200,
        duration=15,
        rate=10,
        encoding="numeric",
    )
    comp.incidents["dnscapy-like numeric tunnel"] = (src, "example.org", 215)
    src = add_incident(
        c,
        "tunnel",
        rng,
        domain="x.dnsexf-e.example",
        at=150,
        duration=8,
        rate=8,
        encoding="base64url",
    )
    comp.incidents["DNSExfiltrator-like tunnel"] = (src, "dnsexf-e.example", 158)
    src = add_incident(c, "flood", rng, source="shop/checkout", at=350, duration=15, factor=30)
    comp.incidents["volume flood"] = (src, None, 365)
    # Persisting series: 100 hosts queried once at start-up (minutes 30-40), then never again.
    hosts = [f"host-{i:03d}.corp-assets.example" for i in range(100)]
    pod = Pod(
        "inventory",
        "warmup-6d5f7c9b8-qx2lz",
        2,
        0,
        c.minutes,
        hosts,
        np.full(100, 0.01),
        40,
        rate_at=lambda m: 1.0 if 30 <= m < 40 else 0.0,
    )
    c.pods.append(pod)
    comp.benign_burst_source = pod.source
    # A job driver talking to ~400 cluster hosts named after their private IPs, under the
    # provider's private-use `.internal` suffix, all day (issue 12's first benign family).
    rng2 = np.random.default_rng(seed + 99)
    ips = [
        f"ip-10-{a}-{b}-{d}.eu-west-1.compute.internal"
        for a, b, d in rng2.integers(1, 255, (400, 3))
    ]
    driver = Pod(
        "batch", "spark-driver-7f8d9c6b5-kq4zt", 0, 0, c.minutes, ips, np.full(400, 1 / 400), 60
    )
    c.pods.append(driver)
    comp.private_hosts_source = driver.source
    # A preview router resolving ~250 names of a wildcard DNS service that writes an IP in the
    # name, and an uploader resolving six storage endpoints named by 32-hex account IDs: both
    # re-query the same names all day (issue 12's second and third benign families).
    previews = [
        f"{a}-{b}-{d}-{e}.preview.wildcard-dns.example"
        for a, b, d, e in rng2.integers(1, 255, (250, 4))
    ]
    router = Pod(
        "edge",
        "preview-router-6c7d8f9b5-mz2kq",
        1,
        0,
        c.minutes,
        previews,
        np.full(250, 1 / 250),
        40,
    )
    stores = [f"{rng2.bytes(16).hex()}.objects.storage-cloud.example" for _ in range(6)]
    uploader = Pod(
        "media", "uploader-5b6c7d8f9-pq3rt", 2, 0, c.minutes, stores, np.full(6, 1 / 6), 12
    )
    c.pods += [router, uploader]
    comp.rerequeried_sources = [router.source, uploader.source]
    return comp


def generalisation(seed: int = 21) -> Composite:
    """7 h of the base cluster, scraped per node (`instance`), with the evasions of issue 12: a
    leak spread over 24 replicas (a few word-encoded names an hour per pod), a payload written as
    dotted IPv4 octets under an unknown zone, and a tunnel from a host-network client (empty
    source label)."""
    c = base_cluster(7, seed=seed)
    rng = np.random.default_rng(seed + 5)
    comp = Composite(c)
    workload = add_incident(
        c,
        "spread_leak",
        rng,
        domain="sync.spread-leak.example",
        at=60,
        duration=360,
        rate=0.05,
        encoding="words",
        replicas=24,
    )
    comp.incidents["leak spread over 24 replicas"] = (workload, "spread-leak.example", 415)
    src = add_incident(
        c,
        "tunnel",
        rng,
        domain="o.octet-leak.example",
        at=300,
        duration=10,
        rate=30,
        encoding="octets",
    )
    comp.incidents["payload as dotted octets"] = (src, "octet-leak.example", 310)
    names = [f"api.{d}" for d in ("github.com", "docker.io", "quay.io")]
    c.pods.append(Pod("", "", 2, 0, c.minutes, names, np.full(3, 1 / 3), 6))
    add_incident(
        c, "tunnel", rng, source="", domain="h.hostnet-leak.example", at=240, duration=10, rate=10
    )
    comp.incidents["tunnel from a host-network client"] = (
        "node/10.0.0.3:9965",
        "hostnet-leak.example",
        250,
    )
    return comp


def day_long(seed: int = 31) -> Composite:
    """26 h of a small cluster: a plain-word leak too slow for the 6 h window (~16 names/h, so
    ~100 in 6 h: info there) but ~370 over the day; beside it, benign pods a day window must not
    page on: 400 hosts of one zone re-queried all day, and a service that meets ~60 new names of
    its tenants' zone a day."""
    c = Cluster(minutes=26 * 60, nodes=2, seed=seed)
    rng = np.random.default_rng(seed)
    comp = Composite(c)
    common = ["api.github.com", "registry-1.docker.io", "sts.googleapis.com"]
    c.pods.append(Pod("shop", "web-6d8f7b9c4-k2x7p", 0, 0, c.minutes, common, np.ones(3) / 3, 8))
    hosts = [f"node-{i:03d}.fleet.hosts-example.net" for i in range(400)]
    c.pods.append(
        Pod("ops", "inventory-5c7d9f8b6-q4w2z", 1, 0, c.minutes, hosts, np.ones(400) / 400, 6)
    )
    tenants = Pod("saas", "router-7f9c8d6b5-m3n8r", 0, 0, c.minutes, common, np.ones(3) / 3, 4)
    for m in range(0, c.minutes, 24):  # a new tenant name every 24 min, re-queried afterwards
        name = f"tenant-{m // 24:03d}.apps.saas-example.com"
        for k in range(m, c.minutes, 30):
            tenants.extra.append((k, name, "A", 1))
    c.pods.append(tenants)
    src = add_incident(
        c,
        "slow_leak",
        rng,
        domain="d.day-leak.example",
        at=60,
        duration=24 * 60,
        rate=0.27,
        encoding="words",
    )
    comp.incidents["leak slower than the 6 h window"] = (src, "day-leak.example", 25 * 60 + 30)
    return comp


def channels(seed: int = 41) -> Composite:
    """7 h of the base cluster with what issue 22 named (tests/test_channels.py): the seed's demo
    (three encoded names, each asked 43 times within two minutes), a slow word-encoded leak of
    ~22 one-off TXT names an hour under a zone only its workload resolves, a fast tunnel; and
    benign families that look encoded or burst-like: an uploader's two replicas resolving the
    same 36 hex-named storage endpoints, a mail server re-asking 40 DKIM selectors all day,
    cert-manager polling 60 ACME challenges, a gateway's SRV discovery, a crawler's one-off
    hosts of many sites (watcher.simulate.FAMILIES)."""
    c = base_cluster(7, seed=seed)
    rng = np.random.default_rng(seed + 3)
    comp = Composite(c)
    for family in FAMILIES:
        comp.benign.append(add_family(c, family, rng))
    src = add_incident(
        c, "retry_names", rng, domain="cdn-sync.example", at=300, rate=43, encoding="base32"
    )
    comp.incidents["seed demo: three names asked 43 times in two minutes"] = (
        src,
        "cdn-sync.example",
        310,
    )
    src = add_incident(
        c,
        "slow_leak",
        rng,
        domain="w.word-leak.example",
        at=60,
        duration=360,
        rate=22 / 60,
        encoding="words",
        qtype="TXT",
    )
    comp.incidents["slow word leak to a private zone"] = (src, "word-leak.example", 60 + 240)
    src = add_incident(
        c, "tunnel", rng, domain="t.fast-tunnel.example", at=200, duration=10, rate=20
    )
    comp.incidents["fast base32 tunnel"] = (src, "fast-tunnel.example", 210)
    return comp


def covert(seed: int = 51) -> Composite:
    """6 h of the base cluster with what issue 30 named: an attacker's own traffic as cover.
    A beacon asking one name a minute all day, beside its tasking burst (60 base32 names in
    10 min) and its download (237 base64 names); 60 base32 chunks beside a 30 s heartbeat;
    250 one-off word names in 12 min to a zone whose server answers every name with its own
    address; an idle C2 polling 16 names for 40 minutes, never answered; a session rotated
    over ten rare domains, ~30 short one-off names each, every answer NXDOMAIN; a secret sent
    in one name, asked once, to a zone only its pod resolves. Benign
    counterparts:
    a health check asking one name of a rare domain every 30 s all day, 40 per-tenant SaaS
    hosts re-asked all day, a job retrying one retired name all day (NXDOMAIN), two agents of a
    network-measurement service asking a few base64url names each, a crawler of thousands of
    sites meeting three hex-named hosts, and the families of watcher.simulate.FAMILIES. With
    the responses metric (answers per name)."""
    c = base_cluster(6, seed=seed)
    rng = np.random.default_rng(seed + 3)
    comp = Composite(c, responses=True)
    for family in FAMILIES:
        comp.benign.append(add_family(c, family, rng))
    src = add_incident(c, "heartbeat", rng, domain="cdn-beacon.example", at=0, duration=360,
                       rate=1, encoding="words")  # fmt: skip
    add_incident(c, "tunnel", rng, source=src, domain="cdn-beacon.example", at=180, duration=10,
                 rate=6, encoding="base32")  # fmt: skip
    add_incident(c, "tunnel", rng, source=src, domain="cdn-beacon.example", at=260, duration=20,
                 rate=12, encoding="base64")  # fmt: skip
    comp.incidents["a beacon's heartbeat beside its tasking burst"] = (
        src,
        "cdn-beacon.example",
        190,
    )
    src = add_incident(c, "heartbeat", rng, domain="sync-hb.example", at=0, duration=360,
                       rate=2, encoding="words")  # fmt: skip
    add_incident(c, "tunnel", rng, source=src, domain="sync-hb.example", at=120, duration=30,
                 rate=2, encoding="base32")  # fmt: skip
    comp.incidents["base32 chunks beside a 30 s heartbeat"] = (src, "sync-hb.example", 130)
    src = add_incident(c, "tunnel", rng, domain="w.cover-words.example", at=300, duration=12,
                       rate=21, encoding="words", answers="addresses")  # fmt: skip
    comp.incidents["one-off names answered with addresses by their own server"] = (
        src,
        "cover-words.example",
        310,
    )
    # An idle C2 polling 16 names in turn (each every 4 min) for 40 min, never answered.
    src = add_incident(c, "heartbeat", rng, domain="cdn-poll.example", at=200, duration=40,
                       rate=4, fixed_names=16, encoding="base32", answers="none")  # fmt: skip
    comp.incidents["an idle C2 polling 16 names, never answered"] = (src, "cdn-poll.example", 235)
    # A session rotated over ten look-alike domains, ~30 short one-off names each, failing.
    src = add_incident(c, "session", rng, domain="cdn-update.example", at=100, duration=30,
                       rate=10, replicas=10, encoding="numeric", answers="nxdomain")  # fmt: skip
    comp.incidents["a session rotated over ten rare domains"] = (src, "", 110)
    # A credential (~60 bytes) sent in one name, asked once, to a zone no one else resolves.
    src = add_incident(c, "tunnel", rng, domain="vault-sync.example", at=150, duration=1,
                       rate=1, encoding="base32", answers="nxdomain")  # fmt: skip
    comp.incidents["a secret in one name to a zone only it resolves"] = (
        src,
        "vault-sync.example",
        155,
    )
    # A health check, SaaS tenants' hosts, a broken lookup, a measurement service, a crawler.
    for family in MORE_FAMILIES:
        comp.benign.extend(add_family(c, family, rng).split())
    return comp
