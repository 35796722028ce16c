"""DNS flows per second through Hubble Relay's gRPC path against the exporter file path.

    python benchmarks/bench_relay.py [--hours 1]

The simulator's busy cluster (bench_flows' mix: search-path expansion, services re-queried,
benign look-alikes, a tunnel, a slow leak, a flood), as exporter lines and as Relay's messages.
Measured on one core each (process time of this process; the gRPC server runs in a child
process so its cost is not counted):
- file: lines -> parse -> window -> judge (what `dnswatch flows FILE` does);
- relay, end to end: a real GetFlows stream from a server on 127.0.0.1 -> RelayStream (receive on
  its thread, de-duplicate) -> DnsFlow -> window -> judge;
- relay, receive only: the same stream, messages received and converted, not judged;
- convert only: protobuf decode plus message -> DnsFlow, in memory.
Quote ratios from one run (absolute figures drift between machines).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_flows import INCIDENTS  # noqa: E402
from watcher import simulate, simulate_flows  # noqa: E402
from watcher.config import Config  # noqa: E402
from watcher.flows.scan import FlowScan  # noqa: E402
from watcher.sources.relay import observer_pb2 as pb  # noqa: E402
from watcher.sources.relay.messages import flow_of  # noqa: E402
from watcher.sources.relay.stream import RelayOptions, RelayStream  # noqa: E402

SERVER = """
import sys, time
from concurrent import futures
import grpc
sys.path.insert(0, {root!r})
from watcher.sources.relay import observer_pb2 as pb
blobs = open({path!r}, "rb").read().split(b"\\n--\\n")[:-1]
def get_flows(req, ctx):
    for b in blobs:
        yield b
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("observer.Observer", {{
    "GetFlows": grpc.unary_stream_rpc_method_handler(
        get_flows, request_deserializer=pb.GetFlowsRequest.FromString,
        response_serializer=lambda b: b)}}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    args = ap.parse_args()
    from google.protobuf import json_format

    c = simulate.build(args.hours, INCIDENTS, seed=5)
    simulate_flows.add_hard_negatives(c)
    lines = [line.encode() for line in simulate_flows.lines(c)]
    msgs = []
    for line in lines:
        r = pb.GetFlowsResponse()
        json_format.Parse(line, r, ignore_unknown_fields=True)
        msgs.append(r.SerializeToString())
    n = len(lines)
    blob_path = Path("/tmp/dnswatch-bench-relay.bin")
    blob_path.write_bytes(b"".join(m + b"\n--\n" for m in msgs))
    assert all(b"\n--\n" not in m for m in msgs)

    t0 = time.process_time()
    scan = FlowScan(Config())
    scan.feed(lines)
    file_result = scan.result()
    file_s = time.process_time() - t0

    t0 = time.process_time()
    for m in msgs:
        flow_of(pb.GetFlowsResponse.FromString(m))
    convert_s = time.process_time() - t0

    def through_grpc(judge: bool) -> tuple[float, float, dict[str, object] | None]:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER.format(root=str(ROOT), path=str(blob_path))],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            scan = FlowScan(Config())
            t0, w0 = time.process_time(), time.monotonic()
            stream = RelayStream(
                RelayOptions(f"127.0.0.1:{port}"), False, 0.0, counts=scan.source.counts
            )
            got = 0
            while not stream.eof:
                flows = stream.read()
                got += len(flows)
                if judge:
                    scan.feed_flows(flows)
            stream.close()
            result = scan.result() if judge else None
            return time.process_time() - t0, time.monotonic() - w0, result
        finally:
            server.terminate()
            server.wait(10)

    e2e_s, e2e_wall, relay_result = through_grpc(True)
    recv_s, recv_wall, _ = through_grpc(False)
    same = relay_result is not None and [
        (f["kind"], f["severity"], f["source"], f["domain"], f["summary"])
        for f in relay_result["findings"]  # type: ignore[attr-defined]
    ] == [
        (f["kind"], f["severity"], f["source"], f["domain"], f["summary"])
        for f in file_result["findings"]
    ]
    rows = {
        "flows": n,
        "file_end_to_end_per_s": n / file_s,
        "relay_end_to_end_per_s": n / e2e_s,
        "relay_end_to_end_wall_per_s": n / e2e_wall,
        "relay_receive_only_per_s": n / recv_s,
        "relay_receive_only_wall_per_s": n / recv_wall,
        "convert_only_per_s": n / convert_s,
        "relay_vs_file": file_s / e2e_s,
        "same_findings": same,
    }
    print(f"{'measure':<52} {'value':>12}")
    print(f"{'DNS flows (simulated cluster, ' + str(args.hours) + ' h)':<52} {n:>12,}")
    print(f"{'file: end to end, flows/s (one core)':<52} {rows['file_end_to_end_per_s']:>12,.0f}")
    print(
        f"{'relay: end to end, flows/s (this process, CPU)':<52} "
        f"{rows['relay_end_to_end_per_s']:>12,.0f}"
    )
    print(
        f"{'relay: end to end, flows/s (wall)':<52} {rows['relay_end_to_end_wall_per_s']:>12,.0f}"
    )
    print(
        f"{'relay: receive + convert, flows/s (CPU)':<52} "
        f"{rows['relay_receive_only_per_s']:>12,.0f}"
    )
    print(f"{'convert only (decode + DnsFlow), flows/s':<52} {rows['convert_only_per_s']:>12,.0f}")
    print(f"{'relay / file speed':<52} {rows['relay_vs_file']:>12.2f}")
    print(f"{'same findings':<52} {same!s:>12}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "bench_relay.json").write_text(json.dumps(rows, indent=1))
    blob_path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
