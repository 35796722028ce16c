"""Prometheus over HTTP as a Source: aggregate in PromQL, fetch names only where needed.

plan      PrometheusSource: which queries a window takes, in what order, how many at once
checks    is the metric there with the labels needed? (a decision returned, not stored)
names     distinct names per (workload, zone), candidates' names, shaped names, re-asks, answers
volume    queries per source per step where the volume judge could alert
splitting a refused query asked again per part of the cluster
scope     one scan's configuration, client, warnings, and sources -> workloads -> selectors
client    HTTP, credentials, retries; failures as the watcher's errors
"""

from watcher.sources.prometheus.checks import HELM_HINT
from watcher.sources.prometheus.plan import PrometheusSource

__all__ = ["HELM_HINT", "PrometheusSource"]
