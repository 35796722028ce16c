"""Durations as people write them in configs and flags: `90s`, `10m`, `6h`, `7d`, or seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: str | int | float) -> float:
    """Return seconds; raise ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _RE.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 10m, 6h, 7d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {value!r}")
    return seconds


def promql_duration(seconds: float) -> str:
    """Format seconds for PromQL range selectors (whole seconds)."""
    return f"{max(1, round(seconds))}s"


def human_duration(seconds: float) -> str:
    """`21600` -> `6h`, `600` -> `10m`, `90` -> `90s`, `86340` -> `23h59m` (a day window
    over a history a minute short of it), `5400` -> `1h30m`: how windows read in findings."""
    s = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    if s % 60 == 0 and s >= 60:
        return f"{s // 3600}h{s % 3600 // 60}m" if s > 3600 else f"{s // 60}m"
    return f"{s}s"
