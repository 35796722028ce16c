"""Metrics files: one scrape of a Hubble agent (`:9965/metrics`, text exposition) or an OpenMetrics
history with timestamps (what `promtool tsdb create-blocks-from openmetrics` reads). `.gz` works.

The window follows the same activity rule as the PromQL source: a series' first sample counts its
whole value, later samples their reset-aware increase.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from watcher.config import (
    LABELS_CONTEXT,
    SOURCE_CONTEXT,
    Config,
    day_history_needed,
    with_source_labels,
)
from watcher.domains import normalize
from watcher.errors import MissingDataError, SourceError
from watcher.sources.base import Source, WindowSource
from watcher.sources.prometheus.checks import HELM_HINT
from watcher.window import (
    RESPONSES,
    Window,
    answer_of,
    apply_prefilter,
    empty_names,
    reask_bit,
    response_labels,
    source_name,
    step_of,
)

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
    """The file's lines, streamed (a history of any size in bounded memory); `.gz` too."""
    try:
        with path.open("rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        # Odd bytes in attacker-chosen names must not stop the scan: keep them visible, replaced.
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as raw:
            for line in raw:
                yield line.rstrip("\r\n")
    except OSError as exc:
        if isinstance(exc, gzip.BadGzipFile):
            raise SourceError(f"metrics file {path} is a damaged gzip file") from None
        raise SourceError(f"cannot read metrics file {path}: {exc.strerror or exc}") from None
    except (EOFError, zlib.error):
        raise SourceError(f"metrics file {path} is a damaged gzip file") from None


@dataclass
class Survey:
    """What one pass over the file found before the window is built."""

    openmetrics: bool = False
    seen_any: bool = False
    samples: int = 0
    latest: float | None = None
    earliest: float | None = None
    all_stamped: bool = True
    has_query: bool = False
    has_label: dict[str, bool] = field(default_factory=dict)
    has_responses: bool = False  # hubble_dns_responses_total is in the file too


def samples(
    path: Path, metric: str, survey: Survey
) -> Iterator[tuple[str, dict[str, str], float, float]]:
    """(label block, labels, value, timestamp or NaN) of each sample of `metric`, streamed; the
    survey is filled in as the lines go by. Each label block is parsed once."""
    parsed: dict[str, dict[str, str] | None] = {}  # label block -> labels (None: another metric)
    for lineno, line in enumerate(_lines(path), 1):
        if not line or line[0] == "#":
            if line.startswith("# EOF"):
                survey.openmetrics = True
            elif line.startswith("# TYPE") or line.startswith("# HELP"):
                survey.seen_any = True
            continue
        survey.seen_any = True
        if not line.startswith(metric):
            if line.startswith(RESPONSES):
                survey.has_responses = True
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
                parsed[block] = _series_labels(block, metric)
        except (ValueError, IndexError):
            raise SourceError(f"{path}:{lineno}: not a valid Prometheus sample line") from None
        labels = parsed[block]
        if labels is None:
            continue
        survey.samples += 1
        if stamp != stamp:  # NaN: a scrape without timestamps
            survey.all_stamped = False
        else:
            if survey.latest is None or stamp > survey.latest:
                survey.latest = stamp
            if survey.earliest is None or stamp < survey.earliest:
                survey.earliest = stamp
        yield block, labels, value, stamp


def _series_labels(block: str, metric: str) -> dict[str, str] | None:
    rest = block[len(metric) :].rstrip()
    if rest.startswith("{"):
        labels, end = parse_labels(block, len(metric))
        if block[end:].strip():
            raise ValueError("text after labels")
        return labels
    if not rest:
        return {}
    return None  # another metric sharing the prefix


class MetricsFileSource(WindowSource):
    """Two streamed passes: the first finds the scan time and the labels, the second adds each
    series' activity into the windows and per-source volume buckets. Memory follows the series
    and sources, not the samples: a multi-GB history scans in a few hundred MB."""

    def __init__(self, path: str | Path, cfg: Config) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self._survey: Survey | None = None

    def survey(self) -> Survey:
        if self._survey is None:
            survey = Survey()
            lab = self.cfg.labels
            watched = {lab.query, *SOURCE_CONTEXT, *LABELS_CONTEXT, *lab.source}
            seen: set[str] = set()
            for block, labels, _, _ in samples(self.path, lab.metric, survey):
                if block in seen:
                    continue
                seen.add(block)
                for name in watched:
                    if labels.get(name):
                        survey.has_label[name] = True
                survey.has_query = survey.has_query or lab.query in labels
            if not survey.seen_any:
                raise SourceError(f"{self.path} holds no Prometheus metrics")
            self._survey = survey
        return self._survey

    def latest(self) -> float | None:
        """The file's last timestamp (the default scan time for a history), or None."""
        survey = self.survey()
        if survey.latest is None:
            return None
        return survey.latest if survey.openmetrics else survey.latest / 1000.0

    def window(self, at: float) -> Window:
        cfg, lab = self.cfg, self.cfg.labels
        survey = self.survey()
        if not survey.samples:
            raise MissingDataError(f"metric {lab.metric} not found in {self.path}; {HELM_HINT}")
        if not survey.has_query:
            raise MissingDataError(f"metric {lab.metric} has no '{lab.query}' label; {HELM_HINT}")
        has = survey.has_label
        if lab.source == SOURCE_CONTEXT and not has.get("source") and has.get("source_pod"):
            # The default fits both of Hubble's namings: labelsContext it is (for this read).
            cfg = with_source_labels(cfg, LABELS_CONTEXT)
            lab = cfg.labels
        for label in lab.source:
            if not has.get(label):
                raise MissingDataError(
                    f"metric {lab.metric} has no '{label}' label: set labels.source in the config"
                )
        warnings: list[str] = []
        history = survey.all_stamped
        scale = 1.0 if survey.openmetrics else 1000.0
        if not history:
            # One scrape: counters are totals since each agent started; there is no "before".
            warnings.append(
                "single scrape: counts are totals since the agents started; "
                "high_volume needs a history (Prometheus or an OpenMetrics file)"
            )
        step = cfg.windows.step
        buckets = int(cfg.windows.baseline // step)
        short_from, long_from = at - cfg.windows.short, at - cfg.windows.long
        # The day window as far as the history reaches; none where that adds nothing to the
        # long window (burst.day_history_needed), and then no per-sample work for it either.
        span = 0.0
        if history and cfg.windows.day and survey.earliest is not None:
            span = min(cfg.windows.day, at - survey.earliest / scale)
            if span <= day_history_needed(cfg):
                span = 0.0
        day_from = at - span if span else long_from
        base_from = at - buckets * step
        # Per series: (source, name kept for the windows or "", last value, last time, first
        # time).
        series: dict[str, list[Any]] = {}
        short: dict[tuple[str, str], float] = {}
        long: dict[tuple[str, str], float] = {}
        day: dict[tuple[str, str], float] = {}
        reasks: dict[tuple[str, str], int] = {}
        births: dict[tuple[str, str], int] = {}
        rstep = cfg.judge.repeat_step
        before = int(cfg.windows.long // rstep)  # first asked before the long window
        volume: dict[str, np.ndarray] = {}
        disordered = 0
        for block, labels, value, stamp in samples(self.path, lab.metric, Survey()):
            t = stamp / scale if history else at
            if t > at:
                continue
            state = series.get(block)
            if state is None:
                source = source_name(labels, lab.source)
                name = normalize(labels.get(lab.query, ""))
                keep = name if name and not self._in_cluster(name) else ""
                state = series[block] = [source, keep, None, -np.inf, t]
            prev, prev_t = state[2], state[3]
            if t < prev_t:
                disordered += 1  # a history must list each series' samples in time order
                continue
            # First sample: the whole value (first query included); later: increase, resets
            # restart the count.
            delta = value if prev is None or value < prev else value - prev
            state[2], state[3] = value, t
            if delta <= 0:
                continue
            source, keep = state[0], state[1]
            if keep and t > day_from:
                pair = (source, keep)
                if span:
                    day[pair] = day.get(pair, 0.0) + delta
                if t > long_from:
                    long[pair] = long.get(pair, 0.0) + delta
                    if prev is not None:  # asked again after its first ask
                        reasks[pair] = reasks.get(pair, 0) | reask_bit(at, t, rstep)
                    # The oldest first ask of the pair's series (A and AAAA are two).
                    first_t = state[4]
                    born = step_of(at, first_t, rstep) if first_t > long_from else before
                    if born > births.get(pair, -1):
                        births[pair] = born
                    if t > short_from:
                        short[pair] = short.get(pair, 0.0) + delta
            if history and t > base_from:
                # Bucket ending at `at - k * step` that holds t (the Prometheus source's steps).
                k = int(np.floor((at - t) / step))
                row = volume.get(source)
                if row is None:
                    row = volume[source] = np.zeros(buckets)
                row[buckets - 1 - k] += delta
        if disordered:
            warnings.append(
                f"{disordered} samples earlier than their series' previous sample were skipped: "
                "write each series' samples in time order"
            )
        vol = pd.DataFrame()
        if history and volume:
            index = at - np.arange(buckets)[::-1] * step
            vol = pd.DataFrame(volume, index=index)
            # A source's steps before its first activity are unknown, not zero (as from PromQL).
            vol = vol.mask(vol.cumsum() == 0)
        long_frame = _frame(long)
        answers = (
            self._answers(set(long), long_from, at, scale, lab.source)
            if survey.has_responses
            else {}
        )
        return Window(
            at=at,
            short_seconds=cfg.windows.short,
            long_seconds=cfg.windows.long,
            step_seconds=step,
            short=_frame(short),
            long=long_frame,
            shaped=apply_prefilter(
                long_frame, cfg.names.prefilter_label_length, cfg.names.prefilter_name_length
            ),
            volume=vol,
            complete=True,
            warnings=warnings,
            day_seconds=span,
            day=_frame(day) if span else empty_names(),
            reasks=reasks,
            births=births,
            answers=answers,
        )

    def _answers(
        self,
        pairs: set[tuple[str, str]],
        since: float,
        at: float,
        scale: float,
        source_labels: list[str],
    ) -> dict[tuple[str, str], int]:
        """ANSWER_* bits per (client, name) of the long window's pairs, from the answers the
        responses counter added in the window (one more streamed pass, only when it is there)."""
        lab = self.cfg.labels
        clients = response_labels(source_labels)
        out: dict[tuple[str, str], int] = dict.fromkeys(pairs, 0)  # 0: never answered
        last: dict[str, float] = {}
        for block, labels, value, stamp in samples(self.path, RESPONSES, Survey()):
            t = stamp / scale if stamp == stamp else at
            prev = last.get(block)
            last[block] = value
            if t > at or t <= since or (prev is not None and value <= prev):
                continue  # outside the window, or no new answer in this sample
            pair, bit = answer_of(labels, clients, lab.query)
            if pair in pairs:
                out[pair] = out.get(pair, 0) | bit
        return out

    def _in_cluster(self, name: str) -> bool:
        cluster = normalize(self.cfg.labels.cluster_domain)
        return name == cluster or name.endswith("." + cluster)


def _frame(pairs: dict[tuple[str, str], float]) -> pd.DataFrame:
    if not pairs:
        return empty_names()
    return pd.DataFrame(
        [(s, n, q) for (s, n), q in pairs.items()], columns=["source", "name", "queries"]
    )


if TYPE_CHECKING:  # the type checker proves MetricsFileSource implements the Source protocol
    _source: type[Source] = MetricsFileSource
