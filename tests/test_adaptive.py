"""Adaptive rejection (adaptive conformal inference, Gibbs & Candès 2021): the update, its guarantee, its state."""

import json

import numpy as np
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.adaptive import MAX_REJECTION, AdaptiveRejection, online_accept
from emoconf_tf.thresholds import accept, class_thresholds, rejection_threshold


def _bound(target: float, step_size: float, updates: np.ndarray) -> np.ndarray:
    """Proposition 4.1's bound on |mean rejected - r| after T = 1, 2, ... updates, starting from r_1 = r."""
    return (max(target, 1 - target) + step_size) / (step_size * updates)


def test_update_sequence_by_hand():
    aci = AdaptiveRejection(0.2, step_size=0.1)
    assert aci.state == 0.2 and aci.rejection == 0.2
    assert aci.update(True) == pytest.approx(0.12)  # 0.2 + 0.1 * (0.2 - 1)
    assert aci.update(False) == pytest.approx(0.14)  # 0.12 + 0.1 * (0.2 - 0)
    assert aci.update(np.array([True, False, False, False])) == pytest.approx(0.135)  # 0.14 + 0.1 * (0.2 - 1/4)
    assert aci.update([0, 0]) == pytest.approx(0.155)  # 0.135 + 0.1 * (0.2 - 0)
    assert aci.rejection == pytest.approx(0.155)


def test_a_rate_below_zero_asks_for_rate_zero_and_one_above_one_rejects_all():
    low = AdaptiveRejection(0.2, state=-0.004)
    assert low.rejection == 0.0 and not low.rejects_all
    high = AdaptiveRejection(0.2, state=1.003)
    assert high.rejects_all and high.rejection == MAX_REJECTION < 1


def test_state_round_trips_as_a_plain_float():
    # a client keeps the state between requests (e.g. as JSON): two halves give what one stream gives
    rng = np.random.default_rng(0)
    batches = [rng.random(rng.integers(1, 9)) < 0.3 for _ in range(40)]
    whole = AdaptiveRejection(0.2, step_size=0.02)
    for batch in batches:
        whole.update(batch)
    first = AdaptiveRejection(0.2, step_size=0.02)
    for batch in batches[:17]:
        first.update(batch)
    kept = json.loads(json.dumps({"state": first.state}))["state"]
    second = AdaptiveRejection(0.2, step_size=0.02, state=kept)
    for batch in batches[17:]:
        second.update(batch)
    assert second.state == whole.state
    assert repr(second) == f"AdaptiveRejection(target_rate=0.2, step_size=0.02, state={whole.state!r})"


def test_online_reaches_the_target_rate_where_validation_thresholds_do_not():
    # validation confidences uniform on [0, 1]: t_0.2 is about 0.2. The stream is shifted down (uniform on [0, 0.5]),
    # so the validation threshold rejects about 0.2 / 0.5 = 40 % of it; ACI brings the stream back to 20 %.
    rng = np.random.default_rng(1)
    validation = rng.random(1000)
    stream = 0.5 * rng.random(5000)
    static = 1 - accept(stream, rejection_threshold(validation, 0.2)).mean()
    assert static == pytest.approx(0.4, abs=0.03)
    rejected = ~online_accept(stream, np.zeros(5000, int), validation, np.zeros(1000, int), 0.2, 1,
                              step_size=0.005)
    # bound after T = 5000: (0.8 + 0.005) / (0.005 * 5000) = 0.0322
    assert abs(rejected.mean() - 0.2) <= 0.0322
    assert rejected[2500:].mean() == pytest.approx(0.2, abs=0.03)  # and it stays there


@pytest.mark.parametrize("stream", ["below_validation", "above_validation", "shift_down_then_up", "per_class"])
def test_long_run_rejection_rate_is_within_the_bound_after_every_prediction(stream):
    rng = np.random.default_rng(2)
    validation, validation_predicted = rng.random(200), rng.integers(0, 3, 200)
    n, target, step = 600, 0.2, 0.05
    confidence = {
        # under the lowest validation score: every rate above 0 rejects, only rates <= 0 keep
        "below_validation": np.full(n, validation.min() / 2),
        # over the highest: every rate below 1 keeps, only `rejects_all` rejects
        "above_validation": 1.5 + rng.random(n),
        "shift_down_then_up": np.concatenate([0.3 * rng.random(n // 2), 0.7 + 0.3 * rng.random(n // 2)]),
        "per_class": rng.random(n) ** 3,
    }[stream]
    predicted = rng.integers(0, 3, n)
    mode = "per_class" if stream == "per_class" else "global"
    rejected = ~online_accept(confidence, predicted, validation, validation_predicted, target, 3, mode, step)
    updates = np.arange(1, n + 1)
    assert np.all(np.abs(np.cumsum(rejected) / updates - target) <= _bound(target, step, updates) + 1e-12)


@pytest.mark.parametrize("mode", ["global", "per_class"])
def test_each_row_is_thresholded_by_class_thresholds_at_the_current_rate(mode):
    # the reference: class_thresholds recomputed (sorted) for every row, then the update by hand
    rng = np.random.default_rng(3)
    validation = rng.random(50).astype(np.float32)
    validation_predicted = rng.integers(0, 3, 50)
    confidence = (0.8 * rng.random(300)).astype(np.float32)
    predicted = rng.integers(0, 3, 300)
    aci, expected = AdaptiveRejection(0.3, step_size=0.01), []
    for score, cls in zip(confidence, predicted):
        thresholds = class_thresholds(validation, validation_predicted, aci.rejection, 3, mode)
        keep = bool(accept(np.array([score]), thresholds, np.array([cls]))[0]) and not aci.rejects_all
        expected.append(keep)
        aci.update(not keep)
    got = online_accept(confidence, predicted, validation, validation_predicted, 0.3, 3, mode, 0.01)
    np.testing.assert_array_equal(got, expected)


def test_rate_zero_keeps_every_prediction():
    rng = np.random.default_rng(4)
    kept = online_accept(rng.random(100), rng.integers(0, 2, 100), rng.random(30), rng.integers(0, 2, 30), 0.0, 2)
    assert kept.all()


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.2", True, None])
def test_a_target_rate_outside_zero_one_is_refused_naming_the_field(rate):
    with pytest.raises(EmoconfError, match=r"^target_rate .*: expected a rejection rate, a fraction in \[0, 1\)"):
        AdaptiveRejection(rate)


@pytest.mark.parametrize("step", [0, 0.0, -0.01, float("nan"), float("inf")])
def test_a_step_size_that_is_not_positive_is_refused_naming_the_field(step):
    with pytest.raises(EmoconfError, match=r"^step_size .*: expected a positive number"):
        AdaptiveRejection(0.2, step)


def test_a_state_that_is_not_a_finite_number_is_refused():
    with pytest.raises(EmoconfError, match=r"^state nan: expected the finite rate r_t"):
        AdaptiveRejection(0.2, state=float("nan"))


@pytest.mark.parametrize("rejected", [[], [0.5], [2]])
def test_an_update_with_no_or_non_boolean_rejections_is_refused(rejected):
    with pytest.raises(EmoconfError, match=r"^rejected .*: expected a bool or a non-empty array of bools"):
        AdaptiveRejection(0.2).update(rejected)


def test_online_accept_refuses_confidences_and_classes_of_different_lengths():
    with pytest.raises(EmoconfError, match=r"confidences \(3,\) and predicted classes \(2,\) differ"):
        online_accept(np.zeros(3), np.zeros(2, int), np.ones(4), np.zeros(4, int), 0.2, 1)
