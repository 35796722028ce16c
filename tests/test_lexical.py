"""Name shape against real tunnel captures and benign domains (tests/fixtures/netrack)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from watcher.lexical import alphabet_of, bigram_surprise, shannon_entropy, shape

FIXTURES = Path(__file__).parent / "fixtures" / "netrack"


def names(tool: str) -> list[str]:
    with open(FIXTURES / f"{tool}.csv", newline="", encoding="utf-8") as fh:
        return [row["qname"].lower() for row in csv.DictReader(fh)]  # Hubble lower-cases


@pytest.mark.parametrize(("tool", "share"), [("iodine", 0.95), ("dnscapy", 0.9), ("dns2tcp", 0.55)])
def test_real_tunnel_names_score_as_payloads(tool: str, share: float) -> None:
    scores = [shape(n).score for n in names(tool)]
    hit = sum(s >= 0.7 for s in scores) / len(scores)
    assert hit >= share, f"{tool}: {hit:.2%} of names scored >= 0.7"


def test_benign_domains_do_not_score_as_payloads() -> None:
    # The benign set holds registered domains: score their first label as if it were a subdomain,
    # the harder case (nothing is cut away as the registered domain).
    labels = [n.rstrip(".").split(".")[0] for n in names("plain")]
    hits = [label for label in labels if shape(f"{label}.example.com.").score >= 0.7]
    assert len(hits) / len(labels) < 0.003, hits


@pytest.mark.parametrize(
    "name",
    [
        "www.google.com.",
        "api.github.com.",
        "login.microsoftonline.com.",
        "thisisaverylongsubdomainforthecompanyportal.example.com.",
        "d1a2b3c4d5e6f7.cloudfront.net.",  # the hash is part of the registered domain (PSL private)
        "a8f7e6d5c4b3a2918273645546372819-1234567890.us-west-2.elb.amazonaws.com.",
        "selector1._domainkey.example.com.",
        "_dmarc.example.com.",
        "ip-10-0-12-34.ec2.internal.",
        "www.xn--80ak6aa92e.com.",
        "mail-eu-west-1-prod-replica-07.db.example.com.",
    ],
)
def test_benign_lookalikes_score_low(name: str) -> None:
    assert shape(name).score < 0.7, shape(name)


def test_the_issue_example_scores_high() -> None:
    s = shape("vghpcybpcybzb21lihnlbnnpdgl2zsbkyxrhihroyxqgbmvlzhmgdg8gymugzxh.example.com.")
    assert s.score >= 0.9 and s.domain == "example.com" and s.longest_label == 63


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a",
        "\x00\xff",
        "é" * 300,
        "a..b..c.",
        "x" * 2000,
        'q"}{\\\n.example.com',
        "\ud800.example.com",
    ],
)
def test_any_string_is_scored_without_raising(name: str) -> None:
    s = shape(name)
    assert 0.0 <= s.score <= 1.0 and s.est_bytes >= 0


def test_alphabets() -> None:
    assert alphabet_of("deadbeef0123") == "hex"
    assert alphabet_of("mfrggzdfmztwq2lk") == "base32"
    assert alphabet_of("q+z8anwaba") == "base64"
    assert alphabet_of("μ2lmg") == "base128"
    assert alphabet_of("12345") == "numeric"
    assert alphabet_of("hello") == "text"


def test_measures() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert bigram_surprise("google") < 4.5 < 5.5 < bigram_surprise("q8x7z2k9w4")
