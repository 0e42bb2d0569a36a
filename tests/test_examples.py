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


def start_example(script: str, *args: str, cwd: Path, logs: Path) -> subprocess.Popen:
    """Starts `python examples/<script> ...` in `cwd` as a user would run it, its output to files in `logs`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    logs.mkdir(parents=True, exist_ok=True)
    # files, not pipes: a full pipe would stall a run while another one is collected
    with open(logs / "stdout.txt", "wb") as stdout, open(logs / "stderr.txt", "wb") as stderr:
        return subprocess.Popen([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                                stdout=stdout, stderr=stderr)


def finish(process: subprocess.Popen, logs: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    """Waits for a run of `start_example`: its exit status and output, failing the test on an error if `check`."""
    process.wait(timeout=300)
    stdout, stderr = ((logs / name).read_text(errors="replace") for name in ("stdout.txt", "stderr.txt"))
    if check and process.returncode != 0:
        script = Path(process.args[1]).name
        pytest.fail(f"{script} exited with {process.returncode}:\n{stdout}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`{name: (completed process, its working folder)}` of the runs below, two or three at a time (a process each).

    "classifier" trains and saves a classifier on a tiny synthetic features table (`tiny.csv` and
    `classifier.keras` in its folder); "attached" and "other_features" load it, so they start once it is saved.
    """
    folders = {name: tmp_path_factory.mktemp(name)
               for name in ("classifier", "defaults", "head_synthetic", "attached", "other_features")}
    logs = tmp_path_factory.mktemp("logs")
    table = write_features_table(make_synthetic_corpus(n_utterances=300, num_features=12, seed=3),
                                 folders["classifier"] / "tiny.csv")
    classifier = folders["classifier"] / "classifier.keras"
    arguments = {
        "classifier": ("train_classifier.py", "--table", str(table), "--epochs", "2", "--out", classifier.name),
        "defaults": ("train_classifier.py", *TINY, "--raw"),
        "head_synthetic": ("train_confidence_head.py", *TINY),
        "attached": ("train_confidence_head.py", "--table", str(table), "--classifier", str(classifier),
                     "--epochs", "2", "--rejection", "0.3"),
        "other_features": ("train_confidence_head.py", *TINY[:2], "--num-features", "8",
                           "--classifier", str(classifier)),
    }

    def start(name):
        return start_example(*arguments[name], cwd=folders[name], logs=logs / name)

    started = {name: start(name) for name in ("classifier", "defaults", "head_synthetic")}
    done = {"classifier": finish(started.pop("classifier"), logs / "classifier")}
    started.update({name: start(name) for name in ("attached", "other_features")})
    for name, process in started.items():
        done[name] = finish(process, logs / name, check=name != "other_features")
    return {name: (completed, folders[name]) for name, completed in done.items()}


def test_train_classifier_reads_a_table_and_saves_the_model(runs):
    completed, folder = runs["classifier"]
    stdout = completed.stdout
    assert f"{folder / 'tiny.csv'}: 300 utterances, 12 features" in stdout
    assert "conflict filter: dropping" in stdout
    assert "one batch: (128, 12) float32 -> (128, 5) float32" in stdout
    assert "trained for 2 epoch(s)" in stdout
    assert "test UAR" in stdout and "test macro F1" in stdout
    assert (folder / "classifier.keras").exists()


def test_train_classifier_defaults_to_the_labelled_synthetic_corpus(runs):
    completed, cwd = runs["defaults"]
    stdout = completed.stdout
    assert "SYNTHETIC corpus (generated, not real speech): 300 utterances, 12 features" in stdout
    assert "conflict filter" not in stdout  # --raw
    assert "test accuracy" in stdout
    assert not list(cwd.iterdir())  # nothing saved without --out


def test_train_confidence_head_attaches_to_a_saved_classifier_and_rejects(runs):
    completed, _ = runs["attached"]
    folder = runs["classifier"][1]
    stdout = completed.stdout
    assert f"loaded the classifier from {folder / 'classifier.keras'}" in stdout
    assert "targets of the first training utterances:" in stdout
    assert "trained the head for 2 epoch(s)" in stdout
    assert "no rejection: F1" in stdout
    assert "EmoConfidNet at 30% rejection: threshold" in stdout
    assert "top-2 margin at 30% rejection: threshold" in stdout
    assert re.search(r"^\s*id\s+label\s+predicted\s+confidence$", stdout, re.MULTILINE)  # the rejected utterances


def test_train_confidence_head_trains_its_own_classifier_on_synthetic_data(runs):
    stdout = runs["head_synthetic"][0].stdout
    assert "SYNTHETIC corpus" in stdout
    assert "trained the classifier for 2 epoch(s)" in stdout
    assert "EmoConfidNet at 20% rejection" in stdout


def test_train_confidence_head_refuses_a_classifier_of_other_features(runs):
    completed, _ = runs["other_features"]
    assert completed.returncode != 0
    assert "takes 12 features and predicts 5 classes, but the data has 8 features" in completed.stderr
