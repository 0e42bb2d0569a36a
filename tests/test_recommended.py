import numpy as np
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.scores.functions import validation_quantile
from emoconf_tf.scores.recommended import (
    candidates, choose_recommended, criterion_value, crossfit_parts, default_choice, recommended_confidence,
    selective_curve_area,
)


def _noisy_predictions(n, seed, accuracy=0.6, k=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    correct = rng.random(n) < accuracy
    predicted = np.where(correct, labels, (labels + rng.integers(1, k, n)) % k)
    return rng, labels, predicted, predicted == labels


def test_validation_quantile_by_hand():
    # validation scores 0.1 0.2 0.3 0.4: 0.25 is above 2 of 4 -> 0.5; 0.4 -> 1.0; 0.0 -> 0.0
    np.testing.assert_allclose(validation_quantile([0.3, 0.1, 0.4, 0.2], [0.25, 0.4, 0.0]), [0.5, 1.0, 0.0])


def test_candidates_are_singles_then_blends():
    c = candidates(["emoconfidnet", "top2_margin", "entropy"])
    assert c[:3] == [(("emoconfidnet", 1.0),), (("top2_margin", 1.0),), (("entropy", 1.0),)]
    assert c[3:] == [(("emoconfidnet", w), ("top2_margin", 1 - w)) for w in (0.25, 0.5, 0.75)]


def test_curve_area_by_hand():
    # 4 predictions, classes 0/1; rows (label, predicted, confidence): (0,0,.9) (0,1,.1) (1,1,.8) (1,1,.7)
    # r=0: all kept. recall 0 = 1/2, recall 1 = 2/2 -> UAR .75; precision 0 = 1/1, 1 = 2/3 -> P = 5/6;
    #      F1 = 2 * 5/6 * 3/4 / (5/6 + 3/4) = 1.25 / 1.58333 = 0.789474
    # r=0.25: the 3rd of 4 descending (.7) is the threshold: drops the wrong .1 -> P = R = F1 = 1
    y, p, c = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([0.9, 0.1, 0.8, 0.7])
    f1, uar = selective_curve_area(y, p, c, num_classes=2, rejections=(0.0, 0.25))
    assert uar == pytest.approx((0.75 + 1.0) / 2)
    assert f1 == pytest.approx((1.25 / (5 / 6 + 0.75) + 1.0) / 2)


def test_curve_area_with_fit_rows_measures_on_the_others():
    # thresholds from rows 0-1 only (confidences .9 .1, r=.5 -> 1st of 2 = .9); measured on rows 2-3 (.8 .7):
    # both rejected -> nothing kept -> F1 = UAR = 0 at r=.5
    y, p, c = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([0.9, 0.1, 0.8, 0.7])
    fit = np.array([True, True, False, False])
    assert selective_curve_area(y, p, c, num_classes=2, rejections=(0.5,), fit=fit) == (0.0, 0.0)


def test_crossfit_parts_are_balanced_and_seeded():
    parts = crossfit_parts(11, 2, seed=3)
    assert sorted(np.bincount(parts)) == [5, 6]
    np.testing.assert_array_equal(parts, crossfit_parts(11, 2, seed=3))
    assert not np.array_equal(parts, crossfit_parts(11, 2, seed=4))


def test_per_class_mode_wins_when_one_class_is_always_less_confident():
    # class 2's predictions have low confidences (but are as often right as the others): a global threshold
    # removes class 2 first and its recall/precision collapse; per-class thresholds keep the class mix.
    rng, labels, predicted, correct = _noisy_predictions(900, 0)
    confidence = np.where(correct, 0.6, 0.4) + rng.normal(0, 0.2, 900) - 0.5 * (predicted == 2)
    choice = choose_recommended(labels, predicted, {"top2_margin": confidence}, num_classes=3)
    assert choice.rejection_mode == "per_class"
    assert choice.criterion == "f1_uar_area"


def test_choice_picks_the_informative_score():
    rng, labels, predicted, correct = _noisy_predictions(600, 1)
    good = correct + rng.normal(0, 0.3, 600)
    noise = rng.random(600)
    choice = choose_recommended(labels, predicted, {"emoconfidnet": noise, "top2_margin": good}, num_classes=3)
    assert dict(choice.components).get("top2_margin", 0) >= 0.75


def test_aurc_criterion_is_lower_is_better_and_mode_free():
    rng, labels, predicted, correct = _noisy_predictions(300, 2)
    good = correct + rng.normal(0, 0.3, 300)
    choice = choose_recommended(labels, predicted, {"emoconfidnet": rng.random(300), "top2_margin": good},
                                num_classes=3, criterion="aurc")
    assert choice.components == (("top2_margin", 1.0),)
    assert choice.rejection_mode == "global"  # ties between modes go to the first
    assert choice.validation_value == pytest.approx(criterion_value("aurc", labels, predicted, good,
                                                                    num_classes=3, mode="global"))


def test_the_choice_is_deterministic_and_sees_validation_only():
    rng, labels, predicted, _ = _noisy_predictions(80, 3)
    val = {"emoconfidnet": rng.random(80), "top2_margin": rng.random(80)}
    choice = choose_recommended(labels, predicted, val, num_classes=3, seed=5)
    test = {"emoconfidnet": rng.random(20), "top2_margin": rng.random(20)}
    assert recommended_confidence(choice.components, val, test).shape == (20,)
    assert choose_recommended(labels, predicted, val, num_classes=3, seed=5) == choice


def test_bad_choices_are_refused():
    with pytest.raises(EmoconfError, match="no confidence scores"):
        choose_recommended(np.zeros(3, int), np.zeros(3, int), {}, num_classes=2)
    with pytest.raises(EmoconfError, match="criterion"):
        choose_recommended(np.zeros(3, int), np.zeros(3, int), {"msp": np.ones(3)}, num_classes=2, criterion="x")
    with pytest.raises(EmoconfError, match="rejection modes"):
        choose_recommended(np.zeros(3, int), np.zeros(3, int), {"msp": np.ones(3)}, num_classes=2, modes=("x",))


def test_the_default_is_kept_when_validation_does_not_clearly_prefer_another():
    # two equally informative scores (independent noise): the best on validation beats the default in about
    # half of the bootstrap resamples, far from 0.9, so the default (macro_gain, per_class) stays
    rng, labels, predicted, correct = _noisy_predictions(600, 6)
    scores = {"macro_gain": correct + rng.normal(0, 0.8, 600), "top2_margin": correct + rng.normal(0, 0.8, 600)}
    choice = choose_recommended(labels, predicted, scores, num_classes=3, seed=1, modes=("per_class",))
    assert (choice.components, choice.rejection_mode) == ((("macro_gain", 1.0),), "per_class")
    if np.isfinite(choice.switch_rate):
        assert choice.switch_rate < 0.9


def test_the_default_gives_way_to_a_clearly_better_score():
    rng, labels, predicted, correct = _noisy_predictions(600, 7)
    scores = {"macro_gain": rng.random(600), "top2_margin": correct + rng.normal(0, 0.3, 600)}
    choice = choose_recommended(labels, predicted, scores, num_classes=3, seed=1)
    assert dict(choice.components).get("top2_margin", 0) >= 0.75
    assert choice.switch_rate >= 0.9
    # without a default the same best candidate is taken, and no switch rate is recorded
    plain = choose_recommended(labels, predicted, scores, num_classes=3, seed=1, default=None)
    assert plain.components == choice.components and np.isnan(plain.switch_rate)


def test_the_automatic_default_prefers_the_ensemble_then_the_classifiers_own_macro_gain():
    rng, labels, predicted, correct = _noisy_predictions(600, 6)
    noisy = {name: correct + rng.normal(0, 0.8, 600) for name in ("macro_gain", "macro_gain_ensemble", "top2_margin")}
    assert default_choice(noisy) == ("macro_gain_ensemble", "per_class")
    assert default_choice({"macro_gain": None, "msp": None}) == ("macro_gain", "per_class")
    assert default_choice({"msp": None}) is None
    # equally informative scores: validation keeps the first default computed
    choice = choose_recommended(labels, predicted, noisy, num_classes=3, seed=1, modes=("per_class",))
    assert (choice.components, choice.rejection_mode) == ((("macro_gain_ensemble", 1.0),), "per_class")
    with pytest.raises(EmoconfError, match="default 'macro_gain': give a"):
        choose_recommended(labels, predicted, noisy, num_classes=3, default="macro_gain")
