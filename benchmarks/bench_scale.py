"""Scan cost at cluster scale against Prometheus's own floor: a table and JSON (issue 9).

    python benchmarks/bench_scale.py [--sizes 30000,100000,300000] [--file-max 100000]

For each N (series written), in one run: write the history (benchmarks/scale_history.py: 7 h at a
60 s scrape, thousands of pods on tens of nodes, search-path expansions, one-off names, a rollout,
an agent restart, a fast tunnel, a slow leak and a flood), backfill it with promtool, start a
real Prometheus on 127.0.0.1, then measure:
  floor    Prometheus's own time for the minimal aggregate queries a scan needs (FLOOR below);
  watcher  `dnswatch scan --format json` as a child process: wall time, peak RSS, time waiting on
           HTTP, incidents found, other alerts; again with prometheus.parallel_queries 1 (serial),
           and the floor's queries two at a time (floor_parallel_s) to compare like with like;
  naive    prometheus-api-client range data of every series over the 6 h window into pandas,
           then groupby (what a user would write first), as a child with a time limit, for
           N <= --naive-max (above it Prometheus and the naive's 12 GB cap outgrow 24 GiB);
  rules    each shipped recording rule evaluated once at the scan time; per minute = each rule's
           seconds over its group's interval (cheap group 1m, names group 2m);
  file     `dnswatch scan --metrics-file` on the same history, for N <= --file-max;
and Prometheus's peak RSS. Quote ratios within a run: absolute times drift between machines.

At 1M series (docs/performance.md): `--slices 4 --keep DIR` writes and back-fills the ~65 GB
history a 2 h slice at a time and keeps the blocks; `--data DIR` measures on them again;
`--max-samples`, `--query-timeout` raise Prometheus's limits (its defaults refuse the floor) and
`--cold` skips the warm-up and serial runs; `--fresh` scans first, on a just-started Prometheus
with the page cache dropped (as root), then measures the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scale_history  # noqa: E402
from tests.promserver import PrometheusServer, require  # noqa: E402

M = "hubble_dns_queries_total"
X = M + r'{query!="",query!~"(?s)(?:.*\\.)?cluster\\.local\\.?"}'
ZONE = r'"zone", "$1", "query", "(?s)(?:.*\\.)?([^.]+\\.[^.]+)\\.?"'
# The least a scan can ask: distinct names per (source, zone) over 10 min and 6 h as instant
# comparisons (new series, or grown since the window began), and per-source rates over the prior
# day as one range query at a 5 min step.
FLOOR: dict[str, tuple[str, tuple[int, int] | None]] = {
    f"zone counts {w}": (
        f"count by (source, zone) (count by (source, zone, query) (label_replace("
        f"({X} unless {X} offset {w}) or ({X} - {X} offset {w} > 0), {ZONE})))",
        None,
    )
    for w in ("10m", "6h")
}
FLOOR["source rates 24h"] = (f"sum by (source) (rate({M}[5m]))", (86400, 300))

# The child reports its own peak (VmHWM) and the seconds during which at least one HTTP call
# was in flight (queries run two at a time: a sum over threads would exceed the wall time).
WATCHER = """
import atexit, sys, threading, time
from watcher.sources.prometheus.client import PrometheusClient as P
spent, busy, lock = [0.0], [0, 0.0], threading.Lock()
call = P.call
def timed(self, *a, **k):
    with lock:
        busy[0] += 1
        if busy[0] == 1:
            busy[1] = time.perf_counter()
    try:
        return call(self, *a, **k)
    finally:
        with lock:
            busy[0] -= 1
            if busy[0] == 0:
                spent[0] += time.perf_counter() - busy[1]
P.call = timed
def report():
    hwm = next(x for x in open('/proc/self/status') if x.startswith('VmHWM'))
    sys.stderr.write(f"HTTP {spent[0]:.3f}\\n{hwm}")
atexit.register(report)
from watcher.cli import main
sys.exit(main(sys.argv[1:]))
"""

NAIVE = """
import atexit, sys
import pandas as pd
from prometheus_api_client import MetricRangeDataFrame, PrometheusConnect
atexit.register(lambda: sys.stderr.write(next(x for x in open('/proc/self/status')
    if x.startswith('VmHWM'))))
url, at = sys.argv[1], float(sys.argv[2])
from datetime import datetime, UTC
prom = PrometheusConnect(url, disable_ssl=True, timeout=3600)
data = prom.custom_query_range('hubble_dns_queries_total{query!=""}',
    start_time=datetime.fromtimestamp(at - 21600, UTC), end_time=datetime.fromtimestamp(at, UTC),
    step='60s')
df = MetricRangeDataFrame(data)
df = df[~df['query'].str.endswith('cluster.local.')]
df['zone'] = df['query'].str.rstrip('.').str.split('.').str[-2:].str.join('.')
active = df.groupby(['source', 'query'])['value'].agg(lambda v: v.astype(float).max() -
    v.astype(float).min() > 0 or len(v) < 360)
zones = active[active].reset_index()
zones['zone'] = zones['query'].str.rstrip('.').str.split('.').str[-2:].str.join('.')
print(len(zones.groupby(['source', 'zone'])['query'].nunique()))
"""


def child(code: str, args: list[str], limit: float, memory_gb: float = 0) -> dict[str, Any]:
    def cap() -> None:  # the naive way can outgrow the machine: stop it at memory_gb
        if memory_gb:
            size = int(memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=limit,
            check=False,
            preexec_fn=cap,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "wall_s": round(limit, 1), "error": f"over {limit:.0f}s, stopped"}
    wall = time.perf_counter() - start
    hwm = [x for x in proc.stderr.splitlines() if x.startswith("VmHWM")]
    http = [x for x in proc.stderr.splitlines() if x.startswith("HTTP ")]
    out: dict[str, Any] = {
        "ok": proc.returncode in (0, 1),
        "wall_s": round(wall, 2),
        "rss_mib": round(int(hwm[-1].split()[1]) / 1024, 1) if hwm else None,
        "stdout": proc.stdout,
    }
    if http:
        out["http_s"] = round(float(http[-1].split()[1]), 2)
    if not out["ok"]:
        lines = [x for x in proc.stderr.splitlines() if x and not x.startswith(("VmHWM", "HTTP"))]
        out["error"] = (lines[-1] if lines else f"exit {proc.returncode}")[:200]
    return out


def timed_query(url: str, expr: str, at: float, span: tuple[int, int] | None) -> float:
    start = time.perf_counter()
    if span is None:
        r = requests.post(f"{url}/api/v1/query", data={"query": expr, "time": at}, timeout=3600)
    else:
        r = requests.post(
            f"{url}/api/v1/query_range",
            data={"query": expr, "start": at - span[0], "end": at, "step": span[1]},
            timeout=3600,
        )
    r.raise_for_status()
    return time.perf_counter() - start


def judge(findings: list[dict[str, Any]], incidents: dict[str, Any]) -> tuple[list[str], int]:
    alerts = [f for f in findings if f["severity"] != "info"]
    found, matched = [], set()
    for name, inc in incidents.items():
        hits = [
            i
            for i, f in enumerate(alerts)
            if f["source"] == inc["source"] and f["domain"] == inc["domain"]
        ]
        if hits:
            found.append(name)
        matched.update(hits)
        # Other kinds on an incident's own source and domain are the same incident.
        matched.update(
            i
            for i, f in enumerate(alerts)
            if f["source"] == inc["source"]
            and (inc["domain"] is None or f["domain"] == inc["domain"])
        )
    return found, len(alerts) - len(matched)


def measure(
    n: int,
    work: Path,
    file_max: int,
    naive_limit: float,
    naive_max: int,
    slices: int = 1,
    flags: tuple[str, ...] = (),
    reuse: Path | None = None,
    keep: Path | None = None,
    timeout: str = "",
    warm: bool = True,
    fresh: bool = False,
) -> dict[str, Any]:
    hist = work / "history.om"
    data = work / "data"
    write_s = backfill_s = 0.0
    size = 0
    if reuse:  # a history back-filled by an earlier run: its blocks, linked (Prometheus
        # compacts the copy, never the kept blocks), and its metadata
        data.mkdir()
        for block in reuse.iterdir():
            if block.is_dir():
                shutil.copytree(block, data / block.name, copy_function=os.link)
        meta = json.loads((reuse / "history.om.json").read_text())
        slices = 0  # no file to scan
    # A history bigger than the disk is written and back-filled a time slice at a time
    # (promtool adds each slice's blocks to the same data directory).
    for part in scale_history.slices(slices) if slices else []:
        t0 = time.perf_counter()
        meta = scale_history.write(hist, n, part=part if slices > 1 else None)
        write_s += time.perf_counter() - t0
        size += hist.stat().st_size
        t0 = time.perf_counter()
        subprocess.run(
            [
                require("promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(hist),
                str(data),
            ],
            check=True,
            capture_output=True,
        )
        backfill_s += time.perf_counter() - t0
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(str(hist) + ".json", keep / "history.om.json")
            for block in data.iterdir():
                if block.is_dir() and not (keep / block.name).exists():
                    shutil.copytree(block, keep / block.name, copy_function=os.link)
        if slices > 1:
            hist.unlink()
    at = float(meta["at"])
    row: dict[str, Any] = {
        "series": meta["series_written"],
        "pods": meta["pods"],
        "samples": meta["samples"],
        "history_gb": round(size / 1e9, 2) if size else None,
        "prometheus_flags": " ".join(flags),
        "write_s": round(write_s, 1),
        "backfill_s": round(backfill_s, 1),
    }
    if fresh:  # nothing cached: the page cache dropped (root only) before Prometheus starts
        subprocess.run(["sync"], check=False)
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            row["fresh"] = "page cache dropped"
        except OSError as exc:
            row["fresh"] = f"page cache kept ({exc.strerror})"
    server = PrometheusServer(work, None, flags=list(flags))
    try:
        scan = ["scan", "--prometheus-url", server.url, "--at", str(int(at)), "--format", "json"]
        if timeout:  # the client waits as long as the server may take (prometheus.timeout)
            (work / "timeout.yaml").write_text(f"prometheus:\n  timeout: {timeout}\n")
            scan += ["--config", str(work / "timeout.yaml")]
        if fresh:  # the scan is the server's first query
            w = child(WATCHER, scan, 3600)
        for expr, span in FLOOR.values() if warm else ():  # warm the caches once, as for
            timed_query(server.url, expr, at, span)  # every measurement
        floor = {k: timed_query(server.url, e, at, s) for k, (e, s) in FLOOR.items()}
        row["floor_s"] = round(sum(floor.values()), 2)
        row["floor_parts_s"] = {k: round(v, 2) for k, v in floor.items()}
        # The same queries two at a time (the scan's default prometheus.parallel_queries).
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda es: timed_query(server.url, es[0], at, es[1]), FLOOR.values()))
        row["floor_parallel_s"] = round(time.perf_counter() - t0, 2)
        if warm:
            child(WATCHER, scan, 3600)
        if not fresh:
            w = child(WATCHER, scan, 3600)
        row["warm"] = warm
        row["watcher_s"] = w["wall_s"]
        row["watcher_rss_mib"] = w.get("rss_mib")
        row["watcher_http_s"] = w.get("http_s")
        row["watcher_vs_floor"] = round(w["wall_s"] / row["floor_s"], 2)
        if warm:
            serial = work / "serial.yaml"
            serial.write_text(
                "prometheus:\n  parallel_queries: 1\n"
                + (f"  timeout: {timeout}\n" if timeout else "")
            )
            cut = scan[: scan.index("--config")] if timeout else scan
            w1 = child(WATCHER, [*cut, "--config", str(serial)], 3600)
            row["watcher_serial_s"] = w1["wall_s"]
            row["serial_vs_floor"] = round(w1["wall_s"] / row["floor_s"], 2)
        if w["ok"]:
            report = json.loads(w["stdout"])
            found, other = judge(report["findings"], meta["incidents"])
            row["incidents_found"] = f"{len(found)}/{len(meta['incidents'])}"
            row["other_alerts"] = other
            row["warnings"] = len(report["warnings"])
        else:
            row["watcher_error"] = w.get("error")
        rules = yaml.safe_load((ROOT / "rules" / "hubble-dns.rules.yml").read_text())
        # Seconds of evaluation per minute: each rule's time over its group's interval.
        every = {
            r["record"]: int(str(g.get("interval", "1m")).rstrip("m"))
            for g in rules["groups"]
            for r in g["rules"]
            if "record" in r
        }
        recording = [r for g in rules["groups"] for r in g["rules"] if "record" in r]
        per_rule = {r["record"]: timed_query(server.url, r["expr"], at, None) for r in recording}
        row["rules_eval_s_per_min"] = round(sum(v / every[k] for k, v in per_rule.items()), 2)
        row["rules_parts_s"] = {k: round(v, 2) for k, v in per_rule.items()}
        if meta["series_written"] <= naive_max:
            nv = child(NAIVE, [server.url, str(at)], naive_limit, memory_gb=12)
            row["naive_s"] = nv["wall_s"] if nv["ok"] else None
            row["naive_rss_mib"] = nv.get("rss_mib")
            if not nv["ok"]:
                row["naive_error"] = nv.get("error")
        else:  # Prometheus's own memory plus the naive's 12 GB cap would not fit 24 GiB
            row["naive_error"] = f"skipped above --naive-max {naive_max}"
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        hwm = next(x for x in status.splitlines() if x.startswith("VmHWM"))
        row["prometheus_rss_mib"] = round(int(hwm.split()[1]) / 1024, 1)
    finally:
        server.stop()
    if meta["series_written"] <= file_max and slices == 1 and hist.exists():
        f = child(WATCHER, ["scan", "--metrics-file", str(hist), "--format", "json"], 3600)
        row["file_s"] = f["wall_s"]
        row["file_rss_mib"] = f.get("rss_mib")
        if f["ok"]:
            found, other = judge(json.loads(f["stdout"])["findings"], meta["incidents"])
            row["file_incidents_found"] = f"{len(found)}/{len(meta['incidents'])}"
    return row


COLUMNS = [
    "series",
    "pods",
    "samples",
    "floor_s",
    "floor_parallel_s",
    "watcher_s",
    "watcher_vs_floor",
    "watcher_serial_s",
    "serial_vs_floor",
    "watcher_http_s",
    "watcher_rss_mib",
    "incidents_found",
    "other_alerts",
    "naive_s",
    "naive_rss_mib",
    "prometheus_rss_mib",
    "rules_eval_s_per_min",
    "file_s",
    "file_rss_mib",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="30000,100000,300000", help="series to write per row")
    ap.add_argument("--file-max", type=int, default=110000, help="metrics-file scan up to N")
    ap.add_argument("--naive-limit", type=float, default=900, help="seconds for the naive way")
    ap.add_argument("--naive-max", type=int, default=150000, help="naive way up to N series")
    ap.add_argument(
        "--slices", type=int, default=1, help="write and back-fill the history in time slices"
    )
    ap.add_argument(
        "--max-samples",
        type=int,
        default=0,
        help="Prometheus's --query.max-samples (0: its default, 50M; the floor's 24 h range "
        "query needs more at 1M series)",
    )
    ap.add_argument(
        "--query-timeout",
        default="",
        help="Prometheus's --query.timeout, and the scan's prometheus.timeout (e.g. 10m)",
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up runs and no serial scan (sizes where each query takes minutes)",
    )
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="the scan first, on a just-started Prometheus with the page cache dropped "
        "(implies --cold)",
    )
    ap.add_argument("--keep", default=None, help="keep the back-filled blocks here (one size)")
    ap.add_argument("--data", default=None, help="reuse blocks kept by --keep (one size)")
    ap.add_argument("--workdir", default=None, help="where histories go (GBs; default /tmp)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_scale.json"))
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # Prometheus opens many blocks
    flags: tuple[str, ...] = (
        (f"--query.max-samples={args.max_samples}",) if args.max_samples else ()
    )
    if args.query_timeout:
        flags += (f"--query.timeout={args.query_timeout}",)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            rows.append(
                measure(
                    n,
                    Path(tmp),
                    args.file_max,
                    args.naive_limit,
                    args.naive_max,
                    args.slices,
                    flags,
                    Path(args.data) if args.data else None,
                    Path(args.keep) if args.keep else None,
                    args.query_timeout,
                    not (args.cold or args.fresh),
                    args.fresh,
                )
            )
        print(f"done: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
    cells = [[str(r.get(c, "")) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)))


if __name__ == "__main__":
    main()
