"""Sources: where DNS activity comes from, turned into the evidence the judge reads.

Every source implements `base.Source`: `evidence(at)` gives one record per channel and each
source's volume (watcher.evidence). Metrics sources (`prometheus`, `metrics_file`) read a Window
of per-pod name tables and group it (`base.WindowSource`); flow lines are parsed here (`flows`)
and gathered per channel by watcher.flows.source.FlowSource. `opener` opens the chosen metrics
source. Sources never import detectors (tests/test_layout.py).
"""
