"""A follower's checkpoint: size and write time by active pairs, against the state's memory.

    python benchmarks/bench_checkpoint.py [--keys 10000,100000]

For each K, a child process feeds K active (workload, registered domain) pairs (each a few
names, answered: bench_flows' memory workload, plus every 20th pair a leak-like pair of 40
one-off names, so the names' codes and day slots are not empty), then measures:
- the state's memory: peak RSS growth while feeding (as bench_flows reports it);
- the checkpoint written as the follower writes it (snapshot, pickle, SHA-256, fsync, rename):
  wall seconds and bytes, bytes per pair, and the RSS peak the write adds (the body is built
  in memory before it is written);
- reading it back (checksum, restricted unpickling, restore) in wall seconds.
Quote ratios from one run; absolute figures drift between machines (targets: a write within
1 s and a file no larger than the state in memory at 100k pairs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_flows import child, hwm_kib, rss_kib  # noqa: E402
from tests.flowlines import exchange  # noqa: E402
from watcher.config import Config  # noqa: E402
from watcher.flows.checkpoint import Checkpoint  # noqa: E402
from watcher.flows.scan import FlowScan  # noqa: E402


def run_child(keys: int) -> None:
    cfg = Config.model_validate({"flows": {"max_pairs": max(keys, 100)}})
    scan = FlowScan(cfg)
    base = rss_kib()
    t = 1_780_000_000.0
    batch: list[bytes] = []
    for k in range(keys):
        src = f"ns{k % 50}/app{k}-7d9f8b7c6-x2x4q"
        names = 40 if k % 20 == 0 else 3
        for j in range(names):
            q = f"h{j}x{k * 7919 % 100003:05x}.svc{k}.example{k % 997}.com"
            batch += [x.encode() for x in exchange(t, src, q, ips=["1.2.3.4"])]
            t += 0.01
        if len(batch) > 2_000:
            scan.feed(batch)
            batch = []
    scan.feed(batch)
    assert len(scan.window.pairs) == keys, len(scan.window.pairs)
    state_kib = hwm_kib() - base
    before_write = rss_kib()
    with tempfile.TemporaryDirectory() as tmp:
        ck = Checkpoint(Path(tmp) / "flows.checkpoint", cfg)
        t0 = time.perf_counter()
        written = ck.save(
            scan.snapshot(), {"inode": 1, "offset": 0, "mark": ""}, scan.window.now, keys
        )
        write_s = time.perf_counter() - t0
        write_peak_kib = max(0, hwm_kib() - max(before_write, base + state_kib))
        t0 = time.perf_counter()
        got = ck.load()
        assert got is not None
        again = FlowScan(cfg)
        again.restore(got.state)
        read_s = time.perf_counter() - t0
        assert len(again.window.pairs) == keys
    print(
        json.dumps(
            {
                "pairs": keys,
                "state_mib": state_kib / 1024,
                "checkpoint_mib": written.bytes / 2**20,
                "bytes_per_pair": written.bytes / keys,
                "write_s": write_s,
                "write_extra_peak_mib": write_peak_kib / 1024,
                "read_s": read_s,
            }
        )
    )


def measure(keys: int) -> dict[str, float]:
    return child(__file__, keys)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", default="10000,100000")
    ap.add_argument("--child-keys", type=int)
    args = ap.parse_args()
    if args.child_keys:
        run_child(args.child_keys)
        return 0
    rows = [measure(int(k)) for k in args.keys.split(",")]
    head = ("active pairs", "state MiB", "file MiB", "B/pair", "write s", "+peak MiB", "read s")
    print("".join(f"{h:>14}" for h in head))
    for r in rows:
        print(
            f"{r['pairs']:>14,}{r['state_mib']:>14.1f}{r['checkpoint_mib']:>14.1f}"
            f"{r['bytes_per_pair']:>14.0f}{r['write_s']:>14.2f}{r['write_extra_peak_mib']:>14.1f}"
            f"{r['read_s']:>14.2f}"
        )
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "bench_checkpoint.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
