"""`dnswatch flows --follow`: a real file being written, rotated and truncated under a real
follower process; resuming from a saved position without re-reading or skipping a line."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.flowlines import exchange
from watcher.flows.follow import Follower

T0 = 1_780_000_000.0


def names(domain: str, n: int, start: int = 0) -> list[str]:
    """Encoded-looking names of an identifier's size (16 bytes of hex): three make a finding,
    two do not (a secret-sized one would at once: names.secret_min_bytes)."""
    return [
        f"{hashlib.sha256(f'{domain}{i}'.encode()).hexdigest()[:32]}.{domain}"
        for i in range(start, start + n)
    ]


def lines_for(domain: str, n: int, t: float, start: int = 0) -> list[str]:
    out: list[str] = []
    for k, q in enumerate(names(domain, n, start)):
        out += exchange(t + k, "shop/api-7d9f8b7c6-x2x4q", q, "TXT", rrtypes=["TXT"])
    return out


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()


def test_findings_arrive_within_5s_through_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    log.write_text("")
    pos = tmp_path / "pos.json"
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
            "--position-file",
            str(pos),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def next_finding(timeout: float) -> dict:  # type: ignore[type-arg]
        try:
            return json.loads(out.get(timeout=timeout))  # type: ignore[no-any-return]
        except queue.Empty:
            proc.kill()
            state = pos.read_text() if pos.exists() else "-"
            files = {p.name: (p.stat().st_ino, p.stat().st_size) for p in tmp_path.iterdir()}
            raise AssertionError(f"no finding in {timeout}s; {state} {files}") from None

    try:
        benign = []
        for k in range(50):
            benign += exchange(
                T0 + k, "shop/api-7d9f8b7c6-x2x4q", "api.stripe.com", ips=["3.18.12.63"]
            )
        append(log, benign)
        first = lines_for("one.example", 3, T0 + 60)
        append(log, first[:4])  # two encoded names: not yet a finding
        time.sleep(2.5)
        assert out.empty()
        written = time.monotonic()
        append(log, first[4:])  # the third completes the evidence
        f = next_finding(5.0)
        assert time.monotonic() - written <= 5.0
        assert f["domain"] == "one.example" and f["severity"] in ("warning", "critical")

        # Rotation as lumberjack does it: rename to a timestamped backup, start a new file.
        os.rename(log, tmp_path / "events-2026-05-28T20-30-00.000.log")
        log.write_text("")
        written = time.monotonic()
        append(log, lines_for("two.example", 3, T0 + 120))
        f = next_finding(5.0)
        assert f["domain"] == "two.example" and time.monotonic() - written <= 5.0

        # Truncation in place (copytruncate): read again from the start.
        time.sleep(1.5)
        with log.open("w") as fh:
            fh.write("")
        written = time.monotonic()
        append(log, lines_for("three.example", 3, T0 + 180))
        f = next_finding(5.0)
        assert f["domain"] == "three.example" and time.monotonic() - written <= 5.0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert json.loads(pos.read_text())["inode"] == log.stat().st_ino


def test_resume_reads_every_line_once_even_across_a_rotation_while_down(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    pos = tmp_path / "pos.json"
    batch1 = lines_for("a.example", 50, T0)  # 100 lines
    append(log, batch1)
    tail = Follower(log, pos)
    got = tail.read()
    assert len(got) == 100
    tail.save()
    # While the follower is down: 40 more lines, a rotation, 30 lines in the new file, and a
    # half-written line at the end.
    append(log, lines_for("b.example", 20, T0 + 200))
    os.rename(log, tmp_path / "events-2026-05-28T20-40-00.000.log")
    append(log, lines_for("c.example", 15, T0 + 300))
    half = lines_for("d.example", 1, T0 + 400)[0]
    with log.open("a") as fh:
        fh.write(half[:50])
    again = Follower(log, pos)
    got2 = again.read()
    got2 += again.read()
    assert [g.decode() for g in got2] == lines_for("b.example", 20, T0 + 200) + lines_for(
        "c.example", 15, T0 + 300
    )
    with log.open("a") as fh:
        fh.write(half[50:] + "\n")
    assert [g.decode() for g in again.read()] == [half]
    again.save()
    third = Follower(log, pos)
    assert third.read() == []


def test_a_file_truncated_and_rewritten_past_the_old_offset_is_read_from_the_start(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.log"
    append(log, lines_for("a.example", 5, T0))
    tail = Follower(log)
    assert len(tail.read()) == 10
    longer = lines_for("bb.example", 8, T0 + 100)  # more bytes than before, between two looks
    log.write_text("".join(line + "\n" for line in longer))
    assert [g.decode() for g in tail.read()] == longer


def test_a_never_ending_pipe_gets_findings_as_they_happen() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher.cli", "flows", "--follow", "-", "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        proc.stdin.write("".join(x + "\n" for x in lines_for("pipe.example", 3, T0)))
        proc.stdin.flush()
        written = time.monotonic()
        f = json.loads(out.get(timeout=10))  # the pipe stays open: no EOF has been sent
        assert f["domain"] == "pipe.example" and time.monotonic() - written <= 5.0
    finally:
        proc.stdin.close()  # EOF ends the stream
        assert proc.wait(20) == 0


def test_a_live_judge_waits_for_plain_names_to_ripen_and_pages_only_on_the_tunnels(
    tmp_path: Path,
) -> None:
    """The lab's ordinary client, met cold (a follower just started): its first second holds
    64 answered or stale names not yet asked again. Judged live, as a follower judges (every
    few lines), they are not one-off until they could have been asked again, so only the two
    tools' tunnels alert, whatever the reads' size; judged without the wait the client pages."""
    from tests.lab import run as lab
    from watcher.config import Config
    from watcher.flows.scan import FlowScan

    flows, _, _ = lab.render(lab.FIXTURE, tmp_path)
    lines = flows.read_bytes().split(b"\n")[:-1]
    tunnels = {
        ("tunnel-lab/iodine-client-7c9d5b8f4-q2wxp", "iodinelab.test"),
        ("tunnel-lab/dns2tcp-client-5f6b7c8d9-h7k2m", "dns2tcplab.test"),
    }

    def alerts(live: bool, chunk: int) -> set[tuple[str, str | None]]:
        scan = FlowScan(Config(), live=live)
        got = set()
        for i in range(0, len(lines), chunk):
            for f in scan.feed(lines[i : i + chunk]) + scan.judge_now():
                if f.is_alert:
                    got.add((f.source, f.domain))
        return got

    for chunk in (50, 200, 1000):
        assert alerts(True, chunk) == tunnels, chunk
    assert alerts(False, 200) > tunnels  # the test can fail: unripe names counted, it pages
