"""`emoconf predict`: an exported SavedModel on features tables and wav files, equal to its signatures.

Two tiny models: a 16-feature SYNTHETIC one (300 utterances, 2 epochs; conftest's `tiny_export`), and an
eGeMAPS v02 one trained with `emoconf train --feature-set egemaps_v02` on a table extracted from 40
generated 1 s, 16 kHz wavs (conftest's `write_wav`: sine + noise; labels and AVD random), so that audio goes
through openSMILE.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from emoconf_tf import EmoconfError
from emoconf_tf.cli import main
from emoconf_tf.corpus import META_COLUMNS, corpus_frame
from emoconf_tf.serving.prediction import ExportedModel, predict, read_model_assets
from emoconf_tf.serving.prediction_inputs import extract_features_safely
from emoconf_tf.serving.versions import version_dir

D = 16
EGEMAPS_D = 88
CLASSES = ("angry", "happy", "neutral", "sad")


@dataclasses.dataclass
class Model:
    base: Path           # savedmodels/NAME
    table: Path          # a features table the model takes
    frame: pd.DataFrame  # that table
    wavs: list = dataclasses.field(default_factory=list)


def _feature_values(frame: pd.DataFrame) -> np.ndarray:
    """float32 `[N, D]`: the feature columns of a features table (every column but id .. split, scale, ...)."""
    return frame.drop(columns=[c for c in META_COLUMNS if c in frame.columns]).to_numpy(np.float32)


@pytest.fixture(scope="module")
def synthetic(tiny_export, tmp_path_factory) -> Model:
    corpus, _, result = tiny_export  # conftest: trained and exported once per session
    frame = corpus_frame(corpus.subset(np.arange(12)))
    table = tmp_path_factory.mktemp("synthetic") / "table.csv"
    frame.to_csv(table, index=False)
    return Model(result.path.parent, table, frame)


@pytest.fixture(scope="module")
def egemaps(tmp_path_factory, write_wav) -> Model:
    root = tmp_path_factory.mktemp("egemaps")
    wavs = [write_wav(root / f"utt{i:02d}.wav", seed=i, seconds=1.0) for i in range(40)]
    # TensorFlow is loaded already: openSMILE runs in a child process (see preload_opensmile).
    features = extract_features_safely(wavs, "egemaps_v02", num_workers=2)
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({
        "id": [w.stem for w in wavs],
        "label": np.resize(CLASSES, len(wavs)),
        "arousal": rng.uniform(1, 7, len(wavs)).round(2),
        "valence": rng.uniform(1, 7, len(wavs)).round(2),
        "dominance": rng.uniform(1, 7, len(wavs)).round(2),
        "split": ["train"] * 24 + ["validation"] * 8 + ["test"] * 8,
        "scale": "1,7",  # the AVD scale, as `emoconf export-table` records it
    })
    frame = pd.concat([meta, features.reset_index(drop=True)], axis=1)
    table = root / "egemaps.csv"
    frame.to_csv(table, index=False, float_format="%.9g")  # float32 round-trips exactly
    run_dir = root / "run"
    assert main(["train", "--table", str(table), "--feature-set", "egemaps_v02", "--training", "raw",
                 "--max-epochs", "2", "--batch-size", "16", "--out", str(run_dir)]) == 0
    base = root / "savedmodels" / "egemaps"
    assert main(["export", str(run_dir), "--out", str(base)]) == 0
    return Model(base, table, frame, wavs)


def _signature(base, name, **inputs):
    model = tf.saved_model.load(str(version_dir(base)))
    return {key: value.numpy() for key, value in model.signatures[name](**inputs).items()}


# === Features tables ===

def test_predict_on_a_table_equals_the_threshold_signature(synthetic):
    result = predict(synthetic.base, [synthetic.table], rejection=0.3)
    features = tf.constant(_feature_values(synthetic.frame))
    expected = _signature(synthetic.base, "threshold", features=features, rejection=tf.constant(0.3))
    classes = _signature(synthetic.base, "predict", features=features)["classes"]
    assert result.signature == "threshold" and result.rejection == 0.3
    assert result.threshold == expected["threshold"]
    assert [p.id for p in result.predictions] == list(synthetic.frame["id"])
    assert [p.source for p in result.predictions] == [str(synthetic.table)] * len(synthetic.frame)
    np.testing.assert_array_equal([p.confidence for p in result.predictions], expected["confidence"])
    np.testing.assert_array_equal([p.accept for p in result.predictions], expected["accept"])
    assert [p.class_name for p in result.predictions] == [c.decode() for c in classes]


def test_predict_without_rejection_is_serving_default_at_the_default_rate(synthetic):
    from emoconf_tf.serving.export import serialize_examples

    result = predict(synthetic.base, [synthetic.table])
    features = _feature_values(synthetic.frame)
    served = _signature(synthetic.base, "serving_default", examples=tf.constant(serialize_examples(features)))
    assert result.signature == "serving_default" and result.rejection == pytest.approx(0.2)
    np.testing.assert_array_equal([p.confidence for p in result.predictions], served["confidence"])
    np.testing.assert_array_equal([p.accept for p in result.predictions], served["accept"])
    np.testing.assert_array_equal([p.accept for p in result.predictions],
                                  served["confidence"] >= np.float32(result.threshold))
    for prediction, probabilities in zip(result.predictions, served["probabilities"]):
        np.testing.assert_array_equal(list(prediction.probabilities.values()), probabilities)


def test_table_columns_are_matched_by_name_not_position(synthetic, tmp_path):
    shuffled = synthetic.frame.sample(frac=1.0, axis=1, random_state=0).assign(extra=1.5)
    path = tmp_path / "shuffled.parquet"
    shuffled.to_parquet(path, index=False)
    expected = predict(synthetic.base, [synthetic.table], rejection=0.2).to_records()
    assert predict(synthetic.base, [path], rejection=0.2).to_records() == [
        {**row, "source": str(path)} for row in expected]


def test_missing_feature_columns_are_named(synthetic, tmp_path):
    path = tmp_path / "missing.csv"
    synthetic.frame.drop(columns=["synthetic_feature_03", "synthetic_feature_11"]).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=rf"missing.csv: missing 2 of the model's {D} feature columns: "
                                           r"synthetic_feature_03, synthetic_feature_11 \(columns are matched by name"):
        predict(synthetic.base, [path])


def test_table_without_id_column_uses_file_and_row_number(synthetic, tmp_path):
    path = tmp_path / "noid.csv"
    synthetic.frame.drop(columns=["id"]).head(2).to_csv(path, index=False)
    assert [p.id for p in predict(synthetic.base, [path]).predictions] == [f"{path}:1", f"{path}:2"]


def test_version_picks_a_version_and_a_missing_one_is_named(synthetic, tmp_path):
    base = tmp_path / "two"
    shutil.copytree(version_dir(synthetic.base), base / "1")
    shutil.copytree(version_dir(synthetic.base), base / "2")
    assert version_dir(base) == base / "2"
    assert predict(base, [synthetic.table], version=1).model_dir == base / "1"
    with pytest.raises(EmoconfError, match=r"no version 3 \(versions: 1, 2\)"):
        predict(base, [synthetic.table], version=3)


def test_unknown_input_kind_is_refused(synthetic, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(EmoconfError, match=r"notes.txt: not an audio file \(.wav, .flac, .ogg\) or a features table"):
        predict(synthetic.base, [path])


# === Audio ===

def test_train_records_the_feature_set_and_export_ships_it(egemaps):
    directory = version_dir(egemaps.base)
    run = json.loads((egemaps.base.parent.parent / "run" / "run.json").read_text())
    assert run["feature_set"] == "egemaps_v02"
    assets = read_model_assets(directory)
    assert assets.feature_set == "egemaps_v02" and len(assets.feature_names) == EGEMAPS_D
    assert "openSMILE eGeMAPSv02 functionals (`feature_set.txt`: egemaps_v02" in (
        directory / "assets" / "model_card.md").read_text()


def test_predict_on_a_wav_equals_predict_on_its_table_row(egemaps):
    wav = egemaps.wavs[5]
    from_audio = predict(egemaps.base, [wav], rejection=0.25).predictions
    from_table = predict(egemaps.base, [egemaps.table], rejection=0.25).predictions[5]
    assert len(from_audio) == 1 and from_audio[0].id == str(wav) and from_table.id == "utt05"
    assert from_audio[0].class_name == from_table.class_name
    assert from_audio[0].confidence == pytest.approx(from_table.confidence, abs=1e-6)
    assert from_audio[0].accept == from_table.accept


def test_console_predict_on_wavs_in_a_fresh_process_equals_the_library(egemaps):
    # The user's path: openSMILE is loaded before TensorFlow in the same process (see preload_opensmile).
    wavs = [str(w) for w in egemaps.wavs[:6]]
    result = subprocess.run([sys.executable, "-m", "emoconf_tf.cli", "predict", "--model", str(egemaps.base),
                             "--json", "--workers", "2", *wavs],
                            capture_output=True, text=True, timeout=180,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout)
    expected = predict(egemaps.base, wavs).to_records()
    assert [r["id"] for r in records] == wavs
    assert [r["class"] for r in records] == [r["class"] for r in expected]
    np.testing.assert_allclose([r["confidence"] for r in records], [r["confidence"] for r in expected], atol=1e-6)
    assert "(egemaps_v02 features), confidence recommended (" in result.stderr  # the default export names its score
    assert "serving_default: rejection 0.2 -> " in result.stderr


def test_feature_set_must_match_the_table_dimension(egemaps, tmp_path, capsys):
    code = main(["train", "--table", str(egemaps.table), "--feature-set", "compare_2016", "--out", str(tmp_path / "r")])
    assert code == 2
    assert (f"--feature-set compare_2016: compare_2016 has 6373 features but the table has {EGEMAPS_D}"
            in capsys.readouterr().err)


def test_synthetic_model_refuses_a_wav_and_asks_for_a_table(synthetic, egemaps, capsys):
    assert main(["predict", "--model", str(synthetic.base), str(egemaps.wavs[0])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emoconf predict: error: {egemaps.wavs[0]}: the model ")
    assert "was trained on synthetic features, so it cannot extract them from audio; give a features table" in err
    assert err.count("\n") == 1


def test_export_without_a_feature_set_refuses_a_wav(synthetic, egemaps, tmp_path):
    old = tmp_path / "old" / "1"  # an export from before feature_set.txt existed
    shutil.copytree(version_dir(synthetic.base), old)
    (old / "assets" / "feature_set.txt").unlink()
    with pytest.raises(EmoconfError, match=r"trained on unknown \(a features table trained without --feature-set\) "
                                           r"features, so it cannot extract them from audio"):
        predict(old.parent, [egemaps.wavs[0]])


# === CLI ===

def test_cli_prints_a_header_and_one_line_per_row(synthetic, capsys):
    assert main(["predict", "--model", str(synthetic.base), "--rejection", "0.5", str(synthetic.table)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["id", "class", "confidence", "accept"]
    assert len(lines) == 1 + len(synthetic.frame)
    expected = predict(synthetic.base, [synthetic.table], rejection=0.5).predictions
    for line, prediction in zip(lines[1:], expected):
        assert line.split() == [prediction.id, prediction.class_name, f"{prediction.confidence:.6f}",
                                "yes" if prediction.accept else "no"]
    assert "threshold: rejection 0.5 -> threshold" in captured.err


def test_cli_json_parses_and_equals_the_library(synthetic, egemaps, capsys):
    assert main(["predict", "--model", str(synthetic.base), "--json", str(synthetic.table)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records == predict(synthetic.base, [synthetic.table]).to_records()
    assert set(records[0]) == {"id", "source", "class", "confidence", "score", "accept", "rejection", "threshold",
                               "threshold_source", "rejection_mode", "probabilities"}
    assert {record["rejection_mode"] for record in records} == {"global"}
    assert isinstance(records[0]["accept"], bool) and sum(records[0]["probabilities"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("rejection", ["1.0", "-0.1", "nan"])
def test_bad_rejection_is_a_one_line_error(synthetic, capsys, rejection):
    assert main(["predict", "--model", str(synthetic.base), "--rejection", rejection, str(synthetic.table)]) == 2
    err = capsys.readouterr().err
    assert err == (f"emoconf predict: error: --rejection {float(rejection)!r} is outside [0, 1); give a fraction, "
                   "e.g. 0.2 for 20%\n")


def test_exported_model_loaded_once_serves_several_calls(synthetic):
    model = ExportedModel(synthetic.base)
    first = predict(model, [synthetic.table], rejection=0.1)
    second = predict(model, [synthetic.table, synthetic.table], rejection=0.1)
    assert second.to_records()[: len(first.predictions)] == first.to_records()
    assert len(second.predictions) == 2 * len(first.predictions)
