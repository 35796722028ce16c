"""Findings for people (a table) and for programs (one JSON object)."""

from __future__ import annotations

import json

from watcher.findings import Finding, report, rfc3339, sort_findings
from watcher.text import terminal_safe, truncate


def as_json(at: float, findings: list[Finding], warnings: list[str]) -> str:
    # ensure_ascii: odd bytes in names travel as \\uXXXX escapes, never raw control characters.
    return json.dumps(report(at, findings, warnings), ensure_ascii=True, sort_keys=False)


def as_text(at: float, findings: list[Finding], warnings: list[str], width: int = 100) -> str:
    lines = [f"dnswatch scan at {rfc3339(at)}: {_count(findings)}"]
    for w in warnings:
        lines.append(f"warning: {terminal_safe(w)}")
    if findings:
        rows: list[tuple[str, ...]] = [("SEVERITY", "KIND", "SOURCE", "DOMAIN", "SCORE")]
        for f in sort_findings(findings):
            rows.append(
                (
                    f.severity.upper(),
                    f.kind,
                    terminal_safe(truncate(f.source, 60)),
                    terminal_safe(truncate(f.domain or "-", 50)),
                    f"{f.score:.2f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines.append("")
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(widths[j]) for j, c in enumerate(r)).rstrip())
            if i:
                f = sort_findings(findings)[i - 1]
                lines.append(f"    {terminal_safe(f.summary)}")
                for name in f.evidence.get("sample_names", [])[:3]:
                    lines.append(f"      e.g. {terminal_safe(truncate(name, width - 12))}")
    return "\n".join(lines)


def _count(findings: list[Finding]) -> str:
    alerts = sum(f.is_alert for f in findings)
    info = len(findings) - alerts
    if not findings:
        return "no findings"
    return f"{alerts} alert{'s' if alerts != 1 else ''}, {info} info"


def text_line(f: Finding) -> str:
    """One finding on one line (a --follow stream on a terminal)."""
    return terminal_safe(
        f"{f.severity.upper()} {f.kind} {truncate(f.source, 60)} "
        f"{truncate(f.domain or '-', 50)} {f.score:.2f}: {f.summary}"
    )
