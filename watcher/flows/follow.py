"""Following an exporter file (rotation, truncation, a saved position) or a pipe, feeding a
FlowScan and reporting findings as they happen."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from watcher.config import Config
from watcher.errors import SourceError
from watcher.findings import Finding
from watcher.flows.checkpoint import Checkpoint, CheckpointError
from watcher.flows.scan import FlowScan
from watcher.sources.flows import LineCounts
from watcher.sources.relay.stream import RelayStream


@dataclass
class Position:
    """Where a follower stopped: the file's inode, the offset after the last whole line, and
    the bytes just before it (a file truncated and rewritten past the offset shows otherwise)."""

    inode: int
    offset: int
    mark: str = ""  # hex of up to 32 bytes before offset

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Position:
        return cls(int(raw["inode"]), int(raw["offset"]), str(raw.get("mark", "")))

    def to_json(self) -> dict[str, Any]:
        return {"inode": self.inode, "offset": self.offset, "mark": self.mark}

    @classmethod
    def load(cls, path: Path | None) -> Position | None:
        if path is None or not path.exists():
            return None
        try:
            return cls.of(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            raise SourceError(
                f"position file {path} is unreadable: delete it to start over"
            ) from None

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        os.replace(tmp, path)


MARK = 32
CHUNK = 4 << 20  # bytes a read takes at most: ~4,000 flow lines


class Follower:
    """`tail -F` for an exporter file: follows rotation (a new inode at the path) and truncation
    (the size fell below our offset, or the bytes before it changed: truncated and rewritten
    between two looks), never splits a line, and resumes from a saved position (in the rotated
    backup if the file was rotated while we were down)."""

    eof = False  # a file is never done: it may grow or rotate

    def __init__(
        self, path: Path, position_file: Path | None = None, resume: Position | None = None
    ) -> None:
        """`resume`: where to go on from (a checkpoint's position, which matches its state),
        else the position file's."""
        self.path = path
        self.position_file = position_file
        self.fh: BinaryIO | None = None
        self.inode = -1
        self.offset = 0
        self.partial = b""
        self.mark = b""
        self._resume(resume if resume is not None else Position.load(position_file))

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
        """Whole lines available now, at most about CHUNK bytes of them (a backlog is read in
        pieces, so a stop request is heard between them); possibly none."""
        if self.fh is None:
            if self.path.exists():
                self._open(self.path, 0)
            else:
                return []
        assert self.fh is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._drain()[0]
        if st.st_ino == self.inode and self._rewritten(os.fstat(self.fh.fileno()).st_size):
            self._open(self.path, 0)  # truncated in place (copytruncate)
        out, more = self._drain()
        if st.st_ino != self.inode and not more:
            # The rotated file is read to its end: its last unterminated line, then the new one.
            if self.partial:
                out.append(self.partial)
            self._open(self.path, 0)
            out += self._drain()[0]
        return out

    def _drain(self) -> tuple[list[bytes], bool]:
        """Whole lines of the next chunk, and whether the file may hold more."""
        assert self.fh is not None
        data = self.fh.read(CHUNK)
        if not data:
            return [], False
        more = len(data) == CHUNK
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        self.offset = self.fh.tell() - len(self.partial)
        self.mark = self._mark_at(self.offset)
        return [line for line in lines if line], more

    def position(self) -> Position:
        """After the last whole line returned: where a restart goes on."""
        return Position(self.inode, self.offset, self.mark.hex())

    def save(self) -> None:
        self.position().save(self.position_file)


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
    checkpoint: Checkpoint | None = None,
    warn: Callable[[str, str], None] = lambda stage, msg: None,
    relay: Callable[[dict[str, Any] | None, LineCounts], RelayStream] | None = None,
) -> FlowScan:
    """Tail `path` (None: stdin), or the stream `relay(position, counts)` opens; `emit` each
    finding that is new or more severe; call `every` (a notify cycle) each
    flows.notify_interval. With a `checkpoint`, start from its state and position and write it
    every flows.checkpoint_interval and when stopping; `warn(stage, message)` hears of a
    checkpoint that could not be read ("read") or written ("write")."""
    scan: FlowScan = FlowScan(cfg, live=True)
    resume: dict[str, Any] | None = None
    if checkpoint is not None and (path is not None or relay is not None):
        scan, resume = _restored(cfg, checkpoint, warn)
    tail: Follower | StreamTail | RelayStream
    if relay is not None:
        tail = relay(resume, scan.source.counts)
        scan.source.notes = tail.coverage.warnings
    elif path is None:
        tail = StreamTail(sys.stdin.fileno())
    else:
        tail = Follower(path, position_file, _position(resume, warn))

    def save() -> None:
        tail.save()
        if checkpoint is None or isinstance(tail, StreamTail):
            return
        pos = tail.position()
        try:
            checkpoint.save(
                scan.snapshot(),
                pos.to_json() if isinstance(pos, Position) else pos,
                scan.window.now,
                len(scan.window.pairs),
            )
        except CheckpointError as exc:
            warn("write", str(exc))

    try:
        last_judge = last_every = time.monotonic()
        while not stop() and not tail.eof:
            if isinstance(tail, RelayStream):
                flows = tail.read()
                found = scan.feed_flows(flows)
                got = bool(flows)
            else:
                lines = tail.read()
                found = scan.feed(lines)
                got = bool(lines)
            for f in found:
                emit(f)
            now = time.monotonic()
            if now - last_judge >= cfg.flows.report_interval:
                for f in scan.judge_now():
                    emit(f)
                tail.save()
                last_judge = now
                if tick is not None:
                    tick(scan)
            if checkpoint is not None and checkpoint.due():
                save()
            if every is not None and now - last_every >= cfg.flows.notify_interval:
                every(scan)
                last_every = now
            if not got and isinstance(tail, Follower):
                time.sleep(poll)
        save()
    finally:
        if isinstance(tail, RelayStream):
            tail.close()
    if every is not None:
        every(scan)
    return scan


def _position(raw: dict[str, Any] | None, warn: Callable[[str, str], None]) -> Position | None:
    if not raw:
        return None
    try:
        return Position.of(raw)
    except (KeyError, TypeError, ValueError):
        warn("read", "checkpoint holds no file position (written by --relay?): position file used")
        return None


def _restored(
    cfg: Config, checkpoint: Checkpoint, warn: Callable[[str, str], None]
) -> tuple[FlowScan, dict[str, Any] | None]:
    """A scan holding the checkpoint's state, and the position that state is as of; an empty
    scan and None (go on from the position file, or from now) when there is none or it is
    unusable."""
    try:
        got = checkpoint.load()
        if got is None:
            return FlowScan(cfg, live=True), None
        scan = FlowScan(cfg, live=True)
        scan.restore(got.state)
    except CheckpointError as exc:
        warn("read", str(exc))
        return FlowScan(cfg, live=True), None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        warn("read", f"checkpoint {checkpoint.path} is corrupt ({type(exc).__name__})")
        return FlowScan(cfg, live=True), None
    scan.window.trim()
    return scan, got.position
