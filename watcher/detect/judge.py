"""The judge: one channel's evidence record + Config -> at most one finding. Every source's
channels go through here, so metrics and flow lines judge alike (docs/detection.md).

Rules that raise a channel (each gives a kind, for the output contract):
- subdomain_burst: many distinct names in the short, long or day window (fewer when they look
  encoded, or when the channel is private: a domain only this client resolves, one-off names,
  answers without real addresses);
- suspicious_name: a few names shaped like encoded payloads;
- channel_behaviour (flow lines only): one-off long names to a rarely used domain, no addresses
  in the answers, a machine's pace.
And per source, not per channel: high_volume, a query rate far above the source's own past
(watcher.detect.volume measures it; judge_rate says how bad).

Principles that keep a channel quiet (the finding stays, as info, with `why_not_alerted`):
- a payload is unique to its sender: names also asked by other clients are hosts;
- repetition counts when spread over time: names re-asked across the long window are hosts,
  names re-asked in one burst (a retry loop) are not;
- real hosts answer with addresses (where the source sees answers: flow lines, or the
  responses metric, which counts addresses without naming them and so quiets plain names only).
Names with a character no host name has are never quieted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from watcher.channel import ANSWERED, SHARED, SPREAD, Channel, NameSet, Span
from watcher.config import Config, day_encoded_min
from watcher.detect.volume import Rate, rates
from watcher.domains import DomainRules
from watcher.drill import recognise
from watcher.duration import human_duration
from watcher.evidence import Evidence, Volume
from watcher.findings import SEVERITY_RANK, Finding, Kind, Severity
from watcher.lexical import secret_bytes

_Candidate = tuple[Severity, Kind, float, str, dict[str, Any]]
# On a tie in severity: the burst (the whole picture, and the same kind from every source),
# then flows' behaviour, then the few encoded names.
_KIND_ORDER: dict[str, int] = {
    "beacon": 0,
    "suspicious_name": 1,
    "channel_behaviour": 2,
    "subdomain_burst": 3,
}


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def burst_severity(
    names: NameSet, base: int, encoded_min: int, cfg: Config, min_bytes: float = 0
) -> Severity | None:
    """The burst rule on a window's names: `base` plain names carrying `min_bytes`, or
    `encoded_min` when most of them look encoded; critical at `critical_factor` times that."""
    b = cfg.burst
    looks_encoded = names.encoded_fraction >= b.encoded_fraction
    threshold = min(base, encoded_min) if looks_encoded else base
    if names.distinct >= threshold and (looks_encoded or names.est_bytes >= min_bytes):
        critical_at = (
            max(base, encoded_min * b.critical_factor)
            if looks_encoded
            else base * b.critical_factor
        )
        return "critical" if names.distinct >= critical_at else "warning"
    return "info" if names.distinct >= b.info_min_distinct else None


def private_channel(ch: Channel, cfg: Config) -> str | None:
    """Why the channel is private (lower thresholds), or None: only this client resolves the
    domain and its one-off names are asked once each. What the zone's server answers is not
    asked: the server of a private zone is the sender's own."""
    names = ch.widest_one_off()
    if names is None or names.distinct == 0 or ch.prevalence != 1:
        return None
    if names.unique_ratio < cfg.judge.one_off_ratio:
        return None
    return f"only this client resolves {ch.domain}, its one-off names asked once each"


_WHY = {
    SHARED: "also asked by other clients (shared hosts, not one sender's payload)",
    SPREAD: "asked again long after their first ask (hosts whose cache expired)",
    ANSWERED: "asked again and answered with addresses each time (real hosts)",
}


def hosts_reason(ch: Channel, cfg: Config) -> tuple[str, str] | None:
    """(principle, why) some of the channel's names are hosts, or None. The principle is the
    one that set aside most names: `shared_names`, `spread_repetition`, `address_answers`."""
    names, one_off = ch.widest(), ch.widest_one_off()
    principle = ch.hosts.principle()
    if names is None or principle is None:
        return None
    parts = [f"{n} {_WHY[k]}" for k, n in ch.hosts.counts().items() if n]
    left = one_off.distinct if one_off is not None else 0
    return principle, (
        f"{ch.hosts.total} of {names.distinct} names are hosts: {'; '.join(parts)}; the "
        f"{left} one-off name{'s' if left != 1 else ''} left raise no alert"
    )


def _common(ch: Channel, cfg: Config) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "workload": ch.client,
        "pods": ch.pod_count,
        "sample_pods": list(ch.pods[: cfg.output.sample_names]),
        "repeat_slots": ch.repeat_slots,
        "shared_names": ch.shared_names,
        "hosts": ch.hosts.counts(),
        "prevalence_clients": ch.prevalence or None,
    }
    a = ch.answers
    if a is not None:
        ev.update(
            nxdomain_share=round(a.nxdomain_share, 3),
            empty_answer_share=round(a.empty_share, 3),
            address_answer_share=round(a.address_share, 3),
            distinct_answer_addresses=a.distinct_addresses if a.addresses_known else None,
            data_answer_share=round(a.data_share, 3),
            denied_share=round(a.denied_share, 3),
            unanswered_share=round(a.unanswered_share, 3),
        )
    t = ch.timing
    if t is not None:
        names = ch.widest()
        ev.update(
            payload_chars_mean=round(t.payload_mean, 1),
            payload_chars_std=round(t.payload_std, 1),
            entropy_std=round(t.entropy_std, 3),
            data_qtype_share=round(t.data_qtype_share, 3),
            interarrival_mean_s=round(t.gap_mean, 3),
            interarrival_cv=round(t.gap_cv, 3),
            qtypes=dict(t.qtypes),
            model_score=round(t.model_score, 3) if t.model_score is not None else None,
            query_features=dict(t.query_means),
            first_seen=t.first,
            last_seen=t.last,
            bytes_per_second=round(
                (names.est_bytes if names else 0.0) / max(t.last - t.first, 1.0), 2
            ),
        )
    return ev


def _of_pods(ch: Channel) -> str:
    return f" from {ch.pod_count} pods of {ch.client}" if ch.pod_count > 1 else ""


def _bursts(ch: Channel, cfg: Config, private: str | None, one_off: bool) -> list[_Candidate]:
    """The burst rule on every window: on the one-off names (the verdict), or on all names
    (what the hosts among them would have raised, to say why it stays quiet)."""
    b = cfg.burst
    spans: list[tuple[Span | None, int, int, bool]] = [
        (ch.short, b.short_min_distinct, b.encoded_min_distinct, False),
        (ch.long, b.long_min_distinct, b.encoded_min_distinct, False),
    ]
    if ch.day is not None:
        spans.append((ch.day, b.day_min_distinct, day_encoded_min(cfg, ch.day.seconds), True))
    out: list[_Candidate] = []
    for i, (span, base, enc_min, alerts_only) in enumerate(spans):
        if span is None:
            continue
        if private and i > 0:  # the long and day windows: a private channel needs fewer
            base = max(b.info_min_distinct, math.ceil(base * cfg.judge.private_factor))
        names = span.one_off if one_off else span.names
        # Beside hosts, a short burst of plain one-off names must carry a payload's bytes.
        floor = b.short_min_bytes if i == 0 and one_off and span.hosts else 0
        sev = burst_severity(names, base, enc_min, cfg, floor)
        if sev is None or (alerts_only and sev == "info"):
            continue
        ev = names.evidence(span.label, cfg.output.max_name_chars)
        ev.update(
            distinct_names=span.names.distinct,
            one_off_names=span.one_off.distinct,
            host_names=span.hosts,
            threshold_distinct=base,
        )
        if private and i > 0:
            ev["private_channel"] = private
        score = min(
            1.0,
            0.5 * min(1.0, names.distinct / (2 * base))
            + 0.5 * names.encoded_fraction
            + 0.25 * (sev == "critical"),
        )
        counted = (
            f"{names.distinct} one-off names (beside {span.hosts} host names)"
            if one_off and span.hosts
            else f"{names.distinct} distinct names"
        )
        summary = (
            f"{counted} under {ch.domain} in {span.label}{_of_pods(ch)} "
            f"({names.encoded_fraction:.0%} encoded-looking, ~{int(names.est_bytes)} bytes)"
        )
        out.append((sev, "subdomain_burst", score, summary, ev))
    return out


def _encoded(ch: Channel, cfg: Config, one_off: bool) -> list[_Candidate]:
    names = ch.encoded_one_off if one_off else ch.encoded
    if names is None or names.distinct == 0:
        return []
    n = cfg.names
    k = names.distinct
    sev: Severity = (
        "critical" if k >= n.critical_distinct else "warning" if k >= n.min_distinct else "info"
    )
    label = human_duration(cfg.windows.long)
    summary = (
        f"{k} encoded-looking name{'s' if k != 1 else ''} under {ch.domain} in {label}"
        f"{_of_pods(ch)} ({names.alphabet}, longest {names.max_name_length} chars, "
        f"{names.queries:.0f} queries)"
    )
    score = min(1.0, names.mean_score * min(1.0, 0.5 + k / (2 * n.min_distinct)))
    ev = names.evidence(label, cfg.output.max_name_chars)
    biggest = max((secret_bytes(x, n.min_score) for x in names.samples), default=0.0)
    if sev == "info" and one_off and ch.prevalence == 1 and biggest >= n.secret_min_bytes:
        # A credential fits in one name, and no other workload resolves the zone, so nothing
        # but the sender's own server answers it. Identifiers (a UUID, a 128-bit hash: 16
        # bytes) stay under the bar.
        sev = "warning"
        ev["secret_sized"] = (
            f"a name of ~{int(biggest)} bytes to a zone only this workload resolves"
        )
        summary += f": a name of ~{int(biggest)} bytes, a secret's size, to a zone only it resolves"
    base_rate = _base_rate(ch, cfg) if one_off and k < cfg.burst.encoded_min_distinct else None
    if base_rate is not None and sev != "info":
        sev = "info"
        ev["quieted_by"], ev["why_not_alerted"] = base_rate
    return [(sev, "suspicious_name", score, summary, ev)]


# Principles that call a few encoded names ordinary for their channel, zone or client: such a
# channel joins no session either.
BASE_RATE = ("host_family", "shared_zone", "busy_client")


def _base_rate(ch: Channel, cfg: Config) -> tuple[str, str] | None:
    """Why a few encoded-looking names are ordinary here (principle, why), or None: they are
    a few beside many encoded-looking hosts of the channel (its newest), the zone's
    encoded-looking names come from several workloads (its own naming), or the client
    resolves so many domains that it meets a few such names by chance."""
    n = cfg.names
    one_off = ch.encoded_one_off.distinct if ch.encoded_one_off is not None else 0
    hosts = (ch.encoded.distinct if ch.encoded is not None else 0) - one_off
    if one_off and hosts >= n.family_factor * one_off:
        return "host_family", (
            f"{hosts} encoded-looking names under {ch.domain} are hosts (asked again, or by "
            f"others): the {one_off} not asked again yet are the family's newest, not a payload"
        )
    if ch.encoded_clients >= n.service_clients:
        return "shared_zone", (
            f"{ch.encoded_clients} workloads ask encoded-looking names under {ch.domain}: "
            "the zone's own naming (a service), not one sender's payload"
        )
    if ch.client_domains >= n.busy_client_domains:
        return "busy_client", (
            f"{ch.client} resolves {ch.client_domains} domains: a few encoded-looking names "
            "under one of them is chance"
        )
    return None


def beacon_like(ch: Channel, cfg: Config) -> bool:
    """Names under a domain no other client resolves, asked again and again at a steady pace
    for beacon.min_seconds, never usefully answered: no addresses, no data (answers must be
    seen: without them a health check cannot be told from a beacon)."""
    bt, a, c = ch.beat, ch.answers, cfg.beacon
    return (
        bt is not None
        and a is not None
        and ch.prevalence == 1
        and bt.seconds >= c.min_seconds
        and bt.steps >= c.min_steps
        and bt.regularity >= c.min_regularity
        and a.used_share() <= c.max_used_share
    )


def _beacon(ch: Channel, cfg: Config, domains: int) -> list[_Candidate]:
    """`domains`: rare domains the client beacons to at once (this one included)."""
    if not beacon_like(ch, cfg):
        return []
    bt, a, c = ch.beat, ch.answers, cfg.beacon
    assert bt is not None and a is not None
    sev: Severity = (
        "critical"
        if domains >= c.critical_domains
        else "warning"
        if bt.names >= c.min_names
        else "info"
    )
    failed = 1.0 - a.used_share()
    score = min(1.0, (bt.regularity + failed + min(1.0, bt.seconds / 7200)) / 3)
    answered = (
        "never answered"
        if a.unanswered_share >= 0.99
        else "answered NXDOMAIN"
        if a.nxdomain_share >= 0.5
        else f"{a.used_share():.0%} answered with addresses or data"
    )
    summary = (
        f"{bt.names} name{'s' if bt.names != 1 else ''} under {ch.domain} asked again in "
        f"{bt.steps} steps over {human_duration(bt.seconds)}{_of_pods(ch)} at a steady pace, "
        f"{answered}: a beacon"
        + (f" (one of {domains} rare domains it calls)" if domains > 1 else "")
    )
    ev: dict[str, Any] = {
        "window": human_duration(cfg.windows.long),
        "distinct_names": (ch.widest() or NameSet(0, 0, 0, 0)).distinct,
        "beacon_names": bt.names,
        "beacon_seconds": round(bt.seconds),
        "beacon_steps": bt.steps,
        "regularity": round(bt.regularity, 3),
        "beacon_domains": domains,
    }
    if sev == "info":
        ev["why_not_alerted"] = (
            f"one name retried ({bt.names} < beacon.min_names): a broken lookup, or a beacon"
        )
    return [(sev, "beacon", score, summary, ev)]


def behaviour(ch: Channel) -> dict[str, float]:
    """Flow-only signals in [0, 1], 1 = channel-like; their mean is the behaviour score. The
    model's score is one signal among them, never an alert on its own (docs/flow-model.md)."""
    t, a, names = ch.timing, ch.answers, ch.long.one_off if ch.long else None
    if t is None or a is None or names is None:
        return {}
    regular = _clip(1.0 - t.gap_cv / 2.0) if t.gap_mean > 0 else 0.0
    uniform = _clip(1.0 - (t.payload_std / t.payload_mean) / 0.6) if t.payload_mean else 0.0
    signals = {
        "no_address": _clip(1.0 - a.real_address_share(names.distinct)),
        "failed_or_data": _clip(
            a.nxdomain_share + a.empty_share + a.data_share + a.unanswered_share
        ),
        "data_qtypes": t.data_qtype_share,
        "regular_timing": regular,
        "uniform_size": uniform,
        "one_off_names": _clip((names.unique_ratio - 0.5) / 0.5),
    }
    if t.model_score is not None:
        signals["model"] = t.model_score
    return signals


def _behaviour(ch: Channel, cfg: Config) -> tuple[list[_Candidate], str | None]:
    signals = behaviour(ch)
    f = cfg.flows
    names = ch.long.one_off if ch.long else None
    if not signals or names is None or names.distinct < f.min_distinct:
        return [], None
    assert ch.timing is not None and ch.answers is not None
    score = sum(signals.values()) / len(signals)
    gates = {
        "distinct": names.distinct >= f.min_distinct,
        "unique": names.unique_ratio >= f.min_unique_ratio,
        "long_names": ch.timing.payload_mean >= f.min_payload_chars,
        "no_addresses": ch.answers.real_address_share(names.distinct) <= f.max_address_share,
        "private": ch.prevalence <= f.max_prevalence,
    }
    missed = None
    if all(gates.values()) and score >= f.behaviour_score:
        sev: Severity = (
            "critical"
            if names.distinct >= f.critical_distinct or names.est_bytes >= 8192
            else "warning"
        )
    else:
        sev = "info"
        failed = [k for k, ok in gates.items() if not ok]
        if score < f.behaviour_score:
            failed.append(f"behaviour score {score:.2f} < {f.behaviour_score}")
        missed = "not alerted: " + ", ".join(failed)
    a = ch.answers
    summary = (
        f"{names.distinct} one-off names under {ch.domain} from {ch.client} "
        f"({ch.pod_count} pod{'s' if ch.pod_count != 1 else ''}), "
        f"{a.real_address_share(names.distinct):.0%} answered with real addresses, mean "
        f"{ch.timing.payload_mean:.0f} chars, ~{int(names.est_bytes)} bytes"
    )
    ev = names.evidence(human_duration(cfg.windows.long), cfg.output.max_name_chars)
    ev.update(
        behaviour={k: round(v, 3) for k, v in signals.items()},
        behaviour_score=round(score, 3),
        gates=gates,
    )
    return [(sev, "channel_behaviour", score, summary, ev)], missed


def judge(ch: Channel, cfg: Config, beacons: int = 1) -> Finding | None:
    """The one finding a channel deserves now, or None. The rules count the one-off names;
    where only its hosts would have raised the channel, it is info and says which principle
    set them aside (a heartbeat's repeats never hide the one-off chunks beside it).
    `beacons`: rare domains the channel's client beacons to (judge_all counts them)."""
    private = private_channel(ch, cfg)
    candidates = _bursts(ch, cfg, private, True) + _encoded(ch, cfg, True)
    flow, missed = _behaviour(ch, cfg)
    candidates += flow + _beacon(ch, cfg, beacons)
    hosts = None
    if ch.hosts.total and not any(c[0] != "info" for c in candidates):
        every = _bursts(ch, cfg, None, False) + _encoded(ch, cfg, False)
        if every:
            candidates, hosts = every, hosts_reason(ch, cfg)
    if not candidates:
        return None
    # Most severe; on a tie by _KIND_ORDER, then the higher score.
    sev, kind, score, summary, ev = max(
        candidates,
        key=lambda c: (SEVERITY_RANK[c[0]], _KIND_ORDER[c[1]], c[2], c[4]["distinct_names"]),
    )
    evidence = {**ev, **_common(ch, cfg)}
    # Every rule that raised the channel, so a reader sees all of the case.
    evidence["reasons"] = [f"{c[1]} {c[0]}: {c[3]}" for c in candidates if c[0] != "info"]
    for c in flow:
        if c[0] != "info" and kind != c[1]:
            evidence.update({k: c[4][k] for k in ("behaviour", "behaviour_score", "gates")})
    if hosts:
        sev = "info"
        evidence["quieted_by"], evidence["why_not_alerted"] = hosts
        evidence["reasons"] = []
    elif sev == "info" and kind == "beacon":
        pass  # the beacon says why itself
    elif sev == "info" and missed:
        evidence["why_not_alerted"] = missed
    return Finding(kind, sev, ch.source, ch.domain, score, summary, evidence)


def judge_all(channels: list[Channel], cfg: Config) -> list[Finding]:
    """Every channel judged, and every client's session over rare domains; the drill's
    channel is told apart from leaks (watcher/drill.py)."""
    beacons = Counter(ch.client for ch in channels if beacon_like(ch, cfg))
    out = []
    quiet = []  # channels that raise no alert of their own: a session may join them
    for ch in channels:
        f = judge(ch, cfg, beacons.get(ch.client, 1))
        if f is not None:
            out += recognise([f], cfg, ch.at)
        if f is None or not (f.is_alert or f.evidence.get("quieted_by") in BASE_RATE):
            quiet.append(ch)
    return out + judge_sessions(quiet, cfg)


def session_member(ch: Channel, cfg: Config) -> bool:
    """A rare domain's channel that can be part of a session: no other client resolves the
    domain, a few one-off names, answers not in use (where seen)."""
    s = cfg.session
    names = ch.long.one_off if ch.long is not None else None
    return (
        ch.prevalence == 1
        and names is not None
        and names.distinct >= s.min_names
        and (ch.answers is None or ch.answers.used_share() <= s.max_used_share)
    )


def judge_sessions(channels: list[Channel], cfg: Config) -> list[Finding]:
    """Each client's one-off names under rare domains (session_member) of channels that raise
    no alert of their own, judged together, as one private channel's would be: a session
    rotated over several domains meets the same bar as one domain. One finding per client
    (domain null; `session_domains` names them), so it stays one incident however the domains
    rotate."""
    members: dict[str, list[Channel]] = {}
    for ch in channels:
        if session_member(ch, cfg):
            members.setdefault(ch.client, []).append(ch)
    out = []
    for client, chs in members.items():
        if len(chs) < cfg.session.min_domains:
            continue
        f = _session(client, chs, cfg)
        if f is not None:
            out.append(f)
    return out


def _session(client: str, chs: list[Channel], cfg: Config) -> Finding | None:
    b = cfg.burst
    parts = [ch.long.one_off for ch in chs if ch.long is not None]
    distinct = sum(p.distinct for p in parts)
    names = NameSet(
        distinct=distinct,
        queries=sum(p.queries for p in parts),
        encoded=sum(p.encoded for p in parts),
        est_bytes=sum(p.est_bytes for p in parts),
        mean_score=sum(p.mean_score * p.distinct for p in parts) / max(distinct, 1),
        max_name_length=max(p.max_name_length for p in parts),
        alphabet=max(parts, key=lambda p: p.distinct).alphabet,
        samples=tuple(n for p in sorted(parts, key=lambda p: -p.distinct) for n in p.samples[:1]),
    )
    base = max(b.info_min_distinct, math.ceil(b.long_min_distinct * cfg.judge.private_factor))
    sev = burst_severity(names, base, b.encoded_min_distinct, cfg)
    if sev is None or sev == "info":
        return None
    label = human_duration(cfg.windows.long)
    by_domain = sorted(
        ((ch.domain, ch.long.one_off.distinct) for ch in chs if ch.long), key=lambda d: -d[1]
    )
    pods = sorted({p for ch in chs for p in ch.pods})
    source = pods[0] if len(pods) == 1 else client
    ev = names.evidence(label, cfg.output.max_name_chars)
    ev.update(
        one_off_names=distinct,
        threshold_distinct=base,
        workload=client,
        pods=len(pods),
        sample_pods=pods[: cfg.output.sample_names],
        session_domains=dict(by_domain[:20]),
        domains=len(chs),
        private_channel=f"only {client} resolves these {len(chs)} domains",
    )
    shown = ", ".join(d for d, _ in by_domain[:3]) + (", …" if len(by_domain) > 3 else "")
    summary = (
        f"{distinct} one-off names under {len(chs)} domains only {client} resolves, in {label} "
        f"({shown}; {names.encoded_fraction:.0%} encoded-looking, ~{int(names.est_bytes)} "
        "bytes): one session rotated over domains"
    )
    score = min(
        1.0,
        0.5 * min(1.0, distinct / (2 * base))
        + 0.5 * names.encoded_fraction
        + 0.25 * (sev == "critical"),
    )
    return Finding("subdomain_burst", sev, source, None, score, summary, ev)


def judge_rate(r: Rate, cfg: Config) -> Finding:
    """A source's peak rate that reached its threshold (detect.volume.rates): warning, critical
    past volume.critical_factor, info for a young source steady since it started."""
    v, base = cfg.volume, r.baseline
    severity: Severity = "critical" if r.peak >= r.threshold * v.critical_factor else "warning"
    steady_note = None
    if r.early_median is not None and r.peak < v.young_change * r.early_median:
        # No history to compare with: a flood is still a change against the source's own
        # past, however short. Steady since it started is a busy new workload, not a flood.
        severity = "info"
        steady_note = (
            f"steady since it started ({r.early_median:.1f}/s in its first "
            f"{r.early_seconds / 60:.0f} min): no change to call a flood"
        )
    ratio = r.peak / base.median if base.median > 0 else None
    score = (
        float(min(1.0, 0.5 + 0.5 * (r.peak / r.threshold - 1) / (v.critical_factor - 1)))
        if v.critical_factor > 1
        else 1.0
    )
    history = "no usable history" if base.kind == "none" else base.kind + " history"
    return Finding(
        kind="high_volume",
        severity=severity,
        source=r.source,
        domain=None,
        score=score,
        summary=(
            f"{r.peak:.1f} DNS queries/s against a baseline of {base.median:.2f}/s "
            f"({history}; threshold {r.threshold:.1f}/s)"
        ),
        evidence={
            "window": human_duration(v.recent),
            "rate_qps": round(r.peak, 3),
            "baseline_qps": round(base.median, 3),
            "baseline_mad_qps": round(base.mad, 3),
            "baseline_p99_qps": round(base.p99, 3),
            "baseline_kind": base.kind,
            "baseline_seconds": int(base.seconds),
            "threshold_qps": round(r.threshold, 3),
            "ratio": round(ratio, 2) if ratio is not None else None,
            "queries": round(r.queries, 1),
            **({"why_not_alerted": steady_note} if steady_note else {}),
        },
    )


def judge_volume(volume: Volume | None, cfg: Config, rules: DomainRules) -> list[Finding]:
    """Each busy source's rate against its own past (high_volume)."""
    if volume is None:
        return []
    return [judge_rate(r, cfg) for r in rates(volume, cfg, rules)]


def judge_evidence(ev: Evidence, cfg: Config, rules: DomainRules) -> list[Finding]:
    """Every finding of one source's evidence: one per channel, plus each source's volume."""
    return [*judge_all(ev.channels, cfg), *judge_volume(ev.volume, cfg, rules)]
