"""The Source protocol every source implements.

Every source gives the judge the same input, `Evidence` (watcher.evidence): one record per
channel and each source's volume. Metrics sources (Prometheus, a metrics file) read a `Window`
of per-pod name tables at a time and group it (`WindowSource`); flow lines fill the records
as lines arrive (watcher.flows.source.FlowSource).
"""

from __future__ import annotations

from typing import Protocol

from watcher.config import Config
from watcher.evidence import Evidence, of_window
from watcher.window import Window


class Source(Protocol):
    def evidence(self, at: float) -> Evidence:
        """What the source saw as of `at` (Unix seconds), for the judge."""
        ...

    def latest(self) -> float | None:
        """The default scan time: a history's last sample; None: now."""
        ...


class WindowSource:
    """A metrics source: per-pod name tables around a time, grouped into channels."""

    cfg: Config

    def window(self, at: float) -> Window:
        """Activity around `at`."""
        raise NotImplementedError

    def latest(self) -> float | None:
        raise NotImplementedError

    def evidence(self, at: float) -> Evidence:
        return of_window(self.window(at), self.cfg)
