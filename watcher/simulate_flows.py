"""A simulated cluster rendered as Hubble flow lines (`hubble observe -o jsonpb` / exporter).

The same workloads and incidents as the metrics simulator (watcher.simulate), every query a
REQUEST flow from the client pod and a RESPONSE flow to it, shaped exactly like the real lines
in tests/fixtures/flows: search-path expansion (NXDOMAIN for each cluster suffix first), cluster
services and outside hosts answered with addresses, tunnel names answered by the attacker's
server in their query type (TXT/NULL data, CNAME) or NXDOMAIN, DNSBL misses as NXDOMAIN.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

from watcher.simulate import CLUSTER_DOMAIN, Cluster, Pod


def _ts(t: float) -> str:
    whole = int(t)
    ns = round((t - whole) * 1e9)
    return datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def _endpoint(pod: Pod | None, ident: int) -> dict[str, object]:
    if pod is None:
        return {
            "identity": 48342,
            "namespace": "kube-system",
            "labels": ["k8s:io.kubernetes.pod.namespace=kube-system", "k8s:k8s-app=kube-dns"],
            "pod_name": "coredns-558bd4d5db-w2m67",
        }
    app = pod.name.rsplit("-", 2)[0] if pod.name.count("-") >= 2 else pod.name.rsplit("-", 1)[0]
    return {
        "ID": ident,
        "identity": 10000 + ident,
        "namespace": pod.ns,
        "labels": [f"k8s:app={app}", f"k8s:io.kubernetes.pod.namespace={pod.ns}"],
        "pod_name": pod.name,
    }


def _answer(
    name: str, qtype: str, rng: np.random.Generator, attacker: str | None = None
) -> dict[str, object] | None:
    """What the resolver answers: rcode, ips, cnames, rrtypes (None: no answer). An attacker's
    server (watcher.simulate.Pod.answers) answers A queries with one fixed address (or
    NXDOMAIN), data types with data; or every name with its own address; or NXDOMAIN."""
    if attacker == "none":
        return None
    if attacker == "nxdomain":
        return {"rcode": 3}
    if attacker == "addresses":
        h = zlib.crc32(name.encode())
        return {"ips": [f"198.18.{h >> 8 & 0xFF}.{h & 0xFF}"], "rrtypes": ["A"]}
    if attacker and qtype in ("A", "AAAA"):
        if rng.random() < 0.3:
            return {"rcode": 3}
        h = sum(".".join(name.rstrip(".").split(".")[-2:]).encode())
        return {"ips": [f"203.0.113.{h % 250 + 1}"], "rrtypes": ["A"]}
    if name.endswith("." + CLUSTER_DOMAIN + "."):
        if ".svc." + CLUSTER_DOMAIN in name and name.count(".") == 5:
            return {
                "ips": [f"10.96.{rng.integers(0, 255)}.{rng.integers(1, 255)}"],
                "rrtypes": ["A"],
            }
        return {"rcode": 3}
    if ".zen.spamhaus.org." in name or ".in-addr.arpa." in name:
        return {"rcode": 3}
    if qtype in ("TXT", "NULL"):
        return {"rrtypes": [qtype]}
    if qtype == "CNAME":
        return {"cnames": [f"{rng.integers(0, 1 << 30):x}.x.invalid."], "rrtypes": ["CNAME"]}
    return {
        "ips": [".".join(str(int(x)) for x in rng.integers((1, 0, 0, 1), (223, 255, 255, 255)))],
        "rrtypes": ["A"],
    }


def _line(
    t: float,
    pod: Pod,
    ident: int,
    ip: str,
    node: str,
    name: str,
    qtype: str,
    answer: dict[str, object] | None,
) -> str:
    client, server = _endpoint(pod, ident), _endpoint(None, 0)
    dns: dict[str, object] = {"query": name, "observation_source": "proxy", "qtypes": [qtype]}
    if answer is None:
        flow: dict[str, object] = {
            "time": _ts(t),
            "verdict": "FORWARDED",
            "IP": {"source": ip, "destination": "10.244.1.227", "ipVersion": "IPv4"},
            "l4": {"UDP": {"source_port": 40000 + ident % 20000, "destination_port": 53}},
            "source": client,
            "destination": server,
            "Type": "L7",
            "node_name": node,
            "l7": {"type": "REQUEST", "dns": dns},
            "event_type": {"type": 129},
            "traffic_direction": "EGRESS",
            "is_reply": False,
            "Summary": f"DNS Query {name} {qtype}",
        }
    else:
        dns.update({k: v for k, v in answer.items() if k != "rcode"})
        if answer.get("rcode"):
            dns["rcode"] = answer["rcode"]
        dns["ttl"] = 30
        flow = {
            "time": _ts(t),
            "verdict": "FORWARDED",
            "IP": {"source": "10.244.1.227", "destination": ip, "ipVersion": "IPv4"},
            "l4": {"UDP": {"source_port": 53, "destination_port": 40000 + ident % 20000}},
            "source": server,
            "destination": client,
            "Type": "L7",
            "node_name": node,
            "l7": {"type": "RESPONSE", "dns": dns},
            "reply": True,
            "event_type": {"type": 129},
            "traffic_direction": "EGRESS",
            "is_reply": True,
            "Summary": f"DNS Answer (Proxy {name} {qtype})",
        }
    return json.dumps({"flow": flow, "node_name": node, "time": _ts(t)}, separators=(",", ":"))


def _expand(name: str, ns: str) -> list[str]:
    """Search-path expansion with ndots:5: the cluster suffixes first, then the name."""
    fq = name.rstrip(".") + "."
    if name.endswith(CLUSTER_DOMAIN) or name.count(".") >= 5:
        return [fq]
    base = name.rstrip(".")
    return [
        f"{base}.{ns}.svc.{CLUSTER_DOMAIN}.",
        f"{base}.svc.{CLUSTER_DOMAIN}.",
        f"{base}.{CLUSTER_DOMAIN}.",
        fq,
    ]


def add_hard_negatives(c: Cluster, seed: int = 11) -> None:
    """Benign families that look like channels by shape or count, but are real hosts: resolved
    to addresses and re-queried all day (see docs/detection.md)."""
    rng = np.random.default_rng(seed)

    def octet() -> int:
        return int(rng.integers(0, 255))

    families = [
        # A job driver talking to cluster hosts named after their private IPs.
        (
            "batch",
            "spark-driver",
            [f"ip-10-{octet()}-{octet()}-{octet()}.eu-west-1.compute.internal" for _ in range(400)],
            60.0,
        ),
        # A preview router resolving a wildcard DNS service that encodes an IP in the name.
        (
            "preview",
            "router",
            [f"{octet()}-{octet()}-{octet()}-{octet()}.nip.io" for _ in range(250)],
            40.0,
        ),
        # An uploader steadily resolving storage endpoints named by 32-hex account IDs.
        (
            "media",
            "uploader",
            [f"{rng.bytes(16).hex()}.objects.storage-cloud.example" for _ in range(6)],
            12.0,
        ),
        # Mail: DKIM and DMARC TXT lookups for many senders.
        (
            "mail",
            "dkim-verifier",
            [f"selector{i % 3}._domainkey.sender{i}.example" for i in range(60)]
            + [f"_dmarc.sender{i}.example" for i in range(60)],
            10.0,
        ),
    ]
    for ns, app, names, rate in families:
        name = f"{app}-{rng.bytes(4).hex()[:9]}-{rng.bytes(3).hex()[:5]}"
        w = np.full(len(names), 1.0 / len(names))
        c.pods.append(Pod(ns, name, int(rng.integers(0, c.nodes)), 0, c.minutes, names, w, rate))


def lines(c: Cluster, minutes: int | None = None) -> Iterator[str]:
    rng = np.random.default_rng(c.seed + 1000)
    ids = {id(p): i + 1 for i, p in enumerate(c.pods)}
    ips = {id(p): f"10.244.{p.node}.{(i % 250) + 2}" for i, p in enumerate(c.pods)}
    end = min(c.minutes, minutes) if minutes else c.minutes
    extras: dict[int, list[tuple[Pod, str, str, int]]] = {}
    for p in c.pods:
        for m, q, qt, n in p.extra:
            extras.setdefault(m, []).append((p, q, qt, n))
    for m in range(end):
        batch: list[tuple[float, str]] = []
        for p in c.pods:
            if not (p.start <= m < p.end):
                continue
            node = f"node-{p.node}"
            k = int(rng.poisson(p.rate * p.rate_at(m)))
            picks: list[int] = list(rng.choice(len(p.names), size=k, p=p.weights)) if k else []
            for i in picks:
                t = c.start + m * 60 + float(rng.random()) * 60
                for j, name in enumerate(_expand(p.names[i], p.ns)):
                    tt = t + j * 0.002
                    batch.append(
                        (tt, _line(tt, p, ids[id(p)], ips[id(p)], node, name, p.qtype, None))
                    )
                    batch.append(
                        (
                            tt + 0.001,
                            _line(
                                tt + 0.001,
                                p,
                                ids[id(p)],
                                ips[id(p)],
                                node,
                                name,
                                p.qtype,
                                _answer(name, p.qtype, rng),
                            ),
                        )
                    )
        for p, q, qt, n in extras.get(m, []):
            node = f"node-{p.node}"
            for _ in range(n):
                t = c.start + m * 60 + float(rng.random()) * 60
                name = q.rstrip(".") + "."
                batch.append((t, _line(t, p, ids[id(p)], ips[id(p)], node, name, qt, None)))
                answer = _answer(name, qt, rng, attacker=p.answers)
                if answer is None:
                    continue
                batch.append(
                    (
                        t + 0.02,
                        _line(
                            t + 0.02,
                            p,
                            ids[id(p)],
                            ips[id(p)],
                            node,
                            name,
                            qt,
                            answer,
                        ),
                    )
                )
        batch.sort(key=lambda x: x[0])
        for _, line in batch:
            yield line


def write(
    c: Cluster, path: str | Path | None, out: IO[str] | None = None, minutes: int | None = None
) -> int:
    n = 0
    if out is not None:
        for line in lines(c, minutes):
            out.write(line + "\n")
            n += 1
        return n
    p = Path(str(path))
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "wt", encoding="utf-8") as fh:
        for line in lines(c, minutes):
            fh.write(line + "\n")
            n += 1
    return n
