"""Flow lines (Hubble's exporter or `hubble observe -o jsonpb`): the per-node flow window, the
pipeline that judges it, following files and pipes, and the flow model. Lines are parsed by
watcher.sources.flows; channels are judged by watcher.detect like every source's."""

from watcher.flows.follow import Follower, Position, StreamTail, follow
from watcher.flows.scan import FlowScan
from watcher.flows.summary import PairSummary
from watcher.flows.window import FlowWindow, to_channel

__all__ = [
    "FlowScan",
    "FlowWindow",
    "Follower",
    "PairSummary",
    "Position",
    "StreamTail",
    "follow",
    "to_channel",
]
