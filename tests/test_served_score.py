"""The served score: every servable score of the registry exported, and the SavedModel's `confidence`, `accept`
(validation and batch thresholds) equal to the library's on the run's test rows.

One run (SYNTHETIC, 400 utterances x 24 features, split folds, `--score recommended`: the classifier, EmoConfidNet
and two ensemble members) is trained once; each test exports what it needs from it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from emoconf_tf.cli import main
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.protocol import ProtocolConfig
from emoconf_tf.scores import (
    MacroGainStatistics, check_servable, macro_gain_statistics, recommended_confidence, servable_methods,
)
from emoconf_tf.serving.export import export_run
from emoconf_tf.serving.rundir import load_run, train_run
from emoconf_tf.serving.served_score import ServedScore, reference_confidence
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.thresholds import accept, class_thresholds
from emoconf_tf.training import TrainingConfig

SIZE, D = 400, 24
SERVABLE = ("emoconfidnet", "top2_margin", "msp", "entropy", "macro_gain", "macro_gain_ensemble", "recommended")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    corpus = make_synthetic_corpus(n_utterances=SIZE, num_features=D, seed=5)
    config = ProtocolConfig(cv="split", seeds=(0,), trainings=("filtered",),
                            training=TrainingConfig(max_epochs=8, batch_size=64))
    run_dir = train_run(corpus, root / "run", config, seed=0)  # the default score: recommended
    test = pd.read_csv(run_dir / "test.csv")
    position = {utterance: i for i, utterance in enumerate(corpus.ids)}
    features = corpus.features[[position[u] for u in test["id"]]].astype(np.float32)
    return {"root": root, "dir": run_dir, "corpus": corpus, "test": test, "features": features,
            "validation": pd.read_csv(run_dir / "validation.csv"), "info": json.loads((run_dir / "run.json").read_text())}


def _export(run, tmp_path, **options):
    result = export_run(run["dir"], tmp_path / "m", **options)
    return result, tf.saved_model.load(str(result.path))


def _ids(names, corpus):
    return names.map({name: i for i, name in enumerate(corpus.class_names)}).to_numpy(np.int64)


def test_the_registry_serves_the_seven_scores_and_refuses_the_others():
    assert servable_methods() == SERVABLE
    for name in ("mc_dropout", "tcp", "emoconfidnet_tau"):
        with pytest.raises(EmoconfError, match=rf"^--score {name}: cannot be served: .+; choose one of emoconfidnet, "):
            check_servable(name)
    with pytest.raises(EmoconfError, match="--score nope: is not a confidence score"):
        check_servable("nope")
    with pytest.raises(EmoconfError, match="^score tcp: cannot be served") as raised:  # a Python argument
        check_servable("tcp", "score")
    assert raised.value.argument == "score"
    with pytest.raises(EmoconfError, match="^run: score nope: ") as raised:  # a field of a file: no argument
        check_servable("nope", "run: score")
    assert raised.value.argument is None


def test_the_run_records_the_served_score_members_and_every_score_column(run):
    info, validation = run["info"], run["validation"]
    assert info["score"]["name"] == "recommended" and info["ensemble_members"] == ["ensemble_member_1.keras",
                                                                                  "ensemble_member_2.keras"]
    assert info["rejection_mode"] == info["score"]["chosen_on"]["rejection_mode"]
    assert {*SERVABLE} - {"recommended"} <= set(validation.columns)
    assert (run["dir"] / "ensemble_member_2.keras").is_file()
    assert len(load_run(run["dir"]).members) == 2
    # `confidence` is the served (recommended) score, `baseline_confidence` the top-two margin.
    components = [tuple(c) for c in info["score"]["components"]]
    expected = recommended_confidence(components, validation, validation).astype(np.float32)
    np.testing.assert_allclose(validation["confidence"], expected, atol=1e-7, rtol=0)
    np.testing.assert_array_equal(validation["baseline_confidence"], validation["top2_margin"])


def test_run_json_macro_gain_statistics_are_the_validation_counts_by_hand(run):
    validation, corpus = run["validation"], run["corpus"]
    statistics = run["info"]["score"]["macro_gain_statistics"]
    for c, name in enumerate(corpus.class_names):
        predicted = validation["predicted"] == name
        true = validation["label"] == name
        hits = int((predicted & true).sum())
        # P_c = hits / predicted as c, R_c = hits / truly c, counts as they are
        assert statistics["n_predicted"][c] == predicted.sum() and statistics["n_true"][c] == true.sum()
        assert statistics["precision"][c] == pytest.approx(hits / predicted.sum() if predicted.sum() else 0.0)
        assert statistics["recall"][c] == pytest.approx(hits / true.sum() if true.sum() else 0.0)


@pytest.mark.parametrize("score", SERVABLE)
def test_saved_model_confidence_and_accept_equal_the_librarys_on_every_test_row(run, tmp_path, score):
    result, model = _export(run, tmp_path, score=None if score == "recommended" else score)
    test, validation, corpus = run["test"], run["validation"], run["corpus"]
    column = "confidence" if score == "recommended" else score
    got = model.signatures["confidence"](features=tf.constant(run["features"]))
    confidence = got["confidence"].numpy()
    assert np.abs(confidence - test[column].to_numpy()).max() <= 1e-5
    np.testing.assert_array_equal(got["class_ids"].numpy(), _ids(test["predicted"], corpus))
    assert np.abs(got["emoconfidnet_confidence"].numpy() - test["emoconfidnet"].to_numpy()).max() <= 1e-5
    assert np.abs(got["baseline_confidence"].numpy() - test["top2_margin"].to_numpy()).max() <= 1e-5
    mode = result.rejection_mode
    k = len(corpus.class_names)
    test_predicted, validation_predicted = _ids(test["predicted"], corpus), _ids(validation["predicted"], corpus)
    for rejection in (0.1, 0.2, 0.5):
        at_rate = model.signatures["threshold"](features=tf.constant(run["features"]),
                                                rejection=tf.constant(rejection, tf.float32))
        thresholds = class_thresholds(validation[column], validation_predicted, rejection, k, mode)
        expected = accept(test[column].to_numpy(np.float32), thresholds, test_predicted)
        np.testing.assert_array_equal(at_rate["accept"].numpy(), expected)
        batch = model.signatures["batch_threshold"](features=tf.constant(run["features"]),
                                                    rejection=tf.constant(rejection, tf.float32))
        own = class_thresholds(test[column], test_predicted, rejection, k, mode)
        np.testing.assert_array_equal(batch["accept"].numpy(), accept(test[column].to_numpy(np.float32), own,
                                                                      test_predicted))
    score_asset = json.loads((result.path / "assets" / "score.json").read_text())
    assert score_asset["score"] == score and score_asset["rejection_mode"] == mode


def test_batch_threshold_rejects_the_asked_fraction_of_the_batch(run, tmp_path):
    _, model = _export(run, tmp_path, score="top2_margin", rejection_mode="global")
    n = len(run["features"])
    for rejection in (0.1, 0.2, 0.3):
        batch = model.signatures["batch_threshold"](features=tf.constant(run["features"]),
                                                    rejection=tf.constant(rejection, tf.float32))
        # t_r is the ceil(n (1 - r))-th largest score of the batch: that many are kept (continuous scores, no ties)
        assert int(batch["accept"].numpy().sum()) == int(np.ceil(round(n * (1 - rejection), 9)))


def test_a_blend_of_validation_quantiles_is_served_exactly(run, tmp_path):
    blended = tmp_path / "blend_run"
    shutil.copytree(run["dir"], blended)
    info = json.loads((blended / "run.json").read_text())
    info["score"]["components"] = [["emoconfidnet", 0.25], ["top2_margin", 0.75]]
    (blended / "run.json").write_text(json.dumps(info))
    validation, test = run["validation"], run["test"]
    scores = {m: validation[m].to_numpy(np.float32).astype(np.float64) for m in ("emoconfidnet", "top2_margin")}
    validation = validation.assign(confidence=recommended_confidence(
        [("emoconfidnet", 0.25), ("top2_margin", 0.75)], scores, scores).astype(np.float32))
    validation.to_csv(blended / "validation.csv", index=False, float_format="%.9g")
    result = export_run(blended, tmp_path / "m")
    assert result.score == "recommended (0.25*emoconfidnet + 0.75*top2_margin)"
    model = tf.saved_model.load(str(result.path))
    got = model.signatures["confidence"](features=tf.constant(run["features"]))["confidence"].numpy()
    expected = recommended_confidence([("emoconfidnet", 0.25), ("top2_margin", 0.75)], scores,
                                      {m: test[m].to_numpy(np.float32) for m in scores})
    assert np.abs(got - expected).max() <= 1e-5


def test_reference_macro_gain_uses_the_statistics_by_hand():
    # Validation (two classes): labels 0 1 1, predicted 0 0 1 -> P = (1/2, 1), R = (1, 1/2), M = (2, 1), N = (1, 2)
    statistics = macro_gain_statistics(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    served = ServedScore("macro_gain", (("macro_gain", 1.0),), statistics=statistics)
    # q = (0.6, 0.4), c = 0: (0.6 - 1/2) / 3 + 0.6 / 2 - (0.6 * 1 / 2 + 0.4 * 0.5 / 3) = -0.0333;
    # B = max(1/3, 1/2) + max(1/2, 1/3) = 1 -> (-0.0333 + 1) / 2 = 0.48333
    got = reference_confidence(served, np.array([[0.6, 0.4]], np.float32))
    assert got[0] == pytest.approx(0.48333, abs=1e-5)
    assert MacroGainStatistics.from_dict(statistics.to_dict()).bound == 1.0


def test_export_refuses_a_score_the_run_did_not_compute(tmp_path):
    corpus = make_synthetic_corpus(n_utterances=120, num_features=6, seed=2)
    config = ProtocolConfig(training=TrainingConfig(max_epochs=1, batch_size=64))
    run_dir = train_run(corpus, tmp_path / "paper", config, score="emoconfidnet")
    assert not (run_dir / "ensemble_member_1.keras").exists()
    with pytest.raises(EmoconfError, match=r"did not compute macro_gain_ensemble; retrain with `emoconf train --score "
                                           r"macro_gain_ensemble`"):
        export_run(run_dir, tmp_path / "m", score="macro_gain_ensemble")
    with pytest.raises(EmoconfError, match=r"^score recommended: the run .* was trained for emoconfidnet"):
        export_run(run_dir, tmp_path / "m", score="recommended")
    assert not (tmp_path / "m").exists()
    assert export_run(run_dir, tmp_path / "m", score="msp", verify=True).score == "msp"  # cheap scores: always


@pytest.mark.parametrize("command", ["train", "export"])
def test_an_unservable_score_is_refused_in_one_line_before_tensorflow(tmp_path, capsys, command):
    argv = (["train", "--synthetic", "--out", str(tmp_path / "r")] if command == "train"
            else ["export", str(tmp_path / "no_run"), "--out", str(tmp_path / "m")])
    assert main([*argv, "--score", "mc_dropout"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emoconf {command}: error: --score mc_dropout: cannot be served: it needs T stochastic")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_an_export_without_score_json_is_read_as_emoconfidnet(run, tmp_path):
    from emoconf_tf.serving.inspect import describe
    from emoconf_tf.serving.prediction import read_model_assets

    result, _ = _export(run, tmp_path, score="emoconfidnet")
    (result.path / "assets" / "score.json").unlink()  # as an export written before the asset existed
    assert read_model_assets(result.path).score_description == "emoconfidnet"
    assert describe(result.path).splitlines()[1].startswith("confidence: emoconfidnet (EmoConfidNet's p_hat[c]; "
                                                            "exported before")
