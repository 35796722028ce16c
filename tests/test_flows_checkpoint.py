"""A restart forgets nothing: real followers over real files being written and rotated, killed
(SIGKILL) or stopped (SIGTERM) mid-leak, restarted from their checkpoint; bad checkpoints
warn and the follower runs on; a restored scan judges as one that never stopped."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.conftest import ROOT
from tests.lab import run as lab
from tests.promserver import free_port
from watcher import simulate_flows
from watcher.config import Config
from watcher.flows import checkpoint as ckmod
from watcher.flows.checkpoint import Checkpoint, CheckpointError
from watcher.flows.scan import FlowScan
from watcher.simulate import Cluster, Pod, add_incident

KILL_HOUR = 11.0
# Judged only as buckets close (no mid-bucket ticks): runs read in other chunks emit alike.
CONFIG = "flows:\n  report_interval: 1h\n  checkpoint_interval: 0.2s\n"
NO_CHECKPOINT = "flows:\n  report_interval: 0.2s\n  checkpoint_interval: 'off'\n"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """20 h of a small cluster: a slow leak to a private zone from hour 9 (~7 one-off names an
    hour: its first alert comes hours after the kill, from names before and after it) and a
    fast tunnel from minute 655 to 665, cut by the kill at hour 11; benign pods beside them."""
    c = Cluster(minutes=20 * 60, nodes=2, seed=33)
    rng = np.random.default_rng(33)
    common = ["api.github.com", "registry-1.docker.io", "sts.googleapis.com"]
    c.pods.append(Pod("shop", "web-6d8f7b9c4-k2x7p", 0, 0, c.minutes, common, np.ones(3) / 3, 8))
    hosts = [f"node-{i:03d}.fleet.hosts-example.net" for i in range(40)]
    c.pods.append(
        Pod("ops", "inventory-5c7d9f8b6-q4w2z", 1, 0, c.minutes, hosts, np.ones(40) / 40, 6)
    )
    add_incident(
        c,
        "slow_leak",
        rng,
        domain="d.drip-leak.example",
        at=540,
        duration=660,
        rate=0.12,
        encoding="words",
    )
    add_incident(
        c,
        "tunnel",
        rng,
        domain="t.fast-tun.example",
        at=655,
        duration=10,
        rate=6,
        encoding="base32",
    )
    path = tmp_path_factory.mktemp("day") / "day.jsonl"
    simulate_flows.write(c, path)
    return path.read_bytes().split(b"\n")[:-1]


def flow_time(line: bytes) -> float:
    return datetime.fromisoformat(json.loads(line)["time"].replace("Z", "+00:00")).timestamp()


def cut_at(lines: list[bytes], hours: float) -> int:
    first = flow_time(lines[0])
    return next(i for i, line in enumerate(lines) if flow_time(line) >= first + hours * 3600)


class Runner:
    """One follower directory: the exporter file, the position, the checkpoint, the output."""

    def __init__(self, d: Path, config: str, listen: int | None = None) -> None:
        self.d = d
        d.mkdir()
        self.log = d / "events.log"
        self.log.write_bytes(b"")
        self.cfg = d / "config.yaml"
        self.cfg.write_text(config)
        self.ck = d / "pos.checkpoint"
        self.listen = listen
        self.proc: subprocess.Popen[bytes] | None = None
        self.relay_args: list[str] = []

    def start(self, *extra: str) -> None:
        args = [sys.executable, "-m", "watcher.cli", "flows"]
        if extra and extra[0] == "--relay":
            args += ["--checkpoint", str(self.ck)]
        else:
            args += ["--follow", str(self.log), "--position-file", str(self.d / "pos.json")]
        args += ["--config", str(self.cfg), "--format", "json", *extra]
        if self.listen:
            args += ["--listen", f"127.0.0.1:{self.listen}"]
        out, err = (self.d / "out").open("ab"), (self.d / "err").open("ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err)

    def append(self, lines: list[bytes]) -> None:
        with self.log.open("ab") as fh:
            fh.write(b"".join(line + b"\n" for line in lines))

    def checkpoint_covers(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the checkpoint holds every line written so far; its header."""
        size = self.log.stat().st_size
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None and self.proc.poll() is None, self.stderr()
            try:
                header = json.loads(self.ck.read_bytes().split(b"\n")[1])
                pos = header["position"]
                if pos["inode"] == self.log.stat().st_ino and pos["offset"] >= size:
                    return header  # type: ignore[no-any-return]
            except (OSError, IndexError, ValueError, TypeError, KeyError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"no checkpoint covering {size} bytes in {timeout}s: {self.stderr()}")

    def position_covers(self, timeout: float = 60.0) -> None:
        size = self.log.stat().st_size
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if json.loads((self.d / "pos.json").read_text())["offset"] >= size:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"position never reached {size}: {self.stderr()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def rotate(self) -> None:
        os.rename(self.log, self.d / "events-2026-05-29T11-00-00.000.log")
        self.log.write_bytes(b"")

    def alerts(self) -> list[tuple[str, str, str, int, str]]:
        out = []
        for line in (self.d / "out").read_text().splitlines():
            f = json.loads(line)
            e = f["evidence"]
            out.append((f["kind"], f["severity"], f["domain"], e["distinct_names"], e["last_seen"]))
        return out

    def stderr(self) -> str:
        p = self.d / "err"
        return p.read_text() if p.exists() else ""

    def saved_counts(self) -> tuple[int, int]:
        got = Checkpoint(self.ck, Config()).load()
        assert got is not None
        lines, flows, _ = got.state["source"]["counts"]
        return lines, flows


def uninterrupted(d: Path, lines: list[bytes], config: str = CONFIG) -> Runner:
    r = Runner(d, config)
    r.start()
    r.append(lines)
    if "off" in config:
        r.position_covers()
    else:
        r.checkpoint_covers()
    assert r.stop() == 0
    return r


@pytest.fixture(scope="module")
def baseline(day: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return uninterrupted(tmp_path_factory.mktemp("base") / "run", day)


def test_the_days_leaks_alert_in_a_run_that_never_stops(baseline: Runner) -> None:
    domains = {a[2] for a in baseline.alerts()}
    assert domains == {"drip-leak.example", "fast-tun.example"}, baseline.alerts()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_follower_restarted_at_hour_11_alerts_as_one_that_never_stopped(
    day: list[bytes], baseline: Runner, tmp_path: Path, sig: int
) -> None:
    cut = cut_at(day, KILL_HOUR)
    r = Runner(tmp_path / "run", CONFIG)
    r.start()
    r.append(day[:cut])
    r.checkpoint_covers()
    more = 3000  # lines read, perhaps judged, after the last checkpoint: read again, once
    r.append(day[cut : cut + more])
    time.sleep(0.1)
    code = r.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), r.stderr()
    r.rotate()  # while it is down: the rest of its file is in the backup
    r.append(day[cut + more :])
    r.start()
    r.checkpoint_covers()
    assert r.stop() == 0
    assert "warning" not in r.stderr(), r.stderr()
    # The slow leak's alert at the same bucket with the same count (last_seen is the flow
    # time it was judged at); the tunnel cut in half alerts once, with its full count.
    assert r.alerts() == baseline.alerts()
    # Every line counted once: none twice (read again after the kill), none skipped.
    assert r.saved_counts() == (len(day), len(day))


def test_without_a_checkpoint_the_restart_forgets_and_the_test_above_could_fail(
    day: list[bytes], baseline: Runner, tmp_path: Path
) -> None:
    cut = cut_at(day, KILL_HOUR)
    r = Runner(tmp_path / "run", NO_CHECKPOINT)
    r.start()
    r.append(day[:cut])
    r.position_covers()
    assert r.stop(signal.SIGKILL) == -signal.SIGKILL
    r.rotate()
    r.append(day[cut:])
    r.start()
    r.position_covers()
    assert r.stop() == 0
    assert r.alerts() != baseline.alerts()
    drip = [a for a in r.alerts() if a[2] == "drip-leak.example"]
    base = [a for a in baseline.alerts() if a[2] == "drip-leak.example"]
    assert drip and base and drip[0][4] > base[0][4]  # later: the names before the kill were lost


def test_sigterm_during_a_backlog_stops_within_the_grace_period_and_loses_nothing(
    day: list[bytes], tmp_path: Path
) -> None:
    r = Runner(tmp_path / "run", "flows:\n  checkpoint_interval: 1h\n")
    backlog = day * 3  # three days' lines waiting (the last two out of time order)
    r.append(backlog)
    r.start()
    time.sleep(2.5)
    began = time.monotonic()
    assert r.stop() == 0, r.stderr()
    took = time.monotonic() - began
    assert took < 10.0, f"stopped in {took:.1f}s"  # the DaemonSet grants 30 s
    header = json.loads(r.ck.read_bytes().split(b"\n")[1])
    offset = header["position"]["offset"]
    assert 0 < offset < r.log.stat().st_size  # stopped mid-backlog
    read = r.log.read_bytes()[:offset].count(b"\n")
    assert r.saved_counts() == (read, read)
    assert json.loads((r.d / "pos.json").read_text())["offset"] == offset
    # ... and goes on from there to the end with every line counted once.
    r.start()
    r.position_covers(timeout=120)
    assert r.stop() == 0
    assert r.saved_counts() == (len(backlog), len(backlog))


def _tunnel(day: list[bytes]) -> list[bytes]:
    return [line for line in day if b"fast-tun.example" in line]


def _bad(kind: str, path: Path) -> str | None:
    """Make the checkpoint at `path` bad in one way; the --checkpoint to pass, if another."""
    if kind == "corrupt":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "old_format":
        raw = path.read_bytes()
        magic, head, body = raw.split(b"\n", 2)
        header = json.loads(head)
        header["format"] = 0
        path.write_bytes(magic + b"\n" + json.dumps(header).encode() + b"\n" + body)
    elif kind == "unwritable":
        blocker = path.parent / "not-a-directory"
        blocker.write_text("")
        return str(blocker / "pos.checkpoint")
    return None


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "old_format", "unwritable"])
def test_a_bad_checkpoint_warns_counts_and_the_follower_runs_on(
    day: list[bytes], tmp_path: Path, kind: str
) -> None:
    port = free_port()
    r = Runner(tmp_path / "run", CONFIG, listen=port)
    benign = [line for line in day[:2000] if b"fast-tun" not in line]
    r.start()
    r.append(benign)
    r.checkpoint_covers()
    assert r.stop() == 0
    other = _bad(kind, r.ck)
    r.start(*(["--checkpoint", other] if other else []))
    r.append(_tunnel(day))
    end = time.monotonic() + 30
    while time.monotonic() < end and not r.alerts():
        time.sleep(0.1)
    assert [a[2] for a in r.alerts()] == ["fast-tun.example"], r.stderr()  # it runs on
    stage = "write" if kind == "unwritable" else "read"
    series = f'dnswatch_checkpoint_failures_total{{stage="{stage}"}}'
    failures = 0.0
    while time.monotonic() < end and not failures:
        try:
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.ConnectionError:
            metrics = ""
        failures = sum(
            float(x.rsplit(" ", 1)[1]) for x in metrics.splitlines() if x.startswith(series)
        )
        time.sleep(0.2)
    assert r.stop() == 0
    assert failures >= 1, f"{series} never counted"
    lines = [x for x in r.stderr().splitlines() if "warning" in x and "checkpoint" in x]
    assert "Traceback" not in r.stderr()
    expect = {
        "corrupt": "is not a dnswatch checkpoint",
        "truncated": "truncated or corrupt",
        "old_format": "another version of dnswatch",
        "unwritable": "cannot write checkpoint",
    }[kind]
    assert any(expect in x for x in lines), r.stderr()


# In process: the same scan, stopped, saved, restored and fed the rest, reports as one that read
# every line at once.


def _scan_in_two(lines: list[bytes], at: int, path: Path, cfg: Config) -> dict[str, Any]:
    first = FlowScan(cfg)
    first.feed(lines[:at])
    ck = Checkpoint(path, cfg)
    ck.save(first.snapshot(), {"inode": 1, "offset": 0, "mark": ""}, first.window.now, 1)
    got = ck.load()
    assert got is not None and got.position == {"inode": 1, "offset": 0, "mark": ""}
    second = FlowScan(cfg)
    second.restore(got.state)
    second.feed(lines[at:])
    return second.result()


def _scan_whole(lines: list[bytes], cfg: Config) -> dict[str, Any]:
    scan = FlowScan(cfg)
    scan.feed(lines)
    return scan.result()


def test_a_restored_scan_reports_the_simulated_day_as_one_that_never_stopped(
    day: list[bytes], tmp_path: Path
) -> None:
    cfg = Config()
    whole = _scan_whole(day, cfg)
    assert any(f["severity"] != "info" for f in whole["findings"])
    for hours in (3.0, KILL_HOUR, 18.0):
        halves = _scan_in_two(day, cut_at(day, hours), tmp_path / f"{hours}.ck", cfg)
        assert halves == whole, hours


def test_a_restored_scan_reports_the_lab_capture_as_one_that_never_stopped(
    tmp_path: Path,
) -> None:
    flows, _, _ = lab.render(lab.FIXTURE, tmp_path)
    lines = flows.read_bytes().split(b"\n")[:-1]
    cfg = Config()
    whole = _scan_whole(lines, cfg)
    assert sum(f["severity"] != "info" for f in whole["findings"]) == 2
    for part in (0.25, 0.5, 0.75):
        assert _scan_in_two(lines, int(len(lines) * part), tmp_path / "lab.ck", cfg) == whole


def _forge(path: Path, body: bytes, cfg: Config, written: float | None = None) -> None:
    header = {
        "format": ckmod.FORMAT,
        "layout": ckmod.LAYOUT,
        "settings": ckmod.settings(cfg),
        "written": time.time() if written is None else written,
        "flow_time": 0.0,
        "position": None,
        "pairs": 0,
    }
    signed = json.dumps(header).encode() + b"\n" + body
    path.write_bytes(ckmod.MAGIC + signed + hashlib.sha256(signed).digest())


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch /tmp/dnswatch-pwned",))


def test_a_checkpoint_never_loads_a_class_it_does_not_know(tmp_path: Path) -> None:
    cfg = Config()
    path = tmp_path / "evil.checkpoint"
    _forge(path, pickle.dumps({"x": _Evil()}), cfg)
    with pytest.raises(CheckpointError, match="corrupt"):
        Checkpoint(path, cfg).load()
    assert not Path("/tmp/dnswatch-pwned").exists()


def test_a_checkpoint_past_its_window_or_under_other_settings_is_not_restored(
    tmp_path: Path,
) -> None:
    cfg = Config()
    path = tmp_path / "old.checkpoint"
    _forge(path, pickle.dumps({}), cfg, written=time.time() - 2 * 86400)
    with pytest.raises(CheckpointError, match="past the 1d window"):
        Checkpoint(path, cfg).load()
    _forge(path, pickle.dumps({}), cfg)
    other = Config.model_validate({"windows": {"long": "3h"}})
    with pytest.raises(CheckpointError, match="other window settings"):
        Checkpoint(path, other).load()
    assert Checkpoint(path, cfg).load() is not None
    assert Checkpoint(tmp_path / "none", cfg).load() is None  # none yet: a fresh start


# The same restart through Hubble Relay's stream (tests/relayserver.py): the follower's position
# is the newest flow's time and the keys of the flows at it; Relay restarts holding every flow.


@pytest.fixture(scope="module")
def day_messages(day: list[bytes]) -> list[Any]:
    from tests.relayserver import responses

    return responses(day)


def _relay_runner(d: Path, port: int) -> Runner:
    r = Runner(d, CONFIG)
    r.relay_args = ["--relay", f"127.0.0.1:{port}", "--follow", "--since", "2000-01-01T00:00:00Z"]
    return r


def _wait_flows(r: Runner, n: int, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert r.proc is not None and r.proc.poll() is None, r.stderr()
        try:
            if r.saved_counts()[1] >= n:
                return
        except (AssertionError, CheckpointError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not {n} flows in {timeout}s: {r.stderr()}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_relay_follower_restarted_at_hour_11_alerts_as_one_that_never_stopped(
    day: list[bytes], day_messages: list[Any], baseline: Runner, tmp_path: Path, sig: int
) -> None:
    from tests.relayserver import FakeRelay

    cut = cut_at(day, KILL_HOUR)
    port = free_port()
    relay = FakeRelay(day_messages[:cut], port).start()
    r = _relay_runner(tmp_path / "run", port)
    try:
        r.start(*r.relay_args)
        _wait_flows(r, cut)
        code = r.stop(sig)
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), r.stderr()
        relay.stop()
        relay = FakeRelay(day_messages, port).start()  # Relay restarted, holding every flow
        r.start(*r.relay_args)
        _wait_flows(r, len(day))
        time.sleep(1.0)  # a repeat counted twice would show now
        assert r.stop() == 0
    finally:
        relay.stop()
    assert "warning" not in r.stderr(), r.stderr()
    assert r.alerts() == baseline.alerts()
    assert r.saved_counts() == (len(day), len(day))
