"""Flow lines as a Source: parsed (watcher.sources.flows), gathered per channel in the flow
window, given to the judge as the same Evidence the metrics sources give.

Lines are read as they come, so evidence is as of the last line read. `feed` also gives the
evidence worth judging on the way (a pair whose 5-minute bucket closed, a pair evicted for
room, the sources' volume every half recent span): a batch read sees every stretch of a long
file, not just its end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from watcher.channel import Channel
from watcher.config import Config, domain_rules
from watcher.evidence import Evidence, Volume
from watcher.flows.summary import PairSummary
from watcher.flows.window import FlowWindow, to_channel
from watcher.sources.base import Source
from watcher.sources.flows import DnsFlow, LineCounts, parse_stream


class FlowSource:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.window = FlowWindow(cfg, domain_rules(cfg))
        self.counts = LineCounts()
        self.next_volume = 0.0
        # Blind spots the source's transport reports (Relay's lost events, unreachable nodes).
        self.notes: Callable[[], list[str]] = list
        self.least = min(  # fewer new names than this: no rule can raise the pair
            cfg.burst.info_min_distinct,
            cfg.burst.encoded_min_distinct,
            cfg.flows.min_distinct,
            cfg.names.min_distinct,
        )

    def snapshot(self) -> dict[str, object]:
        """What a checkpoint keeps (watcher.flows.checkpoint): the window and the counts."""
        c = self.counts
        return {
            "window": self.window.snapshot(),
            "counts": (c.lines, c.dns_flows, dict(c.skipped or {})),
            "next_volume": self.next_volume,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.window.restore(state["window"])
        lines, flows, skipped = state["counts"]
        self.counts = LineCounts(int(lines), int(flows), Counter(skipped))
        self.next_volume = float(state["next_volume"])

    def feed(self, lines: Iterable[bytes]) -> Iterator[Evidence]:
        """Consume lines; yield evidence to judge on the way."""
        return self.feed_flows(parse_stream(lines, self.counts))

    def feed_flows(self, flows: Iterable[DnsFlow]) -> Iterator[Evidence]:
        """Consume flows however they came (lines, Relay's messages); yield evidence to judge
        on the way."""
        w = self.window
        for n, flow in enumerate(flows):
            w.add(flow)
            if w.closed:
                yield self._of(w.take_closed(self.least))
            if n % 4096 == 0:
                w.expire()
            if w.evicted:
                ev = self._of(w.evicted)
                w.evicted.clear()
                yield ev
            if flow.time >= self.next_volume:
                yield self.volume_at(flow.time)

    def volume_at(self, at: float) -> Evidence:
        """The sources' volume as of the last whole step before `at` (a half-filled one reads
        as a drop); the next is due half a recent span later."""
        step = self.cfg.windows.step
        self.next_volume = at - at % step + self.cfg.volume.recent / 2
        return Evidence(at - at % step, [], self._volume(at - at % step))

    def pending(self) -> Evidence:
        """Every pair worth judging now, without volume (the end of a read, a follower's tick)."""
        return self._of(self.window.candidates(self.least))

    def evidence(self, at: float | None = None) -> Evidence:
        """What is true as of the last line read (Source protocol): the active pairs and the
        sources' volume. A pair that went quiet and expired is absent: it resolves. `at` is
        accepted for the protocol; lines cannot be read back from a later or earlier time."""
        now = self.window.now
        step = self.cfg.windows.step
        volume = self._volume(now - now % step) if now else None
        return Evidence(
            now, self._channels(self.window.candidates(self.least)), volume, self.warnings()
        )

    def latest(self) -> float | None:
        return self.window.now or None

    def _of(self, summaries: list[PairSummary]) -> Evidence:
        return Evidence(self.window.now, self._channels(summaries))

    def _channels(self, summaries: list[PairSummary]) -> list[Channel]:
        return [to_channel(s, self.cfg) for s in summaries]

    def _volume(self, at: float) -> Volume | None:
        frame = self.window.volume_frame(at)
        return None if frame.empty else Volume(at, self.cfg.windows.step, frame)

    def warnings(self) -> list[str]:
        out = []
        assert self.counts.skipped is not None
        lost = self.counts.skipped["lost_events"]
        if lost:
            out.append(
                f"{lost} lost-event record(s): Hubble dropped flows before the exporter wrote "
                "them (raise the agent's event buffer or filter the exporter to DNS)"
            )
        bad = self.counts.skipped["malformed"]
        if bad:
            out.append(f"{bad} malformed or truncated line(s) skipped")
        nt = self.counts.skipped["no_time"]
        if nt:
            out.append(f"{nt} DNS flow(s) without a time: keep `time` in the exporter's field mask")
        if self.counts.lines and not self.counts.dns_flows:
            out.append("no DNS flows in the input: is the exporter filtered to DNS (l7 dns)?")
        return out + self.notes()


if TYPE_CHECKING:  # the type checker proves FlowSource implements the Source protocol
    _source: type[Source] = FlowSource
