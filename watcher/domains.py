"""Registered domains, the cluster domain, and the default allowlist of DNS-as-data services.

A DNS tunnel needs an authoritative server the attacker runs, so the unit we group by is the
registered domain (public suffix + one label, from the Public Suffix List bundled with
`publicsuffixlist`, private section included: `d111.cloudfront.net` is its own registered domain,
operated by AWS, and a CDN hash in it is not a payload).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

_PSL = PublicSuffixList()

# Suffixes whose names carry data by design, or whose DNS is run by a provider no attacker can
# answer for. Each line says why; docs/detection.md lists them. allowlist.use_defaults turns
# them off.
DEFAULT_ALLOWLIST: dict[str, str] = {
    # Reverse lookups: one name per peer address, digits and hex by construction.
    "in-addr.arpa": "IPv4 reverse lookups",
    "ip6.arpa": "IPv6 reverse lookups (32 hex nibbles)",
    # DNS blocklists: the queried IP or domain is the payload, on purpose.
    "spamhaus.org": "Spamhaus DNSBL (zen, dbl, sbl, xbl)",
    "spamhaus.net": "Spamhaus Data Query Service",
    "spamcop.net": "SpamCop DNSBL",
    "sorbs.net": "SORBS DNSBL",
    "barracudacentral.org": "Barracuda reputation DNSBL",
    "surbl.org": "SURBL URI blocklist",
    "uribl.com": "URIBL URI blocklist",
    "dnswl.org": "DNSWL allowlist lookups",
    "mailspike.net": "Mailspike reputation",
    "abuseat.org": "CBL blocklist",
    "senderscore.com": "Validity SenderScore reputation",
    "surriel.com": "PSBL blocklist",
    "uceprotect.net": "UCEPROTECT blocklists",
    "dronebl.org": "DroneBL",
    "manitu.net": "NiX Spam blocklist",
    "gbudb.net": "GBUdb truncate",
    "blocklist.de": "blocklist.de",
    "junkemailfilter.com": "Hostkarma",
    "nordspam.com": "NordSpam",
    "interserver.net": "InterServer RBL",
    "0spam.org": "0spam",
    "spameatingmonkey.net": "Spam Eating Monkey",
    "invaluement.com": "Invaluement",
    "rbl.jp": "RBL.JP",
    # Antivirus and threat-intel reputation lookups: file hashes encoded in names.
    "mcafee.com": "McAfee GTI file reputation (avqs/avts.mcafee.com)",
    "trellix.com": "Trellix (McAfee) GTI",
    "e5.sk": "ESET LiveGrid reputation",
    "eset.com": "ESET services",
    "eset.net": "ESET services",
    "sophosxl.net": "Sophos Live Protection lookups",
    "sophosxl.com": "Sophos Live Protection lookups",
    "bitdefender.net": "Bitdefender cloud lookups",
    "webrootcloudav.com": "Webroot cloud lookups",
    "brightcloud.com": "Webroot BrightCloud",
    "cymru.com": "Team Cymru IP-to-ASN and malware hash registry",
    "trendmicro.com": "Trend Micro Smart Protection",
    "ksn.kaspersky-labs.com": "Kaspersky Security Network",
    # Provider-operated DNS (CDNs, clouds, push): hashes in names, no attacker-run server.
    "akamaiedge.net": "Akamai edge hosts (e12345.dscb.akamaiedge.net)",
    "akamai.net": "Akamai",
    "edgekey.net": "Akamai",
    "edgesuite.net": "Akamai",
    "akamaihd.net": "Akamai",
    "cloudfront.net": "Amazon CloudFront distributions",
    "amazonaws.com": "AWS endpoints, ELB and S3 names",
    "fastly.net": "Fastly",
    "azureedge.net": "Azure CDN",
    "trafficmanager.net": "Azure Traffic Manager",
    "googlevideo.com": "Google video edge caches",
    "1e100.net": "Google hosts",
    "push.apple.com": "Apple push notification service",
    "notify.windows.com": "Windows push notification service",
    "gvt1.com": "Google update and download caches",
}

# Top-level domains for private use: no public delegation exists, so a query under one never
# leaves the organisation's resolvers and cannot reach a server an attacker runs (ICANN reserved
# `.internal` for this in 2024; the others are the de-facto private ones). `.local` is not here:
# it is Kubernetes' cluster domain, handled (and configurable) as labels.cluster_domain.
# Cloud host names (`ip-10-0-0-1.ec2.internal`) and search-path expansions
# (`api.github.com.google.internal`) live here. allowlist.private_tlds changes the list.
PRIVATE_USE_TLDS = (
    "internal",
    "localdomain",
    "lan",
    "corp",
    "home",
    "intranet",
    "private",
)

_OCTET = re.compile(r"^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
_NIBBLE = re.compile(r"^[0-9a-f]$")


def _address_labels(labels: list[str]) -> int:
    """How many leading labels spell an address: 4 (IPv4 octets), 32 (IPv6 nibbles) or 0."""
    if len(labels) >= 6 and all(_OCTET.match(x) for x in labels[:4]):
        return 4
    if len(labels) >= 34 and all(_NIBBLE.match(x) for x in labels[:32]):
        return 32
    return 0


def is_address_lookup(name: str) -> bool:
    """A reversed IPv4 address (`4.3.2.1.zen.example.`) or 32 IPv6 nibbles before the zone: the
    shape of every DNSBL and reputation query, and of a payload written as dotted octets."""
    return _address_labels(normalize(name).split(".")) > 0


# Labels by which a zone says it answers address lookups: reverse zones and the words DNSBL and
# reputation services name their zones with (`zen`, `bl`, `dnsbl`, `rbl`, ...).
REPUTATION_LABELS = frozenset(
    [
        "in-addr",
        "ip6",
        "bl",
        "dnsbl",
        "rbl",
        "rhsbl",
        "uribl",
        "surbl",
        "zen",
        "sbl",
        "xbl",
        "pbl",
        "dbl",
        "cbl",
        "psbl",
        "ubl",
        "wl",
        "dnswl",
        "bls",
        "blacklist",
        "blocklist",
        "denylist",
        "whitelist",
        "allowlist",
        "reputation",
        "rep",
        "score",
    ]
)
_REPUTATION_PARTS = ("dnsbl", "rbl", "blacklist", "blocklist", "reputation")


def is_reputation_lookup(name: str) -> bool:
    """An address lookup in a zone that says it answers them (a reverse zone, or one whose labels
    name a blocklist or reputation service). The same address shape under any other zone is
    judged like every name: dotted octets are a payload encoding too."""
    labels = normalize(name).split(".")
    n = _address_labels(labels)
    if not n:
        return False
    zone = labels[n:]
    return any(
        label in REPUTATION_LABELS or any(part in label for part in _REPUTATION_PARTS)
        for label in zone
    )


@dataclass(frozen=True)
class DomainRules:
    """What the detectors must not report: the cluster domain and allowlisted suffixes/sources."""

    cluster_domain: str
    suffixes: tuple[str, ...]
    source_globs: tuple[str, ...] = ()
    address_lookups: bool = True
    private_tlds: frozenset[str] = frozenset(PRIVATE_USE_TLDS)

    def __post_init__(self) -> None:
        # Looked up per flow line: a set of suffixes, probed with each of the name's own label
        # suffixes, instead of an endswith() per allowlisted suffix.
        object.__setattr__(self, "_suffix_set", frozenset(s for s in self.suffixes if s))

    @classmethod
    def build(
        cls,
        cluster_domain: str,
        extra_suffixes: Iterable[str] = (),
        use_defaults: bool = True,
        source_globs: Iterable[str] = (),
        address_lookups: bool = True,
        private_tlds: Iterable[str] = PRIVATE_USE_TLDS,
    ) -> DomainRules:
        suffixes = [*(DEFAULT_ALLOWLIST if use_defaults else ()), *extra_suffixes]
        return cls(
            cluster_domain=normalize(cluster_domain),
            suffixes=tuple(sorted({normalize(s) for s in suffixes if normalize(s)})),
            source_globs=tuple(source_globs),
            address_lookups=address_lookups,
            private_tlds=frozenset(normalize(t) for t in private_tlds if normalize(t)),
        )

    def is_cluster(self, name: str) -> bool:
        return _under(normalize(name), self.cluster_domain)

    def is_allowlisted(self, name: str) -> bool:
        """The name is an allowlisted suffix or under one."""
        n = normalize(name)
        found: frozenset[str] = self._suffix_set  # type: ignore[attr-defined]
        if n in found:
            return True
        i = n.find(".")
        while i != -1:
            if n[i + 1 :] in found:
                return True
            i = n.find(".", i + 1)
        return False

    def is_private_use(self, name: str) -> bool:
        """Under a private-use TLD: never reaches a public authoritative server."""
        return normalize(name).rpartition(".")[2] in self.private_tlds

    def ignores(self, name: str) -> bool:
        return (
            self.is_cluster(name)
            or self.is_private_use(name)
            or self.is_allowlisted(name)
            or (self.address_lookups and is_reputation_lookup(name))
        )

    def ignores_source(self, source: str) -> bool:
        return any(fnmatch.fnmatchcase(source, g) for g in self.source_globs)


def normalize(name: str) -> str:
    """Lower-case, no trailing dot: the form Hubble uses minus the root dot."""
    return name.strip().lower().rstrip(".")


def _under(name: str, suffix: str) -> bool:
    return bool(suffix) and (name == suffix or name.endswith("." + suffix))


def registered_domain_uncached(name: str) -> str:
    """Registered domain of a query name (lower-case, no trailing dot).

    Names that are themselves a public suffix or a single label map to themselves; odd bytes
    never raise (the name is attacker-controlled).
    """
    n = normalize(name)
    if not n:
        return ""
    labels = [label for label in n.split(".") if label]
    if len(labels) <= 1:
        return labels[0] if labels else ""
    clean = ".".join(labels)
    try:
        found = _PSL.privatesuffix(clean)
    except Exception:  # noqa: BLE001 - hostile bytes must not crash a scan
        found = None
    return found or ".".join(labels[-2:])


# Scans look the same names up in several windows: a big cache. The flow follower keeps its own,
# smaller one (watcher/flows/window.py): its memory is what a DaemonSet is sized by.
registered_domain = lru_cache(maxsize=262144)(registered_domain_uncached)


def subdomain_part(name: str, domain: str) -> str:
    """The labels left of the registered domain: where a tunnel puts its payload."""
    n = normalize(name)
    if domain and n.endswith("." + domain):
        return n[: -len(domain) - 1]
    return ""
