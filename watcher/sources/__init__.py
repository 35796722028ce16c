"""Sources: where DNS activity comes from, turned into what the judge reads.

Metrics sources (Prometheus, a metrics file) implement `Source`: a Window of per-pod name
tables at a time, grouped into channel records by watcher.channel. Flow lines fill the same
channel records themselves (watcher.flows), as they arrive. Sources never import detectors.
watcher.sources.base holds the protocol and opens the chosen source.
"""
