"""Damaged run directories (`load_run`, `emoconf export`) and SavedModel versions (`emoconf predict`, `emoconf inspect`).

Every part is deleted, truncated to half its bytes, or overwritten with garbage, in a copy of conftest's tiny run
and export (trained and exported once per session); the error must be one `EmoconfError` line naming the file.
"""

import hashlib
import io
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.cli import main
from emoconf_tf.corpus import corpus_frame
from emoconf_tf.serving.inspect import describe
from emoconf_tf.serving.model_dir import check_model_dir
from emoconf_tf.serving.prediction import predict
from emoconf_tf.serving.rundir import MANIFEST, load_run

MEMBER = "ensemble_member_1.keras"
SHARD = "variables/variables.data-00000-of-00001"  # one shard: a tiny model on one CPU
GARBAGE = b"\x00\xff not what was written here \xfe\n" * 40


def _delete(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _truncate(path: Path) -> None:
    """Keeps the first half of the bytes, cut inside a line (a text file cut just after a line break reads as a
    shorter file edited by hand: only a count, where there is one, can tell)."""
    data = path.read_bytes()
    end = len(data) // 2
    while end > 1 and data[end - 1:end] == b"\n":
        end -= 1
    path.write_bytes(data[:end])


def _garbage(path: Path) -> None:
    path.write_bytes(GARBAGE)


DAMAGES = {"deleted": _delete, "truncated": _truncate, "garbage": _garbage}


def _record(run_dir: Path, name: str) -> None:
    """Records `name`'s current size and SHA-256 in the run's manifest.json, as train_run would have."""
    manifest = json.loads((run_dir / MANIFEST).read_text())
    data = (run_dir / name).read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (run_dir / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def run_dir(tiny_export, tmp_path_factory) -> Path:
    """conftest's tiny run, with an ensemble member listed in run.json (a copy of the classifier if it has none)."""
    run_dir = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(tiny_export[1], run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    if not info.get("ensemble_members"):
        shutil.copyfile(run_dir / "classifier.keras", run_dir / MEMBER)
        (run_dir / "run.json").write_text(json.dumps({**info, "ensemble_members": [MEMBER]}, indent=2) + "\n")
        _record(run_dir, MEMBER)
        _record(run_dir, "run.json")
    assert MEMBER in json.loads((run_dir / "run.json").read_text())["ensemble_members"]
    return run_dir


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


@pytest.fixture(scope="module")
def model(tiny_export, tmp_path_factory) -> dict:
    """conftest's tiny export (a version directory) and a features table it takes."""
    corpus, _, result = tiny_export
    assert (result.path / SHARD).is_file()
    table = tmp_path_factory.mktemp("damaged_model") / "table.csv"
    corpus_frame(corpus.subset(np.arange(4))).to_csv(table, index=False)
    return {"path": result.path, "table": table}


@pytest.fixture
def model_copy(model, tmp_path) -> Path:
    """A copy of the export as version 1 of a fresh model base path."""
    copy = tmp_path / "savedmodels" / "tiny" / "1"
    shutil.copytree(model["path"], copy)
    return copy


# === Run directories: load_run ===

RUN_PARTS = ["classifier.keras", "emoconfidnet.keras", MEMBER, "run.json", "validation.csv", "results.csv",
             "feature_names.txt", MANIFEST]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("part", RUN_PARTS)
def test_damaged_run_part_is_named_in_one_line(run_copy, part, damage):
    DAMAGES[damage](run_copy / part)
    with pytest.raises(EmoconfError) as caught:
        load_run(run_copy)
    message = str(caught.value)
    assert part in message and str(run_copy) in message and "\n" not in message, message


def test_missing_classifier_says_what_to_do(run_copy):
    (run_copy / "classifier.keras").unlink()
    with pytest.raises(EmoconfError) as caught:
        load_run(run_copy)
    assert str(caught.value) == (
        f"{run_copy / 'classifier.keras'}: missing (the classifier); restore it from a backup of the run, or "
        "train the run again (`emoconf train ... --out NEW_DIR`)")


def test_truncated_keras_archive_gives_its_size_against_the_manifest(run_copy):
    path = run_copy / "emoconfidnet.keras"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(EmoconfError, match=rf"emoconfidnet.keras: truncated \(.*; 1000 of the {size} bytes "
                                           r"manifest.json records\)"):
        load_run(run_copy)


def test_keras_archive_with_other_bytes_of_the_same_size_is_damaged(run_copy):
    path = run_copy / "classifier.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EmoconfError, match=r"classifier.keras: damaged \(.*its SHA-256 differs from manifest.json"):
        load_run(run_copy)


def test_keras_archive_not_in_the_manifest_and_not_a_zip_is_named(run_copy):
    manifest = json.loads((run_copy / MANIFEST).read_text())
    del manifest["files"][MEMBER]
    (run_copy / MANIFEST).write_text(json.dumps(manifest))
    (run_copy / MEMBER).write_bytes(GARBAGE)
    with pytest.raises(EmoconfError, match=rf"{MEMBER}: not a Keras archive \(not a zip file; ensemble member 1"):
        load_run(run_copy)


def test_zip_that_keras_cannot_load_is_named_with_keras_reason(run_copy):
    # A zip without config.json, recorded in the manifest: keras raises KeyError.
    buffer = io.BytesIO()
    with zipfile.ZipFile(run_copy / MEMBER) as original, zipfile.ZipFile(buffer, "w") as rewritten:
        for name in original.namelist():
            if name != "config.json":
                rewritten.writestr(name, original.read(name))
    (run_copy / MEMBER).write_bytes(buffer.getvalue())
    _record(run_copy, MEMBER)
    with pytest.raises(EmoconfError, match=rf"{MEMBER}: not a loadable Keras archive \(.*KeyError: .*config.json"):
        load_run(run_copy)


def test_keras_archive_with_another_models_weights_fails_in_one_line_without_keras_warnings(run_copy, tmp_path,
                                                                                             capsys):
    # Keras warns ("Skipping nested container ...") for each layer it cannot fill, then raises ValueError.
    with zipfile.ZipFile(run_copy / "classifier.keras") as classifier:
        other_weights = classifier.read("model.weights.h5")
    buffer = io.BytesIO()
    with zipfile.ZipFile(run_copy / "emoconfidnet.keras") as original, zipfile.ZipFile(buffer, "w") as rewritten:
        for name in original.namelist():
            rewritten.writestr(name, other_weights if name == "model.weights.h5" else original.read(name))
    (run_copy / "emoconfidnet.keras").write_bytes(buffer.getvalue())
    _record(run_copy, "emoconfidnet.keras")
    with warnings.catch_warnings(record=True) as caught:  # pytest would swallow them: look for them here
        warnings.simplefilter("always")
        assert main(["export", str(run_copy), "--out", str(tmp_path / "sm")]) == 2
    assert [str(w.message) for w in caught if "Skipping" in str(w.message)] == []
    err = capsys.readouterr().err
    assert err.startswith(f"emoconf export: error: {run_copy / 'emoconfidnet.keras'}: not a loadable Keras archive ")
    assert err.count("\n") == 1, err


def test_load_run_returns_the_ensemble_members_of_run_json(run_dir):
    run = load_run(run_dir)
    members = json.loads((run_dir / "run.json").read_text())["ensemble_members"]
    assert len(run.members) == len(members)
    assert run.members[0].output_shape == run.classifier.output_shape


def test_run_json_without_ensemble_members_loads_no_members(run_copy):
    info = json.loads((run_copy / "run.json").read_text())
    del info["ensemble_members"]
    (run_copy / "run.json").write_text(json.dumps(info))
    assert load_run(run_copy).members == []


@pytest.mark.parametrize("members", [MEMBER, [f"../{MEMBER}"], [""], [3]],
                         ids=["not_a_list", "a_path", "empty_name", "a_number"])
def test_ensemble_members_that_are_not_file_names_are_refused(run_copy, members):
    info = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**info, "ensemble_members": members}))
    with pytest.raises(EmoconfError, match=r"run.json: 'ensemble_members' must list file names"):
        load_run(run_copy)


def test_validation_csv_edited_by_hand_still_loads(run_copy):
    path = run_copy / "validation.csv"
    frame = pd.read_csv(path)
    frame["confidence"] = 0.5
    frame.to_csv(path, index=False)
    assert (load_run(run_copy).validation["confidence"] == 0.5).all()


def test_validation_csv_without_a_needed_column_names_it(run_copy):
    path = run_copy / "validation.csv"
    pd.read_csv(path).drop(columns=["predicted"]).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=r"validation.csv: missing column\(s\) predicted \(a run's validation.csv "
                                           r"has id, label, predicted, confidence, \.\.\."):
        load_run(run_copy)


def test_csv_cut_inside_a_number_is_refused_though_it_parses(run_copy):
    path = run_copy / "validation.csv"
    data = path.read_bytes()
    path.write_bytes(data[:data.rstrip(b"\n").rfind(b".") + 3])  # the last row's last number, 2 digits kept
    assert len(pd.read_csv(path)) > 0  # pandas reads it: only the missing line break shows the cut
    with pytest.raises(EmoconfError, match=r"validation.csv: truncated \(its last line is incomplete; \d+ of the "
                                           r"\d+ bytes manifest.json records\)"):
        load_run(run_copy)


def test_run_json_that_is_not_json_says_where(run_copy):
    (run_copy / "run.json").write_text('{"format": 1,\n  "class_names": [\n')
    with pytest.raises(EmoconfError, match=r"run.json: not valid JSON \(Expecting value: line 3 column 1; "):
        load_run(run_copy)


def test_cli_export_of_a_run_without_classifier_is_one_line(run_copy, tmp_path, capsys):
    (run_copy / "classifier.keras").unlink()
    assert main(["export", str(run_copy), "--out", str(tmp_path / "sm")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emoconf export: error: {run_copy / 'classifier.keras'}: missing (the classifier); ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "sm").exists()


# === SavedModel versions: emoconf predict and emoconf inspect ===

MODEL_PARTS = ["saved_model.pb", "variables/variables.index", SHARD, "assets/labels.txt",
               "assets/feature_names.txt", "assets/model_card.md"]
COMMANDS = {
    "inspect": lambda path, model: describe(path),
    "predict": lambda path, model: predict(path, [model["table"]]),
}


def test_undamaged_export_passes_the_check(model):
    assert check_model_dir(model["path"]) == model["path"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("part", MODEL_PARTS)
def test_damaged_model_part_is_named_in_one_line(model, model_copy, part, damage, command):
    DAMAGES[damage](model_copy / part)
    with pytest.raises(EmoconfError) as caught:
        COMMANDS[command](model_copy, model)
    message = str(caught.value)
    assert message.startswith(f"{model_copy / part}: ") and "\n" not in message, message
    assert f"`emoconf export RUN_DIR --out {model_copy.parent}`" in message


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_variables_folder_is_named(model, model_copy, command):
    shutil.rmtree(model_copy / "variables")
    with pytest.raises(EmoconfError, match=r"/1/variables: missing \(the weights and thresholds\); export the run"):
        COMMANDS[command](model_copy, model)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_base_path_whose_only_version_lost_saved_model_pb_names_it(model, model_copy, command):
    (model_copy / "saved_model.pb").unlink()
    with pytest.raises(EmoconfError) as caught:
        COMMANDS[command](model_copy.parent, model)
    assert str(caught.value).startswith(f"{model_copy / 'saved_model.pb'}: missing, so {model_copy} is not a "
                                        "complete SavedModel; ")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_saved_model_without_a_needed_signature_is_named(model, model_copy, command):
    from tensorflow.core.protobuf import saved_model_pb2

    path = model_copy / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    del saved_model.meta_graphs[0].signature_def["threshold"]
    path.write_bytes(saved_model.SerializeToString())
    with pytest.raises(EmoconfError, match=r"saved_model.pb: no signature threshold \(it has .*serving_default"):
        COMMANDS[command](model_copy, model)


def test_labels_txt_with_a_class_too_few_is_named(model, model_copy):
    path = model_copy / "assets" / "labels.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(EmoconfError, match=rf"labels.txt: {len(lines) - 1} line\(s\), but saved_model.pb's predict "
                                           rf"signature has {len(lines)} for the classes"):
        check_model_dir(model_copy)


def test_cli_inspect_of_a_version_without_variables_index_is_one_line(model_copy, capsys):
    (model_copy / "variables" / "variables.index").unlink()
    assert main(["inspect", str(model_copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emoconf inspect: error: {model_copy / 'variables' / 'variables.index'}: missing ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_predict_with_a_truncated_saved_model_pb_is_one_line(model, model_copy, capsys):
    _truncate(model_copy / "saved_model.pb")
    assert main(["predict", "--model", str(model_copy.parent), str(model["table"])]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"emoconf predict: error: {model_copy / 'saved_model.pb'}: not a SavedModel ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err and captured.out == ""
