"""The Source protocol of the metrics sources, and opening the one the user chose."""

from __future__ import annotations

import time
from typing import Protocol

from watcher.config import Config
from watcher.errors import ConfigError
from watcher.progress import QUIET, Progress
from watcher.window import Window


class Source(Protocol):
    def window(self, at: float) -> Window:
        """Activity around `at` (Unix seconds)."""
        ...

    def latest(self) -> float | None:
        """The default scan time: a history's last sample; None: now."""
        ...


def open_source(cfg: Config, metrics_file: str | None, progress: Progress = QUIET) -> Source:
    """The metrics file when given, else the configured Prometheus."""
    from watcher.sources.metrics_file import MetricsFileSource
    from watcher.sources.prometheus import PrometheusSource

    if metrics_file:
        progress.step(f"reading {metrics_file}")
        return MetricsFileSource(metrics_file, cfg)
    if not cfg.prometheus.url:
        raise ConfigError(
            "no data source: give --prometheus-url URL (or set "
            "DNSWATCH_PROMETHEUS_URL) or --metrics-file PATH"
        )
    source = PrometheusSource(cfg.prometheus.url, cfg)
    source.progress = progress
    return source


def read_window(source: Source, at: float | None, progress: Progress = QUIET) -> Window:
    """The window at `at`, or at the source's default time."""
    when = at if at is not None else (source.latest() or time.time())
    progress.step("building the window")
    try:
        return source.window(when)
    finally:
        progress.finish()
