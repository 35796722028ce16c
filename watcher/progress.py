"""What a long scan is doing, on stderr, for a person at a terminal.

One line, rewritten in place (`[2/5] counting distinct names per zone, 6h…`), cleared at the
end. Silent when stderr is not a terminal (a CronJob's log, a pipe) or with --quiet: logs and
the JSON on stdout never carry it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, enabled: bool, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.enabled = enabled
        self.started = time.monotonic()
        self.shown = False
        self._lock = threading.Lock()  # a scan's query chains report from several threads

    @classmethod
    def for_terminal(cls, quiet: bool) -> Progress:
        return cls(not quiet and sys.stderr.isatty())

    def step(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if not self.enabled:
            return
        where = f"[{done}/{total}] " if done is not None and total else ""
        elapsed = time.monotonic() - self.started
        line = f"dnswatch: {where}{text} ({elapsed:.0f}s)"
        with self._lock:
            self.out.write("\r\x1b[K" + line[:200])
            self.out.flush()
            self.shown = True

    def finish(self) -> None:
        with self._lock:
            if self.enabled and self.shown:
                self.out.write("\r\x1b[K")
                self.out.flush()
                self.shown = False


QUIET = Progress(False)
