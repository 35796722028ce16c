"""How the Prometheus source plans its queries: grouped fetches stay short, chains run at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import scan_json
from tests.histories import Composite
from tests.promserver import PrometheusServer
from watcher.config import Config
from watcher.sources.prometheus import names, volume
from watcher.sources.prometheus.client import PrometheusClient
from watcher.sources.prometheus.plan import run_all
from watcher.sources.prometheus.scope import Scope
from watcher.text import regex_escape


def test_grouped_name_fetches_stay_under_the_character_budget_and_cover_every_zone() -> None:
    # 300 zones, each wanted for three workloads with long names: 100 zones a batch would be
    # a selector of ~25 KB, past VictoriaMetrics' 16 KB default once names() repeats it.
    by_zone = {
        f"zone{i:03d}.example": {f"team-{i % 40:02d}/service-{i:03d}-{k}-worker" for k in range(3)}
        for i in range(300)
    }
    batches = names.zone_batches(by_zone)
    assert sorted(z for b in batches for z in b) == sorted(by_zone)
    assert len(batches) > 3  # not the 3 batches a count of 100 zones would give
    for batch in batches:
        workloads = set().union(*(by_zone[z] for z in batch))
        chars = sum(len(regex_escape(z)) + 1 for z in batch)
        chars += sum(len(regex_escape(w)) + 2 for w in workloads)
        assert len(batch) <= names.BATCH
        assert chars <= names.VALUES_CHARS or len(batch) == 1


def test_zones_sharing_workloads_are_fetched_together() -> None:
    by_zone = {f"z{i}.example": {"shop/web"} for i in range(250)}
    assert [len(b) for b in names.zone_batches(by_zone)] == [100, 100, 50]


def test_chains_run_at_once_and_the_first_error_is_raised() -> None:
    running: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def job(value: int) -> pd.DataFrame:
        with lock:
            running.append(value)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.2)
        with lock:
            running.remove(value)
        return pd.DataFrame({"v": [value]})

    got = run_all({f"j{i}": lambda i=i: job(i) for i in range(4)}, 2)
    assert [int(got[f"j{i}"]["v"][0]) for i in range(4)] == [0, 1, 2, 3]
    assert peak[0] == 2
    peak[0] = 0
    run_all({f"j{i}": lambda i=i: job(i) for i in range(3)}, 1)
    assert peak[0] == 1

    def broken() -> pd.DataFrame:
        raise RuntimeError("Prometheus went away")

    with pytest.raises(RuntimeError, match="went away"):
        run_all({"a": lambda: job(1), "b": broken, "c": lambda: job(2)}, 2)


@pytest.mark.prometheus
def test_one_query_at_a_time_or_two_at_once_the_scan_reports_the_same(
    cluster_prom: PrometheusServer, cluster_history: Composite, tmp_path: Path
) -> None:
    _, _, minute = cluster_history.incidents["iodine-like tunnel"]
    at = str(cluster_history.at(minute))
    serial = tmp_path / "serial.yaml"
    serial.write_text("prometheus:\n  parallel_queries: 1\n")
    one = scan_json("--prometheus-url", cluster_prom.url, "--at", at, "--config", str(serial))
    two = scan_json("--prometheus-url", cluster_prom.url, "--at", at)

    def key(report: dict) -> list[tuple[str, str, str, str]]:  # type: ignore[type-arg]
        return sorted(
            (f["kind"], f["source"], f["domain"], f["severity"]) for f in report["findings"]
        )

    assert key(one) == key(two) and any(f["severity"] != "info" for f in two["findings"])


def test_recent_peaks_in_numpy_equal_pandas_rolling_means_split_parts_added() -> None:
    """The volume screen's per-source peaks (numpy, every source of the cluster) are exactly
    pandas' rolling(span, min_periods=1) mean of the per-step counts, parts of a split query
    (one source in several rows, steps missing here and there) added by step first."""
    source_of = Scope(
        Config(), PrometheusClient("http://127.0.0.1:9", Config().prometheus)
    ).source_of
    rng = np.random.default_rng(7)
    rows = []
    for i in range(300):
        steps = np.sort(rng.choice(np.arange(10) * 300.0 + 1e9, int(rng.integers(1, 8)), False))
        values = [[t, str(float(rng.integers(0, 1000)))] for t in steps]
        rows.append({"metric": {"source": f"ns/pod-{i % 200}"}, "values": values})
    for span in (1, 2, 3):
        got = volume.peaks(rows, span, 300.0, source_of)
        want = {
            s: float(r.rolling(span, min_periods=1).mean().max()) / 300.0
            for s, r in volume.series(rows, source_of).items()
        }
        assert got.keys() == want.keys() and len(want) == 200
        assert all(got[s] == pytest.approx(want[s], rel=1e-12) for s in want)
