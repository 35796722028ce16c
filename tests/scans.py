"""A composite history (tests/histories.py) scanned two ways: from a real Prometheus back-filled
with it, and from the same history as a metrics file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import scan_json
from tests.histories import Composite
from tests.promserver import PrometheusServer, history_text

Scan = Callable[..., dict[str, Any]]


def composite_fixtures(make: Callable[[], Composite], name: str) -> tuple[Any, Any, Any, Any]:
    """The fixtures of a module about one composite history, to assign to the names `history`,
    `prom` (a real Prometheus back-filled with it), `history_file` (the same history as a file)
    and `scan` (scan(minute, *args) -> report, once from each of the two)."""

    @pytest.fixture(scope="module")
    def history() -> Composite:
        return make()

    @pytest.fixture(scope="module")
    def prom(
        history: Composite, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[PrometheusServer]:
        server = PrometheusServer(
            tmp_path_factory.mktemp(f"prom-{name}"),
            history_text(history.cluster, instance=True, responses=history.responses),
        )
        yield server
        server.stop()

    @pytest.fixture(scope="module")
    def history_file(history: Composite, tmp_path_factory: pytest.TempPathFactory) -> Path:
        path = tmp_path_factory.mktemp(f"{name}-file") / "history.om"
        text = history_text(history.cluster, instance=True, responses=history.responses)
        path.write_text(text, encoding="utf-8")
        return path

    @pytest.fixture(params=["prometheus", "file"])
    def scan(request: pytest.FixtureRequest, history: Composite) -> Scan:
        if request.param == "prometheus":
            where = ["--prometheus-url", request.getfixturevalue("prom").url]
        else:
            where = ["--metrics-file", str(request.getfixturevalue("history_file"))]
        return lambda minute, *more: scan_json(*where, "--at", str(history.at(minute)), *more)

    return history, prom, history_file, scan
