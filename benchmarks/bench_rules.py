"""What the shipped rules cost a Prometheus: seconds of rule evaluation per minute (issue 33).

    python benchmarks/bench_rules.py [--sizes 100000,1000000] [--before 0150428]

For each N (Hubble DNS series): write a 40-minute history at a 60 s scrape
(benchmarks/scale_history.py: the cluster of bench_scale, only shorter: the rules look back 10
minutes at most), back-fill it with promtool, start a real Prometheus on 127.0.0.1, and time
every rule expression of each rule set as an instant query at the history's end, as the rule
manager would evaluate it (each twice, the faster run kept: the first warms the page cache).
Per minute = each rule's seconds over its group's interval (a group without one: 1 minute,
Prometheus's default). The rule sets:
  before   rules/hubble-dns.rules.yml as of --before (git show), with the names group;
  default  rules/hubble-dns.rules.yml as shipped now;
  names    rules/hubble-dns-names.rules.yml, the opt-in names group.
Alerts over recorded series read few series (one per pod) and are timed on what the history
holds. Quote ratios within a run: absolute times drift between machines and days.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scale_history  # noqa: E402
from tests.promserver import PrometheusServer, require  # noqa: E402

BEFORE = "0150428"  # main before issue 33: the names group on by default, the series count
HOURS = 40 / 60
FLAGS = ["--query.max-samples=500000000", "--query.timeout=30m"]


def minutes(interval: str | None) -> float:
    """A Prometheus duration of whole seconds or minutes, in minutes."""
    if not interval:
        return 1.0
    value, unit = float(interval[:-1]), interval[-1]
    return value / 60 if unit == "s" else value if unit == "m" else value * 60


def rule_sets(before: str) -> dict[str, list[tuple[str, str, float]]]:
    """Set name -> [(rule name, expr, group interval in minutes)]."""
    texts = {
        "before": subprocess.run(
            ["git", "show", f"{before}:rules/hubble-dns.rules.yml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout,
        "default": (ROOT / "rules" / "hubble-dns.rules.yml").read_text(),
        "names": (ROOT / "rules" / "hubble-dns-names.rules.yml").read_text(),
    }
    out = {}
    for name, text in texts.items():
        out[name] = [
            (r.get("record") or r["alert"], r["expr"], minutes(g.get("interval")))
            for g in yaml.safe_load(text)["groups"]
            for r in g["rules"]
        ]
    return out


def timed(url: str, expr: str, at: float) -> float:
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        r = requests.post(f"{url}/api/v1/query", data={"query": expr, "time": at}, timeout=3600)
        r.raise_for_status()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(n: int, work: Path, sets: dict[str, list[tuple[str, str, float]]]) -> dict[str, Any]:
    hist = work / "history.om"
    t0 = time.perf_counter()
    meta = scale_history.write(hist, n, hours=HOURS)
    write_s = time.perf_counter() - t0
    data = work / "data"
    t0 = time.perf_counter()
    subprocess.run(
        [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(hist), str(data)],
        check=True,
        capture_output=True,
    )
    backfill_s = time.perf_counter() - t0
    hist.unlink()
    row: dict[str, Any] = {
        "series": meta["series_written"],
        "samples": meta["samples"],
        "write_s": round(write_s, 1),
        "backfill_s": round(backfill_s, 1),
    }
    server = PrometheusServer(work, None, flags=FLAGS)
    try:
        at = float(meta["at"])
        for name, rules in sets.items():
            parts = {rule: timed(server.url, expr, at) for rule, expr, _ in rules}
            per_min = sum(parts[rule] / every for rule, _, every in rules)
            row[f"{name}_s_per_min"] = round(per_min, 2)
            row[f"{name}_parts_s"] = {k: round(v, 3) for k, v in parts.items()}
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        hwm = next(x for x in status.splitlines() if x.startswith("VmHWM"))
        row["prometheus_rss_mib"] = round(int(hwm.split()[1]) / 1024, 1)
    finally:
        server.stop()
    row["before_over_default"] = round(row["before_s_per_min"] / row["default_s_per_min"], 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000", help="series to write per row")
    ap.add_argument("--before", default=BEFORE, help="git revision of the rules to compare")
    ap.add_argument("--workdir", default=None, help="where histories go (GBs; default /tmp)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_rules.json"))
    args = ap.parse_args()
    sets = rule_sets(args.before)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"bench-rules-{n}-", dir=args.workdir))
        try:
            rows.append(measure(n, work, sets))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        r = rows[-1]
        print(
            f"{r['series']:>9} series: before {r['before_s_per_min']:>6} s/min, default "
            f"{r['default_s_per_min']:>6} s/min, opt-in names {r['names_s_per_min']:>6} s/min",
            file=sys.stderr,
        )
    head = ("series", "before_s_per_min", "default_s_per_min", "names_s_per_min",
            "before_over_default", "prometheus_rss_mib")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in head) + " |")
    Path(args.json).write_text(
        json.dumps({"before": args.before, "hours": HOURS, "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
