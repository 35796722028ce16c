"""Relay's messages as the watcher's DnsFlow: the same flow, the same fields, as a JSON line of
the exporter gives (watcher.sources.flows), so both paths fill the same evidence."""

from __future__ import annotations

from watcher.sources.flows import DnsFlow, client_of, dns_flow
from watcher.sources.relay import observer_pb2 as pb

_RESPONSE = pb.L7FlowType.RESPONSE
_DROPPED = pb.Verdict.DROPPED


def flow_of(resp: pb.GetFlowsResponse) -> DnsFlow | str:
    """A DnsFlow, or the reason (watcher.sources.flows.SKIP_REASONS) the message is skipped."""
    kind = resp.WhichOneof("response_types")
    if kind != "flow":
        return "lost_events" if kind == "lost_events" else "other_event"
    f = resp.flow
    if f.l7.WhichOneof("record") != "dns":
        return "not_dns"
    dns = f.l7.dns
    if not dns.query:
        return "not_dns"
    node = resp.node_name or f.node_name
    if f.HasField("time"):
        t = f.time
    elif resp.HasField("time"):
        t = resp.time
    else:
        return "no_time"
    ts = t.seconds + t.nanos / 1e9
    is_response = (f.HasField("is_reply") and f.is_reply.value) or f.l7.type == _RESPONSE
    if is_response:
        ep, ip = f.destination, f.IP.destination
    else:
        ep, ip = f.source, f.IP.source
    client = client_of(ep.pod_name, ep.namespace, list(ep.labels), ip, node)
    if client is None:
        return "no_client"
    return dns_flow(
        ts,
        node,
        client,
        dns.query,
        dns.qtypes,
        is_response,
        dns.rcode,
        dns.ips,
        len(dns.cnames),
        dns.rrtypes,
        f.verdict == _DROPPED,
    )


def flow_time(resp: pb.GetFlowsResponse) -> float | None:
    """The flow's time (a resume point), None for other messages."""
    if resp.WhichOneof("response_types") != "flow":
        return None
    t = resp.flow.time if resp.flow.HasField("time") else resp.time
    return float(t.seconds + t.nanos / 1e9)
