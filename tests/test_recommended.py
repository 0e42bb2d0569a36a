import numpy as np
import pytest

from emoconf_tf.confidence import validation_quantile
from emoconf_tf.recommended import candidates, choose_recommended, recommended_confidence


def test_validation_quantile_by_hand():
    # validation scores 0.1 0.2 0.3 0.4: 0.25 is above 2 of 4 -> 0.5; 0.4 -> 1.0; 0.0 -> 0.0
    np.testing.assert_allclose(validation_quantile([0.3, 0.1, 0.4, 0.2], [0.25, 0.4, 0.0]), [0.5, 1.0, 0.0])


def test_candidates_are_singles_then_blends():
    c = candidates(["emoconfidnet", "top2_margin", "entropy"])
    assert c[:3] == [(("emoconfidnet", 1.0),), (("top2_margin", 1.0),), (("entropy", 1.0),)]
    assert c[3:] == [(("emoconfidnet", w), ("top2_margin", 1 - w)) for w in (0.25, 0.5, 0.75)]


def test_choice_picks_the_score_that_ranks_validation_errors_last():
    rng = np.random.default_rng(0)
    correct = rng.random(300) < 0.6
    good = correct + rng.normal(0, 0.3, 300)  # informative
    noise = rng.random(300)  # useless
    choice = choose_recommended(correct, {"emoconfidnet": noise, "top2_margin": good})
    assert choice.components[0][0] == "top2_margin" or dict(choice.components).get("top2_margin", 0) >= 0.75


def test_blend_can_beat_both_parts():
    # two scores, each informative about a different half of the errors: the blend ranks better
    rng = np.random.default_rng(1)
    correct = rng.random(400) < 0.6
    half = np.arange(400) < 200
    a = np.where(half, correct + rng.normal(0, 0.2, 400), rng.random(400))
    b = np.where(~half, correct + rng.normal(0, 0.2, 400), rng.random(400))
    choice = choose_recommended(correct, {"emoconfidnet": a, "top2_margin": b})
    assert len(choice.components) == 2


def test_the_choice_sees_validation_only():
    # the function takes validation arrays only; the test score is computed from validation quantiles
    rng = np.random.default_rng(2)
    val = {"emoconfidnet": rng.random(50), "top2_margin": rng.random(50)}
    correct = rng.random(50) < 0.5
    choice = choose_recommended(correct, val)
    test = {"emoconfidnet": rng.random(20), "top2_margin": rng.random(20)}
    score = recommended_confidence(choice.components, val, test)
    assert score.shape == (20,)
    assert choose_recommended(correct, val) == choice  # deterministic


def test_empty_choice_is_refused():
    from emoconf_tf import EmoconfError

    with pytest.raises(EmoconfError):
        choose_recommended(np.ones(3, bool), {})
