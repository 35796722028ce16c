"""One typed configuration: every threshold with its unit, default and reason.

Load order: defaults < YAML file (`--config`) < environment (`DNSWATCH_<SECTION>__<FIELD>`,
plus the documented shortcuts such as `DNSWATCH_PROMETHEUS_URL`). Secrets (bearer token, basic-auth
password) are read from the environment or mounted files only, never from the config file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from watcher.domains import PRIVATE_USE_TLDS, DomainRules
from watcher.duration import parse_duration
from watcher.errors import ConfigError

Seconds = Annotated[float, BeforeValidator(parse_duration)]


def _duration_or_off(value: str | int | float) -> float:
    return 0.0 if value in (0, "0", "off") else parse_duration(value)


SecondsOrOff = Annotated[float, BeforeValidator(_duration_or_off)]  # 0 or "off": turned off


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusConfig(_Section):
    url: str | None = Field(None, description="Prometheus base URL (also DNSWATCH_PROMETHEUS_URL).")
    timeout: Seconds = Field(30.0, description="Per-request timeout: a scan must fail, not hang.")
    retries: int = Field(
        2, ge=0, le=10, description="Retries on connection errors and 5xx answers."
    )
    parallel_queries: int = Field(
        2,
        ge=1,
        le=8,
        description="Queries in flight at once: a scan's four chains of queries (short names, "
        "long names, shaped names, volume) are independent, and Prometheus evaluates a query on "
        "one core. 1 asks one at a time (a small or shared server).",
    )
    verify_tls: bool = Field(True, description="Verify the server certificate (false: --insecure).")
    ca_file: str | None = Field(None, description="CA bundle for a private Prometheus CA.")
    bearer_token_file: str | None = Field(
        None,
        description="File holding a bearer token (a mounted secret); or DNSWATCH_PROMETHEUS_TOKEN.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers, e.g. X-Scope-OrgID for Mimir/Cortex/Thanos tenants.",
    )


# Hubble's two ways of naming the client: sourceContext=pod and labelsContext=…
SOURCE_CONTEXT = ["source"]
LABELS_CONTEXT = ["source_namespace", "source_pod"]


class LabelsConfig(_Section):
    metric: str = Field("hubble_dns_queries_total", description="The Hubble DNS request counter.")
    source: list[str] = Field(
        default_factory=lambda: list(SOURCE_CONTEXT),
        min_length=1,
        description=(
            "Labels naming the client, joined with '/'. ['source'] fits sourceContext=pod "
            "(source=\"ns/pod\"); ['source_namespace','source_pod'] fits labelsContext. With "
            "the default, a metric without `source` but with `source_pod` uses the latter."
        ),
    )
    query: str = Field("query", description="The label holding the DNS question name.")
    cluster_domain: str = Field(
        "cluster.local",
        description="Answered by the cluster's own DNS, never reaches an outside server: ignored.",
    )


class WindowsConfig(_Section):
    short: Seconds = Field(600, description="Short window for fast tunnels and floods (10 min).")
    long: Seconds = Field(21600, description="Long window for low-and-slow leaks (6 h).")
    day: SecondsOrOff = Field(
        86400,
        description="Day window for leaks slower than the long window can see (24 h): its "
        "bursts alert or say nothing (no info). 0 turns it off; a history shorter than it "
        "is read whole.",
    )
    baseline: Seconds = Field(
        86400, description="History a source's volume is compared with (24 h before the scan)."
    )
    step: Seconds = Field(300, description="Bucket width of the volume history (5 min).")


class BurstConfig(_Section):
    short_min_distinct: int = Field(
        40, ge=2, description="Distinct new names under one domain in the short window: a tunnel."
    )
    long_min_distinct: int = Field(
        150, ge=2, description="Distinct new names under one domain in the long window (slow leak)."
    )
    day_min_distinct: int = Field(
        300,
        ge=2,
        description=(
            "Distinct new names under one domain in the day window: a leak of 12.5 names/h, "
            "half the long window's rate (150 in 6 h); encoded-looking names need "
            "encoded_min_distinct scaled to the day (48), as suspicious_name already sees a few."
        ),
    )
    short_min_bytes: int = Field(
        1024,
        ge=0,
        description=(
            "Estimated payload bytes a short-window burst of plain one-off names must carry "
            "when the channel also has hosts: a fast tunnel beside its cover moves kilobytes "
            "in ten minutes; forty stale names beside a zone's real hosts (NXDOMAIN) carry a "
            "few hundred. Channels without hosts, encoded-looking bursts and the long and day "
            "windows need none."
        ),
    )
    encoded_min_distinct: int = Field(
        12,
        ge=2,
        description=(
            "Distinct names in the long window when most of them look encoded: a slow tunnel "
            "with payload-shaped names needs far fewer to be certain."
        ),
    )
    encoded_fraction: float = Field(
        0.5, gt=0, le=1, description="Share of names scoring as encoded for the lower threshold."
    )
    min_unique_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Distinct names / queries. Tunnels rarely repeat a name; services polling the same "
            "hosts repeat them, so a low ratio is not a tunnel."
        ),
    )
    info_min_distinct: int = Field(
        15, ge=1, description="Below the alert thresholds, report this many as info (not paged)."
    )
    critical_factor: float = Field(
        4.0, ge=1, description="Alert thresholds times this, with encoded names: critical."
    )


class VolumeConfig(_Section):
    recent: Seconds = Field(
        1800, description="Look this far back for the peak rate (a flood just ended still counts)."
    )
    smoothing: Seconds = Field(600, description="The peak is the highest mean over this span.")
    min_rate: float = Field(
        3.0, ge=0, description="q/s: below this nothing is 'high volume', whatever the baseline."
    )
    ratio: float = Field(6.0, ge=1, description="Peak must exceed baseline median times this.")
    robust_z: float = Field(
        10.0, ge=0, description="Peak must exceed median + z * 1.4826 * MAD of the baseline."
    )
    peak_factor: float = Field(
        2.0, ge=1, description="Peak must exceed the baseline's 99th percentile times this."
    )
    min_history: Seconds = Field(
        3600,
        description="Less baseline than this (new pod, new workload): judge by new_source_rate.",
    )
    new_source_rate: float = Field(
        30.0, ge=0, description="q/s a source with no usable history must exceed to alert."
    )
    young_change: float = Field(
        3.0,
        ge=1,
        description=(
            "A source with no usable history alerts only if its peak is this many times its "
            "own early rate: steady since it started is a busy new workload, not a flood."
        ),
    )
    critical_factor: float = Field(4.0, ge=1, description="Threshold times this: critical.")


class NamesConfig(_Section):
    min_score: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Lexical score above which a name looks like an encoded payload.",
    )
    min_distinct: int = Field(
        3, ge=1, description="Encoded-looking distinct names under one domain to alert (warning)."
    )
    critical_distinct: int = Field(
        20, ge=1, description="Encoded-looking distinct names under one domain for critical."
    )
    secret_min_bytes: float = Field(
        20,
        ge=1,
        description=(
            "Payload bytes of one encoded-looking one-off name from which fewer than "
            "min_distinct such names alert (warning) under a zone only their workload "
            "resolves: one name can carry a credential (an API key or secret key: 20-40 "
            "bytes), and the zone's server is the sender's own. Identifiers stay under it (a "
            "UUID or a 128-bit hash: 16 bytes). The base-rate principles (family, shared "
            "zone, busy client) still quiet them."
        ),
    )
    family_factor: float = Field(
        3.0,
        ge=1,
        description=(
            "Encoded-looking hosts of a channel (asked again, or by others) per one-off "
            "encoded-looking name from which a few such names (fewer than "
            "burst.encoded_min_distinct) are the family's newest, not yet asked again: info. "
            "A heartbeat of one name never hides the chunks beside it."
        ),
    )
    service_clients: int = Field(
        2,
        ge=2,
        description=(
            "Workloads asking encoded-looking names under one zone from which the names are "
            "the zone's own naming (a hash-lookup or network-measurement service), not one "
            "sender's payload: fewer than burst.encoded_min_distinct such names stay info. A "
            "burst still pages."
        ),
    )
    busy_client_domains: int = Field(
        500,
        ge=1,
        description=(
            "Domains a client resolves in the long window from which a few encoded-looking "
            "names under one of them (fewer than burst.encoded_min_distinct) are chance, as a "
            "crawler meets them: info. A burst, or a beacon, still pages."
        ),
    )
    prefilter_label_length: int = Field(
        20,
        ge=8,
        le=63,
        description=(
            "Only names with a label this long (or a name of prefilter_name_length) are fetched "
            "for shape scoring: keeps the query cheap on big clusters."
        ),
    )
    prefilter_name_length: int = Field(60, ge=16, le=253, description="See prefilter_label_length.")


class JudgeConfig(_Section):
    """The general principles that keep benign families quiet and make a private channel count
    (docs/detection.md): the same for every source."""

    repeat_step: Seconds = Field(
        120,
        description=(
            "Width of the steps in which re-asks are counted (2 min): a host is asked again "
            "after some time (a cache expiring); a retry loop asks again at once."
        ),
    )
    repeat_min_slots: int = Field(
        3,
        ge=2,
        description=(
            "A name is a host by repetition once its asks (the first and the re-asks) fall in "
            "at least this many repeat_step steps, or span that many: a cache expiring asks "
            "again minutes or hours later. A retry loop asking three names 43 times in two "
            "minutes touches two steps. Judged per name: a heartbeat's repeats never make the "
            "one-off chunks beside it hosts."
        ),
    )
    shared_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Share of a channel's names also asked by another client (another pod or workload) "
            "above which they are hosts: a payload is unique to its sender."
        ),
    )
    one_off_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        description=(
            "Distinct names / queries at or above this: each name asked once, as a leak's "
            "chunks are (for the private-channel rule below)."
        ),
    )
    private_factor: float = Field(
        0.4,
        gt=0,
        le=1,
        description=(
            "A private channel (a domain no other client resolves, one-off names, answers "
            "without real addresses where the source sees answers) alerts at the long and day "
            "thresholds times this (60 names in 6 h, 120 a day): a slow word-encoded leak of "
            "~20 names an hour pages within 3 h, while shared zones keep the full thresholds."
        ),
    )


class BeaconConfig(_Section):
    """A beacon: names under a domain no other workload resolves, asked again and again at a
    steady pace, never usefully answered (docs/detection.md). Its names are hosts by their
    repetition; what they say is that something keeps calling home."""

    min_seconds: Seconds = Field(
        1800,
        description=(
            "From the first re-ask to the last (30 min): a pod retrying at start-up, or a "
            "burst of retries, is not a beacon."
        ),
    )
    min_steps: int = Field(
        8, ge=2, description="judge.repeat_step steps with a re-ask in that span (16 min of 30)."
    )
    min_regularity: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "1 - (spread of the gaps between those steps / their mean): a timer calls home "
            "at a steady pace (jitter of a few steps included); people and batch jobs do not."
        ),
    )
    max_used_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "Share of the looked-up names answered with addresses or data above which the "
            "names are in use (a health check of a service that answers, ACME challenges "
            "polled for their TXT), not a beacon's: an idle C2's names fail or go unanswered."
        ),
    )
    min_names: int = Field(
        3,
        ge=1,
        description=(
            "Names asked again for a warning: a C2 rotates names; one name retried (a broken "
            "lookup) stays info. A workload beaconing to critical_domains rare domains at "
            "once is critical."
        ),
    )
    critical_domains: int = Field(
        2, ge=2, description="Rare domains one workload beacons to at once for critical."
    )


class SessionConfig(_Section):
    """A session rotated over several rare domains (docs/detection.md): one-off names of one
    workload under domains no other workload resolves, judged together at a private
    channel's thresholds, so spreading a session over domains does not lower its bar."""

    min_domains: int = Field(
        3, ge=2, description="Rare domains with one-off names before they are judged together."
    )
    min_names: int = Field(
        5,
        ge=2,
        description=(
            "One-off names a rare domain needs to join: a crawler, a link checker or a mail "
            "server checking senders asks one to three names of each domain it meets."
        ),
    )
    max_used_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "A domain whose looked-up names were answered with addresses or data above this "
            "share is in use (sites crawled, senders' records read), not part of a session: a "
            "C2's rotated names fail or go unanswered."
        ),
    )


class AllowlistConfig(_Section):
    use_defaults: bool = Field(
        True, description="Keep the shipped list of DNS-as-data services (see watcher/domains.py)."
    )
    suffixes: list[str] = Field(
        default_factory=list, description="More domain suffixes never reported (e.g. corp.example)."
    )
    address_lookups: bool = Field(
        True,
        description=(
            "Ignore names that start with a reversed IPv4 address or IPv6 nibbles in a zone that "
            "says it answers such lookups (reverse zones; labels like zen, bl, dnsbl, rbl, "
            "reputation): how DNSBLs ask, listed above or not. Under any other zone dotted "
            "octets are judged like every name (a payload can be written that way)."
        ),
    )
    sources: list[str] = Field(
        default_factory=list, description="Sources (glob, e.g. 'monitoring/*') never reported."
    )
    private_tlds: list[str] = Field(
        default_factory=lambda: list(PRIVATE_USE_TLDS),
        description=(
            "Private-use top-level domains: no public delegation, so a name under one never "
            "reaches an attacker's server (cloud host names, search-path expansions). [] to "
            "judge them like any other."
        ),
    )


class FlowsConfig(_Section):
    """Thresholds of the flow-log source (`dnswatch flows`): see docs/flow-logs.md."""

    export_min_distinct: int = Field(
        3,
        ge=1,
        description=(
            "A follower with --listen exports a channel's evidence for the cluster-wide rule "
            "(dnswatch_flow_channel_names) once its node saw this many new names of it that "
            "its judge does not call hosts: a leak spread over nodes, below every threshold on "
            "each, is summed where all nodes meet (docs/flow-logs.md)."
        ),
    )
    export_max_channels: int = Field(
        500,
        ge=1,
        description=(
            "Hard cap on exported channels per follower (most names first): at most 3 series "
            "each, so a flood of attacker domains cannot blow up Prometheus."
        ),
    )
    max_pairs: int = Field(
        200_000,
        ge=100,
        description=(
            "(workload, registered domain) pairs kept in memory; the least recently active is "
            "judged, then dropped. Memory is bounded by this, not by the log's size."
        ),
    )
    max_names_per_pair: int = Field(
        4096, ge=64, description="Names remembered per pair (the oldest is forgotten first)."
    )
    min_distinct: int = Field(
        30,
        ge=2,
        description=(
            "New names under one domain in the long window before its behaviour is judged: "
            "a leak of a few kilobytes needs dozens of queries; fewer is not a channel."
        ),
    )
    min_unique_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description="New names / requests: a channel sends each chunk once, hosts are re-queried.",
    )
    min_payload_chars: float = Field(
        14.0,
        ge=1,
        description="Mean characters left of the domain: host names are short, chunks are not.",
    )
    max_address_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "Answers carrying addresses above this share are real hosts (a wildcard or "
            "IP-named service), not a channel: tunnels get NXDOMAIN, empty or TXT/NULL data."
        ),
    )
    max_prevalence: int = Field(
        3,
        ge=1,
        description=(
            "A domain queried by more workloads than this is shared infrastructure, not one "
            "workload's private channel (channel_behaviour only)."
        ),
    )
    behaviour_score: float = Field(
        0.45,
        gt=0,
        le=1,
        description="channel_behaviour alerts (warning) at this behaviour score; see docs.",
    )
    critical_distinct: int = Field(
        120, ge=2, description="channel_behaviour with this many new names is critical."
    )
    report_interval: Seconds = Field(
        1.0, description="--follow: judge the active pairs this often (a finding within 5 s)."
    )
    notify_interval: Seconds = Field(
        30.0,
        description=(
            "--follow --notify: fold the current findings into incidents and deliver this often "
            "(dedupe, escalation and resolution as for `run`)."
        ),
    )
    checkpoint_interval: SecondsOrOff = Field(
        60.0,
        description=(
            "--follow: write the windows and the read position to the checkpoint file this "
            "often (and on SIGTERM), so a restarted follower goes on where it stopped; off "
            "writes none. A kill loses at most this much work, re-read from the file."
        ),
    )


class OutputConfig(_Section):
    sample_names: int = Field(5, ge=0, le=50, description="Sample names per finding.")
    export_channels: int = Field(
        50,
        ge=0,
        le=1000,
        description=(
            "Busiest channels per window whose distinct names the watcher exports "
            "(dnswatch_channel_names{workload,domain,window}) for the dashboard: bounded, so no "
            "rule has to count names over every Hubble series. 0 exports none."
        ),
    )
    max_name_chars: int = Field(120, ge=20, description="Names longer than this are truncated.")


class SlackConfig(_Section):
    webhook_url: SecretStr | None = Field(
        None,
        description=(
            "Incoming-webhook URL (DNSWATCH_SLACK_WEBHOOK_URL). A secret: prefer the env or "
            "webhook_url_file; it is never logged."
        ),
    )
    webhook_url_file: str | None = Field(
        None, description="File holding the webhook URL (a mounted Secret)."
    )
    token: SecretStr | None = Field(
        None, description="Bot token for chat.postMessage (DNSWATCH_SLACK_TOKEN); with channel."
    )
    token_file: str | None = Field(None, description="File holding the bot token.")
    channel: str | None = Field(
        None, description="Channel id or name for the bot token (DNSWATCH_SLACK_CHANNEL)."
    )
    base_url: str = Field(
        "https://slack.com/api/",
        description="Web API base URL (a proxy or a test server may stand in for Slack).",
    )
    timeout: Seconds = Field(10.0, description="Per-request timeout.")
    retries: int = Field(
        3, ge=0, le=10, description="Retries per message on 429 (after Retry-After) and 5xx."
    )
    give_up_after: Seconds = Field(
        60.0,
        description=(
            "Longest a run spends on one message (waits included); then the message stays "
            "pending for the next run instead of holding the Job."
        ),
    )


class AlertmanagerConfig(_Section):
    url: str | None = Field(
        None, description="Alertmanager base URL (DNSWATCH_ALERTMANAGER_URL); posts /api/v2/alerts."
    )
    timeout: Seconds = Field(10.0, description="Per-request timeout.")
    retries: int = Field(2, ge=0, le=10, description="Retries on connection errors and 5xx.")
    ends_after: Seconds = Field(
        3600,
        description=(
            "endsAt = now + this on every re-post. Longer than the run interval, so an active "
            "incident stays firing between runs, short enough that a dead watcher's alerts end."
        ),
    )
    extra_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every alert (e.g. cluster: prod)."
    )
    runbook_url: str | None = Field(
        None,
        description=(
            "runbook_url annotation of every alert (default: <links.docs_url>/runbooks/"
            "DNSExfiltrationSuspected.md)."
        ),
    )


class IncidentsConfig(_Section):
    renotify_interval: Seconds = Field(
        14400,
        description="An ongoing incident is re-sent to Slack this often (4 h), not every run.",
    )
    resolve_after: Seconds = Field(
        900,
        description=(
            "An incident absent from scans this long is resolved (a resolved message goes out). "
            "Rides out a finding that flickers around its threshold."
        ),
    )
    min_severity: str = Field(
        "warning", pattern="^(warning|critical)$", description="Lowest severity that is notified."
    )


class StateConfig(_Section):
    path: str = Field(
        "dnswatch-state.sqlite",
        description="SQLite file of incidents and deliveries (DNSWATCH_STATE_PATH); a PVC in k8s.",
    )
    lock_timeout: Seconds = Field(
        120, description="Wait this long for a concurrent run to finish before giving up."
    )


class GrafanaConfig(_Section):
    url: str | None = Field(
        None, description="Grafana base URL (DNSWATCH_GRAFANA_URL) for links in messages."
    )
    dashboard_uid: str = Field("hubble-dns-watcher", description="uid of the shipped dashboard.")


class LinksConfig(_Section):
    docs_url: str = Field(
        "docs",
        description=(
            "Base of the docs that alerts and messages link to (DNSWATCH_DOCS_URL), e.g. your "
            "mirror of this repository's docs/ folder. Default: `docs`, the folder shipped in the "
            "repository, shown as a path (not a link) until you set a URL."
        ),
    )

    def runbook(self, name: str) -> str:
        return f"{self.docs_url.rstrip('/')}/runbooks/{name}.md"

    @property
    def is_url(self) -> bool:
        return self.docs_url.startswith(("http://", "https://"))


class ServeConfig(_Section):
    interval: Seconds = Field(300, description="Run a cycle this often (5 min).")
    listen: str = Field(
        "0.0.0.0:9910", description="host:port for /metrics and /healthz in serve mode."
    )
    unhealthy_after: Seconds | None = Field(
        None,
        description=(
            "/healthz answers 503 when the last good cycle is older than this "
            "(default: three intervals plus a minute)."
        ),
    )
    pushgateway_url: str | None = Field(
        None, description="run mode: push self-metrics here (also --pushgateway-url)."
    )


class DrillConfig(_Section):
    zone: str = Field(
        "dnswatch-drill.invalid",
        description=(
            "Zone the drill's queries go to (`dnswatch drill`). The default is under `.invalid` "
            "(RFC 6761): no server anywhere answers for it, so a drill leaks nothing to anyone."
        ),
    )
    severity: Literal["info", "warning", "critical"] = Field(
        "warning",
        description=(
            "Severity of a drill the judge alerted on (one it judged quiet stays info). A drill "
            'is its own incident (kind `drill`, Alertmanager label drill="true"), never '
            "mixed with real ones."
        ),
    )
    names: int = Field(
        40,
        ge=12,
        le=500,
        description=(
            "Queries one drill sends, each a new encoded-looking name (a leak's shape): at "
            "least burst.encoded_min_distinct, so a working pipeline must alert on it."
        ),
    )
    interval: float = Field(
        3.0, gt=0, le=60, description="Seconds between the drill's queries (40 x 3 s: 2 min)."
    )
    image: str = Field(
        "busybox:1.36", description="Image of the drill's pod: it needs sh, date and nslookup."
    )
    max_delay: float = Field(
        1800.0,
        gt=0,
        description=(
            "`dnswatch drill --check`: a drill not seen this long after it started is missed."
        ),
    )


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prometheus: PrometheusConfig = PrometheusConfig()
    labels: LabelsConfig = LabelsConfig()
    windows: WindowsConfig = WindowsConfig()
    burst: BurstConfig = BurstConfig()
    volume: VolumeConfig = VolumeConfig()
    names: NamesConfig = NamesConfig()
    judge: JudgeConfig = JudgeConfig()
    beacon: BeaconConfig = BeaconConfig()
    session: SessionConfig = SessionConfig()
    allowlist: AllowlistConfig = AllowlistConfig()
    output: OutputConfig = OutputConfig()
    flows: FlowsConfig = FlowsConfig()
    slack: SlackConfig = SlackConfig()
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    state: StateConfig = StateConfig()
    grafana: GrafanaConfig = GrafanaConfig()
    links: LinksConfig = LinksConfig()
    serve: ServeConfig = ServeConfig()
    drill: DrillConfig = DrillConfig()

    @model_validator(mode="after")
    def _windows_fit(self) -> Config:
        w = self.windows
        if not w.step <= w.short <= w.long:
            raise ValueError("windows: need step <= short <= long")
        if w.day and w.day <= w.long:
            raise ValueError("windows: day must be longer than long (or 0: off)")
        if self.volume.smoothing > self.volume.recent:
            raise ValueError("volume: smoothing must not exceed recent")
        return self


def domain_rules(cfg: Config) -> DomainRules:
    """The allowlist, cluster domain and private TLDs every source and the judge apply."""
    a = cfg.allowlist
    return DomainRules.build(
        cfg.labels.cluster_domain,
        a.suffixes,
        a.use_defaults,
        a.sources,
        a.address_lookups,
        a.private_tlds,
    )


def day_encoded_min(cfg: Config, day_seconds: float) -> int:
    """Encoded-looking names needed over the day: the long window's minimum at the same rate."""
    w, b = cfg.windows, cfg.burst
    return max(b.encoded_min_distinct, round(b.encoded_min_distinct * day_seconds / w.long))


def day_history_needed(cfg: Config) -> float:
    """History the day window needs to see a leak the long window misses (12 h by default):
    over less, its threshold is the long window's rate or above, so it adds nothing. 0: off."""
    w, b = cfg.windows, cfg.burst
    if not w.day:
        return 0.0
    return max(w.long, w.day * b.long_min_distinct / b.day_min_distinct)


def day_candidate_min(cfg: Config, day_seconds: float) -> int:
    """The fewest distinct names a pair needs over the day to alert at all (a private channel
    needs private_factor times the day threshold)."""
    plain = math.ceil(cfg.burst.day_min_distinct * cfg.judge.private_factor)
    return min(plain, day_encoded_min(cfg, day_seconds))


# Shortcuts that docs and manifests rely on, mapped to config paths.
ENV_SHORTCUTS = {
    "DNSWATCH_PROMETHEUS_URL": ("prometheus", "url"),
    "DNSWATCH_CLUSTER_DOMAIN": ("labels", "cluster_domain"),
    "DNSWATCH_SLACK_WEBHOOK_URL": ("slack", "webhook_url"),
    "DNSWATCH_SLACK_TOKEN": ("slack", "token"),
    "DNSWATCH_SLACK_CHANNEL": ("slack", "channel"),
    "DNSWATCH_ALERTMANAGER_URL": ("alertmanager", "url"),
    "DNSWATCH_STATE_PATH": ("state", "path"),
    "DNSWATCH_GRAFANA_URL": ("grafana", "url"),
    "DNSWATCH_DOCS_URL": ("links", "docs_url"),
    "DNSWATCH_PUSHGATEWAY_URL": ("serve", "pushgateway_url"),
}


def _is_text_field(section: str, field: str) -> bool:
    """Text fields (URLs, tokens, channels such as '#sec') are taken as written, not as YAML."""
    model = Config.model_fields[section].annotation
    sub = getattr(model, "model_fields", {}).get(field)
    if sub is None:
        return False
    return sub.annotation in (str, str | None, SecretStr | None, SecretStr)


ENV_PREFIX = "DNSWATCH_"


def with_source_labels(cfg: Config, labels: list[str]) -> Config:
    return cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"source": labels})})


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in environ.items():
        if key in ENV_SHORTCUTS:
            section, field = ENV_SHORTCUTS[key]
        elif key.startswith(ENV_PREFIX) and "__" in key:
            section, _, field = key[len(ENV_PREFIX) :].lower().partition("__")
        else:
            continue
        if section not in Config.model_fields:
            continue  # other DNSWATCH_ variables (secrets, later features) are not config
        if _is_text_field(section, field):
            out.setdefault(section, {})[field] = value
            continue
        # YAML parsing gives numbers, booleans and lists from env strings.
        try:
            parsed = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            parsed = value
        out.setdefault(section, {})[field] = parsed
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Build the config; every problem becomes one ConfigError line."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {path} is not UTF-8 text") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config {path} is not valid YAML{where}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of sections")
        data = loaded
    env = dict(os.environ if environ is None else environ)
    data = _merge(data, _env_overrides(env))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"config error at {where}: {first['msg']}{more}") from None


def reference_markdown() -> str:
    """docs/configuration.md: every section and field with its default and reason, generated
    from the model (`make generate`; a test keeps it current)."""
    lines = [
        "# Configuration",
        "",
        "Generated from the configuration model (`watcher/config.py`) by `make generate`; do",
        "not edit by hand. One YAML file (`--config FILE`); any field can also be set from the",
        "environment as `DNSWATCH_<SECTION>__<FIELD>`",
        "(e.g. `DNSWATCH_BURST__SHORT_MIN_DISTINCT=60`). Durations take `90s`, `10m`, `6h`, `7d`",
        "or seconds. Secrets (Slack token and webhook, Prometheus credentials) come from the",
        "environment or mounted files, never from this file. `dnswatch config` prints the same",
        "defaults as YAML ([examples/config.yaml](../examples/config.yaml)).",
    ]
    defaults = Config().model_dump(mode="json")
    for section, field in Config.model_fields.items():
        model = field.annotation
        doc = " ".join((model.__doc__ or "").split()) if model is not None else ""
        lines += ["", f"## `{section}`", ""]
        if doc and not doc.startswith(model.__name__ if model is not None else "~"):
            lines += [doc, ""]
        lines += ["| field | default | what and why |", "| --- | --- | --- |"]
        for name, sub in model.model_fields.items():  # type: ignore[union-attr]
            value = json.dumps(defaults[section][name], ensure_ascii=True)
            text = (sub.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | `{value}` | {text} |")
    return "\n".join(lines) + "\n"


def defaults_yaml() -> str:
    """The default configuration as YAML, each field with its reason as a comment."""
    lines = [
        "# dnswatch configuration: every value below is the default.",
        "# Durations take 90s, 10m, 6h, 7d or seconds. Env: DNSWATCH_<SECTION>__<FIELD>.",
    ]
    defaults = Config().model_dump()
    for section, field in Config.model_fields.items():
        model = field.annotation
        lines.append("")
        lines.append(f"{section}:")
        for name, sub in model.model_fields.items():  # type: ignore[union-attr]
            value = defaults[section][name]
            lines.append(f"  # {sub.description}")
            dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()
            lines.append(f"  {dumped[1:-1]}")
    return "\n".join(lines) + "\n"


# Command-line flags that override the config (cli.py passes them by these names).
FLAG_NAMES = (
    "prometheus_url",
    "insecure",
    "ca_file",
    "bearer_token_file",
    "timeout",
    "header",
    "state",
    "pushgateway_url",
    "listen",
    "interval",
)


def with_flags(cfg: Config, flags: Mapping[str, Any]) -> Config:
    """`cfg` with command-line flags (FLAG_NAMES; None: not given) on top, validated again."""
    prom: dict[str, Any] = {}
    if flags.get("prometheus_url"):
        prom["url"] = flags["prometheus_url"]
    if flags.get("insecure"):
        prom["verify_tls"] = False
    if flags.get("ca_file"):
        prom["ca_file"] = flags["ca_file"]
    if flags.get("bearer_token_file"):
        prom["bearer_token_file"] = flags["bearer_token_file"]
    if flags.get("timeout"):
        prom["timeout"] = flags["timeout"]
    headers = dict(cfg.prometheus.headers)
    for h in flags.get("header") or []:
        name, sep, value = h.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--header takes NAME=VALUE, got {h!r}")
        headers[name.strip()] = value.strip()
    prom["headers"] = headers
    data = cfg.model_dump()
    data["prometheus"].update(prom)
    # SecretStr dumps as a mask: keep the real values.
    data["slack"]["webhook_url"] = cfg.slack.webhook_url
    data["slack"]["token"] = cfg.slack.token
    if flags.get("state"):
        data["state"]["path"] = flags["state"]
    if flags.get("pushgateway_url"):
        data["serve"]["pushgateway_url"] = flags["pushgateway_url"]
    if flags.get("listen"):
        data["serve"]["listen"] = flags["listen"]
    if flags.get("interval"):
        data["serve"]["interval"] = flags["interval"]
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "option"
        raise ConfigError(f"bad option {where}: {first['msg']}") from None
