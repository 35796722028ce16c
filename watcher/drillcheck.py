"""`dnswatch drill --check`: was the last drill seen end to end, and if not, at which stage?

The stages a drill's queries go through, in order; the first that fails is where to look:

    hubble_metric   Prometheus scrapes the agents' Hubble metrics, with the dns metric on
    query_label     ... and its `query` label (`dns:query`)
    exporter_fields flow logs: the exporter keeps time and l7.dns (its field mask)
    relay           Hubble Relay (--relay): it answered, and lost no events on any node and
                    reached every node (else: "Relay lost events on node X")
    dns_proxy       the drill's pod's DNS goes through Cilium's DNS proxy (a DNS-rule policy)
    drill_queries   names under the drill zone were seen (the drill ran, recently enough)
    detection       the judge alerted on them (a `drill` finding, with its delay)
    delivery        the watcher's runs recorded the drill and sent it (the state database)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.config import Config
from watcher.detect import detect_all
from watcher.duration import human_duration
from watcher.errors import MissingDataError
from watcher.findings import Finding, rfc3339
from watcher.state import Store
from watcher.window import Window

STAGES = (
    "hubble_metric",
    "query_label",
    "exporter_fields",
    "relay",
    "dns_proxy",
    "drill_queries",
    "detection",
    "delivery",
)


@dataclass
class Stage:
    name: str
    ok: bool | None  # None: not checked from what was given
    detail: str


@dataclass
class Check:
    stages: list[Stage] = field(default_factory=list)
    drill: dict[str, Any] | None = None  # the drill finding's `drill` evidence

    def add(self, name: str, ok: bool | None, detail: str) -> bool:
        self.stages.append(Stage(name, ok, detail))
        return ok is not False

    @property
    def seen(self) -> bool:
        """Seen end to end: no stage failed and the drill was detected."""
        return self.drill is not None and all(s.ok is not False for s in self.stages)

    @property
    def failed(self) -> Stage | None:
        return next((s for s in self.stages if s.ok is False), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "failed_stage": self.failed.name if self.failed else None,
            "drill": self.drill,
            "stages": [{"stage": s.name, "ok": s.ok, "detail": s.detail} for s in self.stages],
        }

    def text(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "--  "}
        lines = [f"{mark[s.ok]} {s.name:16} {s.detail}" for s in self.stages]
        if self.seen:
            assert self.drill is not None
            verdict = (
                f"drill {self.drill['marker']} seen end to end "
                f"({human_duration(self.drill['delay_seconds'])} after it began)"
            )
        elif self.failed:
            verdict = f"drill not seen: look at stage {self.failed.name}"
        else:
            verdict = "no drill found"
        return "\n".join([*lines, verdict])


def _drill(findings: list[Finding], namespace: str | None) -> Finding | None:
    """The latest drill seen, from the namespace's pods when one is given."""
    drills = [
        f
        for f in findings
        if f.kind == "drill" and (not namespace or f.channel.startswith(namespace + "/"))
    ]
    return max(drills, key=lambda f: f.evidence["drill"]["started"]) if drills else None


def _judged(check: Check, f: Finding | None, cfg: Config, where: str) -> None:
    zone = cfg.drill.zone
    if f is None:
        check.add("drill_queries", False, f"no names under {zone} {where}")
        return
    d = f.evidence["drill"]
    check.drill = d
    check.add(
        "drill_queries",
        True,
        f"{d['marker']} from {f.evidence.get('workload') or f.source}, started {d['started']}",
    )
    if d["detected"]:
        check.add(
            "detection",
            True,
            f"alerted as {d['detected_as']} {human_duration(d['delay_seconds'])} after it began",
        )
    else:
        why = f.evidence.get("why_not_alerted") or f.summary
        check.add("detection", False, f"judged quiet ({d['judged']}): {why}")


def _namespace_seen(window: Window, namespace: str) -> bool:
    prefix = namespace + "/"
    return any(
        (t["source"].astype(str).str.startswith(prefix)).any()
        for t in (window.short, window.long)
        if not t.empty
    )


def metrics(
    check: Check, cfg: Config, window_of: Any, namespace: str | None, count_ns: Any = None
) -> None:
    """Stages seen from a metrics source: `window_of()` reads the window (raising the source's
    MissingDataError), `count_ns(namespace)` counts the namespace's series (Prometheus; a file
    uses its window)."""
    try:
        window = window_of()
    except MissingDataError as exc:
        if "label" in str(exc):
            check.add("hubble_metric", True, "the dns metric is there")
            check.add("query_label", False, str(exc))
        else:
            check.add(
                "hubble_metric",
                False,
                f"{exc}; or Prometheus does not scrape the cilium agents' :9965 "
                "(k8s/ has a ServiceMonitor)",
            )
        return
    check.add("hubble_metric", True, f"{cfg.labels.metric} is there")
    check.add("query_label", True, f"its '{cfg.labels.query}' label is there")
    found = _drill(detect_all(window, cfg), namespace)
    if found is None and namespace:
        n = count_ns(namespace) if count_ns is not None else int(_namespace_seen(window, namespace))
        if not n:
            check.add(
                "dns_proxy",
                False,
                f"no DNS query of any pod in namespace {namespace} reached Hubble: no "
                "CiliumNetworkPolicy with DNS rules selects the drill's pod (apply the one "
                "`dnswatch drill` renders), or the pod never ran",
            )
            return
        check.add("dns_proxy", True, f"pods in {namespace} are seen by the DNS proxy")
    _judged(check, found, cfg, f"in the last {human_duration(cfg.windows.long)}")


def flows(check: Check, cfg: Config, files: list[str], namespace: str | None) -> None:
    """Stages seen from flow logs: the exporter's fields, then the drill's names."""
    from watcher.flows import FlowScan
    from watcher.sources.flows import read_lines

    scan = FlowScan(cfg)
    seen_ns = {"n": 0}

    def lines() -> Any:
        for line in read_lines(files):
            if namespace and b'"namespace":"' + namespace.encode() + b'"' in line:
                seen_ns["n"] += 1
            yield line

    scan.feed(lines())
    result = scan.result()
    c = scan.counts
    if not c.dns_flows:
        hint = (
            "DNS flows without a time: keep `time` and `node_name` in the exporter's field mask"
            if c.skipped and c.skipped.get("no_time")
            else "no DNS flow in the input: the exporter's filter or field mask drops "
            "flow.l7 (keep l7, source, destination, time, node_name)"
        )
        check.add("exporter_fields", False, f"{c.lines} lines read; {hint}")
        return
    check.add("exporter_fields", True, f"{c.dns_flows} DNS flows with their fields")
    _from_scan(check, cfg, result, seen_ns["n"], namespace, "in the flow lines")


def from_relay(check: Check, cfg: Config, opts: Any, namespace: str | None) -> None:
    """Stages seen from Hubble Relay: it answered, and saw every node whole (no lost events,
    no unreachable node); then the drill's names as from flow lines."""
    from watcher.errors import SourceError
    from watcher.flows import FlowScan
    from watcher.sources.relay.stream import RelayStream

    scan = FlowScan(cfg)
    now = time.time()
    since = opts.since if opts.since is not None else now - cfg.windows.long
    stream = RelayStream(opts, False, since, until=now, counts=scan.source.counts)
    scan.source.notes = stream.coverage.warnings
    in_ns = 0
    try:
        while not stream.eof:
            got = stream.read()
            if namespace:
                in_ns += sum(f.source.startswith(namespace + "/") for f in got)
            scan.feed_flows(got)
    except SourceError as exc:
        check.add("relay", False, str(exc))
        return
    finally:
        stream.close()
    result = scan.result()
    cov = stream.coverage
    blind = []
    lost: dict[str, int] = {}
    for (_, node), n in cov.lost.items():
        lost[node] = lost.get(node, 0) + n
    blind += [f"Relay lost events on node {node} ({n})" for node, n in sorted(lost.items())]
    down = cov.unavailable()
    if down:
        blind.append(f"Relay cannot reach node(s) {', '.join(down[:10])}")
    findings = [Finding(**_finding_args(f)) for f in result["findings"]]
    if blind and _drill(findings, namespace) is None:
        check.add("relay", False, "; ".join(blind) + ": the drill's flows may be among them")
        return
    note = f" ({'; '.join(blind)})" if blind else ""
    check.add("relay", True, f"{scan.counts.dns_flows} DNS flows from Hubble Relay{note}")
    _from_scan(check, cfg, result, in_ns, namespace, "in Relay's flows")


def _from_scan(
    check: Check,
    cfg: Config,
    result: dict[str, Any],
    seen_ns: int,
    namespace: str | None,
    where: str,
) -> None:
    findings = [Finding(**_finding_args(f)) for f in result["findings"]]
    found = _drill(findings, namespace)
    if found is None and namespace:
        if not seen_ns:
            check.add(
                "dns_proxy",
                False,
                f"no DNS flow of any pod in namespace {namespace}: no CiliumNetworkPolicy with "
                "DNS rules selects the drill's pod (apply the one `dnswatch drill` renders)",
            )
            return
        check.add("dns_proxy", True, f"pods in {namespace} are seen by the DNS proxy")
    _judged(check, found, cfg, where)


def _finding_args(j: dict[str, Any]) -> dict[str, Any]:
    return {k: j[k] for k in ("kind", "severity", "source", "domain", "score", "summary")} | {
        "evidence": j["evidence"]
    }


def delivery(check: Check, cfg: Config) -> None:
    """The drill in the watcher's state: recorded as an incident, and sent."""
    path = cfg.state.path
    if not Path(path).exists():
        check.add("delivery", None, f"no state at {path}: delivery not checked")
        return
    with Store.read_only(path) as store:
        drills = store.drills() if store is not None else []
    marker = check.drill["marker"] if check.drill else None
    match = [
        (inc, dels)
        for inc, dels in drills
        if marker is None
        or inc.finding.get("evidence", {}).get("drill", {}).get("marker") == marker
    ]
    if not match:
        what = f"drill {marker}" if marker else "no drill"
        check.add(
            "delivery",
            False,
            f"{what} in the state at {path}: is `dnswatch run`/`serve` running on this source "
            "with this state?",
        )
        return
    inc, dels = match[0]
    if check.drill is None:  # from the state alone
        check.drill = dict(inc.finding.get("evidence", {}).get("drill", {}))
        check.add("detection", True, f"recorded {rfc3339(inc.first_seen)}")
    sent = [d for d in dels if d["status"] == "sent"]
    if sent:
        started = check.drill.get("started") if check.drill else None
        first = min(float(d["sent_at"] or 0) for d in sent)
        took = ""
        if started:
            t0 = _parse(started)
            took = f", {human_duration(max(0.0, first - t0))} after it began"
        channels = ", ".join(sorted({d["channel"] for d in sent}))
        check.add("delivery", True, f"sent to {channels} at {rfc3339(first)}{took}")
        if check.drill is not None:
            check.drill["delivered_at"] = rfc3339(first)
        return
    if not dels:
        check.add("delivery", False, "recorded, but no delivery channel is configured")
        return
    errors = [d["last_error"] for d in dels if d["last_error"]]
    last = f": {errors[-1]}" if errors else ""
    check.add("delivery", False, f"recorded, not delivered ({len(dels)} pending{last})")


def _parse(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def check(
    cfg: Config,
    flow_files: list[str] | None,
    metrics_file: str | None,
    at: float | None,
    namespace: str | None,
    relay: Any = None,
) -> Check:
    """Every stage visible from what was given: flow files or Hubble Relay (`relay`:
    RelayOptions), else a metrics file or the configured Prometheus (when any), then the
    state."""
    from watcher.sources.opener import open_source, read_window
    from watcher.sources.prometheus import PrometheusSource

    out = Check()
    if flow_files:
        flows(out, cfg, flow_files, namespace)
    elif relay is not None:
        from_relay(out, cfg, relay, namespace)
    elif metrics_file or cfg.prometheus.url:
        source = open_source(cfg, metrics_file)
        count_ns = None
        if isinstance(source, PrometheusSource):
            prom, when = source, at if at is not None else time.time()
            count_ns = lambda ns: prom.namespace_series(ns, when)  # noqa: E731
        metrics(out, cfg, lambda: read_window(source, at), namespace, count_ns)
    delivery(out, cfg)
    return out


def render(check: Check, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(check.to_json(), indent=1, ensure_ascii=True)
    return check.text()
