"""Hubble flow logs: exporter files, rotated backups, `hubble observe -o jsonpb` on stdin.

One line, one JSON object. Accepted shapes (see docs/flow-logs.md):
- the exporter / `-o jsonpb` envelope `{"flow": {...}, "node_name": ..., "time": ...}`;
- the legacy bare flow of `hubble observe -o json` (`{"time": ..., "l7": ..., ...}`);
- either one behind a container runtime's prefix (`2026-…Z stdout F {...}`, or Docker's JSON
  log `{"log": "{...}\\n", ...}`) when the exporter writes to stdout.
Protojson with proto names; zero values are omitted (no `rcode` is NOERROR). The client is
`source` on a request and `destination` on an answer. A query denied by policy is one DROPPED
request. Anything else is counted by reason and skipped; nothing here raises on a bad line.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from watcher.errors import SourceError

try:  # orjson parses exporter lines about 3x faster; the standard library is the fallback
    import orjson

    _loads: Any = orjson.loads
    _JSONError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError, TypeError)
except ImportError:  # pragma: no cover - orjson is a declared dependency
    import json

    _loads = json.loads
    _JSONError = (ValueError, TypeError)

# Query types whose answers carry data, not addresses: what tunnels favour.
DATA_QTYPES = frozenset({"TXT", "NULL", "CNAME", "MX", "SRV", "ANY", "PRIVATE", "KEY", "DNAME"})

SKIP_REASONS = (
    "malformed",  # not JSON, truncated, not an object
    "not_dns",  # a flow, but not a DNS L7 flow (L3/L4, HTTP, …)
    "lost_events",  # the exporter's lost-event envelope: flows were dropped before us
    "other_event",  # agent_event, debug_event, node status: not flows
    "no_client",  # a DNS flow with no pod identity at all and no address
    "no_time",  # no usable timestamp (a field mask dropped it)
)


@dataclass(frozen=True, slots=True)
class DnsFlow:
    """One DNS request or answer, as the watcher needs it."""

    time: float  # Unix seconds
    node: str
    source: str  # the client: `ns/pod`, or `node/<node>/<ip>` for a client with no pod identity
    workload: str  # `ns/<workload>` from the pod's labels or name; = source without a pod
    query: str  # lower-cased, no trailing dot
    qtypes: tuple[str, ...]
    is_response: bool
    rcode: int  # 0 NOERROR, 3 NXDOMAIN, … (answers only)
    ips: tuple[str, ...]  # addresses in the answer
    cnames: int
    rrtypes: tuple[str, ...]
    dropped: bool  # denied by policy (a request that never left)


def _intern(text: str) -> str:
    """Sources, workloads, nodes and addresses repeat on every line: one copy each in memory."""
    return sys.intern(text)


_RUNTIME_PREFIX = re.compile(rb"^\S+ (?:stdout|stderr) [FP] ")
_TS_CACHE: dict[str, float] = {}


def parse_time(text: str) -> float | None:
    """RFC 3339 with up to nanoseconds (`2021-10-04T11:22:26.592280339Z`), fast for a stream
    whose seconds repeat: the part up to the seconds is parsed once and cached."""
    if len(text) < 20 or text[10] != "T":
        return None
    head = text[:19]
    base = _TS_CACHE.get(head)
    if base is None:
        try:
            base = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
        if len(_TS_CACHE) > 100_000:
            _TS_CACHE.clear()
        _TS_CACHE[head] = base
    rest = text[19:]
    frac = 0.0
    if rest.startswith("."):
        digits = ""
        for ch in rest[1:]:
            if not ch.isdigit():
                break
            digits += ch
        rest = rest[1 + len(digits) :]
        if digits:
            frac = int(digits[:9]) / 10 ** len(digits[:9])
    if rest in ("Z", "z", "+00:00", ""):
        return base + frac
    try:  # another offset: rare, take the slow path
        return datetime.fromisoformat(text[:19] + rest).timestamp() + frac
    except ValueError:
        return None


_POD_HASH = re.compile(r"^(?P<base>.+?)(?:-[a-z0-9]{6,10})?-[a-z0-9]{5}$")


def _workload(ns: str, pod: str, labels: list[str] | None) -> str:
    """`ns/<app>`: from the workload labels when present, else the pod name without its hash."""
    if labels:
        for key in ("k8s:app.kubernetes.io/name=", "k8s:app=", "k8s:k8s-app="):
            for lab in labels:
                if isinstance(lab, str) and lab.startswith(key):
                    return f"{ns}/{lab[len(key) :]}"
    m = _POD_HASH.match(pod)
    return f"{ns}/{m.group('base') if m else pod}"


def _endpoint(ep: Any, ip: str, node: str) -> tuple[str, str] | None:
    if isinstance(ep, dict):
        return client_of(
            ep.get("pod_name") or "", ep.get("namespace") or "", ep.get("labels"), ip, node
        )
    return client_of("", "", None, ip, node)


def client_of(pod: str, ns: str, labels: Any, ip: str, node: str) -> tuple[str, str] | None:
    """(source, workload) of a flow's client endpoint, whatever the flow came as (a JSON line,
    a Relay message)."""
    if pod:
        return f"{ns}/{pod}", _workload(ns, pod, labels)
    # Host-network pods and nodes have no pod identity: name the node, so the finding says where.
    if ip or node:
        where = f"node/{node or '?'}/{ip or '?'}"
        return where, where
    return None


def dns_flow(
    ts: float,
    node: str,
    client: tuple[str, str],
    query: str,
    qtypes: Iterable[str],
    is_response: bool,
    rcode: int,
    ips: Iterable[str],
    cnames: int,
    rrtypes: Iterable[str],
    dropped: bool,
) -> DnsFlow:
    """The one place a DnsFlow is made, for every way flows arrive."""
    return DnsFlow(
        time=ts,
        node=_intern(str(node)),
        source=_intern(client[0]),
        workload=_intern(client[1]),
        query=query.lower().rstrip("."),
        qtypes=tuple(str(q) for q in qtypes),
        is_response=is_response,
        rcode=rcode,
        ips=tuple(_intern(str(i)) for i in ips),
        cnames=cnames,
        rrtypes=tuple(str(r) for r in rrtypes),
        dropped=dropped,
    )


def parse_line(raw: bytes | str) -> DnsFlow | str:
    """A DnsFlow, or the reason (one of SKIP_REASONS) the line is skipped. Never raises."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    line = raw.strip()
    if not line:
        return "malformed"
    if not line.startswith(b"{"):
        m = _RUNTIME_PREFIX.match(line)
        if not m:
            return "malformed"
        line = line[m.end() :]
    try:
        obj = _loads(line)
    except _JSONError:
        return "malformed"
    if not isinstance(obj, dict):
        return "malformed"
    if "log" in obj and isinstance(obj["log"], str) and "flow" not in obj:  # Docker json-file
        return parse_line(obj["log"])
    try:
        return _flow(obj)
    except (AttributeError, TypeError, ValueError, KeyError):
        return "malformed"


def _flow(obj: dict[str, Any]) -> DnsFlow | str:
    flow = obj.get("flow")
    if flow is None:
        if "lost_events" in obj:
            return "lost_events"
        if "l7" in obj or "verdict" in obj or "Type" in obj:
            flow = obj  # legacy `-o json`: the bare flow
        else:
            return "other_event"
    if not isinstance(flow, dict):
        return "malformed"
    l7 = flow.get("l7")
    dns = l7.get("dns") if isinstance(l7, dict) else None
    if not isinstance(dns, dict):
        return "not_dns"
    query = dns.get("query")
    if not isinstance(query, str) or not query:
        return "not_dns"
    node = obj.get("node_name") or flow.get("node_name") or ""
    when = flow.get("time") or obj.get("time")
    ts = parse_time(when) if isinstance(when, str) else None
    if ts is None:
        return "no_time"
    is_response = bool(flow.get("is_reply")) or (
        isinstance(l7, dict) and l7.get("type") == "RESPONSE"
    )
    ip = flow.get("IP") or {}
    if is_response:
        client = _endpoint(flow.get("destination"), ip.get("destination", ""), node)
    else:
        client = _endpoint(flow.get("source"), ip.get("source", ""), node)
    if client is None:
        return "no_client"
    return dns_flow(
        ts,
        node,
        client,
        query,
        dns.get("qtypes") or (),
        is_response,
        int(dns.get("rcode") or 0),
        dns.get("ips") or (),
        len(dns.get("cnames") or ()),
        dns.get("rrtypes") or (),
        flow.get("verdict") == "DROPPED",
    )


# -- reading files ---------------------------------------------------------------------------------


def _open(path: Path) -> BinaryIO:
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read flow file {path}: {exc.strerror or exc}") from None
    if fh.read(2) == b"\x1f\x8b":
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    fh.seek(0)
    return fh


def expand(paths: Iterable[str]) -> list[Path | None]:
    """Files in reading order; None is stdin. A directory holds an exporter's file and its
    rotated backups (`events-<timestamp>.log[.gz]`): oldest backup first, the live file last."""
    out: list[Path | None] = []
    for p in paths:
        if p == "-":
            out.append(None)
            continue
        path = Path(p)
        if path.is_dir():
            files = [f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")]
            backups = sorted(f for f in files if re.search(r"-\d{4}-\d\d-\d\dT", f.name))
            live = sorted(f for f in files if f not in backups)
            out.extend([*backups, *live])
        else:
            out.append(path)
    return out


def read_lines(paths: Iterable[str]) -> Iterator[bytes]:
    """Every line of every file (gzip transparently), then stdin for `-`."""
    for path in expand(paths):
        if path is None:
            yield from sys.stdin.buffer
            continue
        fh = _open(path)
        try:
            yield from fh
        except (OSError, EOFError) as exc:
            raise SourceError(f"flow file {path} is damaged: {type(exc).__name__}: {exc}") from None
        finally:
            fh.close()


@dataclass
class LineCounts:
    lines: int = 0
    dns_flows: int = 0
    skipped: Counter[str] | None = None

    def __post_init__(self) -> None:
        if self.skipped is None:
            self.skipped = Counter()

    def to_json(self) -> dict[str, Any]:
        assert self.skipped is not None
        return {
            "lines_read": self.lines,
            "dns_flows": self.dns_flows,
            "skipped": {r: self.skipped[r] for r in SKIP_REASONS if self.skipped[r]},
        }


def parse_stream(lines: Iterable[bytes], counts: LineCounts) -> Iterator[DnsFlow]:
    assert counts.skipped is not None
    for raw in lines:
        counts.lines += 1
        got = parse_line(raw)
        if isinstance(got, str):
            counts.skipped[got] += 1
            continue
        counts.dns_flows += 1
        yield got
