"""`dnswatch flows FILE` with two checkouts, alternating: a change's cost measured in one run.

    python benchmarks/flows_ab.py FILE BEFORE_DIR AFTER_DIR [--runs 3] [--json PATH]

e.g. `git worktree add /tmp/before HEAD~3`, a history from
`dnswatch simulate --flows --demo --hours 5 -o /tmp/demo5.jsonl.gz`, then
`python benchmarks/flows_ab.py /tmp/demo5.jsonl.gz /tmp/before .`. Each run is a separate process
with that checkout's code; wall time (median), peak RSS (VmHWM, the child's own), the alerts,
and whether both builds reported the same findings. Quote the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scan import PEAK  # noqa: E402  (the child reports its own peak RSS)


def run(tree: Path, path: str) -> tuple[float, float, dict]:  # type: ignore[type-arg]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, "flows", path, "--format", "json", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
    )
    elapsed = time.perf_counter() - start
    peak = [line for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
    return elapsed, int(peak[-1].split()[1]) / 1024, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/results/flows_ab.json")
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    times: dict[str, list[float]] = {k: [] for k in trees}
    rss: dict[str, list[float]] = {k: [] for k in trees}
    reports: dict[str, dict] = {}  # type: ignore[type-arg]
    for _ in range(args.runs):
        for name, tree in trees.items():
            t, r, reports[name] = run(tree, args.file)
            times[name].append(t)
            rss[name].append(r)
    lines = reports["after"]["lines_read"]
    rows = []
    for name in trees:
        median = statistics.median(times[name])
        rows.append(
            {
                "build": name,
                "median_s": round(median, 2),
                "lines_per_s": round(lines / median),
                "peak_rss_mib": round(max(rss[name]), 1),
                "alerts": sum(f["severity"] != "info" for f in reports[name]["findings"]),
            }
        )
    ratio = statistics.median(times["after"]) / statistics.median(times["before"])
    same = reports["after"]["findings"] == reports["before"]["findings"]
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
    print(f"after / before: {ratio:.3f}; same findings: {same}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps({"lines": lines, "rows": rows, "ratio": ratio, "same_findings": same}, indent=2)
    )


if __name__ == "__main__":
    main()
