"""The judge's one input, whatever the source: a record per channel (watcher.channel) and
each source's query volume, as of `at`, with the source's warnings.

Metrics sources give a Window of per-pod name tables, grouped into channels by `of_window`;
flow lines fill the channel records as lines arrive (watcher.flows) and give the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from watcher.channel import Channel, from_window
from watcher.config import Config, domain_rules
from watcher.findings import ChannelNames
from watcher.window import Window


@dataclass(frozen=True)
class Volume:
    """Queries per source per step, judged at `at` against each source's own past."""

    at: float
    step_seconds: float
    frame: pd.DataFrame  # index: bucket end (Unix s); columns: sources; values: queries per step


@dataclass(frozen=True)
class Evidence:
    at: float
    channels: list[Channel]
    volume: Volume | None = None  # None: nothing to judge volume by (flows between steps)
    warnings: list[str] = field(default_factory=list)


def of_window(window: Window, cfg: Config) -> Evidence:
    """A metrics window's evidence: its name tables grouped into channels, and its volume."""
    return Evidence(
        window.at,
        from_window(window, cfg, domain_rules(cfg)),
        Volume(window.at, window.step_seconds, window.volume),
        list(window.warnings),
    )


def busiest(channels: list[Channel], limit: int) -> list[ChannelNames]:
    """The `limit` channels with most distinct names in each of the short and long windows."""
    out: list[ChannelNames] = []
    for window in ("short", "long"):
        spans = [(ch, getattr(ch, window)) for ch in channels]
        ranked = sorted(
            ((ch, s) for ch, s in spans if s is not None and s.names.distinct),
            key=lambda cs: (-cs[1].names.distinct, cs[0].client, cs[0].domain),
        )
        out += [
            ChannelNames(ch.client, ch.domain, window, s.names.distinct, s.one_off.distinct)
            for ch, s in ranked[:limit]
        ]
    return out
