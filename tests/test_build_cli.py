"""`emoconf build`, `emoconf export-table` and `emoconf reproduce --tfds`, through `main`, on tiny fake corpora."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("opensmile")

from emoconf_tf.cli import main  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402

CONFIG = "egemaps_v02"  # 88 features: fast
TINY = ["--max-epochs", "1", "--batch-size", "16", "--trainings", "raw", "--methods", "paper"]
CODES = ("A", "D", "H", "N", "S")  # MSP-Podcast EmoClass codes of the five classes
# Per class: Train, Development, Test1 utterances. 5 x 8 = 40 wavs.
PER_CLASS = {"Train": 4, "Development": 2, "Test1": 2}
IEMOCAP_CATEGORIES = ("ang", "fru", "hap", "neu", "sad")
# Each command that reads or writes a TFDS dataset, and the library function it passes --data-dir to.
DATA_DIR_COMMANDS = {
    "build": (["build", "iemocap", "--manual-dir", "."], "build_dataset"),
    "export-table": (["export-table", f"iemocap/{CONFIG}", "--out", "t.csv"], "export_features_table"),
    "reproduce": (["reproduce", "--tfds", f"iemocap/{CONFIG}", "--out", "out"], "load_corpus"),
}


def msp_rows() -> list[tuple]:
    """MSP-Podcast labels rows with every class in every split, AVD loosely following the class."""
    rows = []
    for code_index, code in enumerate(CODES):
        for split, count in PER_CLASS.items():
            for k in range(count):
                name = f"MSP-PODCAST_{code_index + 1:04d}_{split[:2]}{k:02d}.wav"
                arousal, valence = 2.0 + code_index, 6.0 - code_index
                rows.append((name, code, arousal, valence, 4.0, str(100 + k), "Female", split))
    return rows


def iemocap_dialogs() -> list[tuple]:
    """IEMOCAP dialogs: 5 sessions x 5 categories x 2 turns."""
    dialogs = []
    for session in range(1, 6):
        dialog = f"Ses0{session}F_impro01"
        turns = [
            (f"{dialog}_{'FM'[k]}{index:03d}", category, (1.0 + index, 5.0 - index, 3.0))
            for index, category in enumerate(IEMOCAP_CATEGORIES)
            for k in range(2)
        ]
        dialogs.append((session, dialog, turns))
    return dialogs


@pytest.fixture(scope="module")
def msp(tmp_path_factory, fake_corpus):
    """`(manual dir, data dir)` of the fake MSP-Podcast release, built once with `emoconf build`."""
    root = tmp_path_factory.mktemp("msp_cli")
    manual_dir, data_dir = fake_corpus.msp_podcast(root / "manual", msp_rows()), root / "tfds"
    code = main(["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(data_dir),
                 "--config", CONFIG, "--workers", "2"])
    assert code == 0
    return manual_dir, data_dir


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory, fake_corpus):
    """`(manual dir, data dir)` of the fake IEMOCAP release, built once with `emoconf build`."""
    root = tmp_path_factory.mktemp("iemocap_cli")
    manual_dir, data_dir = fake_corpus.iemocap(root / "manual", iemocap_dialogs()), root / "tfds"
    assert main(["build", "iemocap", "--manual-dir", str(manual_dir), "--data-dir", str(data_dir),
                 "--config", CONFIG]) == 0
    return manual_dir, data_dir


@pytest.fixture
def damaged_msp(msp, tmp_path):
    """A copy of the fake release with one corrupt and one empty wav."""
    manual_dir = Path(shutil.copytree(msp[0], tmp_path / "manual"))
    (manual_dir / "Audios" / "MSP-PODCAST_0001_Tr00.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 4)
    (manual_dir / "Audios" / "MSP-PODCAST_0005_Te01.wav").write_bytes(b"")
    return manual_dir


def test_build_prints_the_split_sizes(msp, capsys):
    manual_dir, data_dir = msp
    # Prepared already: reused, and the same summary is printed.
    assert main(["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(data_dir),
                 "--config", CONFIG]) == 0
    printed = capsys.readouterr().out
    assert f"built msp_podcast/{CONFIG}/1.0.0 in {data_dir}: test1 10, train 20, validation 10" in printed
    # The counts after class selection, beside the paper's (MSP-Podcast's release as the paper used it).
    assert "after class selection: train 20 (paper 34,280), validation 10 (paper 5,958), test1 10 (paper 10,124)" \
        in printed


def test_build_with_failed_files_is_a_one_line_error_naming_them(damaged_msp, tmp_path, capsys):
    code = main(["build", "msp_podcast", "--manual-dir", str(damaged_msp), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG])
    assert code == 2
    err = capsys.readouterr().err
    err = err[err.index("emoconf build: error:"):].strip()  # after TFDS' progress bars
    assert err.startswith("emoconf build: error: msp_podcast: 2 of 40 audio file(s) failed: ")
    assert "MSP-PODCAST_0001_Tr00.wav: cannot be read as audio" in err
    assert "MSP-PODCAST_0005_Te01.wav: the audio file is empty" in err
    assert "--skip-failed" in err and "\n" not in err


def test_build_skip_failed_lists_the_left_out_files(damaged_msp, tmp_path, capsys):
    code = main(["build", "msp_podcast", "--manual-dir", str(damaged_msp), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG, "--skip-failed"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test1 9, train 19, validation 10" in out
    assert "left out 2 utterance(s) whose audio failed" in out
    assert "MSP-PODCAST_0005_Te01.wav: the audio file is empty (0 bytes)" in out


def test_build_with_beam_direct_runner(msp, tmp_path, capsys):
    pytest.importorskip("apache_beam")
    manual_dir, _ = msp
    code = main(["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG, "--beam-runner", "DirectRunner", "--beam-options=--direct_num_workers=1"])
    assert code == 0
    assert "test1 10, train 20, validation 10" in capsys.readouterr().out


def test_export_table_writes_the_split_column_of_msp_podcast(msp, tmp_path, capsys):
    _, data_dir = msp
    out = tmp_path / "msp.parquet"
    assert main(["export-table", f"msp_podcast/{CONFIG}", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert f"wrote features table {out}" in capsys.readouterr().out
    table = pd.read_parquet(out)
    assert len(table) == 40 and table.shape[1] == 9 + 88  # id .. group, split, scale; then the features
    assert table["split"].value_counts().to_dict() == {"train": 20, "validation": 10, "test1": 10}
    assert set(table["scale"]) == {"1,7"} and "merged_labels" not in table.columns


def test_export_table_of_iemocap_keeps_the_session_in_group(iemocap, tmp_path):
    _, data_dir = iemocap
    out = tmp_path / "iemocap.csv.gz"
    assert main(["export-table", "iemocap", "--config", CONFIG, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert "split" not in table.columns
    assert table["group"].value_counts().to_dict() == {f"session{k}": 10 for k in range(1, 6)}
    assert set(table["scale"]) == {"1,5"} and set(table["merged_labels"]) == {"excited=happy"}


# Every sad row has "high arousal" with the midpoint far below the scale: filtered training has no sad rows, which
# the protocol refuses after reading and describing the corpus, before any training.
EMPTY_SAD = ["--trainings", "filtered", "--filter-rules", "sad=high_arousal", "--filter-midpoint", "-100"]


def test_reproduce_table_of_iemocap_uses_its_recorded_scale_not_1_7(iemocap, tmp_path, capsys):
    _, data_dir = iemocap
    out = tmp_path / "iemocap.parquet"
    assert main(["export-table", f"iemocap/{CONFIG}", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    # a filter that empties a class stops the command after the table is read and described, before any training
    assert main(["reproduce", "--table", str(out), *EMPTY_SAD]) == 2
    printed = capsys.readouterr().out
    assert "50 utterances, 88 features, classes angry, frustrated, happy, neutral, sad; AVD scale 1-5 (recorded)" \
        in printed
    assert "merged categories (as the dataset was built): excited counted as happy" in printed


def test_reproduce_tfds_with_an_explicit_scale_1_7_overrides_the_recorded_1_5(iemocap, capsys):
    _, data_dir = iemocap
    assert main(["reproduce", "--tfds", f"iemocap/{CONFIG}", "--data-dir", str(data_dir), *EMPTY_SAD]) == 2
    assert "AVD scale 1-5 (recorded)" in capsys.readouterr().out
    assert main(["reproduce", "--tfds", f"iemocap/{CONFIG}", "--data-dir", str(data_dir), "--scale", "1,7",
                 *EMPTY_SAD]) == 2
    assert "AVD scale 1-7 (--scale)" in capsys.readouterr().out


def test_export_table_of_a_dataset_not_built_is_a_one_line_error(tmp_path, capsys):
    code = main(["export-table", f"iemocap/{CONFIG}", "--data-dir", str(tmp_path), "--out", str(tmp_path / "t.csv")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"iemocap/{CONFIG}/1.0.0 is not prepared; build it first (emoconf build iemocap" in err
    assert not (tmp_path / "t.csv").exists()


def test_reproduce_tfds_msp_podcast_runs_on_its_own_splits(msp, tmp_path, capsys):
    _, data_dir = msp
    out = tmp_path / "out"
    code = main(["reproduce", "--tfds", f"msp_podcast/{CONFIG}", "--data-dir", str(data_dir), "--out", str(out), *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"msp_podcast/{CONFIG} in {data_dir}: 40 utterances, 88 features" in printed
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.fold) == [0]
    assert int(runs.n_test.iloc[0]) == 10  # test1 is the protocol's test set


def test_reproduce_tfds_iemocap_runs_leave_one_session_out(iemocap, tmp_path, capsys):
    _, data_dir = iemocap
    out = tmp_path / "out"
    code = main(["reproduce", "--tfds", f"iemocap/{CONFIG}", "--data-dir", str(data_dir), "--out", str(out), *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert "folds: leave one session out (session1, session2, session3, session4, session5)" in printed
    assert sorted(pd.read_csv(out / "runs.csv").fold) == [0, 1, 2, 3, 4]


def test_reproduce_takes_a_table_or_a_dataset_not_both(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["reproduce", "--table", "x.csv", "--tfds", f"iemocap/{CONFIG}"])
    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce"])
    assert "one of the arguments --table --tfds is required" in capsys.readouterr().err


def test_reproduce_tfds_not_built_is_a_one_line_error(tmp_path, capsys):
    code = main(["reproduce", "--tfds", f"msp_podcast/{CONFIG}", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "is not prepared; build it first" in capsys.readouterr().err


def test_the_cli_names_the_datasets_tfds_builders_builds():
    import tfds_builders.build
    from emoconf_tf.cli.options import DATASET_NAMES

    assert DATASET_NAMES == tfds_builders.build.DATASET_NAMES  # spelt out in the CLI, which does not import TFDS


@pytest.mark.parametrize("command", DATA_DIR_COMMANDS)
def test_data_dir_help_says_the_default_is_tfds_default(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: TFDS's default data directory, $TFDS_DATA_DIR if set, else ~/tensorflow_datasets)" in help_text


@pytest.mark.parametrize("command", DATA_DIR_COMMANDS)
def test_data_dir_defaults_to_tensorflow_datasets_in_home_without_tfds_data_dir(command, tmp_path, monkeypatch,
                                                                                capsys):
    import tfds_builders.build

    argv, function = DATA_DIR_COMMANDS[command]
    seen = {}

    def record_arguments(*args, **kwargs):
        seen["args"] = args
        raise EmoconfError("recorded")

    monkeypatch.setattr(tfds_builders.build, function, record_arguments)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # ~ of TFDS's rule; nothing is written: the call is recorded
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "recorded" in capsys.readouterr().err
    assert str(tmp_path / "tensorflow_datasets") in seen["args"]


def test_build_and_export_table_default_to_tfds_data_dir(tmp_path, monkeypatch, capsys, fake_corpus):
    table = fake_corpus.features_table(tmp_path / "manual")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_env"))
    monkeypatch.chdir(tmp_path)
    assert main(["build", "ser_features", "--manual-dir", str(table), "--config", "custom", "--workers", "1"]) == 0
    assert f"built ser_features/custom/1.0.0 in {tmp_path / 'tfds_env'}:" in capsys.readouterr().out
    assert (tmp_path / "tfds_env" / "ser_features" / "custom" / "1.0.0" / "dataset_info.json").is_file()
    assert not (tmp_path / "tensorflow_datasets").exists()  # the old default, ./tensorflow_datasets
    assert main(["export-table", "ser_features/custom", "--out", str(tmp_path / "t.csv")]) == 0
    assert f"from ser_features/custom in {tmp_path / 'tfds_env'}" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(fake_corpus.features_frame())
