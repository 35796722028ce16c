"""The drill: a harmless leak, sent on purpose, that proves every stage of a cluster's pipeline.

`dnswatch drill` renders a Job (or a weekly CronJob) whose pod sends `drill.names` queries for
new encoded-looking names under `drill.zone` through its own resolver, as a leak would:

    <base32 chunk>.dwdrill-<start, Unix seconds>.<zone>.

The marker label names the drill and when it began, so whoever sees the names (Cilium's DNS
proxy -> Hubble's metric or exporter -> Prometheus -> dnswatch -> Slack/Alertmanager) can tell
a drill from a leak and measure the delay. `recognise` turns the judge's finding for the drill
zone into a `drill` finding: its own incident family and routing, never a real incident.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from dataclasses import replace
from typing import Any

from watcher.config import Config, DrillConfig
from watcher.duration import human_duration
from watcher.findings import Finding, rfc3339

APP = "dnswatch-drill"
# The payload: harmless, recognisable words, a counter so that no two names are alike.
PAYLOAD = "dnswatch drill {i:03d}: a harmless test of the DNS exfiltration pipeline"
_MARKER = re.compile(r"(?:^|\.)dwdrill-(\d{9,11})\.")


def chunks(n: int) -> list[str]:
    """The drill's encoded labels: 32 base32 characters each (20 bytes, digests of the
    numbered payload: they read like a leak's chunks and carry nothing)."""
    return [
        base64.b32encode(hashlib.sha256(PAYLOAD.format(i=i).encode()).digest()[:20])
        .decode()
        .lower()
        for i in range(n)
    ]


def names(cfg: DrillConfig, started: int) -> list[str]:
    """The names a drill started at `started` asks (the pod computes the same in sh)."""
    zone = cfg.zone.strip(".").lower()
    return [f"{c}.dwdrill-{started}.{zone}." for c in chunks(cfg.names)]


def script(cfg: DrillConfig) -> str:
    """The pod's shell script (busybox sh): the start time is the marker."""
    zone = cfg.zone.strip(".").lower()
    return "\n".join(
        [
            "set -u",
            "t=$(date +%s)",
            "i=0",
            f"for c in {' '.join(chunks(cfg.names))}; do",
            "  i=$((i+1))",
            f'  nslookup -type=TXT "$c.dwdrill-$t.{zone}." >/dev/null 2>&1 || true',
            f"  sleep {cfg.interval:g}",
            "done",
            f'echo "dnswatch drill dwdrill-$t: sent $i queries under {zone}"',
            "",
        ]
    )


def _pod_spec(cfg: DrillConfig) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "drill",
                "image": cfg.image,
                "command": ["/bin/sh", "-c", script(cfg)],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "100m", "memory": "32Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def manifests(
    cfg: DrillConfig, namespace: str, schedule: str | None = None, policy: bool = True
) -> list[dict[str, Any]]:
    """The drill's Job (or CronJob with `schedule`) and, with `policy`, a CiliumNetworkPolicy
    sending its pod's DNS through Cilium's DNS proxy (what makes Hubble see it) and allowing
    nothing else."""
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "dnswatch"}
    deadline = int(cfg.names * (cfg.interval + 5) + 60)  # each lookup may time out (5 s)
    job_spec = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": deadline,
        "ttlSecondsAfterFinished": 86400,
        "template": {"metadata": {"labels": {**labels, "app": APP}}, "spec": _pod_spec(cfg)},
    }
    meta = {"name": APP, "namespace": namespace, "labels": labels}
    out: list[dict[str, Any]] = []
    if schedule:
        out.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": meta,
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
                },
            }
        )
    else:
        out.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec})
    if policy:
        out.append(
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": APP, "namespace": namespace, "labels": labels},
                "spec": {
                    "endpointSelector": {"matchLabels": {"app": APP}},
                    "egress": [
                        {
                            "toEndpoints": [
                                {
                                    "matchLabels": {
                                        "k8s:io.kubernetes.pod.namespace": "kube-system",
                                        "k8s:k8s-app": "kube-dns",
                                    }
                                }
                            ],
                            "toPorts": [
                                {
                                    "ports": [
                                        {"port": "53", "protocol": "UDP"},
                                        {"port": "53", "protocol": "TCP"},
                                    ],
                                    "rules": {"dns": [{"matchPattern": "*"}]},
                                }
                            ],
                        }
                    ],
                },
            }
        )
    return out


def marker_of(f: Finding, cfg: Config) -> int | None:
    """The start time in a finding's sample names when it is the drill's channel, else None."""
    zone = cfg.drill.zone.strip(".").lower()
    if not f.domain or not (zone == f.domain or zone.endswith("." + f.domain)):
        return None
    text = json.dumps(f.evidence.get("sample_names", []))
    for m in _MARKER.finditer(text):
        if text[m.end() :].startswith(zone):
            return int(m.group(1))
    return None


def recognise(findings: list[Finding], cfg: Config, at: float) -> list[Finding]:
    """Findings of the drill's channel become `drill` findings (severity `drill.severity` when
    the judge alerted, else info), with the marker and the delay since the drill began."""
    out = []
    for f in findings:
        started = marker_of(f, cfg)
        if started is None:
            out.append(f)
            continue
        delay = max(0.0, at - started)
        drill = {
            "marker": f"dwdrill-{started}",
            "started": rfc3339(started),
            "delay_seconds": round(delay, 1),
            "detected": f.is_alert,
            "detected_as": f.kind,
            "judged": f.severity,
        }
        seen = "alerted" if f.is_alert else f"judged quiet ({f.severity})"
        out.append(
            replace(
                f,
                kind="drill",
                severity=cfg.drill.severity if f.is_alert else "info",
                summary=(
                    f"DRILL dwdrill-{started}: {seen} {human_duration(delay)} after it began. "
                    f"{f.summary}"
                ),
                evidence={**f.evidence, "drill": drill},
            )
        )
    return out


def kubectl_hint(namespace: str) -> str:
    return f"kubectl -n {shlex.quote(namespace)} logs job/{APP}"
