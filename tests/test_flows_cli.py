"""`dnswatch flows`: the output contract other tools read, inputs of every kind, exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, dnswatch
from tests.flowlines import FIXTURES, exchange, write
from watcher.findings import rfc3339
from watcher.sources.flows import parse_time

T0 = 1_780_000_000.0


def flows_json(*args: str) -> dict:  # type: ignore[type-arg]
    proc = dnswatch("flows", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def tunnel(source: str, domain: str, n: int, start: float = T0, every: float = 2.0) -> list[str]:
    lines: list[str] = []
    for i in range(n):
        q = f"{(i * 7919 + 12345) ** 3:x}{i:04x}.{domain}"
        lines += exchange(start + i * every, source, q, "TXT", rrtypes=["TXT"])
    return lines


def test_real_lines_give_one_object_of_scans_shape_with_counts() -> None:
    files = sorted(str(p) for p in FIXTURES.glob("*.jsonl"))
    out = flows_json(*files)
    assert set(out) == {
        "evaluated_at",
        "findings",
        "warnings",
        "lines_read",
        "dns_flows",
        "skipped",
    }
    assert out["lines_read"] == 487 and out["dns_flows"] == 483
    assert out["skipped"] == {"not_dns": 1, "lost_events": 1, "other_event": 2}
    assert out["findings"] == []
    # The time of the last flow read (the bookinfo sample is the newest: 2021-11-10).
    assert out["evaluated_at"].startswith("2021-11-10T10:41:02")
    assert any("lost-event" in w for w in out["warnings"])


def test_a_tunnel_is_a_finding_with_the_contract_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "f.log", tunnel("shop/api-7d9f8b7c6-x2x4q", "t.evil.example", 120))
    out = flows_json(str(path))
    alerts = [f for f in out["findings"] if f["severity"] != "info"]
    assert len(alerts) == 1
    f = alerts[0]
    assert set(f) == {"kind", "severity", "source", "domain", "score", "summary", "evidence"}
    assert f["source"] == "shop/api-7d9f8b7c6-x2x4q" and f["domain"] == "evil.example"
    assert f["severity"] == "critical" and 0 <= f["score"] <= 1
    ev = f["evidence"]
    assert ev["workload"] == "shop/api" and ev["distinct_names"] >= 100
    assert ev["sample_names"] and ev["data_qtype_share"] == 1.0


def test_rotated_backups_in_a_directory_are_read_oldest_first_gzip_included(
    tmp_path: Path,
) -> None:
    lines = tunnel("shop/api-7d9f8b7c6-x2x4q", "t.evil.example", 90)
    d = tmp_path / "hubble"
    d.mkdir()
    old = d / "events-2026-05-28T20-26-40.000.log.gz"
    with gzip.open(old, "wt") as fh:
        fh.write("".join(line + "\n" for line in lines[:60]))
    write(d / "events-2026-05-28T20-27-40.000.log", lines[60:120])
    write(d / "events.log", lines[120:])
    out = flows_json(str(d))
    assert out["lines_read"] == len(lines)
    last = parse_time(json.loads(lines[-1])["time"])
    assert last is not None and out["evaluated_at"] == rfc3339(last)
    assert any(f["severity"] == "critical" for f in out["findings"])


def test_stdin_from_a_real_pipe_of_hubble_shaped_lines() -> None:
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watcher.cli",
            "simulate",
            "--flows",
            "--hours",
            "0.75",
            "--incident",
            "tunnel,at=20m,duration=10m,rate=15,encoding=base32,domain=x.evil.example",
            "-o",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "flows", "-", "--format", "json"],
        stdin=sim.stdout,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert sim.wait(60) == 0 and proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    alerts = [f for f in out["findings"] if f["severity"] != "info"]
    assert [(f["domain"], f["severity"]) for f in alerts] == [("evil.example", "critical")]
    assert out["lines_read"] > 10_000 and out["skipped"] == {}


def test_hostile_names_are_escaped_in_json_and_on_the_terminal(tmp_path: Path) -> None:
    lines = []
    for i in range(60):
        q = f'\x1b[31m\u202e{i:03d}{"a" * 30}\x07"x`<b>.evil.example'
        lines += exchange(T0 + i, "app/web-1", q, "TXT", rrtypes=["TXT"])
    path = write(tmp_path / "h.log", lines)
    proc = dnswatch("flows", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii() and "\x1b" not in proc.stdout
    assert json.loads(proc.stdout)["findings"]
    text = dnswatch("flows", str(path), "--format", "text").stdout
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "evil.example" in text


def test_exit_codes_2_for_usage_3_for_unreadable_input(tmp_path: Path) -> None:
    none = dnswatch("flows")
    assert none.returncode == 2 and none.stderr.startswith("dnswatch: error:")
    missing = dnswatch("flows", str(tmp_path / "nope.log"))
    assert missing.returncode == 3 and "cannot read flow file" in missing.stderr
    bad_gz = tmp_path / "x.log.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08\x00broken")
    broken = dnswatch("flows", str(bad_gz))
    assert broken.returncode == 3 and "damaged" in broken.stderr
    assert "Traceback" not in missing.stderr + broken.stderr + none.stderr
    both = dnswatch("flows", str(bad_gz), "--follow", str(bad_gz))
    assert both.returncode == 2


def test_garbage_lines_in_a_stream_are_counted_and_the_rest_still_judged(tmp_path: Path) -> None:
    lines = tunnel("shop/api-7d9f8b7c6-x2x4q", "t.evil.example", 80)
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line if i % 10 else line[: len(line) // 3])  # every tenth line truncated
    mixed.insert(5, "\x00\x01 garbage")
    out = flows_json(str(write(tmp_path / "m.log", mixed)))
    assert out["skipped"]["malformed"] == len(lines) // 10 + 1
    assert any(f["severity"] == "critical" for f in out["findings"])
    assert any("malformed" in w for w in out["warnings"])


def test_fixture_copy_keeps_its_license() -> None:
    assert (FIXTURES / "LICENSE.hubble-otel.Apache-2.0").exists()
    assert "Apache License" in (FIXTURES / "LICENSE.hubble-otel.Apache-2.0").read_text()
