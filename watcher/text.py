"""Attacker-controlled text (query names) made safe for each medium it reaches."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def truncate(name: str, limit: int) -> str:
    """Cut long names in the middle so both ends stay visible."""
    if len(name) <= limit:
        return name
    keep = max(1, (limit - 1) // 2)
    return f"{name[:keep]}…{name[-keep:]}"


def terminal_safe(text: str) -> str:
    """No escape sequences, control or bidi characters reach a terminal: shown as escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal for any value."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{out}"'


def regex_escape(value: str) -> str:
    """Escape a literal for an RE2 pattern (PromQL =~), every metacharacter included."""
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", value)
