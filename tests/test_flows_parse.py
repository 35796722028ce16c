"""Hubble flow lines as they really are: every shape parsed, every bad line counted, none fatal."""

from __future__ import annotations

import json
import random

from tests.flowlines import FIXTURES, REQ, answer, request
from watcher.sources.flows import LineCounts, parse_line, parse_stream, parse_time


def _parse_file(name: str) -> tuple[list, LineCounts]:  # type: ignore[type-arg]
    counts = LineCounts()
    flows = list(parse_stream((FIXTURES / name).read_bytes().splitlines(), counts))
    return flows, counts


def test_the_gke_sample_has_165_requests_and_165_answers_102_of_them_nxdomain() -> None:
    flows, counts = _parse_file("hubble-otel_basic-sample-330-dns-flows.jsonl")
    assert counts.lines == counts.dns_flows == 330
    requests = [f for f in flows if not f.is_response]
    answers = [f for f in flows if f.is_response]
    assert len(requests) == len(answers) == 165
    assert sum(f.rcode == 3 for f in answers) == 102
    assert sum(bool(f.ips) for f in answers) == 55
    # The client is `source` on a request and `destination` on an answer: here node-local-dns.
    assert {f.source.split("/")[1].rsplit("-", 1)[0] for f in flows} == {"node-local-dns"}
    assert all(f.query == f.query.lower() and not f.query.endswith(".") for f in flows)


def test_answers_carry_addresses_and_record_types() -> None:
    flows, counts = _parse_file("hubble-otel_udp-dns-l7-148.jsonl")
    answers = [f for f in flows if f.is_response]
    assert len(answers) == 74 and counts.skipped == {}
    assert any(f.ips and f.rrtypes == ("A",) for f in answers)
    assert {f.workload for f in flows} >= {"bookinfo/ratings"}


def test_exporter_envelopes_are_counted_not_fatal() -> None:
    flows, counts = _parse_file("cilium-test_exporter_test-go_expected.jsonl")
    assert flows == []
    assert counts.skipped == {"not_dns": 1, "other_event": 2, "lost_events": 1}


def test_the_legacy_bare_flow_and_runtime_prefixed_lines_parse_the_same() -> None:
    line = request(1780000000.5, "app/web-1", "Api.Example.COM")
    envelope = parse_line(line)
    bare = parse_line(json.dumps(json.loads(line)["flow"]))
    cri = parse_line("2026-05-28T20:26:40.5Z stdout F " + line)
    docker = parse_line(json.dumps({"log": line + "\n", "stream": "stdout"}))
    assert not isinstance(envelope, str)
    assert envelope == bare == cri == docker
    assert envelope.query == "api.example.com" and envelope.source == "app/web-1"
    assert envelope.time == 1780000000.5


def test_a_policy_denied_query_is_one_dropped_request() -> None:
    got = parse_line(request(1.0e9, "app/web-1", "x.example", verdict="DROPPED"))
    assert not isinstance(got, str) and got.dropped and not got.is_response


def test_an_answer_with_no_rcode_is_noerror_and_nxdomain_is_3() -> None:
    ok = parse_line(answer(1.0e9, "app/web-1", "x.example", ips=["1.2.3.4"]))
    nx = parse_line(answer(1.0e9, "app/web-1", "x.example", rcode=3))
    assert not isinstance(ok, str) and not isinstance(nx, str)
    assert ok.rcode == 0 and ok.ips == ("1.2.3.4",) and nx.rcode == 3 and nx.is_response


def test_a_client_without_pod_identity_is_named_by_node_and_address() -> None:
    obj = json.loads(request(1.0e9, "app/web-1", "x.example", node="worker-7"))
    obj["flow"]["source"] = {"identity": 1, "labels": ["reserved:host"]}
    got = parse_line(json.dumps(obj))
    assert not isinstance(got, str)
    assert got.source == f"node/worker-7/{REQ['flow']['IP']['source']}"


def test_truncated_garbage_and_odd_bytes_are_skipped_by_reason() -> None:
    line = request(1.0e9, "app/web-1", "x.example")
    rnd = random.Random(3)
    bad = [
        line[: len(line) // 2],
        "",
        "not json at all",
        "[1, 2, 3]",
        '{"flow": "oops"}',
        '{"flow": {"l7": {"dns": {"query": "x.example."}}}}',  # no time anywhere
        bytes(rnd.randrange(256) for _ in range(300)),
        b"\xff\xfe{\x00",
    ]
    counts = LineCounts()
    raws = [b if isinstance(b, bytes) else b.encode() for b in bad]
    assert list(parse_stream(raws, counts)) == []
    assert counts.lines == len(bad)
    assert counts.skipped is not None and sum(counts.skipped.values()) == len(bad)
    assert counts.skipped["no_time"] == 1


def test_nanosecond_times_parse_exactly_enough() -> None:
    assert parse_time("2021-10-04T11:22:26.592280339Z") == 1633346546.5922804
    assert parse_time("2021-10-04T11:22:26Z") == 1633346546.0
    assert parse_time("2021-10-04T13:22:26.5+02:00") == 1633346546.5
    assert parse_time("yesterday") is None
