"""`dnswatch flows --relay`: Hubble Relay's GetFlows from a real gRPC server on 127.0.0.1 serving
recorded flows (the lab's real tools, Hubble's own sample lines): the same findings as the
exporter file, drops and restarts resumed without a flow counted twice, lost events and
unreachable nodes said out loud, TLS and mTLS, and one-line errors for a Relay that refuses or
never answers."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, dnswatch
from tests.lab import run as lab
from tests.promserver import free_port
from tests.relayserver import Behaviour, FakeRelay, responses, tls_files
from watcher.config import Config
from watcher.flows.checkpoint import Checkpoint
from watcher.flows.scan import FlowScan
from watcher.sources.flows import parse_line
from watcher.sources.relay import observer_pb2 as pb
from watcher.sources.relay.messages import flow_of

FIXTURES = ROOT / "tests" / "fixtures" / "flows"
SINCE = ["--since", "2000-01-01T00:00:00Z"]


@pytest.fixture(scope="module")
def lab_lines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    flows, _, _ = lab.render(lab.FIXTURE, tmp_path_factory.mktemp("lab"))
    return flows, flows.read_bytes().split(b"\n")[:-1]


def findings(report: dict[str, Any]) -> list[tuple[str, str, str, str | None, str]]:
    return [
        (f["kind"], f["severity"], f["source"], f["domain"], f["summary"])
        for f in report["findings"]
    ]


def test_real_jsonpb_lines_parse_into_the_messages_and_round_trip_to_the_same_flows(
    lab_lines: tuple[Path, list[bytes]],
) -> None:
    lines = lab_lines[1]
    for f in sorted(FIXTURES.glob("*.jsonl")):
        lines = lines + f.read_bytes().split(b"\n")[:-1]
    kinds: set[str] = set()
    for line, msg in zip(lines, responses(lines), strict=True):
        wire = msg.SerializeToString()
        got = flow_of(pb.GetFlowsResponse.FromString(wire))
        assert got == parse_line(line), line[:200]
        kinds.add(got if isinstance(got, str) else "dns")
    # Requests and answers of pods, the exporter's lost-event and other envelopes.
    assert {"dns", "lost_events", "other_event"} <= kinds


def test_relay_gives_the_findings_of_the_exporter_file(
    lab_lines: tuple[Path, list[bytes]],
) -> None:
    path, lines = lab_lines
    relay = FakeRelay(responses(lines), free_port()).start()
    try:
        got = dnswatch("flows", "--relay", f"127.0.0.1:{relay.port}", *SINCE, "--format", "json")
    finally:
        relay.stop()
    assert got.returncode == 0, got.stderr
    from_file = dnswatch("flows", str(path), "--format", "json")
    assert from_file.returncode == 0, from_file.stderr
    a, b = json.loads(got.stdout), json.loads(from_file.stdout)
    assert findings(a) == findings(b)
    assert sum(f["severity"] != "info" for f in a["findings"]) == 2
    # What was asked: DNS only, filtered on the server, from --since, not following.
    req = relay.requests[0]
    assert list(req.whitelist[0].protocol) == ["dns"] and not req.follow
    assert req.since.seconds == 946684800


class Follower:
    """`dnswatch flows --relay … --follow` as a process, with a checkpoint to read its counts."""

    def __init__(
        self,
        tmp: Path,
        port: int | None,
        *extra: str,
        listen: int | None = None,
        file: Path | None = None,
    ) -> None:
        self.ck = tmp / "relay.checkpoint"
        cfg = tmp / "config.yaml"
        # Judged as buckets close (deterministic whatever the reads' chunks), or every 0.2 s
        # where the test reads /metrics (refreshed at judging).
        every = "0.2s" if listen else "1h"
        cfg.write_text(f"flows:\n  report_interval: {every}\n  checkpoint_interval: 0.2s\n")
        args = [sys.executable, "-m", "watcher.cli", "flows"]
        if file is not None:
            args += ["--follow", str(file)]
        else:
            args += ["--relay", f"127.0.0.1:{port}", "--follow", *SINCE]
        args += ["--checkpoint", str(self.ck), "--config", str(cfg)]
        args += ["--format", "json", *extra]
        if listen:
            args += ["--listen", f"127.0.0.1:{listen}"]
        self.err = tmp / "err"
        self.out = tmp / "out"
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=self.out.open("wb"), stderr=self.err.open("wb")
        )

    def dns_flows(self) -> int:
        try:
            got = Checkpoint(self.ck, Config()).load()
        except Exception:  # noqa: BLE001 - mid-write: ask again
            return -1
        return -1 if got is None else int(got.state["source"]["counts"][1])

    def wait_for(self, n: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.err.read_text()
            if self.dns_flows() >= n:
                time.sleep(0.5)  # anything more (a repeat) would show now
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.dns_flows()} of {n} flows: {self.err.read_text()}")

    def judged(self) -> dict[str, Any]:
        """The follower's last checkpoint, judged as a batch read is at its end."""
        got = Checkpoint(self.ck, Config()).load()
        assert got is not None
        scan = FlowScan(Config())
        scan.restore(got.state)
        return scan.result()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def alerts(self) -> set[tuple[str, str | None]]:
        return {
            (f["source"], f["domain"])
            for f in map(json.loads, self.out.read_text().splitlines())
            if f["severity"] != "info"
        }


def dns_count(lines: list[bytes]) -> int:
    return sum(not isinstance(parse_line(line), str) for line in lines)


def test_a_drop_mid_stream_and_a_relay_restart_are_resumed_without_repeats_or_gaps(
    lab_lines: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    _, lines = lab_lines
    msgs = responses(lines)
    total = dns_count(lines)
    half = len(msgs) // 2
    port = free_port()
    # First Relay: drops the stream after a third; the resumed stream (since = the newest
    # flow's time) repeats the flows at that time, which must not count twice.
    relay = FakeRelay(msgs[:half], port, Behaviour(drop_after=len(msgs) // 3)).start()
    f = Follower(tmp_path, port)
    try:
        f.wait_for(dns_count(lines[:half]))
        assert len(relay.requests) >= 2, "the drop was not resumed"
        resumed = relay.requests[1]
        assert resumed.follow and resumed.since.seconds > 946684800
        # Relay restarts (a new process on the same address) holding every flow: the
        # follower reconnects and takes the second half, and the first half again is skipped.
        relay.stop()
        relay = FakeRelay(msgs, port).start()
        f.wait_for(total)
        assert f.dns_flows() == total
    finally:
        relay.stop()
        assert f.stop() == 0, f.err.read_text()
    assert f.dns_flows() == total
    # The same alerts as a follower of the exporter file holding the same flows.
    path, _ = lab_lines
    (tmp_path / "file").mkdir()
    g = Follower(tmp_path / "file", None, file=path)
    g.wait_for(total)
    assert g.stop() == 0
    assert f.alerts() == g.alerts()
    # Their windows, judged now, hold the same evidence: the two tools' tunnels alert.
    a, b = f.judged(), g.judged()
    assert findings(a) == findings(b)
    assert {(x[2], x[3]) for x in findings(a) if x[1] != "info"} == {
        ("tunnel-lab/iodine-client-7c9d5b8f4-q2wxp", "iodinelab.test"),
        ("tunnel-lab/dns2tcp-client-5f6b7c8d9-h7k2m", "dns2tcplab.test"),
    }
    err = f.err.read_text()
    assert "stream lost" in err and "Traceback" not in err


def test_lost_events_and_unavailable_nodes_are_warnings_and_metrics(
    lab_lines: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    _, lines = lab_lines
    extra = [
        pb.GetFlowsResponse(
            node_status=pb.NodeStatusEvent(
                state_change=pb.NodeState.NODE_CONNECTED, node_names=["node-a", "node-b"]
            )
        ),
        pb.GetFlowsResponse(
            node_status=pb.NodeStatusEvent(
                state_change=pb.NodeState.NODE_UNAVAILABLE,
                node_names=["node-b"],
                message="connection refused",
            )
        ),
        pb.GetFlowsResponse(
            node_status=pb.NodeStatusEvent(
                state_change=pb.NodeState.NODE_CONNECTED, node_names=["node-c"]
            )
        ),
        pb.GetFlowsResponse(  # removed from the cluster: not a blind spot
            node_status=pb.NodeStatusEvent(
                state_change=pb.NodeState.NODE_GONE, node_names=["node-c"]
            )
        ),
        pb.GetFlowsResponse(
            node_name="node-a",
            lost_events=pb.LostEvent(
                source=pb.LostEventSource.HUBBLE_RING_BUFFER, num_events_lost=120
            ),
        ),
    ]
    relay = FakeRelay(responses(lines), free_port(), Behaviour(extra=extra)).start()
    try:
        got = dnswatch("flows", "--relay", f"127.0.0.1:{relay.port}", *SINCE, "--format", "json")
        assert got.returncode == 0, got.stderr
        warnings = json.loads(got.stdout)["warnings"]
        assert any("120 events lost on node-a (HUBBLE_RING_BUFFER)" in w for w in warnings)
        assert any("1 node(s) unavailable (node-b)" in w for w in warnings)
        port = free_port()
        f = Follower(tmp_path, relay.port, listen=port)
        metrics = ""
        end = time.monotonic() + 30
        while time.monotonic() < end and "dnswatch_relay_lost_events_total{" not in metrics:
            with contextlib.suppress(requests.ConnectionError):
                metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            time.sleep(0.3)
        assert f.stop() == 0
    finally:
        relay.stop()
    assert (
        'dnswatch_relay_lost_events_total{node="node-a",source="HUBBLE_RING_BUFFER"} 120.0'
        in metrics
    )
    assert 'dnswatch_relay_nodes{state="unavailable"} 1.0' in metrics
    assert 'dnswatch_relay_nodes{state="connected"} 1.0' in metrics
    assert "dnswatch_relay_connected 1.0" in metrics


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_and_mtls_with_a_test_ca(
    lab_lines: tuple[Path, list[bytes]], tmp_path: Path, mutual: bool
) -> None:
    _, lines = lab_lines
    pem = tls_files(tmp_path)
    tls = (
        pem["server.key"].read_bytes(),
        pem["server.pem"].read_bytes(),
        pem["ca.pem"].read_bytes() if mutual else None,
    )
    relay = FakeRelay(responses(lines), free_port(), tls=tls).start()
    base = ["flows", "--relay", f"127.0.0.1:{relay.port}", *SINCE, "--format", "json"]
    base += ["--tls", "--tls-ca", str(pem["ca.pem"]), "--tls-server-name", "relay.test"]
    base += ["--relay-timeout", "3s"]
    client = ["--tls-cert", str(pem["client.pem"]), "--tls-key", str(pem["client.key"])]
    try:
        ok = dnswatch(*base, *(client if mutual else []))
        plain = dnswatch(
            "flows", "--relay", f"127.0.0.1:{relay.port}", *SINCE, "--relay-timeout", "3s"
        )
        missing = dnswatch(*base) if mutual else None
    finally:
        relay.stop()
    assert ok.returncode == 0, ok.stderr
    assert sum(f["severity"] != "info" for f in json.loads(ok.stdout)["findings"]) == 2
    # Plain text to a TLS Relay, or mTLS without the client's certificate: one line, exit 3.
    for bad in (plain, missing):
        if bad is None:
            continue
        assert bad.returncode == 3, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "Hubble Relay at 127.0.0.1" in bad.stderr


def test_a_relay_that_refuses_the_filter_or_never_answers_is_one_line_and_exit_3(
    tmp_path: Path,
) -> None:
    relay = FakeRelay([], free_port(), Behaviour(refuse="unknown protocol filter")).start()
    try:
        refused = dnswatch("flows", "--relay", f"127.0.0.1:{relay.port}", "--follow")
    finally:
        relay.stop()
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"dnswatch: error: Hubble Relay at 127.0.0.1:{relay.port} refused GetFlows: "
        "INVALID_ARGUMENT: "
        "unknown protocol filter"
    ], refused.stderr
    # A listener that accepts and never speaks (a wrong port, a stuck proxy).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        began = time.monotonic()
        silent = dnswatch("flows", "--relay", f"127.0.0.1:{port}", "--relay-timeout", "1s")
        took = time.monotonic() - began
    assert silent.returncode == 3, silent.stderr
    assert "did not answer within 1s" in silent.stderr
    assert len(silent.stderr.strip().splitlines()) == 1 and took < 20
    bad = dnswatch("flows", "--relay", "127.0.0.1:1", "--tls-cert", "x.pem")
    assert bad.returncode == 2 and "need --tls" in bad.stderr


def test_a_killed_relay_follower_resumes_from_its_checkpoint_without_repeats(
    lab_lines: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    _, lines = lab_lines
    msgs = responses(lines)
    half = len(msgs) // 2
    port = free_port()
    relay = FakeRelay(msgs[:half], port).start()
    try:
        f = Follower(tmp_path, port)
        f.wait_for(dns_count(lines[:half]))
        f.proc.send_signal(signal.SIGKILL)
        assert f.proc.wait(10) == -signal.SIGKILL
        relay.stop()
        relay = FakeRelay(msgs, port).start()
        g = Follower(tmp_path, port)  # the same checkpoint: its position is the newest flow
        g.wait_for(dns_count(lines))
        assert g.stop() == 0, g.err.read_text()
    finally:
        relay.stop()
    assert g.dns_flows() == dns_count(lines)
    assert relay.requests[0].since.seconds > 946684800  # resumed from the checkpoint, not --since
    assert "warning" not in g.err.read_text()


def test_the_generated_messages_are_fresh(tmp_path: Path) -> None:
    src = ROOT / "watcher" / "sources" / "relay"
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{src}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(src / "observer.proto"),
        ],
        capture_output=True,
        text=True,
    )
    assert got.returncode == 0, got.stderr
    for name in ("observer_pb2.py", "observer_pb2.pyi"):
        assert (tmp_path / name).read_text() == (src / name).read_text(), f"make proto: {name}"


def test_drill_check_through_relay_names_lost_events_on_a_node(tmp_path: Path) -> None:
    from watcher.simulate import build
    from watcher.simulate_flows import write

    ns = "payments"
    path = tmp_path / "flows.jsonl"
    write(build(3, [f"drill,at=150m,source={ns}"], seed=5), path)
    mine = [x for x in path.read_bytes().split(b"\n") if f'"namespace":"{ns}"'.encode() in x]
    drill = [x for x in mine if b"dwdrill" in x or b".invalid" in x]
    assert drill, "the history holds the drill's flows"
    args = ["drill", "--check", "--format", "json", "--namespace", ns, *SINCE]
    args += ["--state", str(tmp_path / "none.sqlite")]
    relay = FakeRelay(responses(mine), free_port()).start()
    try:
        seen = dnswatch(*args, "--relay", f"127.0.0.1:{relay.port}")
    finally:
        relay.stop()
    assert seen.returncode == 0, seen.stdout + seen.stderr
    report = json.loads(seen.stdout)
    assert report["seen"] and any(s["stage"] == "relay" and s["ok"] for s in report["stages"])
    # The node that ran the drill's pod lost events: its flows never reached Relay.
    lost = pb.GetFlowsResponse(
        node_name="node-1",
        lost_events=pb.LostEvent(
            source=pb.LostEventSource.PERF_EVENT_RING_BUFFER, num_events_lost=512
        ),
    )
    other = [x for x in mine if x not in drill]
    relay = FakeRelay(responses(other), free_port(), Behaviour(extra=[lost])).start()
    try:
        missed = dnswatch(*args, "--relay", f"127.0.0.1:{relay.port}")
    finally:
        relay.stop()
    assert missed.returncode == 6, missed.stdout + missed.stderr
    report = json.loads(missed.stdout)
    assert report["failed_stage"] == "relay"
    (stage,) = [s for s in report["stages"] if s["stage"] == "relay"]
    assert "Relay lost events on node node-1 (512)" in stage["detail"]
