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


def _promql_char(m: re.Match[str]) -> str:
    c = m.group()
    if c in '\\"':
        return "\\" + c
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x80 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


# Everything but printable ASCII is written as an escape: PromQL's lexer rejects a literal
# U+FFFD ("invalid UTF-8 rune", the character Prometheus shows for bytes that are not UTF-8),
# and control characters have no business in a query's text.
_PROMQL_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')
_RE2_META = re.compile(r"([\\.^$|?*+()\[\]{}])")
_RE2_UNSAFE = re.compile(r"[^\x20-\x7e]")


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal for any value, in printable ASCII."""
    return f'"{_PROMQL_UNSAFE.sub(_promql_char, value)}"'


def regex_escape(value: str) -> str:
    """Escape a literal for an RE2 pattern (PromQL =~), every metacharacter included; a
    character outside printable ASCII as RE2's `\\x{…}` (for PromQL only: Python's re
    has no such escape)."""
    out = _RE2_META.sub(r"\\\1", value)
    return _RE2_UNSAFE.sub(lambda m: f"\\x{{{ord(m.group()):x}}}", out)


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: no `<!channel>`, `<@U…>` or `<url|label>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(name: str, limit: int) -> str:
    """An attacker-controlled name as an inline code span nothing can break out of.

    Inside a code span Slack applies no `*_~` formatting and makes no links; a backtick would close
    the span, so it becomes U+02CB. Control, bidi and non-ASCII characters are shown as escapes, so
    a homoglyph cannot pass for the name it imitates.
    """
    ascii_only = terminal_safe(name).encode("ascii", "backslashreplace").decode("ascii")
    shown = truncate(ascii_only, limit).replace("`", "\u02cb")
    return f"`{slack_escape(shown)}`"


def plain(name: str, limit: int) -> str:
    """A name for plain-text media (Alertmanager annotations, logs): truncated, no control chars."""
    return terminal_safe(truncate(name, limit))
