"""Pure detectors over the flow window's pair summaries: PairSummary + Config -> findings.

The same kinds as the metrics path where the evidence is the same (`subdomain_burst`,
`suspicious_name`, with the same thresholds), plus `channel_behaviour`: what only flows show,
a workload sending many one-off, long names to one rarely used domain whose answers carry no
addresses, at a machine's regular pace, in data query types. That catches low-entropy,
word-based encodings that no per-name shape score can (Žiža et al. 2023).

Answers also quiet the shape-based kinds: names that resolve to addresses and are re-queried
are real hosts (IP-named hosts, wildcard DNS, storage accounts), whatever they look like.
"""

from __future__ import annotations

from typing import Any

from watcher.config import Config
from watcher.detect.burst import _judge
from watcher.duration import human_duration
from watcher.findings import SEVERITY_RANK, Finding, Severity
from watcher.flowmodel import QUERY_FEATURES, pair_vector, shipped
from watcher.flowwindow import PairSummary
from watcher.lexical import shape
from watcher.text import truncate


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def model_score(s: PairSummary) -> float | None:
    """The shipped flow model's P(channel) for the pair (docs/flow-model.md), or None."""
    model = shipped()
    if model is None:
        return None
    return float(model.predict(pair_vector(s))[0])


def behaviour(s: PairSummary) -> dict[str, float]:
    """Each signal in [0, 1], 1 = channel-like; their mean is the behaviour score. The model's
    score is one signal among them, never an alert on its own: trained on the project's own
    families, it misjudges kinds of traffic it has not seen (docs/flow-model.md)."""
    regular = _clip(1.0 - s.gap_cv / 2.0) if s.gap_mean > 0 else 0.0
    uniform = _clip(1.0 - (s.payload_std / s.payload_mean) / 0.6) if s.payload_mean else 0.0
    signals = {
        "no_address": _clip(1.0 - s.real_address_share),
        "failed_or_data": _clip(
            s.nxdomain_share + s.empty_share + s.data_answer_share + s.unanswered_share
        ),
        "data_qtypes": s.data_qtype_share,
        "regular_timing": regular,
        "uniform_size": uniform,
        "one_off_names": _clip((s.unique_ratio - 0.5) / 0.5),
    }
    m = model_score(s)
    if m is not None:
        signals["model"] = m
    return signals


def evidence(s: PairSummary, cfg: Config, signals: dict[str, float]) -> dict[str, Any]:
    alph = shape(s.samples[0]).alphabet if s.samples else "text"
    return {
        "window": human_duration(cfg.windows.long),
        "workload": s.workload,
        "pods": s.pods,
        "distinct_names": s.long_new,
        "distinct_names_short": s.short_new,
        "queries": s.long_requests,
        "unique_ratio": round(min(1.0, s.unique_ratio), 3),
        "encoded_fraction": round(s.encoded_new / s.long_new, 3) if s.long_new else 0.0,
        "mean_score": round(s.score_mean, 3),
        "entropy_mean": round(s.entropy_mean, 3),
        "entropy_std": round(s.entropy_std, 3),
        "payload_chars_mean": round(s.payload_mean, 1),
        "payload_chars_std": round(s.payload_std, 1),
        "alphabet": alph,
        "est_bytes": round(s.est_bytes),
        "bytes_per_second": round(s.est_bytes / max(s.last - s.first, 1.0), 2),
        "nxdomain_share": round(s.nxdomain_share, 3),
        "empty_answer_share": round(s.empty_share, 3),
        "address_answer_share": round(s.address_share, 3),
        "distinct_answer_addresses": s.distinct_addresses,
        "data_qtype_share": round(s.data_qtype_share, 3),
        "denied_share": round(s.denied_share, 3),
        "unanswered_share": round(s.unanswered_share, 3),
        "interarrival_mean_s": round(s.gap_mean, 3),
        "interarrival_cv": round(s.gap_cv, 3),
        "qtypes": s.qtypes,
        "prevalence_workloads": s.prevalence,
        "behaviour": {k: round(v, 3) for k, v in signals.items()},
        "model_score": round(signals["model"], 3) if "model" in signals else None,
        "query_features": dict(
            zip(QUERY_FEATURES, (round(v, 3) for v in s.query_means), strict=True)
        ),
        "first_seen": s.first,
        "last_seen": s.last,
        "sample_names": [truncate(n, cfg.output.max_name_chars) for n in s.samples],
    }


def _real_hosts(s: PairSummary, cfg: Config) -> str | None:
    """Why the names are real hosts, or None: their answers hold many different addresses, and
    either the names are re-queried (hosts are; a channel's chunks are not) or they are named
    after addresses (cloud hosts, wildcard DNS). A channel whose answers carry data in A records
    has one-off, non-address names and stays reported."""
    if s.real_address_share <= cfg.flows.max_address_share:
        return None
    answered = f"answers carry {s.distinct_addresses} different addresses ({s.address_share:.0%})"
    if s.unique_ratio < 0.5:
        return f"{answered} and names repeat (unique ratio {s.unique_ratio:.2f}): real hosts"
    if s.long_new and s.address_new / s.long_new >= 0.8:
        return f"{answered} and names are IP-named hosts: real hosts"
    return None


def judge(s: PairSummary, cfg: Config) -> Finding | None:
    """The most severe finding for one pair, or None."""
    signals = behaviour(s)
    ev = evidence(s, cfg, signals)
    found: list[Finding] = []
    hosts = _real_hosts(s, cfg)
    quiet_reason = hosts
    enc_frac = s.encoded_new / s.long_new if s.long_new else 0.0
    b = cfg.burst
    best_burst: Severity | None = None
    for distinct, base, seconds in (
        (s.short_new, b.short_min_distinct, cfg.windows.short),
        (s.long_new, b.long_min_distinct, cfg.windows.long),
    ):
        sev = _judge(distinct, enc_frac, min(1.0, s.unique_ratio), base, cfg)
        if sev and (best_burst is None or SEVERITY_RANK[sev] > SEVERITY_RANK[best_burst]):
            best_burst, label, count, threshold = sev, human_duration(seconds), distinct, base
    if best_burst is not None:
        sev = best_burst
        if sev != "info" and (
            hosts or (s.real_address_share > cfg.flows.max_address_share and enc_frac < 0.5)
        ):
            sev = "info"
            quiet_reason = hosts or (
                f"answers carry {s.distinct_addresses} different addresses: resolvable hosts"
            )
        found.append(
            Finding(
                kind="subdomain_burst",
                severity=sev,
                source=s.source,
                domain=s.domain,
                score=min(1.0, 0.5 * min(1.0, count / (2 * threshold)) + 0.5 * enc_frac),
                summary=(
                    f"{count} distinct names under {s.domain} in {label} from {s.workload} "
                    f"({enc_frac:.0%} encoded-looking, ~{int(s.est_bytes)} bytes)"
                ),
                evidence={**ev, "window": label, "threshold_distinct": threshold},
            )
        )
    n = cfg.names
    if s.encoded_new >= 1:
        k = s.encoded_new
        sev2: Severity = (
            "critical" if k >= n.critical_distinct else "warning" if k >= n.min_distinct else "info"
        )
        if sev2 != "info" and hosts:
            sev2 = "info"
        found.append(
            Finding(
                kind="suspicious_name",
                severity=sev2,
                source=s.source,
                domain=s.domain,
                score=min(1.0, s.score_mean * min(1.0, 0.5 + k / (2 * n.min_distinct)) + 0.2),
                summary=(
                    f"{k} encoded-looking name{'s' if k != 1 else ''} under {s.domain} from "
                    f"{s.workload} ({ev['alphabet']}, {s.long_requests} queries)"
                ),
                evidence=ev,
            )
        )
    f = cfg.flows
    score = sum(signals.values()) / len(signals)
    gates = {
        "distinct": s.long_new >= f.min_distinct,
        "unique": s.unique_ratio >= f.min_unique_ratio,
        "long_names": s.payload_mean >= f.min_payload_chars,
        "no_addresses": s.real_address_share <= f.max_address_share,
        "private": s.prevalence <= f.max_prevalence,
    }
    if s.long_new >= f.min_distinct:
        if all(gates.values()) and score >= f.behaviour_score:
            sev3: Severity = (
                "critical"
                if s.long_new >= f.critical_distinct or s.est_bytes >= 8192
                else "warning"
            )
        else:
            sev3 = "info"
            missed = [k for k, ok in gates.items() if not ok]
            if score < f.behaviour_score:
                missed.append(f"behaviour score {score:.2f} < {f.behaviour_score}")
            quiet_reason = quiet_reason or "not alerted: " + ", ".join(missed)
        found.append(
            Finding(
                kind="channel_behaviour",
                severity=sev3,
                source=s.source,
                domain=s.domain,
                score=score,
                summary=(
                    f"{s.long_new} one-off names under {s.domain} from {s.workload} "
                    f"({s.pods} pod{'s' if s.pods != 1 else ''}), "
                    f"{s.real_address_share:.0%} answered with real addresses, mean "
                    f"{s.payload_mean:.0f} chars, ~{int(s.est_bytes)} bytes"
                ),
                evidence={**ev, "behaviour_score": round(score, 3), "gates": gates},
            )
        )
    if not found:
        return None
    best = max(found, key=lambda x: (SEVERITY_RANK[x.severity], x.score))
    if best.severity == "info" and quiet_reason:
        best = Finding(
            best.kind,
            best.severity,
            best.source,
            best.domain,
            best.score,
            best.summary,
            {**best.evidence, "why_not_alerted": quiet_reason},
        )
    return best


def detect_flow_pairs(summaries: list[PairSummary], cfg: Config) -> list[Finding]:
    return [f for s in summaries if (f := judge(s, cfg)) is not None]
