"""The GetFlows stream from Hubble Relay: connected as the hubble CLI connects (plain or TLS,
Relay's mTLS, a server name), read on a background thread, resumed after a drop or a Relay
restart from the last flow's time without counting a flow twice; its blind spots (lost events,
unreachable nodes) counted as it goes.

The reader thread only receives messages and queues them (bounded: a slow judge slows the
stream, it never grows memory); the follower's thread converts, de-duplicates and judges, so
the window has one writer.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from watcher.errors import ConfigError, SourceError
from watcher.sources.flows import DnsFlow, LineCounts
from watcher.sources.relay import observer_pb2 as pb
from watcher.sources.relay.messages import flow_of, flow_time

METHOD = "/observer.Observer/GetFlows"
# Flows this close to the newest one are remembered by key: Relay merges its nodes' streams
# in time order within a short buffer, so a resumed stream (since = the newest flow's time)
# may repeat flows a little older than the newest.
GRACE = 2.0
QUEUE = 8192  # messages between the reader thread and the judge
# gRPC codes that say the request itself is wrong or refused: retrying cannot help.
FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
_END = object()


@dataclass(frozen=True)
class RelayOptions:
    """How to reach Relay (the hubble CLI's flags): `hubble-relay.kube-system:80` in a cluster."""

    address: str
    since: float | None = None  # where to start (--since); None: the caller's default
    tls: bool = False
    ca: str | None = None  # --tls-ca: CA bundle for Relay's certificate (system roots if None)
    cert: str | None = None  # --tls-cert / --tls-key: a client certificate for Relay's mTLS
    key: str | None = None
    server_name: str | None = None  # --tls-server-name: the name Relay's certificate carries
    timeout: float = 10.0  # connecting, and the first answer: a Relay that never answers fails
    backoff_max: float = 30.0  # reconnect delays double up to this, with jitter

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            if self.ca or self.cert or self.key or self.server_name:
                raise ConfigError(
                    "--tls-ca, --tls-cert, --tls-key and --tls-server-name need --tls"
                )
            return None
        if bool(self.cert) != bool(self.key):
            raise ConfigError("--tls-cert and --tls-key go together (Relay's mTLS)")

        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None

        return grpc.ssl_channel_credentials(
            read(self.ca, "--tls-ca"), read(self.key, "--tls-key"), read(self.cert, "--tls-cert")
        )


def dns_request(
    follow: bool, since: float | None, until: float | None = None
) -> pb.GetFlowsRequest:
    """GetFlows as `hubble observe --protocol dns` asks it: L7 DNS requests and answers, the
    ones dropped by policy included, filtered on the server."""
    req = pb.GetFlowsRequest(follow=follow, whitelist=[pb.FlowFilter(protocol=["dns"])])
    if since is not None:
        req.since.CopyFrom(_timestamp(since))
    if until is not None:
        req.until.CopyFrom(_timestamp(until))
    return req


def _timestamp(t: float) -> Timestamp:
    ts = Timestamp()
    ts.seconds = int(t)
    ts.nanos = round((t - int(t)) * 1e9) % 1_000_000_000
    return ts


@dataclass
class Coverage:
    """What Relay said it could not show: events lost (by source and node) and nodes it
    cannot reach. A finding's absence means less while either holds."""

    lost: Counter[tuple[str, str]] = field(default_factory=Counter)
    nodes: dict[str, str] = field(default_factory=dict)  # node -> NodeState name
    reconnects: int = 0
    connected: bool = False

    def saw(self, resp: pb.GetFlowsResponse) -> None:
        kind = resp.WhichOneof("response_types")
        if kind == "lost_events":
            ev = resp.lost_events
            source = pb.LostEventSource.Name(ev.source) if ev.source in _LOST_SOURCES else "UNKNOWN"
            self.lost[(source, resp.node_name or "relay")] += ev.num_events_lost
        elif kind == "node_status":
            st = resp.node_status
            state = pb.NodeState.Name(st.state_change) if st.state_change in _NODE_STATES else ""
            for node in st.node_names:
                if state == "NODE_GONE":
                    self.nodes.pop(node, None)  # left the cluster: nothing of it to miss
                else:
                    self.nodes[node] = state

    def unavailable(self) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s not in ("NODE_CONNECTED", ""))

    def warnings(self) -> list[str]:
        out = []
        by_node: Counter[str] = Counter()
        for (_, node), n in self.lost.items():
            by_node[node] += n
        for node, n in sorted(by_node.items()):
            sources = ", ".join(sorted({s for (s, nd) in self.lost if nd == node}))
            out.append(
                f"Hubble Relay: {n} events lost on {node} ({sources}): findings there may "
                "miss names (raise the node's Hubble event buffer)"
            )
        down = self.unavailable()
        if down:
            out.append(
                f"Hubble Relay: {len(down)} node(s) unavailable ({', '.join(down[:10])}): their "
                "pods' DNS is not seen until they are back"
            )
        if not self.connected and self.reconnects:
            out.append("Hubble Relay: disconnected, reconnecting: flows meanwhile are resumed")
        return out


_LOST_SOURCES = set(pb.LostEventSource.values())
_NODE_STATES = set(pb.NodeState.values())


class RelayStream:
    """A GetFlows stream as a follower's tail: `read()` gives DnsFlows (none while nothing
    came), `eof` once a bounded read ended, `position()` where a restart resumes."""

    def __init__(
        self,
        opts: RelayOptions,
        follow: bool,
        since: float | None = None,
        until: float | None = None,
        counts: LineCounts | None = None,
        warn: Callable[[str], None] = lambda msg: None,
        position: dict[str, Any] | None = None,
    ) -> None:
        """`position`: a checkpoint's (position()), to go on from instead of `since`."""
        self.opts = opts
        self.follow = follow
        self.until = until
        self.counts = counts if counts is not None else LineCounts()
        self.warn = warn
        self.coverage = Coverage()
        self.eof = False
        self.newest = since  # the newest flow taken: a restarted follower resumes there
        self.recent: deque[tuple[float, str]] = deque()  # (time, key) of flows >= newest - GRACE
        self.keys: set[str] = set()
        if position and position.get("since") is not None:
            self.newest = float(position["since"])
            for key in position.get("keys") or ():
                self.recent.append((self.newest, str(key)))
                self.keys.add(str(key))
        # Messages as received (bytes: decoded on the follower's side, so the reader thread
        # only receives), _END last; a deque, not a Queue: a lock per message costs more than
        # the message. The reader waits while it holds QUEUE.
        self._q: deque[Any] = deque()
        self._ready = threading.Event()  # something was queued
        self._busy = False
        self._stop = threading.Event()
        self._error: SourceError | None = None
        self._call: Any = None
        self._creds = opts.credentials()  # a bad TLS option fails now, not on the thread
        self._thread = threading.Thread(target=self._run, name="relay-reader", daemon=True)
        self._thread.start()

    # -- the follower's side -------------------------------------------------------------------

    def read(self, wait: float = 0.2) -> list[DnsFlow]:
        """Flows received since the last call, converted, without repeats; SourceError if the
        stream failed for good."""
        out: list[DnsFlow] = []
        q = self._q
        if not q:
            self._ready.clear()
            if not q:
                self._ready.wait(wait)
        self._busy = True  # a reconnect waits until what was popped is taken
        try:
            for _ in range(min(len(q), 8192)):
                item = q.popleft()
                if item is _END:
                    self.eof = True
                    if self._error is not None:
                        raise self._error
                    break
                self._take(item, out)
        finally:
            self._busy = False
        return out

    def _take(self, raw: bytes, out: list[DnsFlow]) -> None:
        c = self.counts
        assert c.skipped is not None
        c.lines += 1
        resp = pb.GetFlowsResponse.FromString(raw)
        t = flow_time(resp)
        if t is None:
            self.coverage.saw(resp)
            c.skipped["lost_events" if resp.HasField("lost_events") else "other_event"] += 1
            return
        key = resp.flow.uuid or hashlib.blake2b(raw, digest_size=12).hexdigest()
        if key in self.keys:
            c.lines -= 1  # a repeat of a resumed stream
            return
        self._remember(t, key)
        got = flow_of(resp)
        if isinstance(got, str):
            c.skipped[got] += 1
            return
        c.dns_flows += 1
        out.append(got)

    def _remember(self, t: float, key: str) -> None:
        if self.newest is None or t > self.newest:
            self.newest = t
        self.recent.append((t, key))
        self.keys.add(key)
        horizon = self.newest - GRACE
        while self.recent and self.recent[0][0] < horizon:
            self.keys.discard(self.recent.popleft()[1])

    def position(self) -> dict[str, Any]:
        """Where a restarted follower resumes: the newest flow's time and the keys of the flows
        near it (a resumed stream repeats them: they are skipped)."""
        return {"since": self.newest, "keys": [k for _, k in self.recent]}

    def save(self) -> None:
        return  # the position goes into the checkpoint

    def close(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=5)

    # -- the reader thread ---------------------------------------------------------------------

    def _channel(self) -> grpc.Channel:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", 16 << 20),
            ("grpc.keepalive_time_ms", 30_000),
        ]
        if self._creds is None:
            return grpc.insecure_channel(self.opts.address, options=options)
        if self.opts.server_name:
            options.append(("grpc.ssl_target_name_override", self.opts.server_name))
        return grpc.secure_channel(self.opts.address, self._creds, options=options)

    def _run(self) -> None:
        attempt = 0
        ever = False  # a stream was answered once: later failures are drops, retried
        where = f"Hubble Relay at {self.opts.address}"
        while not self._stop.is_set():
            channel = self._channel()
            try:
                try:
                    grpc.channel_ready_future(channel).result(timeout=self.opts.timeout)
                except grpc.FutureTimeoutError:
                    if not ever:
                        self._fail(
                            f"{where} did not answer within {self.opts.timeout:g}s (address, "
                            "port, TLS options?)"
                        )
                        return
                    raise _Drop(f"{where} is unreachable") from None
                # Resume after the flows taken: wait until the follower's side has taken what
                # the last stream queued, then start at its newest flow (the flows it repeats
                # at that time are known by key).
                while (self._q or self._busy) and not self._stop.is_set():
                    time.sleep(0.01)
                since = self.newest
                call = channel.unary_stream(
                    METHOD,
                    request_serializer=pb.GetFlowsRequest.SerializeToString,
                    response_deserializer=None,
                )(dns_request(self.follow, since, self.until))
                self._call = call
                for resp in call:
                    if not ever or not self.coverage.connected:
                        self.coverage.connected = True
                        if ever:
                            self.warn(f"{where}: stream resumed")
                    ever = True
                    attempt = 0
                    self._put(resp)
                    if self._stop.is_set():
                        return
                if not self.follow:
                    self._put(_END)
                    return
                raise _Drop(f"{where} ended the stream")
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if self._stop.is_set():
                    return
                details = exc.details() if hasattr(exc, "details") else str(exc)
                if code in FATAL:
                    self._fail(f"{where} refused GetFlows: {code.name if code else '?'}: {details}")
                    return
                if not ever and code == grpc.StatusCode.UNAVAILABLE:
                    self._fail(f"{where} is unavailable: {details}")
                    return
                self._dropped(f"{where}: stream lost ({code.name if code else '?'}: {details})")
            except _Drop as exc:
                if self._stop.is_set():
                    return
                self._dropped(str(exc))
            finally:
                channel.close()
            delay = min(self.opts.backoff_max, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            if self._stop.wait(delay):
                return

    def _dropped(self, msg: str) -> None:
        self.coverage.connected = False
        self.coverage.reconnects += 1
        self.warn(f"{msg}; reconnecting")

    def _put(self, item: Any) -> None:
        q = self._q
        while len(q) >= QUEUE and not self._stop.is_set():
            time.sleep(0.005)  # the judge is behind: the stream waits (gRPC flow control)
        q.append(item)
        if not self._ready.is_set():
            self._ready.set()

    def _fail(self, msg: str) -> None:
        self._error = SourceError(msg)
        self._put(_END)


class _Drop(Exception):
    """The stream ended or could not start after it once worked: reconnect."""
