"""`dnswatch policy suggest`: a CiliumNetworkPolicy DNS allowlist for one workload.

Pure: the names the workload queried over the lookback (and the domains flagged in them) in,
YAML text out. The policy is a suggestion with its reasons as comments; dnswatch never applies it.

Cilium's `matchPattern` `*` matches within one label (`*.example.com` does not match
`a.b.example.com`), so a family of names becomes one pattern per depth; `matches` below is that
rule, used by the tests to prove every legitimate name is still allowed.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

from watcher.domains import registered_domain
from watcher.findings import rfc3339
from watcher.text import plain

VALID_NAME = re.compile(r"^[-a-z0-9_]+(\.[-a-z0-9_]+)*$")
ONE_OFF_RATIO = 0.8  # distinct names / queries above which a big family is tunnel-shaped


@dataclass(frozen=True)
class Rule:
    kind: str  # matchName | matchPattern
    value: str
    why: str


@dataclass
class Suggestion:
    namespace: str
    workload: str
    pods: list[str]
    selector: dict[str, str]
    selector_guessed: bool
    cluster_rules: list[Rule] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # flagged domain -> why
    review: list[Rule] = field(default_factory=list)  # tunnel-shaped families, left commented out
    unexpressible: list[str] = field(default_factory=list)


def matches(pattern: str, name: str) -> bool:
    """Cilium's matchPattern semantics: `*` is zero or more DNS characters within a label."""
    labels = [
        "[-a-z0-9_]*".join(re.escape(part) for part in label.split("*"))
        for label in pattern.lower().strip(".").split(".")
    ]
    return re.fullmatch(r"\.".join(labels), name.lower().strip(".")) is not None


def _family_rules(
    reg: str, names: dict[str, float], family_max: int, family_min: int
) -> tuple[list[Rule], list[Rule]]:
    """Names under one registered domain: each name, or `*.parent` for a family of siblings,
    or one pattern per depth when the domain has many names (CDN shards, per-tenant hosts).

    Returns (rules, rules to review). Many names under one domain each asked about once is how
    a tunnel looks even below the detectors' thresholds; such a family is not allowed but
    written out commented, for the operator to decide (a start-up scan of hosts looks alike).
    """
    queries = sum(names.values())
    if len(names) > family_max and queries and len(names) / queries > ONE_OFF_RATIO:
        why = f"REVIEW: {len(names)} names under {reg} asked {queries:.0f} times: tunnel-shaped"
        return [], [Rule("matchName", n, why) for n in sorted(names)[:3]] + _depth_rules(reg, names)
    if len(names) > family_max:
        return _depth_rules(reg, names), []
    by_parent: dict[str, list[str]] = defaultdict(list)
    for n in names:
        parent = n.split(".", 1)[1] if "." in n else ""
        by_parent[parent].append(n)
    out: list[Rule] = []
    for parent, members in sorted(by_parent.items()):
        # Only collapse below the registered domain: `*.com` would allow everything.
        if len(members) >= family_min and len(parent) >= len(reg):
            total = sum(names[m] for m in members)
            out.append(
                Rule("matchPattern", f"*.{parent}", f"{len(members)} names, {total:.0f} queries")
            )
        else:
            out += [Rule("matchName", m, f"{names[m]:.0f} queries") for m in sorted(members)]
    return out, []


def _depth_rules(reg: str, names: dict[str, float]) -> list[Rule]:
    depths: dict[int, int] = defaultdict(int)
    for n in names:
        depths[n.count(".") - reg.count(".")] += 1
    return [
        Rule(
            "matchName" if d == 0 else "matchPattern",
            reg if d == 0 else "*." * d + reg,
            f"{count} names {d} label(s) below {reg}",
        )
        for d, count in sorted(depths.items())
    ]


def build(
    namespace: str,
    workload: str,
    pods: list[str],
    names: dict[str, float],
    flagged: dict[str, str],
    cluster_domain: str,
    selector: dict[str, str] | None = None,
    family_max: int = 25,
    family_min: int = 3,
) -> Suggestion:
    """names: name -> queries over the lookback; flagged: registered domain -> reason."""
    s = Suggestion(
        namespace,
        workload,
        sorted(pods),
        selector or {"app": workload},
        selector is None,
        excluded=dict(sorted(flagged.items())),
    )
    cluster = cluster_domain.strip(".").lower()
    depths: dict[int, int] = defaultdict(int)
    by_reg: dict[str, dict[str, float]] = defaultdict(dict)
    for raw, queries in names.items():
        name = raw.lower().strip(".")
        if not name:
            continue
        in_cluster = name == cluster or name.endswith("." + cluster)
        outside = _search_path_origins(name, cluster) if in_cluster else [name]
        if any(registered_domain(o) in flagged for o in outside):
            continue  # also its search-path expansions: nothing of a flagged domain is listed
        if not VALID_NAME.match(name) or len(name) > 253:
            s.unexpressible.append(name)
            continue
        if in_cluster:
            depths[name.count(".") - cluster.count(".")] += 1
            continue
        reg = registered_domain(name)
        by_reg[reg][name] = by_reg[reg].get(name, 0.0) + queries
    s.cluster_rules = [
        Rule("matchPattern", "*." * d + cluster, f"in-cluster names {d} labels deep ({n} seen)")
        for d, n in sorted(depths.items())
        if d > 0
    ]
    for reg in sorted(by_reg):
        rules, review = _family_rules(reg, by_reg[reg], family_max, family_min)
        s.rules += rules
        s.review += review
    return s


def _search_path_origins(name: str, cluster: str) -> list[str]:
    """`x.example.com.ns.svc.cluster.local` -> the names it may have been expanded from, by the
    resolver's search path (`<ns>.svc.<cluster>`, `svc.<cluster>`, `<cluster>`)."""
    c = re.escape(cluster)
    out = []
    for pattern in (rf"\.[^.]+\.svc\.{c}$", rf"\.svc\.{c}$", rf"\.{c}$"):
        stripped = re.sub(pattern, "", name)
        if stripped != name and stripped:
            out.append(stripped)
    return out


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def _comment(text: str) -> str:
    return "# " + plain(text, 400).replace("\n", " ")


HEADER = """\
# REVIEW BEFORE APPLYING: dnswatch never applies it. Apply in audit mode first
# (policyAuditMode, or `cilium endpoint config <id> PolicyAuditMode=Enabled`) and watch
# `hubble observe --verdict AUDIT` before enforcing.
#
# What it does: it selects the workload's pods (endpointSelector). Selecting them
# puts them in default-deny for EGRESS: whatever the rules below do not allow is
# dropped. Ingress is not touched. The rules: (1) DNS to kube-dns only for the names
# below, so the DNS proxy refuses every other name, which closes the tunnel;
# (2) connections to the addresses those names resolve to; (3) all traffic to pods
# inside the cluster except kube-dns, as today. Not kept: raw-IP egress, other DNS
# servers, host-network and kube-apiserver destinations (add
# `toEntities: [kube-apiserver]` if the workload talks to the API)."""

DNS_RULE_HEAD = """\
  egress:
    # (1) DNS through kube-dns, only for the names this workload used.
    - toEndpoints:
        - matchLabels:
            "k8s:io.kubernetes.pod.namespace": "kube-system"
            "k8s:k8s-app": "kube-dns"
      toPorts:
        - ports:
            - port: "53"
              protocol: UDP
            - port: "53"
              protocol: TCP
          rules:
            dns:"""

CLUSTER_RULE = """\
    # (3) Pods inside the cluster, kube-dns excepted: a rule allowing kube-dns on every
    #     port would switch off the DNS rules of (1).
    - toEndpoints:
        - matchExpressions:
            - key: "k8s:io.kubernetes.pod.namespace"
              operator: Exists
            - key: "k8s:k8s-app"
              operator: NotIn
              values:
                - "kube-dns\""""


def render(s: Suggestion, source: str, at: float, lookback: str) -> str:
    """The policy as YAML with its reasons as comments."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"dnswatch-dns-allowlist-{s.workload}".lower())[:63]
    name = name.strip("-")
    description = f"DNS allowlist for {s.namespace}/{s.workload}, suggested by dnswatch"
    lines = [
        _comment(f"Suggested by `dnswatch policy suggest --source {source}` at {rfc3339(at)}"),
        _comment(
            f"from the DNS names {len(s.pods)} pod(s) of workload {s.namespace}/{s.workload} "
            f"queried over the last {lookback} (Hubble metrics in Prometheus)."
        ),
        HEADER,
    ]
    for pod in s.pods[:10]:
        lines.append(_comment(f"  pod seen: {s.namespace}/{pod}"))
    if len(s.pods) > 10:
        lines.append(_comment(f"  … and {len(s.pods) - 10} more pods"))
    for domain, why in s.excluded.items():
        lines.append(_comment(f"EXCLUDED (flagged by dnswatch): {domain}: {why}"))
    for n in s.unexpressible[:20]:
        lines.append(_comment(f"NOT ALLOWED (not expressible as a Cilium DNS name): {n}"))
    lines += [
        "apiVersion: cilium.io/v2",
        "kind: CiliumNetworkPolicy",
        "metadata:",
        f"  name: {_q(name)}",
        f"  namespace: {_q(s.namespace)}",
        "  labels:",
        '    app.kubernetes.io/created-by: "dnswatch"',
        "spec:",
        f"  description: {_q(description)}",
        "  endpointSelector:",
        "    matchLabels:",
    ]
    if s.selector_guessed:
        example = s.pods[0] if s.pods else s.workload
        lines.append("      # CHECK: Hubble metrics carry no pod labels; this selector is a guess")
        lines.append(
            f"      # from the pod name. Use the workload's own labels: "
            f"kubectl -n {s.namespace} get pod {example} --show-labels"
        )
    for k, v in s.selector.items():
        lines.append(f"      {_q(k)}: {_q(v)}")
    lines.append(DNS_RULE_HEAD)
    every = [*s.cluster_rules, *s.rules]
    if not every:
        lines.append("              # no names seen: every lookup is refused")
        lines.append('              - matchName: "none.invalid"')
    for r in every:
        lines.append(f"              - {r.kind}: {_q(r.value)}  {_comment(r.why)}")
    for r in s.review:
        lines.append(f"              # - {r.kind}: {_q(r.value)}  {_comment(r.why)}")
    lines.append("    # (2) Connections to what those names resolve to (outside the cluster).")
    if s.rules:
        lines.append("    - toFQDNs:")
        lines += [f"        - {r.kind}: {_q(r.value)}" for r in s.rules]
    else:
        lines.append("    #   none: no outside names were queried")
    lines.append(CLUSTER_RULE)
    return "\n".join(lines) + "\n"
