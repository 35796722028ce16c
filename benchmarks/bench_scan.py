"""Scan time and memory against cluster size, through a real Prometheus: a table and JSON.

    python benchmarks/bench_scan.py [--sizes 0,200,800] [--hours 3] [--baseline DIR]

Each size adds that many filler pods (each resolving 40 distinct names, every series persisting) to
the simulator's busy cluster with a tunnel, backfills it with promtool, starts Prometheus on
127.0.0.1 and times `dnswatch scan --format json` as a separate process (wall time and peak RSS
from wait4). Quote ratios between rows of one run; absolute times drift between machines.
With --baseline DIR (another checkout, e.g. `git worktree add /tmp/base HEAD~3`), the same scans
run with that checkout's code too, alternating with this one's, and the ratio is reported: a
change's cost measured in one run, not across two.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.promserver import PrometheusServer  # noqa: E402
from watcher.simulate import SCRAPE, Pod, add_incident, base_cluster, write_openmetrics  # noqa: E402


def cluster(fillers: int, hours: float) -> tuple[str, int, int]:
    c = base_cluster(hours, seed=5)
    rng = np.random.default_rng(9)
    at = c.minutes - 5
    add_incident(c, "tunnel", rng, domain="t.bench.example", at=at - 10, duration=10, rate=15)
    for i in range(fillers):
        names = [f"api-{j}.svc-{i}.region-{j % 7}.internal-{i % 13}.example.com" for j in range(40)]
        c.pods.append(
            Pod(
                "fill",
                f"app{i}-5c8d7f6b9-{i:05d}"[-30:],
                i % 3,
                0,
                c.minutes,
                names,
                np.full(40, 1 / 40),
                2,
            )
        )
    buf = io.StringIO()
    samples = write_openmetrics(c, buf)
    return buf.getvalue(), samples, c.start + at * SCRAPE


# The child reports its own peak (VmHWM): ru_maxrss from wait4 would carry over the parent's
# high-water mark through fork and exec, and this parent holds whole histories in memory.
PEAK = (
    "import atexit, sys\n"
    "from watcher.cli import main\n"
    "atexit.register(lambda: sys.stderr.write(next(line for line in open('/proc/self/status')"
    " if line.startswith('VmHWM'))))\n"
    "sys.exit(main(sys.argv[1:]))"
)


def run_child(args: list[str], tree: Path = ROOT) -> tuple[float, float, int, str]:
    """Wall time and peak RSS (MiB) of one `dnswatch` process, with `tree`'s code."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *args],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - start
    peak = [line for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
    rss = int(peak[-1].split()[1]) / 1024 if peak else float("nan")
    return elapsed, rss, proc.returncode, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,200,800", help="filler pods per row")
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_scan.json"))
    ap.add_argument("--baseline", type=Path, help="another checkout to time alongside")
    args = ap.parse_args()
    rows = []
    for fillers in [int(s) for s in args.sizes.split(",")]:
        text, samples, at = cluster(fillers, args.hours)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            server = PrometheusServer(Path(tmp), text)
            load = time.perf_counter() - t0
            try:
                value = server.query("count(hubble_dns_queries_total)", at)[0]["value"]
                series = int(float(value[1]))  # type: ignore[index]
                scan = ["scan", "--prometheus-url", server.url, "--at", str(at), "--format", "json"]
                run_child(scan)  # warm Prometheus' caches once
                times, base = [], []
                for _ in range(3):
                    times.append(run_child(scan))
                    if args.baseline:
                        base.append(run_child(scan, args.baseline))
                ok = all(code == 0 for _, _, code, _ in times)
                found = json.loads(times[-1][3])["findings"] if ok else []
                hit = any(f["domain"] == "bench.example" and f["severity"] != "info" for f in found)
                hist = Path(tmp) / "history.om"
                fscan = ["scan", "--metrics-file", str(hist), "--at", str(at), "--format", "json"]
                ftime, frss, fcode, _ = run_child(fscan)
            finally:
                server.stop()
        rows.append(
            {
                "filler_pods": fillers,
                "series_at_scan": series,
                "samples": samples,
                "backfill_and_start_s": round(load, 2),
                "scan_prometheus_s": round(float(np.median([t for t, _, _, _ in times])), 3),
                "scan_prometheus_rss_mib": round(max(r for _, r, _, _ in times), 1),
                "scan_file_s": round(ftime, 2),
                "scan_file_rss_mib": round(frss, 1),
                "tunnel_found": hit and ok and fcode == 0,
            }
        )
        if base:
            b = float(np.median([t for t, _, _, _ in base]))
            rows[-1]["baseline_scan_s"] = round(b, 3)
            rows[-1]["scan_vs_baseline"] = round(rows[-1]["scan_prometheus_s"] / b, 3)
            same = base[-1][3] and json.loads(base[-1][3])["findings"] == found
            rows[-1]["same_findings_as_baseline"] = bool(same)
        print(f"done: {rows[-1]}", file=sys.stderr)
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
