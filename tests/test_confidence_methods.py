"""The registry of confidence methods: names, report names and colours derive from it; a new score is one function."""

import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.evaluation import tables
from emoconf_tf.evaluation.unit import evaluation_rows, score_methods
from emoconf_tf.scores import METHODS, SCORED_PARTS, Scored, ScoringContext, register_method
from emoconf_tf.settings import ALL_METHODS, PAPER_METHODS, ProtocolConfig


def _context(methods=("emoconfidnet", "top2_margin", "msp"), **overrides):
    probabilities = {
        "validation": np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6], [0.4, 0.35, 0.25]]),
        "test": np.array([[0.6, 0.3, 0.1], [0.3, 0.3, 0.4]]),
    }
    p_hat = {"validation": np.full((4, 3), 1 / 3), "test": np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])}
    fields = dict(
        probabilities=probabilities, p_hat=p_hat,
        predicted={part: p.argmax(1) for part, p in probabilities.items()},
        labels={"train": np.array([0, 1, 2]), "validation": np.array([0, 1, 2, 1]), "test": np.array([0, 2])},
        embedded={}, distances={}, rows={}, features=None, classifier=None,
        config=ProtocolConfig(methods=tuple(methods)), seed=0, num_classes=3, methods=tuple(methods),
    )
    fields.update(overrides)
    return ScoringContext(**fields)


def test_all_methods_are_the_registry_in_run_order_with_recommended_last():
    assert ALL_METHODS == (
        "emoconfidnet", "top2_margin", "msp", "entropy", "mc_dropout", "tcp", "emoconfidnet_tau", "macro_gain",
        "macro_gain_ensemble", "recommended",
    )
    assert set(PAPER_METHODS) <= set(ALL_METHODS)
    assert all(METHODS[name].name == name for name in ALL_METHODS)


def test_report_names_and_colours_come_from_the_registry():
    assert tables.method_display_name("emoconfidnet") == METHODS["emoconfidnet"].display_name == "EmoConfidNet"
    assert tables.method_display_name("top2_margin") == "Baseline (top-2 margin)"
    assert tables.method_display_name("no_rejection") == "No rejection"  # a reference, not a method
    assert tables.method_display_name("my_score") == "my_score"  # an unknown column is shown as given
    # the paper's Fig. 2 colours
    assert (METHODS["emoconfidnet"].color, METHODS["top2_margin"].color) == ("tab:red", "tab:green")


def test_a_scorer_returns_its_scores_by_name_validation_first():
    with pytest.raises(TypeError):
        Scored(np.zeros(2), np.zeros(1))  # keyword-only: never a split's scores by position
    asked = []
    scored = Scored.from_parts(lambda part: asked.append(part) or np.full(1, len(asked)))
    assert asked == ["validation", "test"] == list(SCORED_PARTS)  # the order a scorer draws random numbers in
    assert (scored.validation.tolist(), scored.test.tolist()) == ([1], [2])


def test_the_registry_loads_without_tensorflow_or_scikit_learn():
    import subprocess
    import sys

    # the CLI checks --methods and --score with it before TensorFlow loads; scikit-learn alone takes 2 s to import
    code = ("import sys, emoconf_tf.scores; "
            "loaded = {'tensorflow', 'keras', 'sklearn'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_simple_scorers_give_the_hand_computed_scores():
    context = _context()
    choices, modes = score_methods(context)
    assert choices == []
    assert list(context.scores["test"]) == ["emoconfidnet", "top2_margin", "msp"]  # asked for, in registry order
    # test rows: predicted 0 (p_hat 0.5) and 2 (p_hat 0.6); margins 0.6-0.3 and 0.4-0.3; MSP 0.6 and 0.4
    np.testing.assert_allclose(context.scores["test"]["emoconfidnet"], [0.5, 0.6], atol=1e-7)
    np.testing.assert_allclose(context.scores["test"]["top2_margin"], [0.3, 0.1], atol=1e-7)
    np.testing.assert_allclose(context.scores["test"]["msp"], [0.6, 0.4], atol=1e-7)
    assert modes == {m: ("global", "per_class") for m in ("emoconfidnet", "top2_margin", "msp")}


def test_the_paper_pair_is_always_scored():
    context = _context(methods=("msp",))
    score_methods(context)
    assert list(context.scores["validation"]) == ["emoconfidnet", "top2_margin", "msp"]


@pytest.fixture
def registry():
    """The registry, restored after the test: every module that imported `METHODS` sees the same dict."""
    saved = dict(METHODS)
    yield METHODS
    METHODS.clear()
    METHODS.update(saved)


def test_a_new_score_is_one_registered_function(registry):
    @register_method("second_probability", display_name="Second probability", color="tab:pink")
    def _second(context):
        return Scored.from_parts(lambda part: 1 - np.sort(context.probabilities[part], axis=1)[:, -2],
                                 choice={"choice": "none", "rejection_mode": "global", "criterion": "-",
                                         "validation_value": 0.0},
                                 rejection_modes=("global",))

    assert list(registry)[-2:] == ["second_probability", "recommended"]  # recommended stays last
    assert tables.method_display_name("second_probability") == "Second probability"
    context = _context(methods=("second_probability",))
    choices, modes = score_methods(context)
    np.testing.assert_allclose(context.scores["test"]["second_probability"], [0.7, 0.7])
    assert choices == [{"method": "second_probability", "choice": "none", "rejection_mode": "global",
                        "criterion": "-", "validation_value": 0.0}]
    assert modes["second_probability"] == ("global",)
    results, per_class, selective = evaluation_rows(context, modes, ["a", "b", "c"], (0.0, 0.5), {"fold": 0})
    results = pd.DataFrame(results)
    mine = results[(results.method == "second_probability") & (results.threshold_source == "validation")]
    assert list(mine.rejection_mode.unique()) == ["global"] and len(mine) == 2
    assert len(per_class) == len(results) * 3 and len(selective) == 3


def test_the_protocol_accepts_only_registered_methods():
    from emoconf_tf.scores import check_methods
    from emoconf_tf.evaluation.protocol import config_for_corpus
    from emoconf_tf.synthetic import make_synthetic_corpus

    with pytest.raises(EmoconfError, match=r"methods \['nope'\]: choose from emoconfidnet") as caught:
        check_methods(("msp", "nope"))
    assert caught.value.argument == "methods"
    assert check_methods(["msp", "recommended"]) == ("msp", "recommended")
    corpus = make_synthetic_corpus(n_utterances=60, num_features=4)
    with pytest.raises(EmoconfError, match="methods \\['nope'\\]"):  # checked when the protocol starts
        config_for_corpus(ProtocolConfig(methods=("nope",)), corpus)


def test_settings_lists_the_registered_built_in_scores_in_their_order():
    from emoconf_tf.scores import method_names

    assert method_names()[:len(ALL_METHODS)] == ALL_METHODS


def test_a_one_member_ensemble_is_macro_gain_and_recommended_defaults_to_the_ensemble():
    methods = ("macro_gain", "macro_gain_ensemble", "recommended")
    context = _context(methods=methods, config=ProtocolConfig(methods=methods, ensemble_members=1))
    choices, modes = score_methods(context)
    for part in SCORED_PARTS:  # one member: the classifier's own probabilities, so the same score
        np.testing.assert_array_equal(context.scores[part]["macro_gain_ensemble"], context.scores[part]["macro_gain"])
    # four validation rows cannot show a clear win over the default, so validation keeps it
    assert [c["choice"] for c in choices] == ["macro_gain_ensemble"] and modes["recommended"] == ("per_class",)
