"""Flow lines (Hubble's exporter or `hubble observe -o jsonpb`): the source (FlowSource: lines
gathered per channel in the flow window, given as Evidence), the pipeline that judges it as it
comes (FlowScan), following files and pipes, and the flow model. Lines are parsed by
watcher.sources.flows; channels are judged by watcher.detect like every source's."""

from watcher.flows.follow import Follower, Position, StreamTail, follow
from watcher.flows.scan import FlowScan
from watcher.flows.source import FlowSource
from watcher.flows.summary import PairSummary
from watcher.flows.window import FlowWindow, to_channel

__all__ = [
    "FlowScan",
    "FlowSource",
    "FlowWindow",
    "Follower",
    "PairSummary",
    "Position",
    "StreamTail",
    "follow",
    "to_channel",
]
