"""A corpus without AVD ratings, from a features table to a served answer with the CLI (issue 21 item 2, serving):
`train` keeps the classifier alone (no EmoConfidNet head: its targets come from AVD), `export` serves the default
score (recommended, chosen among the scores that need no AVD) around that classifier, `--score emoconfidnet` is
refused, and `inspect`, the model card and `predict` say "no AVD ratings".

The table is the SYNTHETIC corpus without its arousal/valence/dominance columns and scale (what
`read_features_table` reads as `Corpus.has_avd` False), trained once for the module with tiny settings.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from emoconf_tf import EmoconfError
from emoconf_tf.cli import main
from emoconf_tf.corpus import AVD_COLUMNS, NO_AVD_RATINGS, corpus_frame
from emoconf_tf.serving.export import export_run
from emoconf_tf.serving.inspect import signatures
from emoconf_tf.serving.rundir import Run, load_run, run_methods
from emoconf_tf.synthetic import make_synthetic_corpus


@pytest.fixture(scope="module")
def no_avd(tmp_path_factory):
    root = tmp_path_factory.mktemp("no_avd")
    corpus = make_synthetic_corpus(n_utterances=300, num_features=10, seed=2)
    corpus = dataclasses.replace(corpus, has_avd=False, avd=np.full_like(corpus.avd, np.nan), scale=None)
    table = root / "categories_only.csv"
    corpus_frame(corpus).to_csv(table, index=False, float_format="%.9g")
    run_dir, base = root / "run", root / "savedmodels" / "emoconf"
    assert main(["train", "--table", str(table), "--max-epochs", "3", "--out", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--out", str(base)]) == 0
    return {"table": table, "run_dir": run_dir, "base": base, "version": base / "1", "corpus": corpus}


# === Without a run ===

def test_run_methods_without_avd_leave_out_emoconfidnet():
    # servable scores minus emoconfidnet (needs AVD) minus the two run_methods adds itself, then those two
    assert run_methods("recommended", has_avd=False) == (
        "top2_margin", "msp", "entropy", "macro_gain", "macro_gain_ensemble", "recommended")
    assert run_methods("top2_margin", has_avd=False) == ("top2_margin", "msp", "entropy", "macro_gain")
    assert run_methods("top2_margin")[0] == "emoconfidnet"  # with AVD, unchanged


def test_a_run_json_without_has_avd_reads_as_a_run_with_avd():
    older = Run(path=None, info={}, classifier=None, emoconfidnet=None, validation=pd.DataFrame(), results=None,
                feature_names=[])
    assert older.has_avd is True
    assert dataclasses.replace(older, info={"has_avd": False}).has_avd is False


# === train ===

def test_the_table_has_no_avd_columns(no_avd):
    columns = pd.read_csv(no_avd["table"], nrows=1).columns
    assert not set(AVD_COLUMNS) & set(columns) and "scale" not in columns


def test_train_writes_no_emoconfidnet_and_records_has_avd_false(no_avd):
    run_dir = no_avd["run_dir"]
    assert not (run_dir / "emoconfidnet.keras").exists() and (run_dir / "classifier.keras").is_file()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["has_avd"] is False and info["scale"] is None and info["training"] == "raw"
    assert "emoconfidnet" not in info["protocol"]["methods"]
    validation = pd.read_csv(run_dir / "validation.csv")
    assert "emoconfidnet" not in validation.columns and "top2_margin" in validation.columns
    run = load_run(run_dir)
    assert run.has_avd is False and run.emoconfidnet is None and run.network is run.classifier


def test_load_run_refuses_a_has_avd_that_is_not_true_or_false(no_avd, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(no_avd["run_dir"], copy)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "has_avd": "no"}))
    with pytest.raises(EmoconfError, match=r"run\.json: 'has_avd' must be true or false"):
        load_run(copy)


def test_a_run_saying_it_has_avd_still_needs_emoconfidnet_keras(no_avd, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(no_avd["run_dir"], copy)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "has_avd": True}))
    with pytest.raises(EmoconfError, match=r"emoconfidnet\.keras: missing \(the classifier with its EmoConfidNet"):
        load_run(copy)


# === export ===

def test_export_refuses_score_emoconfidnet_naming_avd(no_avd, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["export", str(no_avd["run_dir"]), "--out", str(out), "--score", "emoconfidnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{no_avd['run_dir']}: --score emoconfidnet: not available: the corpus has no AVD ratings" in err
    with pytest.raises(EmoconfError, match=r": score emoconfidnet: not available: the corpus has no AVD ratings"):
        export_run(no_avd["run_dir"], out, score="emoconfidnet")
    assert not out.exists()  # nothing left behind


def test_served_confidence_equals_the_runs_test_confidence(no_avd):
    corpus = no_avd["corpus"]
    test = pd.read_csv(no_avd["run_dir"] / "test.csv")
    rows = pd.Series(np.arange(len(corpus)), index=corpus.ids)[test["id"]].to_numpy()
    features = tf.constant(corpus.features[rows].astype(np.float32))
    model = tf.saved_model.load(str(no_avd["version"]))
    predicted = model.signatures["predict"](features=features)
    assert [c.decode() for c in predicted["classes"].numpy()] == test["predicted"].tolist()
    served = model.signatures["confidence"](features=features)
    np.testing.assert_allclose(served["confidence"].numpy(), test["confidence"].to_numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["baseline_confidence"].numpy(), test["baseline_confidence"].to_numpy(),
                               atol=1e-5, rtol=0)


def test_signatures_have_no_emoconfidnet_confidence(no_avd):
    found = signatures(no_avd["version"])
    assert not [name for name, info in found.items() if "emoconfidnet_confidence" in info.outputs]
    for name in ("confidence", "threshold", "batch_threshold"):
        assert "baseline_confidence" in found[name].outputs and "confidence" in found[name].outputs
    score = json.loads((no_avd["version"] / "assets" / "score.json").read_text())
    assert score["has_avd"] is False and score["score"] == "recommended"
    assert "emoconfidnet" not in json.dumps(score["components"])


def test_model_card_says_no_avd_ratings(no_avd):
    card = (no_avd["version"] / "assets" / "model_card.md").read_text()
    assert card.splitlines()[0] == "# Emotion classifier model card (no EmoConfidNet: no AVD ratings) — SYNTHETIC"
    assert f"| AVD | {NO_AVD_RATINGS} |" in card
    assert "emoconfidnet_confidence" not in card and "| AVD scale |" not in card
    assert "| epochs | classifier " in card and "no EmoConfidNet (no AVD ratings) |" in card


# === inspect and predict ===

def test_inspect_prints_no_avd_ratings(no_avd, capsys):
    assert main(["inspect", str(no_avd["base"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3] == f"AVD: {NO_AVD_RATINGS}; no emoconfidnet_confidence output"
    assert not [line for line in lines if line.strip().startswith("output emoconfidnet_confidence")]


def test_predict_on_a_features_csv_answers_every_row(no_avd, capsys):
    assert main(["predict", "--model", str(no_avd["base"]), str(no_avd["table"])]) == 0
    captured = capsys.readouterr()
    assert "confidence recommended (" in captured.err and captured.err.rstrip().endswith("; no AVD ratings "
                                                                                         "(no EmoConfidNet)")
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["id", "class", "confidence"]
    assert len(lines) == 1 + len(no_avd["corpus"])  # header + one line per utterance
