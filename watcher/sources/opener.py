"""Opening the source the user chose, and reading it at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from watcher.config import Config
from watcher.errors import ConfigError
from watcher.evidence import Evidence
from watcher.progress import QUIET, Progress
from watcher.sources.base import Source, WindowSource
from watcher.sources.metrics_file import MetricsFileSource
from watcher.sources.prometheus import PrometheusSource
from watcher.window import Window

T = TypeVar("T")


def open_source(cfg: Config, metrics_file: str | None, progress: Progress = QUIET) -> WindowSource:
    """The metrics file when given, else the configured Prometheus."""
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


def scan_time(source: Source, at: float | None) -> float:
    """`at`, or the source's default time."""
    return at if at is not None else (source.latest() or time.time())


def read_window(source: WindowSource, at: float | None, progress: Progress = QUIET) -> Window:
    """The window at `at`, or at the source's default time."""
    return _read(source.window, scan_time(source, at), progress)


def read_evidence(source: Source, at: float | None, progress: Progress = QUIET) -> Evidence:
    """The evidence at `at`, or at the source's default time."""
    return _read(source.evidence, scan_time(source, at), progress)


def _read(read: Callable[[float], T], when: float, progress: Progress) -> T:
    progress.step("building the window")
    try:
        return read(when)
    finally:
        progress.finish()
