"""Flow-log throughput, memory by active keys, and --follow latency: a table and JSON.

    python benchmarks/bench_flows.py [--hours 1] [--keys 10000,100000]

1. Throughput on one core, on a realistic mix where most names repeat: the simulator's busy
   cluster (search-path expansion, services re-queried, benign look-alikes) with a tunnel, a
   slow leak and a flood, rendered as Hubble exporter lines in memory. Parse-only (the line to
   a DnsFlow) beside end to end (parse, features, score, aggregate, judge).
2. Memory bounded by active (workload, registered domain) keys: a child process feeds K keys
   (each a few names, answered) and reports its own peak RSS (VmHWM) minus its RSS before.
3. --follow latency: a real follower process on a file; the time from writing the line that
   completes a finding's evidence to the finding on its stdout (target: within 5 s).
Quote ratios from one run; absolute figures drift between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.flowlines import exchange  # noqa: E402
from watcher import simulate, simulate_flows  # noqa: E402
from watcher.config import Config  # noqa: E402
from watcher.flows.scan import FlowScan  # noqa: E402
from watcher.sources.flows import parse_line  # noqa: E402

INCIDENTS = [
    "tunnel,at=70m,duration=10m,rate=20,encoding=base32,domain=t.fast-tunnel.example",
    "slow_leak,at=5m,duration=100m,rate=0.4,encoding=hex,domain=slow-leak.example",
    "flood,source=shop/checkout,at=95m,duration=15m,factor=25",
]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def throughput(hours: float) -> dict[str, float]:
    c = simulate.build(hours, INCIDENTS, seed=5)
    simulate_flows.add_hard_negatives(c)
    lines = [line.encode() for line in simulate_flows.lines(c)]
    n = len(lines)
    t0 = time.process_time()
    for line in lines:
        parse_line(line)
    parse_s = time.process_time() - t0
    scan = FlowScan(Config())
    t0 = time.process_time()
    scan.feed(lines)
    result = scan.result()
    e2e_s = time.process_time() - t0
    alerts = sorted(
        (f["domain"] or f["source"]) for f in result["findings"] if f["severity"] != "info"
    )
    return {
        "lines": n,
        "parse_only_lines_per_s": n / parse_s,
        "end_to_end_lines_per_s": n / e2e_s,
        "alerts": alerts,  # type: ignore[dict-item]
    }


def child_memory(keys: int) -> None:
    """Run in a child: feed `keys` active pairs, print KiB of peak RSS growth."""
    scan = FlowScan(Config.model_validate({"flows": {"max_pairs": max(keys, 100)}}))
    base = rss_kib()
    t = 1_780_000_000.0
    batch: list[bytes] = []
    for k in range(keys):
        src = f"ns{k % 50}/app{k}-7d9f8b7c6-x2x4q"
        for j in range(3):
            batch += [
                x.encode()
                for x in exchange(t, src, f"h{j}.svc{k}.example{k % 997}.com", ips=["1.2.3.4"])
            ]
            t += 0.01
        if len(batch) > 2_000:  # ~ what a follower reads at once (1 MiB)
            scan.feed(batch)
            batch = []
    scan.feed(batch)
    assert len(scan.window.pairs) == keys, len(scan.window.pairs)
    print(json.dumps({"keys": keys, "peak_growth_kib": hwm_kib() - base}))


def child(script: str, keys: int) -> dict[str, Any]:
    """Run `script --child-keys K` in its own process (its own peak RSS); its last JSON line."""
    out = subprocess.run(
        [sys.executable, script, "--child-keys", str(keys)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory(keys: int) -> dict[str, float]:
    got = child(__file__, keys)
    return {
        "keys": keys,
        "mib": got["peak_growth_kib"] / 1024,
        "bytes_per_key": got["peak_growth_kib"] * 1024 / keys,
    }


def follow_latency(trials: int = 3) -> list[float]:
    out: list[float] = []
    for trial in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "events.log"
            log.write_text("")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "watcher.cli",
                    "flows",
                    "--follow",
                    str(log),
                    "--format",
                    "json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
            )
            time.sleep(2.0)  # started and polling
            lines: list[str] = []
            for i in range(3):
                q = f"{(i + trial * 10) * 2654435761:016x}{'c0ffee42' * 4}.q.lat.example"
                lines += exchange(
                    1_780_000_000.0 + i, "shop/api-7d9f8b7c6-x2x4q", q, "TXT", rrtypes=["TXT"]
                )
            with log.open("a") as fh:
                fh.write("".join(x + "\n" for x in lines[:-1]))
            time.sleep(1.5)
            t0 = time.monotonic()
            with log.open("a") as fh:
                fh.write(lines[-1] + "\n")
            assert proc.stdout is not None
            proc.stdout.readline()
            out.append(time.monotonic() - t0)
            proc.terminate()
            proc.wait(10)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--keys", default="10000,100000")
    ap.add_argument("--child-keys", type=int)
    args = ap.parse_args()
    if args.child_keys:
        child_memory(args.child_keys)
        return 0
    os.environ.setdefault("PYTHONHASHSEED", "0")
    tp = throughput(args.hours)
    mem = [memory(int(k)) for k in args.keys.split(",")]
    lat = follow_latency()
    print(f"{'measure':<46} {'value':>14}")
    print(f"{'flow lines (simulated cluster, ' + str(args.hours) + ' h)':<46} {tp['lines']:>14,}")
    print(f"{'parse only, lines/s (one core)':<46} {tp['parse_only_lines_per_s']:>14,.0f}")
    print(f"{'end to end, lines/s (one core)':<46} {tp['end_to_end_lines_per_s']:>14,.0f}")
    print(f"{'alerts':<46} {', '.join(tp['alerts'])}")  # type: ignore[arg-type]
    for m in mem:
        label = f"memory for {int(m['keys']):,} active keys, MiB"
        print(f"{label:<46} {m['mib']:>14.1f}")
    print(f"{'--follow: finding after the completing line, s':<46} {max(lat):>14.2f}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "bench_flows.json").write_text(
        json.dumps({"throughput": tp, "memory": mem, "follow_latency_s": lat}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
