"""A follower's checkpoint: its channels' windows and read position, on its state volume.

A restarted follower (a rollout, an OOM kill, a node reboot) restores what the judge reads
(every pair's spans: short, long and day, their names and answers, the sources' volume
history, the findings already reported) and goes on from the position saved with it, so no
line is counted twice and none is skipped. Without it the long window would start empty and
the day window would need 12 hours of lines again.

The file: a magic line, a JSON header line (format, layout, window settings, write time, the
flow time it is as of, the read position), the body, and the SHA-256 of header and body. The
body is a pickle of plain values and the window's PairState records only: it is read with an
unpickler that refuses every other class (pickle's "restricting globals"), so a tampered
file cannot run code. Written atomically (temporary file, fsync, rename). A checkpoint that
cannot be read, is from another version or other window settings, is older than the day
window, or cannot be written is a one-line warning and a count in
dnswatch_checkpoint_failures_total; the follower runs on from what it has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.config import Config
from watcher.duration import human_duration
from watcher.flows import window as fw

MAGIC = b"dnswatch-checkpoint\n"
FORMAT = 2  # 2: the pairs as a list
# The packed layout a body is only readable with: PairState's fields and the offsets of its
# arrays and name codes. A build that changes any of them reads an older body as "another
# version" (a warning), never as wrong figures.
LAYOUT = hashlib.sha256(
    repr(
        (
            [f.name for f in dataclasses.fields(fw.PairState)],
            fw.FlowWindow.STATE,
            fw.STATS,
            fw.B_SIZE,
            fw.D_SIZE,
            fw.DAY_SLOT,
            fw.TIME_UNIT,
            (fw.TOUCH_SHIFT, fw.ASKS_SHIFT, fw.POD_SHIFT, fw.LAST_SHIFT, fw.TIME_SHIFT),
            fw.REASKS_KEPT,
        )
    ).encode()
).hexdigest()[:16]

_ALLOWED = {
    ("watcher.flows.window", "PairState"),
    ("array", "array"),
    ("array", "_array_reconstructor"),
    ("collections", "OrderedDict"),
}


DIGEST = 32  # the file ends with the SHA-256 of its header line and body


class _Hashing:
    """A file the pickle is streamed into, hashing what passes."""

    def __init__(self, fh: io.BufferedWriter) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.fh.write(data)


class CheckpointError(Exception):
    """One line saying why a checkpoint was not read or written."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused class {module}.{name}")
        return super().find_class(module, name)


def settings(cfg: Config) -> dict[str, float]:
    """The settings the saved spans are cut by: restored under others they would mislead."""
    w, j = cfg.windows, cfg.judge
    return {
        "step": w.step,
        "short": w.short,
        "long": w.long,
        "day": w.day,
        "repeat_step": j.repeat_step,
        "repeat_min_slots": j.repeat_min_slots,
        "min_score": cfg.names.min_score,
    }


def horizon(cfg: Config) -> float:
    """How long a checkpoint's evidence stays worth restoring: the widest window."""
    return max(cfg.windows.long, cfg.windows.day)


@dataclass(frozen=True)
class Restored:
    state: dict[str, Any]
    position: dict[str, Any] | None
    flow_time: float
    pairs: int
    written: float


@dataclass
class Written:
    bytes: int
    seconds: float
    pairs: int


class Checkpoint:
    """One follower's checkpoint file: `load` once at start, `save` every `interval` seconds
    (flows.checkpoint_interval) and at shutdown."""

    def __init__(self, path: Path, cfg: Config) -> None:
        self.path = path
        self.cfg = cfg
        self.interval = cfg.flows.checkpoint_interval
        self.last = time.monotonic()
        self.written: Written | None = None  # the last write

    def due(self) -> bool:
        return self.interval > 0 and time.monotonic() - self.last >= self.interval

    def save(
        self, state: dict[str, Any], position: dict[str, Any] | None, flow_time: float, pairs: int
    ) -> Written:
        """Write atomically; CheckpointError (the old checkpoint stays) if it cannot be."""
        began = time.perf_counter()
        self.last = time.monotonic()
        header = {
            "format": FORMAT,
            "layout": LAYOUT,
            "settings": settings(self.cfg),
            "written": time.time(),
            "flow_time": flow_time,
            "position": position,
            "pairs": pairs,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(MAGIC)
                out = _Hashing(fh)
                out.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
                # Streamed, and without pickle's memo (no object is shared or cyclic here):
                # the memo of millions of objects costs more memory than the state itself.
                pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
                pickler.fast = True
                pickler.dump(state)
                fh.write(out.sha.digest())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise CheckpointError(
                f"cannot write checkpoint {self.path}: {exc.strerror or exc}"
            ) from None
        size = self.path.stat().st_size
        self.written = Written(size, time.perf_counter() - began, pairs)
        return self.written

    def load(self) -> Restored | None:
        """The saved state, None when there is none; CheckpointError when it is unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(
                f"cannot read checkpoint {self.path}: {exc.strerror or exc}"
            ) from None
        where = f"checkpoint {self.path}"
        if not raw.startswith(MAGIC):
            raise CheckpointError(f"{where} is not a dnswatch checkpoint (or is truncated)")
        signed, digest = raw[len(MAGIC) : -DIGEST], raw[-DIGEST:]
        head, sep, body = signed.partition(b"\n")
        try:
            header = json.loads(head) if sep else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise CheckpointError(f"{where} has a damaged header (truncated or corrupt)")
        if header.get("format") != FORMAT or header.get("layout") != LAYOUT:
            raise CheckpointError(
                f"{where} was written by another version of dnswatch (format "
                f"{header.get('format')}, layout {header.get('layout')}): not restored"
            )
        if header.get("settings") != settings(self.cfg):
            raise CheckpointError(
                f"{where} was written with other window settings (windows.*, judge.repeat_*, "
                "names.min_score): not restored"
            )
        if hashlib.sha256(signed).digest() != digest:
            raise CheckpointError(f"{where} is truncated or corrupt (checksum)")
        written = float(header.get("written", 0))
        age = time.time() - written
        widest = horizon(self.cfg)
        if age > widest:
            raise CheckpointError(
                f"{where} is {human_duration(age)} old, past the {human_duration(widest)} "
                "window it serves: not restored"
            )
        try:
            state = _Unpickler(io.BytesIO(body)).load()
        except Exception as exc:  # noqa: BLE001 - any failure of a bad body is one warning
            raise CheckpointError(f"{where} is corrupt ({type(exc).__name__})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{where} is corrupt (not a state record)")
        return Restored(
            state,
            header.get("position"),
            float(header.get("flow_time", 0.0)),
            int(header.get("pairs", 0)),
            written,
        )


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (a crash right after must not bring the old file back)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
