import re

import numpy as np
import pytest

from emoconf_tf import EmoconfError, rejection_threshold, rejection_thresholds
from emoconf_tf.thresholds import accept


def test_paper_example_t20_is_the_80th_of_100_sorted_scores():
    # scores 0.01 .. 1.00 shuffled; descending, the 80th is 0.21
    scores = np.random.default_rng(0).permutation(np.arange(1, 101) / 100)
    assert rejection_threshold(scores, 0.2) == pytest.approx(0.21)


def test_t0_is_zero_so_nothing_is_rejected():
    assert rejection_threshold([0.5, 0.6], 0.0) == 0.0
    assert accept(np.array([0.0, 0.3]), 0.0).all()


def test_threshold_position_rounds_up_for_non_integer_coverage():
    # 7 scores, r = 0.5: coverage 3.5 -> the 4th score in descending order
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    assert rejection_threshold(scores, 0.5) == 0.6
    # r = 0.1 on 10 scores: 9th; float 10 * 0.9 = 9.000000000000002 must not become 10
    assert rejection_threshold(np.arange(10, 0, -1) / 10, 0.1) == pytest.approx(0.2)


def test_thresholds_are_non_decreasing_in_the_rejection_rate():
    scores = np.random.default_rng(3).random(57)
    t = rejection_thresholds(scores, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert np.all(np.diff(t) >= 0)


def test_validation_coverage_is_at_least_one_minus_r():
    scores = np.random.default_rng(4).random(101)
    for r in (0.1, 0.2, 0.3, 0.4, 0.5):
        assert accept(scores, rejection_threshold(scores, r)).mean() >= 1 - r


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_rejection_outside_zero_one_is_refused(rate):
    with pytest.raises(EmoconfError, match="outside"):
        rejection_threshold([0.5], rate)


def test_empty_validation_is_refused():
    with pytest.raises(EmoconfError, match="validation set is empty"):
        rejection_threshold([], 0.2)


def test_per_class_thresholds_by_hand():
    from emoconf_tf.thresholds import class_thresholds

    # class 0: 0.9 0.8 0.3 -> r=1/3: ceil(3 * 2/3) = 2nd descending = 0.8
    # class 1: 0.7 0.6 0.5 0.4 0.2 0.1 -> ceil(6 * 2/3) = 4th = 0.4
    # class 2: never predicted -> the global threshold: 9 scores, ceil(9 * 2/3) = 6th of
    #          0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 0.1 = 0.4
    conf = np.array([0.9, 0.7, 0.8, 0.6, 0.5, 0.3, 0.4, 0.2, 0.1])
    pred = np.array([0, 1, 0, 1, 1, 0, 1, 1, 1])
    np.testing.assert_allclose(class_thresholds(conf, pred, 1 / 3, 3, "per_class"), [0.8, 0.4, 0.4])
    np.testing.assert_allclose(class_thresholds(conf, pred, 1 / 3, 3, "global"), [0.4, 0.4, 0.4])
    np.testing.assert_array_equal(class_thresholds(conf, pred, 0.0, 3, "per_class"), [0.0, 0.0, 0.0])


def test_per_class_accept_uses_the_threshold_of_the_predicted_class():
    # thresholds [0.8, 0.4]: (0.5, class 0) rejected, (0.5, class 1) kept
    kept = accept(np.array([0.5, 0.5, 0.9]), np.array([0.8, 0.4]), np.array([0, 1, 0]))
    np.testing.assert_array_equal(kept, [False, True, True])
    with pytest.raises(EmoconfError, match="predicted class"):
        accept(np.array([0.5]), np.array([0.8, 0.4]))


def test_per_class_rejects_about_r_of_each_predicted_class_on_validation():
    from emoconf_tf.thresholds import class_thresholds

    rng = np.random.default_rng(7)
    pred = rng.integers(0, 4, 400)
    conf = rng.random(400) - 0.3 * (pred == 3)  # class 3 much less confident
    for r in (0.1, 0.2, 0.5):
        kept = accept(conf, class_thresholds(conf, pred, r, 4, "per_class"), pred)
        for c in range(4):
            assert kept[pred == c].mean() >= 1 - r
            assert kept[pred == c].mean() <= 1 - r + 1.0 / (pred == c).sum() + 1e-9
        # the global threshold removes class 3 out of proportion
        glob = accept(conf, class_thresholds(conf, pred, r, 4, "global"), pred)
        assert glob[pred == 3].mean() < 1 - r


def test_unknown_rejection_mode_is_refused():
    from emoconf_tf.thresholds import class_thresholds

    with pytest.raises(EmoconfError, match=r"^mode 'per-class': choose global \(one threshold") as raised:
        class_thresholds([0.5], [0], 0.2, 2, "per-class")
    assert raised.value.argument == "mode"  # class_thresholds' argument


@pytest.mark.parametrize("mode", ["global", "per_class"])
def test_check_rejection_mode_returns_a_known_mode(mode):
    from emoconf_tf.thresholds import check_rejection_mode

    assert check_rejection_mode(mode) == mode


def test_check_rejection_mode_names_the_python_argument_by_default():
    from emoconf_tf.thresholds import check_rejection_mode

    with pytest.raises(EmoconfError, match=r"^rejection_mode 'perclass': choose global \(") as raised:
        check_rejection_mode("perclass")
    assert raised.value.argument == "rejection_mode"


@pytest.mark.parametrize("mode", ["per-class", "Global", "", None, 1])
def test_check_rejection_mode_names_the_field_and_the_allowed_modes(mode):
    from emoconf_tf.thresholds import check_rejection_mode

    # the message names where the value came from (`name`), the value, and both modes
    expected = (rf"^run/run.json: rejection_mode {re.escape(repr(mode))}: choose global \(one threshold from all .*\) "
                r"or per_class \(one threshold per ")
    with pytest.raises(EmoconfError, match=expected) as raised:
        check_rejection_mode(mode, "run/run.json: rejection_mode")
    assert raised.value.argument is None  # a field of a file, not an argument


@pytest.mark.parametrize("source", ["validation", "batch", "online"])
def test_check_threshold_source_returns_a_known_source(source):
    from emoconf_tf.thresholds import THRESHOLD_SOURCES, check_threshold_source

    assert check_threshold_source(source) == source and source in THRESHOLD_SOURCES


@pytest.mark.parametrize("source", ["test", "Batch", "", None, 1])
def test_check_threshold_source_names_the_field_and_the_allowed_sources(source):
    from emoconf_tf.thresholds import check_threshold_source

    with pytest.raises(EmoconfError, match=rf"^threshold_source {re.escape(repr(source))}: choose validation "
                                           r"\(.*\), batch \(.*\) or online \(") as raised:
        check_threshold_source(source)
    assert raised.value.argument == "threshold_source"


@pytest.mark.parametrize("sources, message", [
    (("batch",), "threshold_sources batch: must include validation"),
    ((), r"threshold_sources \(none\): must include validation"),
    (("validation", "batch", "validation"), "threshold_sources validation, batch, validation: a source is given twice"),
    (("validation", "daily"), "threshold_sources 'daily': choose validation"),
])
def test_check_threshold_sources_needs_validation_once_and_known_sources(sources, message):
    from emoconf_tf.thresholds import check_threshold_sources

    with pytest.raises(EmoconfError, match=f"^{message}") as raised:
        check_threshold_sources(sources)
    assert raised.value.argument == "threshold_sources"  # ProtocolConfig's field
    assert check_threshold_sources(["validation", "online"]) == ("validation", "online")


def test_batch_thresholds_by_hand_reject_r_of_the_batch_itself():
    from emoconf_tf.thresholds import class_thresholds

    # the "batch" source: the rule applied to the batch's own unlabelled scores and predicted classes
    batch = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    predicted = np.array([0, 1, 0, 1, 1])
    # global, r = 0.2: ceil(5 * 0.8) = 4th of 0.5 0.4 0.3 0.2 0.1 = 0.2 -> keeps 4 of 5
    np.testing.assert_allclose(class_thresholds(batch, predicted, 0.2, 2, "global"), [0.2, 0.2])
    # per class, r = 0.5: class 0 (0.5 0.3) ceil(1) = 1st = 0.5; class 1 (0.4 0.2 0.1) ceil(1.5) = 2nd = 0.2
    thresholds = class_thresholds(batch, predicted, 0.5, 2, "per_class")
    np.testing.assert_allclose(thresholds, [0.5, 0.2])
    np.testing.assert_array_equal(accept(batch, thresholds, predicted), [True, True, False, True, False])


def test_batch_thresholds_keep_one_minus_r_of_any_batch_however_shifted():
    from emoconf_tf.thresholds import class_thresholds

    rng = np.random.default_rng(8)
    for shift in (-0.3, 0.0, 0.4):  # validation thresholds would keep far more or far less than 1 - r
        batch, predicted = rng.random(300) + shift, rng.integers(0, 3, 300)
        for r in (0.1, 0.2, 0.5):
            kept = accept(batch, class_thresholds(batch, predicted, r, 3, "global"), predicted)
            assert 1 - r <= kept.mean() <= 1 - r + 1 / 300 + 1e-9


@pytest.mark.parametrize("mode", ["global", "per_class"])
def test_threshold_lookup_equals_class_thresholds_at_every_rate(mode):
    from emoconf_tf.thresholds import ThresholdLookup, class_thresholds

    rng = np.random.default_rng(9)
    conf, pred = rng.random(37), rng.integers(0, 3, 37)  # class 3 of 4 never predicted: the global threshold
    lookup = ThresholdLookup(conf, pred, 4, mode)
    for r in [0.0, 1e-9, 0.1, 0.2, 1 / 3, 0.5, 0.73, 0.999999]:
        np.testing.assert_array_equal(lookup.thresholds(r), class_thresholds(conf, pred, r, 4, mode))
    with pytest.raises(EmoconfError, match="validation set is empty"):
        ThresholdLookup([], [], 2)
