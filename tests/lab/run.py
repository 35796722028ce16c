"""Record the lab (real tools, a capture) and render a capture as both of Hubble's outputs.

python -m tests.lab            run the lab, print what each path finds (make lab)
python -m tests.lab --save     ... and replace the saved capture (tests/fixtures/lab)
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab import capture, netns

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lab" / "lab.pcap.gz"
PAYLOAD = 4096  # bytes each tunnel carries
BENIGN_SECONDS = 30.0


def record(workdir: Path) -> Path:
    """Run the lab once: the benign client, then each tool's session; returns the capture."""
    pcap = workdir / "lab.pcap"
    with netns.lab(workdir) as lb:
        lb.servers()
        with netns.capture(lb, pcap):
            lb.benign(BENIGN_SECONDS)
            lb.iodine(PAYLOAD, timeout=60)
            lb.dns2tcp(PAYLOAD, timeout=60)
    if not pcap.exists() or pcap.stat().st_size <= 24:
        raise RuntimeError(f"tshark wrote no packets to {pcap}: see {workdir}/tshark.log")
    return pcap


def render(pcap: Path, workdir: Path) -> tuple[Path, Path, float]:
    """The capture as Hubble flow lines and as a metrics history; and a scan time a minute
    after the last scrape holding the last exchange."""
    if pcap.suffix == ".gz":
        raw = workdir / pcap.stem
        raw.write_bytes(gzip.decompress(pcap.read_bytes()))
        pcap = raw
    ex = capture.exchanges(pcap, netns.RESOLVER)
    flows = workdir / "lab-flows.jsonl"
    flows.write_text(
        "".join(line + "\n" for line in capture.flow_lines(ex, netns.PODS, netns.NODE))
    )
    metrics = workdir / "lab-metrics.om"
    metrics.write_text(capture.openmetrics(ex, netns.PODS))
    last = max(e.answer_t or e.t for e in ex)
    at = (int(last // capture.SCRAPE) + 2) * capture.SCRAPE
    return flows, metrics, float(at)


def dnswatch(*args: str) -> list[dict[str, object]]:
    """Findings of one dnswatch command (JSON), warning and above."""
    out = subprocess.run(
        [sys.executable, "-m", "watcher.cli", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return [f for f in json.loads(out.stdout)["findings"] if f["severity"] != "info"]


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    ap.add_argument("--save", action="store_true", help="replace tests/fixtures/lab/lab.pcap.gz")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    why = netns.unavailable()
    if why:
        print(f"lab: cannot run: {why}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="dnswatch-lab-"))
    try:
        t0 = time.monotonic()
        pcap = record(workdir)
        print(f"lab: recorded {pcap.stat().st_size} bytes in {time.monotonic() - t0:.0f} s")
        flows, metrics, at = render(pcap, workdir)
        for path, found in (
            ("flows", dnswatch("flows", str(flows))),
            ("metrics", dnswatch("scan", "--metrics-file", str(metrics), "--at", str(at))),
        ):
            print(f"{path}: {len(found)} alerts")
            for f in found:
                print(f"  {f['severity']:8} {f['kind']:16} {f['source']:45} {f['domain']}")
        if args.save:
            FIXTURE.parent.mkdir(parents=True, exist_ok=True)
            FIXTURE.write_bytes(gzip.compress(pcap.read_bytes(), mtime=0))
            print(f"lab: saved {FIXTURE}")
    finally:
        if args.keep:
            print(f"lab: work directory {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
