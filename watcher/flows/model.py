"""The flow model: a small network over per-query and per-(workload, domain) features.

Per query (the project's origin work, on the payload left of the registered domain, lower-cased
as Hubble reports it): length, labels, English words, word ratio, longest word, entropy, digit
ratio. Their means over a pair's new names join what only a sequence shows (Žiža et al. 2023):
one-off names, answers, query types, timing, size spread, prevalence. Inference is numpy only;
the weights ship in `watcher/data/flow_model.json`, trained by `make train-flow-model`
(scripts/train_flow_model.py, scikit-learn) from data the project builds (watcher.flows.data).
Model card: docs/flow-model.md.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy.special import expit

from watcher.flows.summary import PairSummary

QUERY_FEATURES = (
    "length",
    "labels",
    "words",
    "word_ratio",
    "longest_word",
    "entropy",
    "digit_ratio",
)


@lru_cache(maxsize=1)
def words() -> frozenset[str]:
    raw = resources.files("watcher.data").joinpath("words.txt.gz").read_bytes()
    return frozenset(gzip.decompress(raw).decode().split())


@lru_cache(maxsize=4096)  # a name is new to a pair once: little to reuse, memory to save
def query_features(payload: str) -> tuple[float, ...]:
    """The origin work's single-request features of one payload (never raises)."""
    vocab = words()
    n = len(payload)
    if n == 0:
        return (0.0,) * len(QUERY_FEATURES)
    labels = [label for label in payload.split(".") if label]
    found = covered = longest = 0
    for label in labels:
        i, m = 0, len(label)
        while i < m:
            if not label[i].isalpha():
                i += 1
                continue
            best = 0
            for j in range(min(m, i + 12), i + 2, -1):  # longest dictionary word first
                if label[i:j] in vocab:
                    best = j - i
                    break
            if best:
                found += 1
                covered += best
                longest = max(longest, best)
                i += best
            else:
                i += 1
    counts = Counter(payload)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    digits = sum(ch.isdigit() for ch in payload)
    return (
        float(n),
        float(len(labels)),
        float(found),
        covered / n,
        float(longest),
        entropy,
        digits / n,
    )


PAIR_FEATURES = (
    "log_distinct",
    "unique_ratio",
    "real_address_share",
    "nxdomain_share",
    "empty_or_unanswered_share",
    "data_qtype_share",
    "data_answer_share",
    "interarrival_cv",
    "size_cv",
    "entropy_std",
    "log_prevalence",
    "shape_score_mean",
    "address_shaped_share",
    *(f"q_{f}" for f in QUERY_FEATURES),
)


def pair_vector(s: PairSummary) -> np.ndarray:
    """The model's input for one pair (order: PAIR_FEATURES)."""
    q = s.query_means
    return np.array(
        [
            math.log1p(s.long_new),
            min(1.0, s.unique_ratio),
            s.real_address_share,
            s.nxdomain_share,
            min(1.0, s.empty_share + s.unanswered_share),
            s.data_qtype_share,
            s.data_answer_share,
            min(s.gap_cv, 5.0),
            s.payload_std / max(s.payload_mean, 1.0),
            s.entropy_std,
            math.log1p(s.prevalence),
            s.score_mean,
            s.address_new / s.long_new if s.long_new else 0.0,
            math.log1p(q[0]),
            q[1],
            q[2],
            q[3],
            q[4],
            q[5],
            q[6],
        ],
        dtype=float,
    )


@dataclass(frozen=True)
class FlowModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def load(cls, raw: dict[str, Any] | None = None) -> FlowModel:
        if raw is None:
            text = resources.files("watcher.data").joinpath("flow_model.json").read_text()
            raw = json.loads(text)
        assert raw["features"] == list(PAIR_FEATURES), "model built for other features"
        return cls(
            mean=np.asarray(raw["scaler"]["mean"], dtype=float),
            scale=np.asarray(raw["scaler"]["scale"], dtype=float),
            weights=[np.asarray(w, dtype=float) for w in raw["weights"]],
            biases=[np.asarray(b, dtype=float) for b in raw["biases"]],
            threshold=float(raw["threshold"]),
            meta=raw.get("meta", {}),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(channel) for rows of pair vectors: scaler, ReLU layers, a logistic output."""
        h = (np.atleast_2d(x) - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        z = h @ self.weights[-1] + self.biases[-1]
        out: np.ndarray = expit(z).ravel()  # the logistic function, without overflow
        return out


@lru_cache(maxsize=1)
def shipped() -> FlowModel | None:
    try:
        return FlowModel.load()
    except (FileNotFoundError, KeyError, AssertionError, ValueError):
        return None
