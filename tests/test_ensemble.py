"""Deep-ensemble probabilities: the classifier's softmax averaged with members trained from other seeds."""

import numpy as np
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.evaluation.protocol import ProtocolConfig
from emoconf_tf.scores.ensemble import ensemble_probabilities, member_seeds
from emoconf_tf.training import TrainingConfig, embed, fit_classifier

FAST = TrainingConfig(max_epochs=2, patience=1)


def _data(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    features = (rng.normal(size=(n, d)) + labels[:, None]).astype(np.float32)
    rows = {"train": np.arange(0, 80), "validation": np.arange(80, 100), "test": np.arange(100, 120)}
    return features, {part: labels[r] for part, r in rows.items()}, rows


def test_member_seeds_differ_from_the_protocols_seeds_and_each_other():
    assert member_seeds(0, 1) == ()
    assert member_seeds(0, 3) == (1000, 2000)
    assert member_seeds(2, 4) == (1002, 2002, 3002)
    with pytest.raises(ValueError, match="at least 1 member"):
        member_seeds(0, 0)


def test_one_member_returns_the_classifier_probabilities():
    features, labels, rows = _data()
    probabilities = {"validation": np.full((20, 3), 1 / 3), "test": np.eye(3)[np.arange(20) % 3]}
    out = ensemble_probabilities(probabilities, features, labels, rows, 3, FAST, seed=0, members=1)
    for part in ("validation", "test"):
        np.testing.assert_allclose(out[part], probabilities[part], atol=1e-7)
        assert out[part].dtype == np.float32


def test_three_members_average_the_classifier_and_two_seeded_trainings():
    features, labels, rows = _data()
    probabilities = {"validation": np.full((20, 3), 1 / 3, np.float32), "test": np.full((20, 3), 1 / 3, np.float32)}
    out = ensemble_probabilities(probabilities, features, labels, rows, 3, FAST, seed=5, members=3)
    # the same members trained by hand: seeds 1005 and 2005 on the same rows
    expected = {part: np.asarray(probabilities[part], np.float64) for part in ("validation", "test")}
    for seed in (1005, 2005):
        member, _ = fit_classifier(features, labels["train"], features, labels["validation"], 3, FAST, seed=seed,
                                   train_rows=rows["train"], validation_rows=rows["validation"])
        for part in expected:
            expected[part] = expected[part] + embed(member, features, rows=rows[part])
    for part in expected:
        np.testing.assert_allclose(out[part], expected[part] / 3, atol=1e-6)
        np.testing.assert_allclose(out[part].sum(axis=1), 1.0, atol=1e-5)  # still distributions
    again = ensemble_probabilities(probabilities, features, labels, rows, 3, FAST, seed=5, members=3)
    np.testing.assert_array_equal(again["test"], out["test"])  # deterministic


def test_protocol_refuses_an_empty_ensemble_and_lists_its_size_only_when_it_trains_one():
    with pytest.raises(EmoconfError, match="ensemble_members 0: an ensemble needs at least 1 classifier"):
        ProtocolConfig(ensemble_members=0)
    assert "ensemble_members" not in ProtocolConfig(methods=("emoconfidnet", "top2_margin")).fingerprint()
    assert ProtocolConfig(methods=("macro_gain_ensemble",), ensemble_members=5).fingerprint()["ensemble_members"] == 5
