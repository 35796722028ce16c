"""Flow lines for tests, made from REAL Hubble lines (tests/fixtures/flows) as templates: only
the time, the client pod, the query and the answer are changed, every other field stays as
Hubble wrote it."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "flows"
L7 = FIXTURES / "hubble-otel_udp-dns-l7-148.jsonl"


def _templates() -> tuple[dict[str, Any], dict[str, Any]]:
    req = resp = None
    for line in L7.read_text().splitlines():
        obj = json.loads(line)
        kind = obj["flow"]["l7"]["type"]
        if kind == "REQUEST" and req is None:
            req = obj
        if kind == "RESPONSE" and resp is None and obj["flow"]["l7"]["dns"].get("ips"):
            resp = obj
    assert req is not None and resp is not None
    return req, resp


REQ, RESP = _templates()


def ts(t: float) -> str:
    whole = int(t)
    return (
        datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + f".{round((t - whole) * 1e9):09d}Z"
    )


def _client(ep: dict[str, Any], ns: str, pod: str, app: str | None) -> None:
    ep["namespace"] = ns
    ep["pod_name"] = pod
    ep["labels"] = (
        [
            lab
            for lab in ep.get("labels", [])
            if not lab.startswith(("k8s:app=", "k8s:io.kubernetes.pod.namespace="))
        ]
        + [f"k8s:io.kubernetes.pod.namespace={ns}"]
        + ([f"k8s:app={app}"] if app else [])
    )


def request(
    t: float,
    source: str,
    query: str,
    qtype: str = "A",
    *,
    app: str | None = None,
    verdict: str = "FORWARDED",
    node: str = "kind-worker",
) -> str:
    ns, pod = source.split("/", 1)
    obj = copy.deepcopy(REQ)
    f = obj["flow"]
    f["time"] = obj["time"] = ts(t)
    f["node_name"] = obj["node_name"] = node
    f["verdict"] = verdict
    _client(f["source"], ns, pod, app)
    q = query if query.endswith(".") else query + "."
    f["l7"]["dns"]["query"] = q
    f["l7"]["dns"]["qtypes"] = [qtype]
    f["Summary"] = f"DNS Query {q} {qtype}"
    return json.dumps(obj, separators=(",", ":"))


def answer(
    t: float,
    source: str,
    query: str,
    qtype: str = "A",
    *,
    ips: list[str] | None = None,
    rcode: int = 0,
    rrtypes: list[str] | None = None,
    app: str | None = None,
    node: str = "kind-worker",
) -> str:
    ns, pod = source.split("/", 1)
    obj = copy.deepcopy(RESP)
    f = obj["flow"]
    f["time"] = obj["time"] = ts(t)
    f["node_name"] = obj["node_name"] = node
    _client(f["destination"], ns, pod, app)
    dns = f["l7"]["dns"]
    q = query if query.endswith(".") else query + "."
    dns["query"] = q
    dns["qtypes"] = [qtype]
    for key in ("ips", "rrtypes", "rcode", "cnames"):
        dns.pop(key, None)
    if ips:
        dns["ips"] = ips
    if rcode:
        dns["rcode"] = rcode  # zero values are omitted, as protojson does
    if rrtypes or ips:
        dns["rrtypes"] = rrtypes or ["A"]
    return json.dumps(obj, separators=(",", ":"))


def exchange(t: float, source: str, query: str, qtype: str = "A", **ans: Any) -> list[str]:
    app = ans.pop("app", None)
    return [
        request(t, source, query, qtype, app=app),
        answer(t + 0.003, source, query, qtype, app=app, **ans),
    ]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path
