"""Incident lifecycle (pure) and the state database: once per incident, nothing lost."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from watcher.config import IncidentsConfig
from watcher.errors import StateError
from watcher.findings import Finding, Kind, Severity
from watcher.incidents import Incident, reconcile
from watcher.state import Store

POLICY = IncidentsConfig(renotify_interval=3600, resolve_after=900)
T0 = 1_780_000_000.0


def finding(
    kind: Kind = "subdomain_burst",
    severity: Severity = "warning",
    domain: str | None = "evil.example",
) -> Finding:
    return Finding(kind, severity, "default/app-1", domain, 0.8, "s", {"sample_names": ["a.b"]})


def fold(
    active: list[Incident], findings: list[Finding], at: float
) -> tuple[list[Incident], list[str]]:
    changed, events = reconcile(active, findings, at, POLICY)
    by_key = {i.key: i for i in active}
    by_key.update({i.key: i for i in changed})
    return [i for i in by_key.values() if i.status == "active"], [e.kind for e in events]


def test_a_rollout_that_replaces_the_leaking_pod_continues_the_same_incident() -> None:
    """Incidents are keyed by channel (workload, domain): the pod is evidence."""
    old = Finding(
        "subdomain_burst", "warning", "jobs/exporter-6c9f7d5b8-aaaaa", "x.example", 0.8, "s"
    )
    new = Finding(
        "subdomain_burst", "warning", "jobs/exporter-5d8c7b6a9-bbbbb", "x.example", 0.8, "s"
    )
    both = Finding(
        "suspicious_name",
        "critical",
        "jobs/exporter",
        "x.example",
        0.9,
        "s",
        {"workload": "jobs/exporter"},
    )
    active, ev = fold([], [old], T0)
    assert ev == ["firing"]
    active, ev = fold(active, [new], T0 + 300)
    assert ev == [] and len(active) == 1 and active[0].source == "jobs/exporter-6c9f7d5b8-aaaaa"
    active, ev = fold(active, [both], T0 + 600)
    assert ev == ["escalated"] and len(active) == 1


def test_a_tunnels_own_volume_spike_is_not_a_second_page() -> None:
    """One page per leak: the tunnel's workload also floods; a flood elsewhere still pages."""
    tunnel = Finding("subdomain_burst", "critical", "app/x-6c9f7d5b8-aaaaa", "t.example", 1.0, "s")
    own = Finding("high_volume", "warning", "app/x-6c9f7d5b8-aaaaa", None, 0.9, "s")
    other = Finding("high_volume", "warning", "shop/web-5d8c7b6a9-bbbbb", None, 0.9, "s")
    active, ev = fold([], [tunnel, own, other], T0)
    assert ev == ["firing", "firing"]
    assert sorted(i.channel for i in active) == ["app/x", "shop/web"]


def test_a_new_finding_fires_once_then_stays_quiet() -> None:
    active, ev = fold([], [finding()], T0)
    assert ev == ["firing"]
    for minute in (5, 10, 30, 55):
        active, ev = fold(active, [finding()], T0 + minute * 60)
        assert ev == [], minute


def test_an_ongoing_incident_is_reminded_after_the_interval() -> None:
    active, _ = fold([], [finding()], T0)
    active, ev = fold(active, [finding()], T0 + 3599)
    assert ev == []
    active, ev = fold(active, [finding()], T0 + 3600)
    assert ev == ["reminder"]
    active, ev = fold(active, [finding()], T0 + 3900)
    assert ev == []


def test_a_rising_severity_escalates_and_a_falling_one_does_not() -> None:
    active, _ = fold([], [finding(severity="warning")], T0)
    active, ev = fold(active, [finding(severity="critical")], T0 + 60)
    assert ev == ["escalated"]
    active, ev = fold(active, [finding(severity="warning")], T0 + 120)
    assert ev == []
    active, ev = fold(active, [finding(severity="critical")], T0 + 180)
    assert ev == []  # already paged at critical


def test_burst_and_encoded_names_of_one_channel_are_one_incident() -> None:
    active, ev = fold([], [finding("subdomain_burst", "warning")], T0)
    active, ev = fold(active, [finding("suspicious_name", "critical")], T0 + 60)
    assert ev == ["escalated"]
    assert len(active) == 1 and active[0].kind == "subdomain_burst"
    assert active[0].finding["kind"] == "suspicious_name"


def test_an_absent_incident_resolves_only_after_the_grace_period() -> None:
    active, _ = fold([], [finding()], T0)
    active, ev = fold(active, [], T0 + 899)
    assert ev == [] and len(active) == 1
    active, ev = fold(active, [], T0 + 900)
    assert ev == ["resolved"] and active == []
    active, ev = fold(active, [finding()], T0 + 960)
    assert ev == ["firing"]  # a new incident after the old one ended


def test_info_findings_are_not_incidents() -> None:
    _, ev = fold([], [finding(severity="info")], T0)
    assert ev == []


def test_a_source_wide_finding_has_its_own_incident() -> None:
    active, ev = fold([], [finding("high_volume", domain=None)], T0)
    assert ev == ["firing"] and active[0].domain == ""
    # Its workload's channel then opens its own incident; the volume one goes on.
    active, ev = fold(active, [finding("high_volume", domain=None), finding()], T0 + 60)
    assert ev == ["firing"] and len(active) == 2


# -- the state database --------------------------------------------------------------------


def test_state_survives_a_restart_and_keeps_pending_deliveries(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    with Store.open(path) as store:
        changed, events = reconcile([], [finding()], T0, POLICY)
        store.record(changed, events, ["slack", "alertmanager"])
        store.mark_failed([store.pending("slack")[0].id], "slack webhook: HTTP 500")
    with Store.open(path) as store:  # a new process would see the same
        assert [i.key for i in store.active()] == [("channel", "default/app-1", "evil.example")]
        pending = store.pending("slack")
        assert [(d.event, d.attempts) for d in pending] == [("firing", 1)]
        store.mark_sent([pending[0].id])
        assert store.pending("slack") == []
        assert len(store.pending("alertmanager")) == 1


def test_a_state_written_when_incidents_were_per_pod_continues_in_place(tmp_path: Path) -> None:
    """A row stored before incidents were keyed by channel names a pod and has no workload in
    its evidence: it is read as its pod's workload, so another replica's finding continues it
    (no new page) and its pending delivery is still there. The schema did not change: nothing
    to migrate (state.SCHEMA_VERSION stays 1)."""
    path = str(tmp_path / "state.sqlite")
    with Store.open(path) as store:
        store.conn.execute(
            "INSERT INTO incidents (kind, source, domain, status, severity, first_seen, "
            "last_seen, notified_at, notified_severity, finding) VALUES ('subdomain_burst', "
            "'jobs/exporter-6c9f7d5b8-aaaaa', 'x.example', 'active', 'warning', ?, ?, ?, "
            """'warning', '{"kind": "subdomain_burst", "evidence": {}}')""",
            (T0, T0, T0),
        )
        store.conn.execute(
            "INSERT INTO deliveries (incident_id, channel, event, severity, created_at, status)"
            " VALUES (1, 'slack', 'firing', 'warning', ?, 'pending')",
            (T0,),
        )
    with Store.open(path) as store:
        active = store.active()
        assert [i.key for i in active] == [("channel", "jobs/exporter", "x.example")]
        replica = Finding(
            "subdomain_burst", "warning", "jobs/exporter-6c9f7d5b8-bbbbb", "x.example", 0.8, "s"
        )
        changed, events = reconcile(active, [replica], T0 + 300, POLICY)
        store.record(changed, events, ["slack"])
        assert events == []
        assert [i.id for i in store.active()] == [1]
        assert [(d.incident.id, d.event) for d in store.pending("slack")] == [(1, "firing")]


def test_garbage_in_the_state_file_is_an_error_not_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database\x00" * 100)
    with pytest.raises(StateError, match="not a database"), Store.open(str(path)):
        pass
    assert path.read_bytes().startswith(b"this is not a database")


def test_someone_elses_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="not a dnswatch state"), Store.open(str(path)):
        pass


def test_a_held_lock_makes_the_second_run_wait_then_give_up(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with Store.open(path):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert entered.wait(10)
    with (
        pytest.raises(StateError, match="locked by another dnswatch run"),
        Store.open(path, lock_timeout=0.3),
    ):
        pass
    release.set()
    t.join()
    with Store.open(path, lock_timeout=1):
        pass


def test_run_scans_at_exactly_the_given_time_and_only_serve_replays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Incident times are scan times: a run must not drift from --at (a few ms off once made a
    resolution at exactly resolve_after depend on the machine's speed)."""
    import argparse
    import time

    from watcher import cli
    from watcher.config import Config

    seen: list[float] = []
    monkeypatch.setattr(cli, "scan_evidence", lambda a, c: seen.append(cli.parse_time(a.at)))
    monkeypatch.setattr(cli, "scanned", lambda evidence, cfg: evidence)  # judging is not the point
    args = argparse.Namespace(at="1780000000")
    read = cli._reader(args, Config())
    time.sleep(0.05)
    read()
    assert seen == [1780000000.0]
    replay = cli._reader(args, Config(), replay=True)
    time.sleep(0.05)
    replay()
    assert seen[1] >= 1780000000.05
