"""What the detectors read: per (source, name) activity in the short and long windows, plus each
source's query volume per step over the baseline period.

"Activity" follows one rule everywhere (PromQL and metrics files alike): a series that is new in a
span contributes its whole value (its first query is invisible to rate()/increase(), and a tunnel
queries each name once); an older series contributes its reset-aware increase. A series merely
present (persisting after its last query) contributes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from watcher.domains import normalize

NAME_COLUMNS = ["source", "name", "queries"]


def empty_names() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": pd.Series(dtype=str),
            "name": pd.Series(dtype=str),
            "queries": pd.Series(dtype=float),
        }
    )


@dataclass(frozen=True)
class Window:
    """Activity around the scan time `at` (Unix seconds)."""

    at: float
    short_seconds: float
    long_seconds: float
    step_seconds: float
    short: pd.DataFrame  # source, name, queries: names queried in the short window
    long: pd.DataFrame  # same for the long window
    shaped: pd.DataFrame  # long-window names passing the shape prefilter (see shape_prefilter)
    volume: pd.DataFrame  # index: bucket end (Unix s); columns: sources; values: queries per step
    complete: bool = True  # False: short/long hold only candidate (source, zone) pairs
    warnings: list[str] = field(default_factory=list)
    # The day window (windows.day): names of the pairs that could alert over it; empty when off.
    day_seconds: float = 0.0
    day: pd.DataFrame = field(default_factory=empty_names)
    # (source, name) -> bitmask of the long window's judge.repeat_step steps (bit k: the step
    # ending k steps before `at`) in which the name was asked again after its first ask.
    # Repetition says "hosts" only when spread over time; no entry: asked once, or in a burst.
    reasks: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # (source, name) -> the bit (as in reasks) of the step of the name's first ask, or the
    # long window's whole width when it was first asked before the window: a re-ask far from
    # the first ask is a host's; one right after it, a retry. Missing: not looked up.
    births: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # zone -> clients (workloads or nodes) resolving it in the long window, where the source
    # counted them in its own query language (Prometheus); files give complete tables instead.
    prevalence: Mapping[str, int] = field(default_factory=dict)
    # workload -> zones it resolves in the long window (Prometheus; files: complete tables).
    breadth: Mapping[str, int] = field(default_factory=dict)
    # (source, name) -> ANSWER_* bits of the answers `hubble_dns_responses_total` counted for it
    # (the client is the metric's `destination`); empty where that metric or label is missing.
    answers: Mapping[tuple[str, str], int] = field(default_factory=dict)


# Hubble's answers counter; its client is `destination` (response_labels).
RESPONSES = "hubble_dns_responses_total"

# What the resolver answered a name, from the responses metric's rcode and ips_returned labels.
ANSWER_ADDRESS = 1  # No Error with addresses
ANSWER_NXDOMAIN = 2
ANSWER_EMPTY = 4  # No Error without addresses: empty, or data (TXT, NULL, CNAME: not told apart)
ANSWER_OTHER = 8  # Server Failure, Refused, ...


def answer_bit(rcode: str, ips_returned: str) -> int:
    """The ANSWER_* bit of one responses series, from its label values."""
    if rcode in ("No Error", "NOERROR", "0", ""):
        return ANSWER_ADDRESS if ips_returned not in ("", "0") else ANSWER_EMPTY
    if rcode in ("Non-Existent Domain", "NXDOMAIN", "3"):
        return ANSWER_NXDOMAIN
    return ANSWER_OTHER


def answer_of(
    labels: Mapping[str, str], client_labels: Sequence[str], query_label: str
) -> tuple[tuple[str, str], int]:
    """((client, name), ANSWER_* bit) of one responses series, from its labels; the client
    labels are response_labels(...) of the configured source labels."""
    pair = (source_name(labels, client_labels), normalize(labels.get(query_label, "")))
    return pair, answer_bit(labels.get("rcode", ""), labels.get("ips_returned", ""))


def response_labels(source_labels: Sequence[str]) -> list[str]:
    """The client's labels on `hubble_dns_responses_total`: answers flow from the server to the
    client, so the client is the destination (`source` -> `destination`, `source_pod` ->
    `destination_pod`, ...)."""
    return [
        "destination" + label[len("source") :] if label.startswith("source") else label
        for label in source_labels
    ]


def step_of(at: float, t: float, step: float) -> int:
    """Steps back from `at` of time t (the reasks bit's index). A t a hair past `at` (a range
    query's end, `at` rounded to milliseconds) is the latest step, 0."""
    return max(0, int((at - t) // step))


def reask_bit(at: float, t: float, step: float) -> int:
    """The reasks bit of a re-ask at time t."""
    return 1 << step_of(at, t, step)


def spread_reask(mask: int, birth: int | None, steps: int) -> bool:
    """Whether a name's asks are spread over time, as a host's are (its cache expires, it is
    asked again): its first ask and re-asks fall in at least `steps` repeat steps, or span
    that many. A retry loop asks again at once, within a step or two. `mask`: the re-ask
    bits, `birth`: the first ask's bit (None: not known, the re-asks alone)."""
    if not mask:
        return False
    asks = mask | (1 << birth if birth is not None else 0)
    latest = (asks & -asks).bit_length() - 1
    return asks.bit_count() >= steps or asks.bit_length() - 1 - latest >= steps


def shape_prefilter(label_length: int, name_length: int) -> str:
    """Regex (RE2 and Python alike, matched in full) for names worth scoring by shape: a long
    label, a long name, or characters no host name has. Cheap enough for Prometheus to apply."""
    return (
        rf"(?s)(?:.*\.)?[^.]{{{label_length},}}(?:\..*)?"
        rf"|.{{{name_length},}}"
        r"|.*[^-a-z0-9._].*"
    )


def apply_prefilter(names: pd.DataFrame, label_length: int, name_length: int) -> pd.DataFrame:
    rx = re.compile(shape_prefilter(label_length, name_length))
    keep = names["name"].map(lambda n: rx.fullmatch(n) is not None)
    return names[keep.astype(bool)].reset_index(drop=True)


_POD_SUFFIX = re.compile(r"^(?P<base>.+?)(?:-[a-z0-9]{6,10})?-[a-z0-9]{5}$")


def workload_of(source: str) -> str:
    """`ns/app-7d9f8b7c6-x2x4q` -> `ns/app`: pods of one Deployment, DaemonSet or CronJob share a
    baseline, so a rolled-out pod is not 'new'. StatefulSet ordinals are kept as they are."""
    ns, _, pod = source.rpartition("/")
    m = _POD_SUFFIX.match(pod)
    base = m.group("base") if m else pod
    return f"{ns}/{base}" if ns else base


# Scrape labels naming where a client with no pod identity (a host-network pod, the node itself)
# runs: Hubble leaves its source labels empty, and counters are per node (one agent per node).
HOST_LABELS = ("node", "instance")
NODE_PREFIX = "node/"


def source_name(labels: Mapping[str, str], source_labels: Sequence[str]) -> str:
    """`ns/pod` from the source labels; for a client with none, `node/<node or instance>`, so
    the finding says where to look (an empty string tells the operator nothing)."""
    values = [labels.get(label, "") for label in source_labels]
    if not any(values):
        for host in HOST_LABELS:
            if labels.get(host):
                return NODE_PREFIX + labels[host]
    return "/".join(values)
