"""The state database: incidents and their deliveries in one SQLite file.

One writer at a time: a run holds an exclusive `flock` on `<path>.lock` from reading the active
incidents to recording the last delivery, so two overlapping runs (a slow CronJob and the next
one, or `run` beside `serve`) never send the same event twice; the second waits, then finds the
incident already notified. A file that is not our database is an error, never a silent reset.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.errors import StateError
from watcher.incidents import Event, Incident

SCHEMA_VERSION = 1
APPLICATION_ID = 0x444E5357  # "DNSW": marks the file as ours

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    domain TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'resolved')),
    severity TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    notified_at REAL NOT NULL,
    notified_severity TEXT NOT NULL,
    resolved_at REAL,
    am_severity TEXT,
    finding TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_active
    ON incidents (kind, source, domain) WHERE status = 'active';
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    severity TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'superseded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (channel, status);
"""


@dataclass(frozen=True)
class Delivery:
    id: int
    incident: Incident
    channel: str
    event: str
    severity: str
    created_at: float
    attempts: int


def _incident(row: sqlite3.Row) -> Incident:
    return Incident(
        id=row["id"],
        kind=row["kind"],
        source=row["source"],
        domain=row["domain"],
        status=row["status"],
        severity=row["severity"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        notified_at=row["notified_at"],
        notified_severity=row["notified_severity"],
        resolved_at=row["resolved_at"],
        am_severity=row["am_severity"],
        finding=json.loads(row["finding"]),
    )


class Store:
    """Open with `Store.open(path)` (exclusive, locked) or `Store.read_only(path)` (dry runs)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    # -- opening -------------------------------------------------------------------------------

    @staticmethod
    def _connect(path: str, *, create: bool) -> sqlite3.Connection:
        uri = f"file:{Path(path).resolve()}?mode={'rwc' if create else 'ro'}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None)
            conn.row_factory = sqlite3.Row
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state {path} is unreadable or not a database: {exc}") from None
        if tables and app_id != APPLICATION_ID:
            conn.close()
            raise StateError(f"state {path} is an SQLite file, but not a dnswatch state database")
        if version > SCHEMA_VERSION:
            conn.close()
            raise StateError(
                f"state {path} has schema {version}, newer than this dnswatch ({SCHEMA_VERSION})"
            )
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"state {path} is corrupt: {exc}") from None
        if check != "ok":
            conn.close()
            raise StateError(f"state {path} is corrupt: {check}")
        if create and not tables:
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return conn

    @classmethod
    @contextmanager
    def open(cls, path: str, lock_timeout: float = 120.0) -> Iterator[Store]:
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            raise StateError(f"state directory {parent} does not exist")
        try:
            lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open lock {path}.lock: {exc.strerror or exc}") from None
        try:
            deadline = time.monotonic() + lock_timeout
            while True:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateError(
                            f"state {path} is locked by another dnswatch run "
                            f"(waited {lock_timeout:.0f}s)"
                        ) from None
                    time.sleep(0.05)
            conn = cls._connect(path, create=True)
            try:
                yield cls(conn, path)
            finally:
                conn.close()
        finally:
            os.close(lock_fd)  # releases the flock

    @classmethod
    @contextmanager
    def read_only(cls, path: str) -> Iterator[Store | None]:
        """The state as it is, for a dry run; None when there is none yet."""
        if not Path(path).exists():
            yield None
            return
        conn = cls._connect(path, create=False)
        try:
            yield cls(conn, path)
        finally:
            conn.close()

    # -- incidents -----------------------------------------------------------------------------

    def active(self) -> list[Incident]:
        rows = self.conn.execute("SELECT * FROM incidents WHERE status = 'active' ORDER BY id")
        return [_incident(r) for r in rows]

    def record(self, changed: list[Incident], events: list[Event], channels: list[str]) -> None:
        """Store changed incidents and a pending delivery per event and channel, atomically."""
        ids: dict[tuple[str, str, str], int] = {}
        with self._tx():
            for inc in changed:
                values: dict[str, Any] = {
                    "kind": inc.kind,
                    "source": inc.source,
                    "domain": inc.domain,
                    "status": inc.status,
                    "severity": inc.severity,
                    "first_seen": inc.first_seen,
                    "last_seen": inc.last_seen,
                    "notified_at": inc.notified_at,
                    "notified_severity": inc.notified_severity,
                    "resolved_at": inc.resolved_at,
                    "am_severity": inc.am_severity,
                    "finding": json.dumps(inc.finding, ensure_ascii=True),
                }
                if inc.id is None:
                    cols = ", ".join(values)
                    marks = ", ".join(f":{k}" for k in values)
                    cur = self.conn.execute(
                        f"INSERT INTO incidents ({cols}) VALUES ({marks})", values
                    )
                    ids[inc.key] = int(cur.lastrowid or 0)
                else:
                    sets = ", ".join(f"{k} = :{k}" for k in values)
                    self.conn.execute(
                        f"UPDATE incidents SET {sets} WHERE id = :id", {**values, "id": inc.id}
                    )
                    ids[inc.key] = inc.id
            for ev in events:
                for channel in channels:
                    self.conn.execute(
                        "INSERT INTO deliveries (incident_id, channel, event, severity, created_at,"
                        " status) VALUES (?, ?, ?, ?, ?, 'pending')",
                        (ids[ev.incident.key], channel, ev.kind, ev.incident.severity, time.time()),
                    )

    def drills(self, limit: int = 5) -> list[tuple[Incident, list[dict[str, Any]]]]:
        """The latest drill incidents, newest first, each with its deliveries (dnswatch drill
        --check)."""
        rows = self.conn.execute(
            "SELECT * FROM incidents WHERE kind = 'drill' ORDER BY last_seen DESC LIMIT ?",
            (limit,),
        )
        out = []
        for r in rows.fetchall():
            deliveries = self.conn.execute(
                "SELECT channel, event, status, attempts, last_error, sent_at FROM deliveries"
                " WHERE incident_id = ? ORDER BY id",
                (r["id"],),
            )
            out.append((_incident(r), [dict(d) for d in deliveries]))
        return out

    # -- deliveries ----------------------------------------------------------------------------

    def pending(self, channel: str) -> list[Delivery]:
        rows = self.conn.execute(
            "SELECT d.id AS did, d.channel, d.event, d.severity AS dsev, d.created_at, d.attempts,"
            " i.* FROM deliveries d JOIN incidents i ON i.id = d.incident_id"
            " WHERE d.channel = ? AND d.status = 'pending' ORDER BY d.id",
            (channel,),
        )
        return [
            Delivery(
                id=r["did"],
                incident=_incident(r),
                channel=r["channel"],
                event=r["event"],
                severity=r["dsev"],
                created_at=r["created_at"],
                attempts=r["attempts"],
            )
            for r in rows
        ]

    def mark_sent(self, delivery_ids: list[int]) -> None:
        with self._tx():
            self.conn.executemany(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
                " last_error = NULL WHERE id = ?",
                [(time.time(), i) for i in delivery_ids],
            )

    def mark_superseded(self, delivery_ids: list[int]) -> None:
        with self._tx():
            self.conn.executemany(
                "UPDATE deliveries SET status = 'superseded' WHERE id = ?",
                [(i,) for i in delivery_ids],
            )

    def mark_failed(self, delivery_ids: list[int], error: str) -> None:
        with self._tx():
            self.conn.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error[:500], i) for i in delivery_ids],
            )

    def set_am_severity(self, incident_ids: list[int], severities: list[str | None]) -> None:
        with self._tx():
            self.conn.executemany(
                "UPDATE incidents SET am_severity = ? WHERE id = ?",
                list(zip(severities, incident_ids, strict=True)),
            )

    @contextmanager
    def _tx(self) -> Iterator[None]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"state {self.path}: write failed: {exc}") from None
