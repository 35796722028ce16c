"""A packet capture of a resolver's clients -> what Hubble would have written of it.

Each question a client asked the resolver becomes a REQUEST flow line from the client's pod and,
when the resolver answered, a RESPONSE flow line to it (tests/flowlines: real Hubble lines as
templates), and the same exchanges counted into `hubble_dns_queries_total` and
`hubble_dns_responses_total` series, scraped every minute, as OpenMetrics for promtool.

Names are written as Cilium's DNS proxy (miekg/dns) presents them: bytes outside printable
ASCII as `\\DDD`, a dot inside a label as `\\.`; dnspython's presentation form is the same.
The metrics' `query` label is that name lower-cased, as Hubble's metric handler does.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rdatatype

from tests import flowlines

SCRAPE = 60
METRIC = "hubble_dns_queries_total"
RESPONSES = "hubble_dns_responses_total"
DNS_POD = "kube-system/coredns-5d78c9869d-x7k2p"
RCODE_NAMES = {
    0: "No Error",
    1: "Format Error",
    2: "Server Failure",
    3: "Non-Existent Domain",
    4: "Not Implemented",
    5: "Refused",
}


@dataclass
class Exchange:
    """One question from a client and the resolver's answer (None: never answered)."""

    t: float
    client: str  # the client's address
    name: str  # presentation form, trailing dot
    qtype: str
    answer_t: float | None = None
    rcode: int = 0
    ips: list[str] = field(default_factory=list)
    rrtypes: list[str] = field(default_factory=list)


def packets(pcap: Path) -> Iterator[tuple[float, str, str, bytes]]:
    """(time, source address, destination address, UDP payload) of a classic pcap's IPv4/UDP
    packets (Ethernet or Linux cooked framing)."""
    data = pcap.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian, nano = "<", magic == b"\x4d\x3c\xb2\xa1"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian, nano = ">", magic == b"\xa1\xb2\x3c\x4d"
    else:
        raise ValueError(f"{pcap}: not a classic pcap file (write it with tshark -F pcap)")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        t = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:  # Ethernet
            ethertype, ip = struct.unpack(">H", frame[12:14])[0], frame[14:]
        elif linktype == 113:  # Linux cooked capture
            ethertype, ip = struct.unpack(">H", frame[14:16])[0], frame[16:]
        else:
            raise ValueError(f"{pcap}: link type {linktype} not supported")
        if ethertype != 0x0800 or len(ip) < 20 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        yield t, src, dst, ip[ihl + 8 :]


def exchanges(pcap: Path, resolver: str) -> list[Exchange]:
    """The questions clients asked `resolver` and its answers, matched by (client, id, name)."""
    pending: dict[tuple[str, int, str], Exchange] = {}
    out: list[Exchange] = []
    for t, src, dst, payload in packets(pcap):
        try:
            msg = dns.message.from_wire(payload)
        except Exception:  # noqa: BLE001 - not DNS (or truncated): the resolver never saw it
            continue
        if not msg.question:
            continue
        q = msg.question[0]
        name = q.name.to_text()
        qtype = dns.rdatatype.to_text(q.rdtype)
        is_answer = bool(msg.flags & dns.flags.QR)
        if not is_answer and dst == resolver:
            ex = Exchange(t, src, name, qtype)
            pending[(src, msg.id, name.lower())] = ex
            out.append(ex)
        elif is_answer and src == resolver:
            ex_or_none = pending.pop((dst, msg.id, name.lower()), None)
            if ex_or_none is None:
                continue
            ex_or_none.answer_t = t
            ex_or_none.rcode = int(msg.rcode())
            for rrset in msg.answer:
                kind = dns.rdatatype.to_text(rrset.rdtype)
                if kind not in ex_or_none.rrtypes:
                    ex_or_none.rrtypes.append(kind)
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    ex_or_none.ips.extend(r.address for r in rrset)
    return out


def flow_lines(ex: list[Exchange], pods: Mapping[str, str], node: str) -> list[str]:
    """Hubble's lines for the exchanges of clients in `pods` (address -> ns/pod), time order."""
    lines: list[tuple[float, str]] = []
    for e in ex:
        pod = pods.get(e.client)
        if pod is None:
            continue
        app = pod.split("/", 1)[1].rsplit("-", 2)[0]
        lines.append((e.t, flowlines.request(e.t, pod, e.name, e.qtype, app=app, node=node)))
        if e.answer_t is not None:
            lines.append(
                (
                    e.answer_t,
                    flowlines.answer(
                        e.answer_t,
                        pod,
                        e.name,
                        e.qtype,
                        ips=e.ips,
                        rcode=e.rcode,
                        rrtypes=e.rrtypes or None,
                        app=app,
                        node=node,
                    ),
                )
            )
    return [line for _, line in sorted(lines, key=lambda x: x[0])]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(ex: list[Exchange], pods: Mapping[str, str]) -> str:
    """The exchanges as Hubble's two DNS counters per (pod, query, qtype[, rcode, ips]),
    scraped every minute from the first exchange's minute until a minute after the last."""
    events: list[tuple[float, str, str]] = []  # (time, metric, labels)
    for e in ex:
        pod = pods.get(e.client)
        if pod is None:
            continue
        query = _escape(e.name.lower())
        events.append(
            (
                e.t,
                METRIC,
                f'destination="{DNS_POD}",ips_returned="0",qtypes="{e.qtype}",'
                f'query="{query}",rcode="",source="{_escape(pod)}"',
            )
        )
        if e.answer_t is not None:
            events.append(
                (
                    e.answer_t,
                    RESPONSES,
                    f'destination="{_escape(pod)}",ips_returned="{len(e.ips)}",'
                    f'qtypes="{e.qtype}",query="{query}",'
                    f'rcode="{RCODE_NAMES.get(e.rcode, str(e.rcode))}",source="{DNS_POD}"',
                )
            )
    if not events:
        return "# EOF\n"
    events.sort()
    first = int(events[0][0] // SCRAPE) * SCRAPE
    last = int(events[-1][0] // SCRAPE) * SCRAPE + 2 * SCRAPE
    counts: dict[tuple[str, str], int] = {}
    history: dict[tuple[str, str], list[str]] = {}
    i = 0
    for ts in range(first + SCRAPE, last + 1, SCRAPE):
        while i < len(events) and events[i][0] < ts:
            key = (events[i][1], events[i][2])
            counts[key] = counts.get(key, 0) + 1
            i += 1
        for key, n in counts.items():
            history.setdefault(key, []).append(f"{n} {ts}\n")
    out: list[str] = []
    for metric, help_text in ((METRIC, "DNS queries observed"), (RESPONSES, "DNS responses")):
        out.append(f"# HELP {metric[:-6]} {help_text}\n# TYPE {metric[:-6]} counter\n")
        for (m, labels), samples in history.items():
            if m == metric:
                out.extend(f"{metric}{{{labels}}} {s}" for s in samples)
    out.append("# EOF\n")
    return "".join(out)
