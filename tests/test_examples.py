"""The `model.fit` scripts in `examples/`, run tiny in a subprocess as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emoconf_tf.corpus import write_features_table
from emoconf_tf.synthetic import make_synthetic_corpus

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--size", "300", "--num-features", "12", "--epochs", "2"]


def run_example(script: str, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and completed.returncode != 0:
        pytest.fail(f"{script} exited with {completed.returncode}:\n{completed.stdout}\n{completed.stderr[-3000:]}")
    return completed


@pytest.fixture(scope="module")
def table_and_classifier(tmp_path_factory):
    """A tiny synthetic features table, and the classifier `train_classifier.py` trains and saves on it."""
    folder = tmp_path_factory.mktemp("examples")
    table = write_features_table(make_synthetic_corpus(n_utterances=300, num_features=12, seed=3), folder / "tiny.csv")
    completed = run_example(
        "train_classifier.py", "--table", str(table), "--epochs", "2", "--out", "classifier.keras", cwd=folder
    )
    return table, folder / "classifier.keras", completed.stdout


def test_train_classifier_reads_a_table_and_saves_the_model(table_and_classifier):
    table, classifier, stdout = table_and_classifier
    assert f"{table}: 300 utterances, 12 features" in stdout
    assert "conflict filter: dropping" in stdout
    assert "one batch: (128, 12) float32 -> (128, 5) float32" in stdout
    assert "trained for 2 epoch(s)" in stdout
    assert "test UAR" in stdout and "test macro F1" in stdout
    assert classifier.exists()


def test_train_classifier_defaults_to_the_labelled_synthetic_corpus(tmp_path):
    stdout = run_example("train_classifier.py", *TINY, "--raw", cwd=tmp_path).stdout
    assert "SYNTHETIC corpus (generated, not real speech): 300 utterances, 12 features" in stdout
    assert "conflict filter" not in stdout  # --raw
    assert "test accuracy" in stdout
    assert not list(tmp_path.iterdir())  # nothing saved without --out


def test_train_confidence_head_attaches_to_a_saved_classifier_and_rejects(table_and_classifier, tmp_path):
    table, classifier, _ = table_and_classifier
    stdout = run_example(
        "train_confidence_head.py", "--table", str(table), "--classifier", str(classifier), "--epochs", "2",
        "--rejection", "0.3", cwd=tmp_path,
    ).stdout
    assert f"loaded the classifier from {classifier}" in stdout
    assert "targets of the first training utterances:" in stdout
    assert "trained the head for 2 epoch(s)" in stdout
    assert "no rejection: F1" in stdout
    assert "EmoConfidNet at 30% rejection: threshold" in stdout
    assert "top-2 margin at 30% rejection: threshold" in stdout
    assert re.search(r"^\s*id\s+label\s+predicted\s+confidence$", stdout, re.MULTILINE)  # the rejected utterances


def test_train_confidence_head_trains_its_own_classifier_on_synthetic_data(tmp_path):
    stdout = run_example("train_confidence_head.py", *TINY, cwd=tmp_path).stdout
    assert "SYNTHETIC corpus" in stdout
    assert "trained the classifier for 2 epoch(s)" in stdout
    assert "EmoConfidNet at 20% rejection" in stdout


def test_train_confidence_head_refuses_a_classifier_of_other_features(table_and_classifier, tmp_path):
    _, classifier, _ = table_and_classifier
    completed = run_example(
        "train_confidence_head.py", *TINY[:2], "--num-features", "8", "--classifier", str(classifier), cwd=tmp_path,
        check=False,
    )
    assert completed.returncode != 0
    assert "takes 12 features and predicts 5 classes, but the data has 8 features" in completed.stderr
