import numpy as np
import pytest

from emoconf_tf import EmoconfError, conflict_mask
from emoconf_tf.filtering import ConflictRule, default_training, filter_counts, parse_rules, rule_masks


def test_filter_drops_happy_with_low_arousal_or_low_valence():
    # scale 1-7 -> midpoint 4; happy conflicts when arousal < 4 or valence < 4
    mask = conflict_mask(["happy"] * 4, [3.9, 5.0, 4.0, 5.0], [5.0, 3.5, 4.0, 5.0], scale=(1, 7))
    np.testing.assert_array_equal(mask, [True, True, False, False])  # exactly 4 is not "below"


def test_filter_drops_sad_disgusted_frustrated_with_high_valence():
    labels = ["sad", "disgusted", "frustrated", "sad"]
    mask = conflict_mask(labels, [1.0, 7.0, 1.0, 7.0], [4.1, 6.0, 5.0, 3.9], scale=(1, 7))
    np.testing.assert_array_equal(mask, [True, True, True, False])


def test_filter_drops_angry_with_low_arousal_or_high_valence():
    mask = conflict_mask(["angry"] * 3, [3.0, 6.0, 6.0], [2.0, 4.5, 2.0], scale=(1, 7))
    np.testing.assert_array_equal(mask, [True, True, False])


def test_filter_keeps_classes_without_a_rule():
    mask = conflict_mask(["neutral", "surprised"], [1.0, 7.0], [7.0, 1.0], scale=(1, 7))
    np.testing.assert_array_equal(mask, [False, False])


def test_midpoint_follows_the_scale():
    # IEMOCAP scale 1-5 -> midpoint 3: happy with valence 3.5 is fine there, a conflict on 1-7 (midpoint 4)
    assert not conflict_mask(["happy"], [4.0], [3.5], scale=(1, 5))[0]
    assert conflict_mask(["happy"], [4.0], [3.5], scale=(1, 7))[0]


def test_midpoint_can_be_given():
    assert conflict_mask(["happy"], [4.0], [3.5], scale=(1, 7), midpoint=3.0)[0] == False  # noqa: E712


def test_inclusive_midpoint_counts_a_value_at_the_midpoint_as_low_and_high():
    # scale 1-7 -> midpoint 4. Rows: happy at arousal 4 (valence 5), sad at valence 4, angry at arousal 4 and
    # valence 4, happy at 3.9 / 5 (below either way), happy at 4.1 / 4.1 (above either way), neutral at 4 / 4.
    labels = ["happy", "sad", "angry", "happy", "happy", "neutral"]
    arousal = [4.0, 2.0, 4.0, 3.9, 4.1, 4.0]
    valence = [5.0, 4.0, 4.0, 5.0, 4.1, 4.0]
    strict = conflict_mask(labels, arousal, valence, scale=(1, 7))
    inclusive = conflict_mask(labels, arousal, valence, scale=(1, 7), inclusive=True)
    np.testing.assert_array_equal(strict, [False, False, False, True, False, False])  # 4 is neither (default)
    np.testing.assert_array_equal(inclusive, [True, True, True, True, False, False])  # 4 <= 4 and 4 >= 4


def test_inclusive_comparison_uses_a_given_midpoint():
    # IEMOCAP 1-5 with its midpoint 3: a sad row at valence 3 is "high valence" only when inclusive.
    assert not conflict_mask(["sad"], [2.0], [3.0], scale=(1, 5))[0]
    assert conflict_mask(["sad"], [2.0], [3.0], scale=(1, 5), inclusive=True)[0]
    assert conflict_mask(["sad"], [2.0], [2.5], scale=(1, 5), midpoint=2.5, inclusive=True)[0]


def test_rule_masks_count_each_rule():
    labels = np.array(["happy", "happy", "sad", "angry", "neutral"])
    masks = rule_masks(labels, np.array([2.0, 5.0, 2.0, 2.0, 1.0]), np.array([2.0, 5.0, 6.0, 6.0, 1.0]), scale=(1, 7))
    counts = filter_counts(masks)
    # happy row 0 hits both conditions of one rule but counts once; angry row 3 likewise
    assert counts == {
        "happy: low arousal or low valence": 1,
        "sad: high valence": 1,
        "disgusted: high valence": 0,
        "frustrated: high valence": 0,
        "angry: low arousal or high valence": 1,
    }


def test_custom_rules_replace_the_paper_rules():
    rules = parse_rules("neutral=high_arousal")
    assert rules == (ConflictRule("neutral", ("high_arousal",)),)
    mask = conflict_mask(["neutral", "happy"], [6.0, 1.0], [4.0, 1.0], scale=(1, 7), rules=rules)
    np.testing.assert_array_equal(mask, [True, False])


def test_unknown_condition_is_rejected_with_its_name():
    with pytest.raises(EmoconfError, match=r"^conflict rule for 'happy': unknown condition\(s\) \['very_high'\]; "
                                           r"choose from low_arousal, high_arousal, low_valence, high_valence$"):
        ConflictRule("happy", ("very_high",))


@pytest.mark.parametrize("text, message", [
    ("happy", r"^filter_rules 'happy': expected CATEGORY=COND\|COND, e.g. happy=low_arousal\|low_valence$"),
    ("sad=high_valence;happy=low_arousl",
     r"^filter_rules: conflict rule for 'happy': unknown condition\(s\) \['low_arousl'\]; choose from "),
])
def test_parse_rules_names_the_argument(text, message):
    with pytest.raises(EmoconfError, match=message) as raised:
        parse_rules(text)
    assert raised.value.argument == "filter_rules"


def test_default_training_is_filtered_unless_the_corpus_has_no_avd():
    assert (default_training(True), default_training(False)) == ("filtered", "raw")


def test_mismatched_lengths_are_rejected():
    with pytest.raises(EmoconfError, match="one length"):
        conflict_mask(["happy"], [1.0, 2.0], [1.0], scale=(1, 7))
