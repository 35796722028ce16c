"""The shape of a query name: does the part left of the registered domain look like a payload?

Measures (all on the lower-cased subdomain part, as Hubble reports it):
- length and label count: payloads are long and use many labels;
- character bigram surprise against a model of real domain labels: words and brand names are
  predictable (about 4 bits per transition), encoded data is not (5.5+ bits);
- alphabet: hex, base32, base64 (with `+ / =`), non-ASCII (iodine's base128), digits, text;
- Shannon entropy and digit ratio, reported as evidence.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import pairwise

from watcher.domains import registered_domain, subdomain_part

_HOSTNAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = frozenset("0123456789abcdef")
_B32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_DIGITS = frozenset("0123456789")

# Bits of payload one character carries, by alphabet (before Hubble lower-cased it).
BITS_PER_CHAR = {
    "hex": 4.0,
    "base32": 5.0,
    "base64": 6.0,
    "base64url": 6.0,
    "base128": 7.0,
    "numeric": math.log2(10),
    "text": 4.0,  # not encoded-looking: a rough upper bound only
}


def _load_model() -> tuple[str, dict[str, float]]:
    raw = json.loads(resources.files("watcher.data").joinpath("bigrams.json").read_text())
    alphabet: str = raw["alphabet"]
    counts: dict[str, int] = raw["counts"]
    size = len(alphabet) + 1  # plus one bucket for any other character
    rows: Counter[str] = Counter()
    for pair, n in counts.items():
        rows[pair[0]] += n
    # Conditional log-probabilities with add-0.5 smoothing; unseen pairs fall back per row.
    logp = {
        pair: -math.log2((n + 0.5) / (rows[pair[0]] + 0.5 * size)) for pair, n in counts.items()
    }
    for first in [*alphabet, "?"]:
        logp[first + "*"] = -math.log2(0.5 / (rows.get(first, 0) + 0.5 * size))
    return alphabet, logp


_ALPHABET, _LOGP = _load_model()


def bigram_surprise(label: str) -> float:
    """Mean surprise (bits) per character transition of one label, start and end included."""
    s = "^" + "".join(c if c in _ALPHABET else "?" for c in label) + "$"
    total = 0.0
    for a, b in pairwise(s):
        total += _LOGP.get(a + b, _LOGP[a + "*"])
    return total / (len(s) - 1)


def shannon_entropy(text: str) -> float:
    """Bits per character of the string's own character distribution."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def alphabet_of(payload: str) -> str:
    chars = set(payload)
    if not chars:
        return "text"
    if any(ord(c) > 127 for c in chars):
        return "base128"
    if chars & set("+/="):
        return "base64"
    if chars <= _DIGITS:
        return "numeric"
    if chars <= _HEX and chars & _DIGITS:
        return "hex"
    if chars <= _B32 and chars & set("234567") and not chars & set("0189"):
        return "base32"
    if chars & _DIGITS or "_" in chars:
        return "base64url"
    return "text"


def _odd(label: str) -> bool:
    """Characters no hostname uses (underscore only counts past the first character)."""
    return any(c not in _HOSTNAME and not (c == "_" and i == 0) for i, c in enumerate(label))


@dataclass(frozen=True)
class NameShape:
    """Evidence about one name; `score` in [0, 1] says how payload-like it is."""

    domain: str
    payload_chars: int
    labels: int
    longest_label: int
    entropy: float
    surprise: float
    digit_ratio: float
    alphabet: str
    score: float

    @property
    def est_bytes(self) -> float:
        """Payload bytes this name could carry, if it is one."""
        return self.payload_chars * BITS_PER_CHAR[self.alphabet] / 8


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def shape_uncached(name: str, domain: str | None = None) -> NameShape:
    """Score a query name. Pure and total: any string, any bytes, never raises. `domain`: its
    registered domain when the caller knows it already (used for ASCII names)."""
    # NFC keeps composed non-ASCII stable; lower() mirrors what Hubble does.
    if domain is None or not name.isascii():
        name = unicodedata.normalize("NFC", name)
        domain = registered_domain(name)
    sub = subdomain_part(name, domain)
    labels = [label for label in sub.split(".") if label]
    # Punycode labels are internationalised words, not payload: score their ASCII skeleton as text.
    payload_labels = [label for label in labels if not label.startswith("xn--")]
    payload = "".join(payload_labels)
    n = len(payload)
    if n == 0:
        return NameShape(domain, 0, len(labels), 0, 0.0, 0.0, 0.0, "text", 0.0)
    surprise = sum(bigram_surprise(label) * len(label) for label in payload_labels) / n
    digits = sum(c in _DIGITS for c in payload) / n
    longest = max(len(label) for label in payload_labels)
    # Long payloads with unpredictable transitions; 6 chars carry nothing, 24+ is a full chunk.
    length_term = _clip((n - 6) / 18)
    random_term = _clip((surprise - 4.6) / 1.2)
    # `+ / =` and non-ASCII never occur in host names: strong evidence once there are a few.
    odd_term = 0.85 * _clip((n - 4) / 8) if any(_odd(label) for label in payload_labels) else 0.0
    score = max(length_term * random_term, odd_term)
    return NameShape(
        domain=domain,
        payload_chars=n,
        labels=len(labels),
        longest_label=longest,
        entropy=round(shannon_entropy(payload), 3),
        surprise=round(surprise, 3),
        digit_ratio=round(digits, 3),
        alphabet=alphabet_of(payload),
        score=round(score, 3),
    )


# Names repeat across windows and scans: cached. The flow window scores each name once per
# pair, when it is new there, and calls shape_uncached (a cache of every name ever seen would
# grow with the traffic).
shape = lru_cache(maxsize=262144)(shape_uncached)


def secret_bytes(name: str, min_score: float) -> float:
    """Payload bytes an encoded-looking name could carry as the asker's own data, or 0 (scored
    under min_score). A name with an underscored label (RFC 8552: a DKIM key
    `<selector>._domainkey`, an ACME challenge, an SRV service) is a protocol lookup whose
    selector the zone's owner published: a mail server checking a sender's DKIM key asks one
    such name per sender domain."""
    sh = shape(name)
    if sh.score < min_score or any(label.startswith("_") for label in name.split(".")):
        return 0.0
    return sh.est_bytes
