"""A big cluster's Hubble DNS history, written fast enough for 100k-1M series (numpy per series).

    python benchmarks/scale_history.py --series 30000 --out /tmp/h.om   # writes h.om + h.json

Thousands of pods over tens of nodes, ~24 series a pod: two cluster services, four shared
outside names each expanded by the search path (ndots:5, three NXDOMAIN cluster-domain names
before the real one), and a few one-off names (also expanded) that persist until the pod goes.
Busy pods (lognormal, ~1.5 q/s median), a rollout replacing 8% of pods, one agent restart.
Three incidents: a fast base32 tunnel in the last 12 minutes, a slow hex leak (one name every
4 minutes for 6 h) and a 40x flood in the last 15 minutes. The metadata (.json) names them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.simulate import ENCODERS  # noqa: E402

METRIC = "hubble_dns_queries_total"
SCRAPE = 60
CLUSTER = "cluster.local"


@dataclass
class PodSpec:
    ns: str
    name: str
    node: int
    start: int  # first minute
    end: int  # minute deleted (series vanish a minute later)
    rate: float  # queries per minute
    services: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    # (minute, name, qtype): one query each (one-off names, tunnel chunks)
    once: list[tuple[int, str, str]] = field(default_factory=list)
    factor: tuple[int, int, float] | None = None  # (from, to, multiplier): a flood

    @property
    def source(self) -> str:
        return f"{self.ns}/{self.name}"


def _expand(name: str, ns: str) -> list[str]:
    if name.endswith(CLUSTER) or name.count(".") >= 5:
        return [name]
    return [f"{name}.{ns}.svc.{CLUSTER}", f"{name}.svc.{CLUSTER}", f"{name}.{CLUSTER}", name]


def _token(rng: np.random.Generator, n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))


def build(series: int, hours: float, seed: int) -> tuple[list[PodSpec], dict[str, object], int]:
    rng = np.random.default_rng(seed)
    minutes = int(hours * 60)
    pods_n = max(40, series // 24)
    nodes = int(min(60, max(10, pods_n // 110)))
    outside_pool = [
        f"api{j}.vendor{j % 397}.example.com" if j % 3 else f"cdn{j}.assets{j % 211}.example.net"
        for j in range(max(200, pods_n // 2))
    ]
    pods: list[PodSpec] = []
    for i in range(pods_n):
        ns = f"team{i % 40:02d}"
        app = f"app{i // 4}"
        name = f"{app}-{_token(rng, 9)}-{_token(rng, 5)}"
        rate = float(min(600.0, rng.lognormal(np.log(90), 0.8)))
        p = PodSpec(ns, name, i % nodes, 0, minutes, rate)
        p.services = [f"svc{(i + k) % 50}.{ns}.svc.{CLUSTER}" for k in range(2)]
        p.outside = [outside_pool[j] for j in rng.choice(len(outside_pool), 4, replace=False)]
        for _ in range(int(rng.poisson(1.5))):
            p.once.append(
                (int(rng.integers(0, minutes)), f"t{_token(rng, 10)}.cdn.example.net", "A")
            )
        pods.append(p)
    # A rollout: 8% of pods replaced by new pods of the same workload at a random minute.
    for p in list(pods[: pods_n * 8 // 100]):
        at = int(rng.integers(minutes // 4, max(minutes // 4 + 1, minutes - 30)))
        p.end = at
        new = PodSpec(
            p.ns,
            f"{p.name.rsplit('-', 2)[0]}-{_token(rng, 9)}-{_token(rng, 5)}",
            p.node,
            at,
            minutes,
            p.rate,
            p.services,
            p.outside,
        )
        pods.append(new)
    incidents: dict[str, object] = {}
    # A fast tunnel: ~30 unique base32 names a minute for 10 minutes, from a new worker pod.
    tunnel = PodSpec(
        "default",
        f"worker-{_token(rng, 9)}-{_token(rng, 5)}",
        1,
        minutes - 40,
        minutes,
        20.0,
        ["svc0.default.svc.cluster.local"],
        [outside_pool[0]],
    )
    enc = ENCODERS["base32"]
    seq = 0
    for m in range(minutes - 12, minutes - 2):
        for _ in range(int(rng.poisson(30))):
            tunnel.once.append((m, f"{enc(rng, seq)}.t.tunnel-scale.example", "NULL"))
            seq += 1
    pods.append(tunnel)
    incidents["fast tunnel"] = {"source": tunnel.source, "domain": "tunnel-scale.example"}
    # A slow leak: one hex name every 4 minutes for 6 hours from an ordinary pod.
    leaker = pods[pods_n // 2]  # past the rolled-out pods: alive all along
    hexenc = ENCODERS["hex"]
    for k, m in enumerate(range(max(0, minutes - 360), minutes, 4)):
        leaker.once.append((m, f"{hexenc(rng, k)}.leak-scale.example", "CNAME"))
    incidents["slow leak"] = {"source": leaker.source, "domain": "leak-scale.example"}
    # A flood: 40x an ordinary pod's rate for the last 15 minutes.
    flooder = pods[pods_n // 2 + 1]
    flooder.factor = (minutes - 15, minutes, 40.0)
    incidents["flood"] = {"source": flooder.source, "domain": None}
    meta = {
        "minutes": minutes,
        "pods": len(pods),
        "nodes": nodes,
        "incidents": incidents,
        "restart": {"node": 3, "minute": minutes // 2},
    }
    return pods, meta, minutes


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def span(hours: float = 7.0, end: int | None = None) -> tuple[int, int]:
    """The history's first and last sample times (the last on a whole hour)."""
    end = end if end is not None else 1_780_000_000 - 1_780_000_000 % 3600
    return end - int(hours * 60) * SCRAPE, end


def slices(count: int, hours: float = 7.0, block: int = 7200) -> list[tuple[int, int]]:
    """Up to `count` time slices of about equal length, cut on `block` boundaries (promtool's
    2 h blocks), so slices back-filled one after another never write overlapping blocks."""
    start, end = span(hours)
    cuts = [t for t in range(start - start % block + block, end + 1, block) if start < t < end]
    chosen = sorted(
        {
            min(cuts, key=lambda t: abs(t - (start + i * (end - start) / count)))
            for i in range(1, count)
        }
        if cuts
        else set()
    )
    edges = [start, *chosen, end + 1]
    return list(pairwise(edges))


def write(
    path: Path,
    series: int,
    hours: float = 7.0,
    seed: int = 3,
    end: int | None = None,
    part: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write the OpenMetrics history (series by series) and its metadata; returns the metadata.
    `part` = (since, until): only the samples stamped in [since, until), so a history bigger
    than the disk can be written and back-filled a time slice at a time; the metadata (series,
    samples) is the whole history's whatever the part."""
    pods, meta, minutes = build(series, hours, seed)
    rng = np.random.default_rng(seed + 1)
    start, end = span(hours, end)
    stamps = [f" {start + (m + 1) * SCRAPE}\n" for m in range(minutes)]
    restart_node, restart_at = meta["restart"]["node"], meta["restart"]["minute"]  # type: ignore[index]
    since, until = part or (start, end + 1)
    # Minutes whose sample (stamped at the minute's end) falls in the part.
    lo, hi = max(0, -(-(since - start) // SCRAPE) - 1), max(0, -(-(until - start) // SCRAPE) - 1)
    n_series = samples = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"# HELP {METRIC[:-6]} Number of DNS queries observed\n")
        out.write(f"# TYPE {METRIC[:-6]} counter\n")
        for p in pods:
            life = np.zeros(minutes)
            life[p.start : p.end] = p.rate
            if p.factor:
                life[p.factor[0] : p.factor[1]] *= p.factor[2]
            # Series per name: the weight of each name's expansion chain in the pod's rate.
            chains = [(s, 0.25, "A") for s in p.services] + [(o, 0.12, "A") for o in p.outside]
            instance = f'instance="10.0.{p.node}.1:9965"'
            src = f'source="{_esc(p.source)}"'
            per_minute: list[tuple[str, str, np.ndarray]] = []
            for name, share, qtype in chains:
                counts = rng.poisson(life * share)
                for fq in _expand(name, p.ns):
                    per_minute.append((fq, qtype, counts))
            for m, name, qtype in p.once:
                if not p.start <= m < p.end:
                    continue
                one = np.zeros(minutes, dtype=np.int64)
                one[m] = 1
                for fq in _expand(name, p.ns):
                    per_minute.append((fq, qtype, one))
            last = min(minutes, p.end + 1)  # the endpoint's series go a minute after the pod
            for fq, qtype, counts in per_minute:
                c = np.asarray(counts, dtype=np.int64).copy()
                c[last:] = 0
                values = np.cumsum(c)
                first = int(np.argmax(c > 0)) if c.any() else -1
                if first < 0:
                    continue
                present = np.zeros(minutes, dtype=bool)
                present[first:last] = True
                if p.node == restart_node and first < restart_at < last:
                    # The agent restarts: counters start again at the next query.
                    values[restart_at:] -= values[restart_at - 1]
                    after = c[restart_at:last]
                    present[restart_at:last] = False
                    if after.any():
                        present[restart_at + int(np.argmax(after > 0)) : last] = True
                head = (
                    f'{METRIC}{{{instance},qtypes="{qtype}",query="{_esc(fq.lower())}.",'
                    f'rcode="",{src}}} '
                )
                idx = np.nonzero(present)[0]
                n_series += 1
                samples += len(idx)
                idx = idx[(idx >= lo) & (idx < hi)]
                vals = values[idx].tolist()
                out.write(
                    "".join(
                        [head + str(v) + stamps[m] for v, m in zip(vals, idx.tolist(), strict=True)]
                    )
                )
        out.write("# EOF\n")
    meta.update(
        {"series_written": n_series, "samples": samples, "start": start, "end": end, "at": end}
    )
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=2))
    return meta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=30000)
    ap.add_argument("--hours", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    meta = write(Path(args.out), args.series, args.hours, args.seed)
    print(json.dumps({k: meta[k] for k in ("series_written", "samples", "pods", "nodes")}))


if __name__ == "__main__":
    main()
