"""Metrics files: one scrape of a Hubble agent (`:9965/metrics`, text exposition) or an OpenMetrics
history with timestamps (what `promtool tsdb create-blocks-from openmetrics` reads). `.gz` works.

The window follows the same activity rule as the PromQL source: a series' first sample counts its
whole value, later samples their reset-aware increase.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from watcher.config import LABELS_CONTEXT, SOURCE_CONTEXT, Config, with_source_labels
from watcher.domains import normalize
from watcher.errors import MissingDataError, SourceError
from watcher.sources.prometheus import HELM_HINT
from watcher.window import Window, apply_prefilter, empty_names

_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,?)')
_UNESCAPE = re.compile(r"\\(.)")
_SAMPLE_START = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{|\s)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unescape(value: str) -> str:
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_labels(text: str, start: int) -> tuple[dict[str, str], int]:
    """Parse `{a="b",...}` from text[start] == '{'; values may hold any character, `}` included."""
    labels: dict[str, str] = {}
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError("bad label set")
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
        if not m.group(3):
            while pos < len(text) and text[pos] == " ":
                pos += 1
            if pos < len(text) and text[pos] == "}":
                return labels, pos + 1
            raise ValueError("bad label set")


def _lines(path: Path) -> Iterator[str]:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise SourceError(f"cannot read metrics file {path}: {exc.strerror or exc}") from None
    except (EOFError, gzip.BadGzipFile):
        raise SourceError(f"metrics file {path} is a damaged gzip file") from None
    # Odd bytes in attacker-chosen names must not stop the scan: keep them visible, replaced.
    yield from raw.decode("utf-8", errors="replace").splitlines()


def read_samples(path: Path, metric: str) -> tuple[pd.DataFrame, bool]:
    """Samples of `metric` as (labels-key, labels, value, timestamp or NaN) and whether the
    file is OpenMetrics (timestamps in seconds) rather than the text format (milliseconds)."""
    keys: list[str] = []
    label_sets: dict[str, dict[str, str]] = {}
    values: list[float] = []
    stamps: list[float] = []
    openmetrics = False
    seen_any = False
    parsed: dict[str, str | None] = {}  # label block -> series key (None: another metric)
    for lineno, line in enumerate(_lines(path), 1):
        if not line or line[0] == "#":
            if line.startswith("# EOF"):
                openmetrics = True
            elif line.startswith("# TYPE") or line.startswith("# HELP"):
                seen_any = True
            continue
        seen_any = True
        if not line.startswith(metric):
            # Other metrics are skipped, but a file of something else is not a metrics file.
            if not _SAMPLE_START.match(line) or not _is_number(line.rsplit(None, 1)[-1]):
                raise SourceError(f"{path}:{lineno}: not a valid Prometheus sample line")
            continue
        # Value and timestamp are the last fields; a history repeats each series' label block
        # once per scrape, so parse each block once.
        head, _, last = line.rstrip().rpartition(" ")
        try:
            if head.endswith("}") or head.endswith(metric):
                block, value, stamp = head, float(last), float("nan")
            else:
                block, _, mid = head.rpartition(" ")
                value, stamp = float(mid), float(last)
            if block not in parsed:
                parsed[block] = _series_key(block, metric, label_sets)
        except (ValueError, IndexError):
            raise SourceError(f"{path}:{lineno}: not a valid Prometheus sample line") from None
        key = parsed[block]
        if key is None:
            continue
        keys.append(key)
        values.append(value)
        stamps.append(stamp)
    if not seen_any:
        raise SourceError(f"{path} holds no Prometheus metrics")
    frame = pd.DataFrame({"key": keys, "v": values, "t": stamps})
    frame.attrs["labels"] = label_sets
    return frame, openmetrics


def _series_key(block: str, metric: str, label_sets: dict[str, dict[str, str]]) -> str | None:
    rest = block[len(metric) :].rstrip()
    if rest.startswith("{"):
        labels, end = parse_labels(block, len(metric))
        if block[end:].strip():
            raise ValueError("text after labels")
    elif not rest:
        labels = {}
    else:
        return None  # another metric sharing the prefix
    key = "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
    label_sets.setdefault(key, labels)
    return key


class MetricsFileSource:
    def __init__(self, path: str | Path, cfg: Config) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self._frame: pd.DataFrame | None = None
        self._openmetrics = False

    def _samples(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame, self._openmetrics = read_samples(self.path, self.cfg.labels.metric)
        return self._frame

    def latest(self) -> float | None:
        """The file's last timestamp (the default scan time for a history), or None."""
        t = self._samples()["t"]
        if t.notna().any():
            last = float(t.max())
            return last if self._openmetrics else last / 1000.0
        return None

    def window(self, at: float) -> Window:
        cfg, lab = self.cfg, self.cfg.labels
        frame = self._samples()
        if frame.empty:
            raise MissingDataError(f"metric {lab.metric} not found in {self.path}; {HELM_HINT}")
        labels: dict[str, dict[str, str]] = frame.attrs["labels"]
        if not any(lab.query in ls for ls in labels.values()):
            raise MissingDataError(f"metric {lab.metric} has no '{lab.query}' label; {HELM_HINT}")
        if (
            lab.source == SOURCE_CONTEXT
            and not any(ls.get("source") for ls in labels.values())
            and any(ls.get("source_pod") for ls in labels.values())
        ):
            self.cfg = cfg = with_source_labels(cfg, LABELS_CONTEXT)
            lab = cfg.labels
        for label in lab.source:
            if not any(ls.get(label) for ls in labels.values()):
                raise MissingDataError(
                    f"metric {lab.metric} has no '{label}' label: set labels.source in the config"
                )
        warnings: list[str] = []
        history = bool(frame["t"].notna().all())
        t = frame["t"].to_numpy(dtype=float)
        if history:
            t = t if self._openmetrics else t / 1000.0
        else:
            # One scrape: counters are totals since each agent started; there is no "before".
            t = np.full(len(frame), at)
            warnings.append(
                "single scrape: counts are totals since the agents started; "
                "high_volume needs a history (Prometheus or an OpenMetrics file)"
            )
        key_info = {
            k: (
                "/".join(ls.get(label, "") for label in lab.source),
                normalize(ls.get(lab.query, "")),
            )
            for k, ls in labels.items()
        }
        df = pd.DataFrame({"key": frame["key"].to_numpy(), "t": t, "v": frame["v"].to_numpy()})
        df = df[df["t"] <= at].sort_values(["key", "t"], kind="stable")
        prev = df.groupby("key")["v"].shift()
        # First sample: the whole value (first query included); later: increase, resets restart.
        delta = np.where(prev.isna() | (df["v"] < prev), df["v"], df["v"] - prev)
        df = df.assign(delta=delta)
        df = df[df["delta"] > 0]
        df["source"] = df["key"].map(lambda k: key_info[k][0])
        df["name"] = df["key"].map(lambda k: key_info[k][1])
        everything = df  # volume counts all of a source's DNS, cluster domain included
        df = df[(df["name"] != "") & ~df["name"].map(self._in_cluster).astype(bool)]

        def span(seconds: float) -> pd.DataFrame:
            part = df[df["t"] > at - seconds]
            if part.empty:
                return empty_names()
            return part.groupby(["source", "name"], as_index=False).agg(queries=("delta", "sum"))

        short, long = span(cfg.windows.short), span(cfg.windows.long)
        step = cfg.windows.step
        volume = pd.DataFrame()
        if history:
            part = everything[everything["t"] > at - cfg.windows.baseline]
            end = at - np.floor((at - part["t"].to_numpy()) / step) * step
            volume = (
                part.assign(end=end).groupby(["end", "source"])["delta"].sum().unstack("source")
            )
            # Steps with no activity at all are still steps: keep the time axis complete.
            full = at - np.arange(int(cfg.windows.baseline // step))[::-1] * step
            volume = volume.reindex(full)
        return Window(
            at=at,
            short_seconds=cfg.windows.short,
            long_seconds=cfg.windows.long,
            step_seconds=step,
            short=short,
            long=long,
            shaped=apply_prefilter(
                long, cfg.names.prefilter_label_length, cfg.names.prefilter_name_length
            ),
            volume=volume,
            complete=True,
            warnings=warnings,
        )

    def _in_cluster(self, name: str) -> bool:
        cluster = normalize(self.cfg.labels.cluster_domain)
        return name == cluster or name.endswith("." + cluster)
