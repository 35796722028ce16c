"""The flow pipeline: lines -> DnsFlow -> FlowWindow -> flow detectors -> findings.

A batch read (`dnswatch flows FILE…`) judges every pair each time one of its 5-minute buckets
closes, when it is evicted and at the end, and keeps the most severe finding per (workload,
domain): an incident early in a long file is reported as well as one at its end. `follow`
tails a growing, rotating file and reports a finding as soon as the pair crosses a threshold.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from watcher.config import Config, domain_rules
from watcher.detect import detect_high_volume, judge_all
from watcher.errors import SourceError
from watcher.findings import SEVERITY_RANK, Finding, report, sort_findings
from watcher.flowwindow import FlowWindow, PairSummary, to_channel
from watcher.sources.flows import LineCounts, parse_stream
from watcher.window import Window, empty_names


@dataclass
class FlowScan:
    cfg: Config
    window: FlowWindow = field(init=False)
    counts: LineCounts = field(default_factory=LineCounts)
    best: dict[tuple[str, str], Finding] = field(default_factory=dict)
    next_volume: float = 0.0

    def __post_init__(self) -> None:
        self.window = FlowWindow(self.cfg, domain_rules(self.cfg))
        self.least = min(
            self.cfg.burst.info_min_distinct,
            self.cfg.burst.encoded_min_distinct,
            self.cfg.flows.min_distinct,
            self.cfg.names.min_distinct,
        )

    def feed(self, lines: Iterable[bytes]) -> list[Finding]:
        """Consume lines; return findings that are new or more severe than before."""
        changed: list[Finding] = []
        w = self.window
        for n, flow in enumerate(parse_stream(lines, self.counts)):
            w.add(flow)
            if w.closed:
                changed += self._judge(w.take_closed(self.least))
            if n % 4096 == 0:
                w.expire()
            if w.evicted:
                changed += self._judge(w.evicted)
                w.evicted.clear()
            if flow.time >= self.next_volume:
                changed += self.judge_volume(flow.time)
        return changed

    def judge_volume(self, at: float) -> list[Finding]:
        """Each source's rate against its own past, as the metrics path judges it."""
        step = self.cfg.windows.step
        self.next_volume = at - at % step + self.cfg.volume.recent / 2
        at = at - at % step  # whole buckets only: a half-filled one reads as a drop
        frame = self.window.volume_frame(at)
        if frame.empty:
            return []
        win = self._volume_window(at, frame)
        return self._keep(detect_high_volume(win, self.cfg, self.window.rules))

    def _volume_window(self, at: float, frame: Any) -> Window:
        return Window(
            at=at,
            short_seconds=self.cfg.windows.short,
            long_seconds=self.cfg.windows.long,
            step_seconds=self.cfg.windows.step,
            short=empty_names(),
            long=empty_names(),
            shaped=empty_names(),
            volume=frame,
        )

    def current(self) -> list[Finding]:
        """What is true now, for incident tracking: findings of the active pairs and of the
        sources' recent volume (a pair that went quiet and expired is absent: it resolves)."""
        found = self._channels(self.window.candidates(self.least))
        at = self.window.now
        if at:
            step = self.cfg.windows.step
            frame = self.window.volume_frame(at - at % step)
            if not frame.empty:
                found += detect_high_volume(
                    self._volume_window(at - at % step, frame), self.cfg, self.window.rules
                )
        return sort_findings(found)

    def judge_now(self) -> list[Finding]:
        return self._judge(self.window.candidates(self.least))

    def _channels(self, summaries: list[PairSummary]) -> list[Finding]:
        return judge_all([to_channel(s, self.cfg) for s in summaries], self.cfg)

    def _judge(self, summaries: list[PairSummary]) -> list[Finding]:
        return self._keep(self._channels(summaries))

    def _keep(self, found: list[Finding]) -> list[Finding]:
        changed = []
        for f in found:
            key = (str(f.evidence.get("workload", f.source)), f.domain or "")
            old = self.best.get(key)
            # Most severe first; at the same severity, the fuller picture (more names) wins.
            # Hosts are hosts for their whole life: a channel first judged before its names
            # had been re-asked or shared is quieted once they are (a file read in hindsight).
            hosts = "quieted_by" in f.evidence and old is not None and old.is_alert
            if old is None or hosts or _rank(f) > _rank(old):
                # Keep the source that was reported first for a stable incident identity.
                if old is not None and old.source != f.source:
                    f = Finding(
                        f.kind, f.severity, old.source, f.domain, f.score, f.summary, f.evidence
                    )
                self.best[key] = f
                if old is None or SEVERITY_RANK[f.severity] > SEVERITY_RANK[old.severity]:
                    changed.append(f)
        return changed

    def warnings(self) -> list[str]:
        out = []
        assert self.counts.skipped is not None
        lost = self.counts.skipped["lost_events"]
        if lost:
            out.append(
                f"{lost} lost-event record(s): Hubble dropped flows before the exporter wrote "
                "them (raise the agent's event buffer or filter the exporter to DNS)"
            )
        bad = self.counts.skipped["malformed"]
        if bad:
            out.append(f"{bad} malformed or truncated line(s) skipped")
        nt = self.counts.skipped["no_time"]
        if nt:
            out.append(f"{nt} DNS flow(s) without a time: keep `time` in the exporter's field mask")
        if self.counts.lines and not self.counts.dns_flows:
            out.append("no DNS flows in the input: is the exporter filtered to DNS (l7 dns)?")
        return out

    def result(self) -> dict[str, Any]:
        self.judge_now()
        if self.window.now:
            self.judge_volume(self.window.now + self.cfg.windows.step)
        at = self.window.now or time.time()
        findings = sort_findings(list(self.best.values()))
        out = report(at, findings, self.warnings())
        out.update(self.counts.to_json())
        return out


def _rank(f: Finding) -> tuple[int, float, float]:
    return (SEVERITY_RANK[f.severity], float(f.evidence.get("distinct_names") or 0), f.score)


# -- follow -------------------------------------------------------------------------------------


@dataclass
class Position:
    """Where a follower stopped: the file's inode, the offset after the last whole line, and
    the bytes just before it (a file truncated and rewritten past the offset shows otherwise)."""

    inode: int
    offset: int
    mark: str = ""  # hex of up to 32 bytes before offset

    @classmethod
    def load(cls, path: Path | None) -> Position | None:
        if path is None or not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(int(raw["inode"]), int(raw["offset"]), str(raw.get("mark", "")))
        except (OSError, ValueError, KeyError, TypeError):
            raise SourceError(
                f"position file {path} is unreadable: delete it to start over"
            ) from None

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({"inode": self.inode, "offset": self.offset, "mark": self.mark}))
        os.replace(tmp, path)


MARK = 32


class Follower:
    """`tail -F` for an exporter file: follows rotation (a new inode at the path) and truncation
    (the size fell below our offset, or the bytes before it changed: truncated and rewritten
    between two looks), never splits a line, and resumes from a saved position (in the rotated
    backup if the file was rotated while we were down)."""

    def __init__(self, path: Path, position_file: Path | None = None) -> None:
        self.path = path
        self.position_file = position_file
        self.fh: BinaryIO | None = None
        self.inode = -1
        self.offset = 0
        self.partial = b""
        self.mark = b""
        self._resume(Position.load(position_file))

    def _open(self, path: Path, offset: int) -> None:
        if self.fh is not None:
            self.fh.close()
        self.fh = path.open("rb")
        self.inode = os.fstat(self.fh.fileno()).st_ino
        self.offset = offset
        self.mark = self._mark_at(offset)
        self.fh.seek(offset)
        self.partial = b""

    def _mark_at(self, offset: int) -> bytes:
        assert self.fh is not None
        start = max(0, offset - MARK)
        return os.pread(self.fh.fileno(), offset - start, start) if offset else b""

    def _resume(self, pos: Position | None) -> None:
        if pos is None:
            if self.path.exists():
                self._open(self.path, 0)
            return
        if self.path.exists() and self.path.stat().st_ino == pos.inode:
            self._open(self.path, 0)
            if (
                pos.offset <= self.path.stat().st_size
                and self._mark_at(pos.offset).hex() == pos.mark
            ):
                self._open(self.path, pos.offset)
            return
        # Rotated while we were down: finish the backup that holds our inode, then the rest.
        for f in sorted(self.path.parent.iterdir()):
            if f != self.path and f.is_file() and f.stat().st_ino == pos.inode:
                self._open(f, pos.offset)
                return
        if self.path.exists():
            self._open(self.path, 0)

    def _rewritten(self, size: int) -> bool:
        return size < self.offset or (self.offset > 0 and self._mark_at(self.offset) != self.mark)

    def read(self) -> list[bytes]:
        """Whole lines available now (possibly none)."""
        out: list[bytes] = []
        if self.fh is None:
            if self.path.exists():
                self._open(self.path, 0)
            else:
                return out
        assert self.fh is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return out + self._drain()
        if st.st_ino == self.inode and self._rewritten(os.fstat(self.fh.fileno()).st_size):
            self._open(self.path, 0)  # truncated in place (copytruncate)
        out += self._drain()
        if st.st_ino != self.inode:
            out += self._drain()  # the rest of the rotated file, then the new one
            if self.partial:
                out.append(self.partial)
            self._open(self.path, 0)
            out += self._drain()
        return out

    def _drain(self) -> list[bytes]:
        assert self.fh is not None
        data = self.fh.read()
        if not data:
            return []
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        self.offset = self.fh.tell() - len(self.partial)
        self.mark = self._mark_at(self.offset)
        return [line for line in lines if line]

    def save(self) -> None:
        Position(self.inode, self.offset, self.mark.hex()).save(self.position_file)


class StreamTail:
    """`--follow -`: a never-ending pipe (`hubble observe --follow -o jsonpb`), read without
    blocking the periodic judging; ends at EOF. Nothing to save: a pipe cannot be resumed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial = b""
        self.eof = False

    def read(self, wait: float = 0.2) -> list[bytes]:
        import select

        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return []
        data = os.read(self.fd, 1 << 20)
        if not data:
            self.eof = True
            rest, self.partial = self.partial, b""
            return [rest] if rest.strip() else []
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        return [line for line in lines if line]

    def save(self) -> None:
        return


def follow(
    path: Path | None,
    cfg: Config,
    emit: Callable[[Finding], None],
    position_file: Path | None = None,
    stop: Callable[[], bool] = lambda: False,
    poll: float = 0.2,
    every: Callable[[FlowScan], None] | None = None,
    tick: Callable[[FlowScan], None] | None = None,
) -> FlowScan:
    """Tail `path`; `emit` each finding that is new or more severe; call `every` (a notify
    cycle) each flows.notify_interval."""
    scan = FlowScan(cfg)
    tail: Follower | StreamTail = (
        StreamTail(sys.stdin.fileno()) if path is None else Follower(path, position_file)
    )
    last_judge = last_every = time.monotonic()
    while not stop() and not getattr(tail, "eof", False):
        lines = tail.read()
        for f in scan.feed(lines):
            emit(f)
        now = time.monotonic()
        if now - last_judge >= cfg.flows.report_interval:
            for f in scan.judge_now():
                emit(f)
            tail.save()
            last_judge = now
            if tick is not None:
                tick(scan)
        if every is not None and now - last_every >= cfg.flows.notify_interval:
            every(scan)
            last_every = now
        if not lines and isinstance(tail, Follower):
            time.sleep(poll)
    tail.save()
    if every is not None:
        every(scan)
    return scan
