"""The shipped flow model: numpy inference equals scikit-learn's on the same inputs, the word
features behave, and the model is one signal in the evidence."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from watcher.flows.model import PAIR_FEATURES, FlowModel, query_features, shipped, words


def _sklearn_twin(raw: dict) -> tuple[StandardScaler, MLPClassifier]:  # type: ignore[type-arg]
    """An sklearn scaler and MLP carrying the shipped weights, fitted only to set their shapes."""
    n = len(raw["features"])
    sizes = [len(b) for b in raw["biases"][:-1]]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, n))
    y = np.array([0, 1] * 20)
    scaler = StandardScaler().fit(x)
    scaler.mean_ = np.asarray(raw["scaler"]["mean"])
    scaler.scale_ = np.asarray(raw["scaler"]["scale"])
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes), max_iter=1).fit(x, y)
    clf.coefs_ = [np.asarray(w) for w in raw["weights"]]
    clf.intercepts_ = [np.asarray(b) for b in raw["biases"]]
    return scaler, clf


# One epoch on purpose: any weights will do to compare the two inferences.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_numpy_inference_equals_scikit_learn_on_the_same_inputs() -> None:
    raw = json.loads(resources.files("watcher.data").joinpath("flow_model.json").read_text())
    model = FlowModel.load(raw)
    scaler, clf = _sklearn_twin(raw)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, len(PAIR_FEATURES))) * model.scale + model.mean
    ours = model.predict(x)
    theirs = clf.predict_proba(scaler.transform(x))[:, 1]
    assert np.allclose(ours, theirs, atol=1e-9)
    assert 0.01 < ours.mean() < 0.99  # the inputs reach both sides of the decision


def test_the_model_is_shipped_with_its_features_and_evaluation() -> None:
    model = shipped()
    assert model is not None
    ev = model.meta["evaluation"]
    assert ev["test_pairs"] > 1000 and 0.5 <= model.threshold < 1
    with pytest.raises(AssertionError):
        FlowModel.load(
            {
                **json.loads(
                    resources.files("watcher.data").joinpath("flow_model.json").read_text()
                ),
                "features": ["other"],
            }
        )


def test_word_features_see_words_that_encodings_lack() -> None:
    assert {"ecampus", "apple", "storage"} <= words()
    wordy = query_features("river-stone-apple.moon-cake")
    hexy = query_features("9f3a7c1e4b2d8f60a1c3e5b7d9f1a3c5")
    # length, labels, words, word_ratio, longest_word, entropy, digit_ratio
    assert wordy[2] >= 4 and wordy[3] > 0.7 and hexy[3] < 0.3
    assert hexy[6] > 0.4 and wordy[6] == 0
    assert query_features("") == (0.0,) * 7
    assert len(query_features("\x00\u202e%%.\U0001f600")) == 7  # odd bytes never raise
