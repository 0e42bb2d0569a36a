"""The bad-input catalogue (docs/errors.md): one test per row, through the CLI as a user meets it.

Every row: exit status 2 (or 0 with a warning where the data is usable), one line on stderr naming
the file, row or column and what to do, and no traceback.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from emoconf_tf.cli import main
from emoconf_tf.corpus import write_features_table
from emoconf_tf.synthetic import make_synthetic_corpus

TINY = ["--max-epochs", "1", "--batch-size", "64", "--methods", "paper"]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("emoconf "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def table_frame():
    corpus = make_synthetic_corpus(n_utterances=200, num_features=6, seed=4)
    from emoconf_tf.corpus import corpus_frame

    return corpus_frame(corpus)


def write(frame, path):
    frame.to_csv(path, index=False)
    return str(path)


def test_missing_path(capsys, tmp_path):
    code, _, err = run(capsys, "reproduce", "--table", str(tmp_path / "nope.csv"))
    assert_one_line_error(code, err)
    assert err == (f"emoconf reproduce: error: {tmp_path / 'nope.csv'}: no such file; give the path of a features "
                   "table (.csv or .parquet)\n")


def test_directory_given_for_a_file(capsys, tmp_path):
    code, _, err = run(capsys, "reproduce", "--table", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path), "is a directory")


def test_empty_file(capsys, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    code, _, err = run(capsys, "train", "--table", str(tmp_path / "empty.csv"))
    assert_one_line_error(code, err, "empty.csv", "empty")


def test_table_without_label_column(capsys, tmp_path, table_frame):
    path = write(table_frame.drop(columns=["label"]), tmp_path / "t.csv")
    code, _, err = run(capsys, "reproduce", "--table", path)
    assert_one_line_error(code, err, "t.csv", "missing column(s) label")


@pytest.mark.parametrize("column", ["arousal", "valence", "dominance"])
def test_table_with_one_avd_column_missing(capsys, tmp_path, table_frame, column):
    path = write(table_frame.drop(columns=[column]), tmp_path / "t.csv")
    code, _, err = run(capsys, "reproduce", "--table", path)
    assert_one_line_error(code, err, "t.csv", f"but not {column}; give all three AVD columns")


def test_non_numeric_feature_column_is_named(capsys, tmp_path, table_frame):
    table_frame["gender"] = "f"
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"))
    assert_one_line_error(code, err, "feature column 'gender' is not numeric", "synthetic_00")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_infinite_features_name_the_rows(capsys, tmp_path, table_frame, value):
    table_frame.loc[3, "synthetic_feature_0"] = value
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"))
    assert_one_line_error(code, err, "NaN or infinite feature values", table_frame.loc[3, "id"])


def test_duplicate_ids(capsys, tmp_path, table_frame):
    table_frame.loc[5, "id"] = table_frame.loc[4, "id"]
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"))
    assert_one_line_error(code, err, "duplicate id", table_frame.loc[4, "id"])


def test_label_outside_classes_is_dropped_and_counted(capsys, tmp_path, table_frame):
    path = write(table_frame, tmp_path / "t.csv")
    code, out, _ = run(capsys, "reproduce", "--table", path, "--classes", "angry,happy,neutral,sad",
                       "--out", str(tmp_path / "out"), "--trainings", "raw", *TINY)
    assert code == 0
    n_disgusted = int((table_frame.label == "disgusted").sum())
    assert f"dropped (label not in --classes): disgusted {n_disgusted}" in out


def test_class_with_no_training_rows_after_filtering(capsys, tmp_path, table_frame):
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"),
                       "--filter-rules", "sad=high_arousal|low_arousal", "--trainings", "filtered", *TINY,
                       "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "sad have no training rows", "--classes")


def test_fold_with_empty_validation_or_test(capsys, tmp_path, table_frame):
    table_frame.loc[table_frame.split == "validation", "split"] = "train"
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"),
                       "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "no 'validation' rows")


def test_single_group_with_cv_group(capsys, tmp_path, table_frame):
    table_frame["group"] = "session1"
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"), "--cv", "group",
                       "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "at least 3 groups", "found 1: session1")


@pytest.mark.parametrize("scale, message", [
    ("7", "--scale '7': expected two numbers 'LO,HI', e.g. '1,7'"),
    ("7,1", "scale '7,1': expected LO < HI, both finite"),
    ("a,b", "--scale 'a,b': expected two numbers 'LO,HI', e.g. '1,7'"),
    ("1,2,3", "--scale '1,2,3': expected two numbers 'LO,HI', e.g. '1,7'"),
])
def test_malformed_scale(capsys, tmp_path, table_frame, scale, message):
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"), "--scale", scale)
    assert_one_line_error(code, err)
    assert err == f"emoconf reproduce: error: {message}\n"


def test_avd_outside_the_scale_warns_and_keeps(capsys, tmp_path, table_frame):
    table_frame.loc[0, "arousal"] = 7.4
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"), "--trainings", "raw",
                       *TINY, "--out", str(tmp_path / "o"))
    assert code == 0
    assert "warning:" in err and "arousal value(s) outside the scale 1-7" in err and table_frame.loc[0, "id"] in err


def test_run_directory_from_an_older_version(capsys, tmp_path, tiny_export):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_export[1], run_dir)  # conftest's tiny trained run
    capsys.readouterr()  # whatever training it printed, were it trained for this test
    info = json.loads((run_dir / "run.json").read_text())
    info.update(format=0, version="0.0.1")
    (run_dir / "run.json").write_text(json.dumps(info))
    code, _, err = run(capsys, "export", str(run_dir), "--out", str(tmp_path / "sm"))
    assert_one_line_error(code, err, "emoconf-tf 0.0.1", "retrain")


def test_output_directory_from_an_older_version(capsys, tmp_path, table_frame):
    out = tmp_path / "out"
    out.mkdir()
    (out / "protocol.json").write_text(json.dumps({"version": "0.0.1", "format": 0}))
    code, _, err = run(capsys, "reproduce", "--table", write(table_frame, tmp_path / "t.csv"), "--out", str(out))
    assert_one_line_error(code, err, "emoconf-tf 0.0.1", "use another --out")


def test_debug_shows_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "emoconf_tf.cli", "--debug", "reproduce", "--table",
                             str(tmp_path / "nope.csv")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" in result.stderr and "EmoconfError" in result.stderr


def test_reproduce_killed_after_its_first_fold_resumes_to_identical_results(tmp_path):
    corpus = make_synthetic_corpus(n_utterances=240, num_features=12, seed=6)
    # three sessions -> three folds: enough to kill after the first and resume the other two
    sessions = np.array([f"session{i % 3 + 1}" for i in range(len(corpus))], dtype=object)
    table = write_features_table(dataclasses.replace(corpus, group=sessions), tmp_path / "t.csv")
    args = [sys.executable, "-m", "emoconf_tf.cli", "reproduce", "--table", str(table), "--cv", "group",
            "--trainings", "raw", "--max-epochs", "2", "--batch-size", "64", "--methods", "paper"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # The uninterrupted reference runs alongside the killed and resumed runs (the machine has two cores or more).
    clean, clean_log = tmp_path / "clean", tmp_path / "clean_stderr.txt"
    with open(clean_log, "wb") as stderr:  # a file, not a pipe: a full pipe would stall the run
        clean_run = subprocess.Popen([*args, "--out", str(clean)], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    first = killed / "parts" / "fold0_seed0_raw.json"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert first.exists(), "the first fold never finished"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # killed mid-way: the last fold unfinished, and no table or manifest (written after every fold)
    assert not (killed / "parts" / "fold2_seed0_raw.json").exists()
    assert not (killed / "results.csv").exists() and not (killed / "manifest.json").exists()
    resumed = subprocess.run([*args, "--out", str(killed)], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "reused 1 finished" in resumed.stdout
    assert clean_run.wait(timeout=600) == 0, clean_log.read_text(errors="replace")[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "results.csv"), pd.read_csv(clean / "results.csv"))
    assert not list(killed.rglob(".*.tmp"))
