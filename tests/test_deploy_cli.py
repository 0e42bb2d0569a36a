"""From a features table to a served answer with the CLI only (issue 20, target c): `train --table ... --cv group
--fold 0` (the default score, recommended), `export`, `inspect` naming the score, `predict` at the export's default
operating point and with `--per-batch` (thresholds from the inputs' own confidences).

The table is the SYNTHETIC corpus written as a features table (5 sessions in `group`), so the session folds run as
on IEMOCAP.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from emoconf_tf.cli import main
from emoconf_tf.corpus import corpus_frame
from emoconf_tf.serving.prediction import predict
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.thresholds import class_thresholds


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    corpus = make_synthetic_corpus(n_utterances=400, num_features=12, seed=1)
    table = root / "corpus.csv"
    corpus_frame(corpus).to_csv(table, index=False, float_format="%.9g")
    run_dir, base = root / "run", root / "savedmodels" / "emoconf"
    assert main(["train", "--table", str(table), "--cv", "group", "--fold", "0", "--max-epochs", "6",
                 "--out", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--out", str(base)]) == 0
    return {"table": table, "run_dir": run_dir, "base": base, "corpus": corpus}


def test_train_on_session_folds_records_the_fold_and_the_chosen_score(deployed):
    info = json.loads((deployed["run_dir"] / "run.json").read_text())
    assert (info["fold"], info["fold_name"]) == (0, "test=session1 validation=session2")
    assert info["score"]["name"] == "recommended" and info["score"]["chosen_on"]["criterion"] == "f1_uar_area"


def test_inspect_names_the_served_score_and_how_validation_chose_it(deployed, capsys):
    assert main(["inspect", str(deployed["base"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    info = json.loads((deployed["run_dir"] / "run.json").read_text())
    choice = info["score"]["chosen_on"]["choice"]
    assert lines[1].startswith(f"confidence: recommended ({choice}): chosen on validation by f1_uar_area = ")
    assert f"rejection mode: {info['rejection_mode']}" in lines[2]


def test_predict_default_names_the_score_and_answers_every_row(deployed, capsys):
    assert main(["predict", "--model", str(deployed["base"]), str(deployed["table"])]) == 0
    captured = capsys.readouterr()
    assert "confidence recommended (" in captured.err and "serving_default: rejection 0.2" in captured.err
    assert len(captured.out.splitlines()) == 1 + len(deployed["corpus"])  # header + one line per utterance


def test_predict_per_batch_rejects_the_asked_fraction_of_the_inputs(deployed, capsys):
    assert main(["predict", "--model", str(deployed["base"]), "--rejection", "0.2", "--per-batch", "--json",
                 str(deployed["table"])]) == 0
    captured = capsys.readouterr()
    assert "batch_threshold: rejection 0.2" in captured.err and "(from these inputs' own confidences)" in captured.err
    records = json.loads(captured.out)
    assert {r["threshold_source"] for r in records} == {"batch"}
    names = list(deployed["corpus"].class_names)
    confidence = np.array([r["confidence"] for r in records], np.float32)
    predicted = np.array([names.index(r["class"]) for r in records])
    mode = records[0]["rejection_mode"]
    thresholds = class_thresholds(confidence, predicted, 0.2, len(names), mode)
    assert [r["accept"] for r in records] == list(confidence >= thresholds[predicted].astype(np.float32))
    # about 80 % kept: exactly ceil(0.8 n_c) of each class in per-class mode, ceil(0.8 n) in global mode
    kept = sum(r["accept"] for r in records)
    n = len(records)
    if mode == "global":
        assert kept == int(np.ceil(0.8 * n))
    else:
        counts = np.bincount(predicted, minlength=len(names))
        assert kept == sum(int(np.ceil(round(0.8 * c, 9))) for c in counts if c)


def test_per_batch_in_predict_equals_the_batch_threshold_signature(deployed):
    result = predict(deployed["base"], [deployed["table"]], rejection=0.3, per_batch=True)
    model = tf.saved_model.load(str(result.model_dir))
    features = deployed["corpus"].features.astype(np.float32)
    signature = model.signatures["batch_threshold"](features=tf.constant(features),
                                                    rejection=tf.constant(0.3, tf.float32))
    assert [p.accept for p in result.predictions] == signature["accept"].numpy().tolist()
    np.testing.assert_array_equal(list(result.class_thresholds.values()),
                                  signature["class_thresholds"].numpy().astype(np.float64))
