"""Per-class rejection in `emoconf train` / `emoconf export`: run.json, SavedModel thresholds, card, inspect, predict.

One tiny run (300 synthetic utterances x 16 features, 2 epochs) is trained once per module with
`emoconf train --rejection-mode per_class` and exported. A copy of it with a hand-written validation.csv
gives per-class thresholds computed by hand.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from emoconf_tf import EmoconfError
from emoconf_tf.cli import main
from emoconf_tf.scores import predicted_class
from emoconf_tf.serving.examples import serialize_examples
from emoconf_tf.serving.export import export_run
from emoconf_tf.serving.inspect import rejection_mode
from emoconf_tf.serving.prediction import ExportedModel, predict
from emoconf_tf.evaluation.protocol import ProtocolConfig
from emoconf_tf.serving.rundir import MANIFEST, load_run, train_run
from emoconf_tf.serving.verification import verify_saved_model
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.thresholds import accept as numpy_accept
from emoconf_tf.thresholds import class_thresholds, rejection_threshold

D = 16
SIZE = 300
CLASSES = ["angry", "disgusted", "happy", "neutral", "sad"]  # the synthetic corpus's, in id order
K = len(CLASSES)

# A hand-written validation.csv (rows shuffled on purpose): ten predictions, neutral never predicted.
HAND_VALIDATION = [  # (predicted, confidence)
    ("happy", 0.30), ("angry", 0.80), ("disgusted", 0.40), ("sad", 0.20), ("disgusted", 0.70),
    ("happy", 0.35), ("disgusted", 0.50), ("angry", 0.90), ("happy", 0.25), ("disgusted", 0.60),
]
# ceil(n (1 - r))-th of each class's confidences in descending order; neutral takes the global t_r.
#   all ten: 0.9 0.8 0.7 0.6 0.5 0.4 0.35 0.3 0.25 0.2   angry: 0.9 0.8   disgusted: 0.7 0.6 0.5 0.4
#   happy: 0.35 0.3 0.25   sad: 0.2
HAND_THRESHOLDS = {
    # r = 0.5: global ceil(10*0.5) = 5th -> 0.5; angry ceil(2*0.5) = 1st -> 0.9; disgusted ceil(4*0.5) = 2nd -> 0.6;
    #          happy ceil(3*0.5) = ceil(1.5) = 2nd -> 0.3; sad ceil(1*0.5) = 1st -> 0.2
    0.5: (0.5, [0.9, 0.6, 0.3, 0.5, 0.2]),
    # r = 0.2: global ceil(10*0.8) = 8th -> 0.3; angry ceil(1.6) = 2nd -> 0.8; disgusted ceil(3.2) = 4th -> 0.4;
    #          happy ceil(2.4) = 3rd -> 0.25; sad ceil(0.8) = 1st -> 0.2
    0.2: (0.3, [0.8, 0.4, 0.25, 0.3, 0.2]),
    # r = 0.35 (float32 0.34999999 read as 0.35): global ceil(6.5) = 7th -> 0.35; angry ceil(1.3) = 2nd -> 0.8;
    #          disgusted ceil(2.6) = 3rd -> 0.5; happy ceil(1.95) = 2nd -> 0.3; sad ceil(0.65) = 1st -> 0.2
    0.35: (0.35, [0.8, 0.5, 0.3, 0.35, 0.2]),
    # r = 0.25: disgusted 4*0.75 = 3 exactly -> 3rd -> 0.5 (not the 4th); global ceil(7.5) = 8th -> 0.3;
    #          angry ceil(1.5) = 2nd -> 0.8; happy ceil(2.25) = 3rd -> 0.25; sad ceil(0.75) = 1st -> 0.2
    0.25: (0.3, [0.8, 0.5, 0.25, 0.3, 0.2]),
    # r = 0: t_0 = 0 for every class
    0.0: (0.0, [0.0, 0.0, 0.0, 0.0, 0.0]),
}


@pytest.fixture(scope="module")
def per_class(tmp_path_factory):
    """The run trained with `emoconf train --score emoconfidnet --rejection-mode per_class` (the paper's score, per-class
    thresholds) and its export (with the default mode)."""
    root = tmp_path_factory.mktemp("per_class")
    run_dir = root / "run"
    assert main(["train", "--synthetic", "--size", str(SIZE), "--num-features", str(D), "--max-epochs", "2",
                 "--batch-size", "64", "--rejection-mode", "per_class", "--score", "emoconfidnet",
                 "--out", str(run_dir)]) == 0
    base = root / "savedmodels" / "per_class"
    assert main(["export", str(run_dir), "--out", str(base)]) == 0
    features = make_synthetic_corpus(n_utterances=SIZE, num_features=D, seed=0).features.astype(np.float32)
    return {"run_dir": run_dir, "path": base / "1", "model": tf.saved_model.load(str(base / "1")),
            "run": load_run(run_dir), "features": features}


@pytest.fixture(scope="module")
def hand(per_class, tmp_path_factory):
    """A copy of the run whose validation.csv is HAND_VALIDATION, exported per class at rejection 0.5 (verified)."""
    root = tmp_path_factory.mktemp("hand")
    run_dir = root / "run"
    shutil.copytree(per_class["run_dir"], run_dir)
    predicted, confidence = zip(*HAND_VALIDATION)
    pd.DataFrame({"id": [f"v{i}" for i in range(len(predicted))], "label": predicted, "predicted": predicted,
                  "confidence": confidence, "baseline_confidence": 0.1}).to_csv(run_dir / "validation.csv", index=False)
    result = export_run(run_dir, root / "savedmodels" / "hand", default_rejection=0.5)
    return {"run_dir": run_dir, "result": result, "model": tf.saved_model.load(str(result.path))}


def _call(model, name, **inputs):
    return {key: value.numpy() for key, value in model.signatures[name](**inputs).items()}


def _served(model, features):
    return _call(model, "serving_default", examples=tf.constant(serialize_examples(features)))


# === Hand-computed thresholds ===

@pytest.mark.parametrize("rejection", sorted(HAND_THRESHOLDS))
def test_class_thresholds_of_the_hand_validation_equal_the_hand_arithmetic(rejection):
    predicted = [CLASSES.index(name) for name, _ in HAND_VALIDATION]
    confidence = [value for _, value in HAND_VALIDATION]
    overall, by_class = HAND_THRESHOLDS[rejection]
    assert rejection_threshold(confidence, rejection) == overall
    assert class_thresholds(confidence, predicted, rejection, K, "per_class").tolist() == by_class


@pytest.mark.parametrize("rejection", sorted(HAND_THRESHOLDS))
def test_threshold_signature_returns_the_hand_computed_class_thresholds(hand, per_class, rejection):
    overall, by_class = HAND_THRESHOLDS[rejection]
    out = _call(hand["model"], "threshold", features=tf.constant(per_class["features"]),
                rejection=tf.constant(rejection, tf.float32))
    assert out["class_thresholds"].dtype == np.float32 and out["class_thresholds"].shape == (K,)
    np.testing.assert_array_equal(out["class_thresholds"], np.float32(by_class))
    assert out["threshold"].shape == () and out["threshold"] == np.float32(overall)  # the global t_r stays scalar
    class_ids = _call(hand["model"], "predict", features=tf.constant(per_class["features"]))["class_ids"]
    np.testing.assert_array_equal(out["applied_threshold"], np.float32(by_class)[class_ids])
    np.testing.assert_array_equal(out["accept"], out["confidence"] >= out["applied_threshold"])


def test_class_absent_from_validation_takes_the_global_threshold(hand, per_class):
    neutral = CLASSES.index("neutral")
    for rejection in (0.2, 0.35, 0.5):
        out = _call(hand["model"], "threshold", features=tf.constant(per_class["features"][:2]),
                    rejection=tf.constant(rejection, tf.float32))
        assert out["class_thresholds"][neutral] == out["threshold"] == np.float32(HAND_THRESHOLDS[rejection][0])


def test_export_result_and_card_list_the_hand_thresholds_at_the_default_rejection(hand):
    assert hand["result"].rejection_mode == "per_class" and hand["result"].default_threshold == 0.5
    assert list(hand["result"].default_class_thresholds) == HAND_THRESHOLDS[0.5][1]
    card = (hand["result"].path / "assets" / "model_card.md").read_text()
    assert ("| default operating point | rejection 0.5 -> per-class thresholds angry 0.900000, disgusted 0.600000, "
            "happy 0.300000, neutral 0.500000 (global), sad 0.200000 (`serving_default`'s `accept`) |") in card
    # kept at 0.5: angry 0.9 (1), disgusted 0.7 0.6 (2), happy 0.35 0.3 (2), sad 0.2 (1): 6 of 10
    assert "| 0.5 | 0.900000 | 0.600000 | 0.300000 | 0.500000 | 0.200000 | 0.600 |" in card
    assert "Validation predictions per class: angry 2, disgusted 4, happy 3, neutral 0, sad 1" in card


def test_serving_default_accept_uses_the_hand_thresholds_of_the_predicted_class(hand, per_class):
    served = _served(hand["model"], per_class["features"])
    thresholds = np.float32(HAND_THRESHOLDS[0.5][1])
    np.testing.assert_array_equal(served["accept"], served["confidence"] >= thresholds[served["class_ids"]])


# === The per-class export of a trained run ===

def test_train_records_the_rejection_mode_in_run_json(per_class):
    assert json.loads((per_class["run_dir"] / "run.json").read_text())["rejection_mode"] == "per_class"
    assert per_class["run"].rejection_mode == "per_class"


def test_serving_default_accept_is_confidence_at_least_the_threshold_of_the_predicted_class(per_class):
    run = per_class["run"]
    validation = run.validation
    thresholds = class_thresholds(validation["confidence"], validation["predicted"].map(CLASSES.index), 0.2, K,
                                  "per_class")
    served = _served(per_class["model"], per_class["features"])
    # float32, as the graph compares: validation.csv's 9 digits may sit a hair off the float32 score.
    expected = numpy_accept(served["confidence"], thresholds.astype(np.float32), served["class_ids"])
    np.testing.assert_array_equal(served["accept"], expected)
    np.testing.assert_array_equal(served["accept"], served["confidence"] >= np.float32(thresholds)[served["class_ids"]])
    global_accept = served["confidence"] >= np.float32(rejection_threshold(validation["confidence"], 0.2))
    assert (served["accept"] != global_accept).any()  # the mode changes decisions on this run


def test_threshold_signature_agrees_with_serving_default_at_the_default_rate(per_class):
    features = per_class["features"]
    at_rate = _call(per_class["model"], "threshold", features=tf.constant(features), rejection=tf.constant(0.2))
    served = _served(per_class["model"], features)
    np.testing.assert_array_equal(at_rate["accept"], served["accept"])
    np.testing.assert_array_equal(at_rate["applied_threshold"], at_rate["class_thresholds"][served["class_ids"]])


def test_threshold_signature_keeps_its_input_and_adds_two_outputs(per_class):
    signature = per_class["model"].signatures["threshold"]
    outputs = {key: (spec.dtype.name, tuple(spec.shape.as_list()))
               for key, spec in signature.structured_outputs.items()}
    assert outputs == {"threshold": ("float32", ()), "class_thresholds": ("float32", (K,)),
                       "applied_threshold": ("float32", (None,)), "confidence": ("float32", (None,)),
                       "accept": ("bool", (None,)), "emoconfidnet_confidence": ("float32", (None,)),
                       "baseline_confidence": ("float32", (None,))}


def test_verify_refuses_thresholds_of_the_other_mode(per_class):
    run = per_class["run"]
    validation = run.validation
    with pytest.raises(EmoconfError, match=r"threshold \(global\) thresholds or accept decisions at rejection 0\.1 differ"):
        verify_saved_model(per_class["path"], run.emoconfidnet, D,
                           validation_confidence=validation["confidence"].to_numpy(),
                           validation_predicted=validation["predicted"].map(CLASSES.index).to_numpy(),
                           rejection_mode="global")


def test_model_card_states_the_mode_and_lists_the_per_class_thresholds(per_class):
    card = (per_class["path"] / "assets" / "model_card.md").read_text()
    assert "| rejection mode | per_class: one threshold per predicted class" in card
    assert "rejection 0.2 -> per-class thresholds angry " in card
    assert "## Per-class thresholds" in card


def test_inspect_shows_the_mode(per_class, capsys):
    assert rejection_mode(per_class["path"]) == "per_class"
    assert main(["inspect", str(per_class["path"].parent)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[2] == ("rejection mode: per_class (accept = confidence >= the threshold of the "
                                       "predicted class)")
    assert "output class_thresholds: float32 [5]" in printed and "output applied_threshold: float32 [None]" in printed


# === CLI and run.json ===

def test_export_rejection_mode_global_overrides_the_runs_mode(per_class, tmp_path, capsys):
    base = tmp_path / "global"
    assert main(["export", str(per_class["run_dir"]), "--out", str(base), "--rejection-mode", "global"]) == 0
    assert "rejection mode global" in capsys.readouterr().out
    card = (base / "1" / "assets" / "model_card.md").read_text()
    assert "| rejection mode | global: one threshold from all validation confidences" in card
    assert "## Per-class thresholds" not in card
    assert rejection_mode(base) == "global"
    model = tf.saved_model.load(str(base / "1"))
    out = _call(model, "threshold", features=tf.constant(per_class["features"]), rejection=tf.constant(0.2))
    np.testing.assert_array_equal(out["class_thresholds"], np.full(K, out["threshold"]))
    np.testing.assert_array_equal(out["accept"], out["confidence"] >= out["threshold"])
    np.testing.assert_array_equal(_served(model, per_class["features"])["accept"], out["accept"])


def test_run_json_without_the_mode_exports_global(per_class, tmp_path):
    old = tmp_path / "old_run"  # a run trained before run.json had the key
    shutil.copytree(per_class["run_dir"], old)
    info = json.loads((old / "run.json").read_text())
    del info["rejection_mode"], info["score"]
    (old / "run.json").write_text(json.dumps(info))
    result = export_run(old, tmp_path / "m", verify=False)
    assert result.rejection_mode == "global" and rejection_mode(result.path) == "global"


@pytest.mark.parametrize("command", ["train", "export"])
def test_bad_rejection_mode_is_a_one_line_error(per_class, tmp_path, capsys, command):
    argv = (["train", "--synthetic", "--out", str(tmp_path / "r")] if command == "train"
            else ["export", str(per_class["run_dir"]), "--out", str(tmp_path / "m")])
    assert main([*argv, "--rejection-mode", "perclass"]) == 2
    err = capsys.readouterr().err
    assert err == (f"emoconf {command}: error: --rejection-mode 'perclass': choose global (one threshold from all "
                   "validation confidences, the paper's) or per_class (one threshold per predicted class)\n")
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()


def test_train_run_refuses_a_bad_mode_before_training(tmp_path):
    corpus = make_synthetic_corpus(n_utterances=60, num_features=4, seed=1)
    with pytest.raises(EmoconfError, match=r"rejection_mode 'both': choose global"):
        train_run(corpus, tmp_path / "run", ProtocolConfig(), rejection_mode="both")
    assert not (tmp_path / "run").exists()


def test_run_json_with_an_unknown_mode_is_named(per_class, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(per_class["run_dir"], broken)
    info = json.loads((broken / "run.json").read_text())
    (broken / "run.json").write_text(json.dumps({**info, "rejection_mode": "weird"}))
    with pytest.raises(EmoconfError, match=r"broken/run.json: rejection_mode 'weird': choose global"):
        export_run(broken, tmp_path / "m")
    assert (broken / MANIFEST).exists() and not (tmp_path / "m").exists()


# === emoconf predict ===

@pytest.fixture(scope="module")
def table(per_class, tmp_path_factory):
    from emoconf_tf.corpus import corpus_frame

    corpus = make_synthetic_corpus(n_utterances=SIZE, num_features=D, seed=0)
    path = tmp_path_factory.mktemp("table") / "table.csv"
    corpus_frame(corpus.subset(np.arange(40))).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("rejection", [None, 0.35])
def test_predict_carries_the_mode_and_the_threshold_applied_to_each_prediction(per_class, table, rejection):
    result = predict(per_class["path"].parent, [table], rejection=rejection)
    rate = 0.2 if rejection is None else rejection
    validation = per_class["run"].validation
    expected = class_thresholds(validation["confidence"], validation["predicted"].map(CLASSES.index), rate, K,
                                "per_class")
    assert result.rejection_mode == "per_class"
    assert list(result.class_thresholds) == CLASSES
    np.testing.assert_allclose(list(result.class_thresholds.values()), expected, rtol=1e-6)  # float32 outputs
    for prediction in result.predictions:
        assert prediction.threshold == result.class_thresholds[prediction.class_name]
        assert prediction.accept == (np.float32(prediction.confidence) >= np.float32(prediction.threshold))
    records = result.to_records()
    assert {r["rejection_mode"] for r in records} == {"per_class"}
    assert [r["threshold"] for r in records] == [p.threshold for p in result.predictions]


def test_exported_model_reads_the_mode_and_default_class_thresholds(per_class):
    model = ExportedModel(per_class["path"])
    validation = per_class["run"].validation
    assert model.rejection_mode == "per_class"
    np.testing.assert_array_equal(model.default_class_thresholds, class_thresholds(
        validation["confidence"], validation["predicted"].map(CLASSES.index), 0.2, K, "per_class"))


def test_cli_predict_prints_the_threshold_column_and_the_mode(per_class, table, capsys):
    assert main(["predict", "--model", str(per_class["path"].parent), str(table)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["id", "class", "confidence", "threshold", "accept"]
    expected = predict(per_class["path"].parent, [table]).predictions
    for line, prediction in zip(lines[1:], expected):
        assert line.split() == [prediction.id, prediction.class_name, f"{prediction.confidence:.6f}",
                                f"{prediction.threshold:.6f}", "yes" if prediction.accept else "no"]
    assert "serving_default: rejection 0.2 -> per-class thresholds angry " in captured.err
    assert "; rejection mode per_class" in captured.err


def test_keras_and_saved_model_predict_the_same_classes(per_class):
    # The per-class thresholds are indexed by class: the SavedModel's classes must be the Keras model's.
    probabilities = per_class["run"].emoconfidnet.predict(per_class["features"], verbose=0)["probabilities"]
    served = _served(per_class["model"], per_class["features"])
    np.testing.assert_array_equal(served["class_ids"], predicted_class(probabilities))


@pytest.mark.parametrize("n", [60, 7, 100])
def test_saved_threshold_at_zero_rejection_is_zero_for_any_validation_size(tmp_path, n):
    # Regression: the position ceil(n (1 - r)) was computed as ceil(round(x * 1e9) / 1e9); in the saved graph
    # Grappler turns the division into a multiplication by 1e-9 and 6e10 * 1e-9 = 60.00000000000001, so at
    # r = 0 with 60 validation scores the position became 61 and the threshold signature failed.
    from emoconf_tf.serving.serving_module import EmoconfServingModule
    from emoconf_tf.models import build_classifier, build_emoconfidnet

    classifier = build_classifier(np.zeros(4, np.float32), np.ones(4, np.float32), 3, seed=0)
    emoconfidnet = build_emoconfidnet(classifier)
    rng = np.random.default_rng(n)
    scores, predicted = rng.random(n), rng.integers(0, 3, n)
    for mode in ("global", "per_class"):
        module = EmoconfServingModule(emoconfidnet, ["a", "b", "c"], scores, default_rejection=0.2,
                                      default_threshold=rejection_threshold(scores, 0.2),
                                      validation_predicted=predicted, rejection_mode=mode)
        module.save(tmp_path / mode)
        loaded = tf.saved_model.load(str(tmp_path / mode))
        for rejection in (0.0, 0.1, 0.2, 0.5):
            out = loaded.signatures["threshold"](features=tf.zeros([2, 4]), rejection=tf.constant(rejection))
            expected = class_thresholds(scores, predicted, rejection, 3, mode).astype(np.float32)
            np.testing.assert_array_equal(out["class_thresholds"].numpy(), expected)
