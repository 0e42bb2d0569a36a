"""The `audio_folder` builder on tiny folders in the two layouts users have: a Hugging Face `audiofolder`
`metadata.csv`, and TFDS `ImageFolder`'s class folders; with and without AVD; and every bad input.

The folders are written here (`write_wav`: 0.5 s tones, 16 kHz mono unless a test says otherwise) and built
with eGeMAPS v02 (88 features: fast).
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("opensmile")

from emoconf_tf.cli import main  # noqa: E402
from emoconf_tf.corpus import read_features_table  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from tfds_builders.audio_folder import audio_folder_dataset_builder as audio_folder  # noqa: E402
from tfds_builders.build import build_dataset, export_features_table, load_corpus  # noqa: E402

CONFIG = "egemaps_v02"
# An EmoDB-like folder: file_name, label, speaker; no AVD, no split. Three classes, two files each.
PLAIN_ROWS = [
    ("wav/s1_angry_01.wav", "anger", "s1"),
    ("wav/s1_happy_01.wav", "happiness", "s1"),
    ("wav/s1_neutral_01.wav", "neutral", "s1"),
    ("wav/s2_angry_02.wav", "anger", "s2"),
    ("wav/s2_happy_02.wav", "happiness", "s2"),
    ("wav/s2_neutral_02.wav", "neutral", "s2"),
]
STEREO_44K = "wav/s2_neutral_02.wav"
# With AVD on 1-5, splits (dev is read as validation) and a group column.
RATED_HEADER = ("file_name", "label", "speaker", "group", "split", "arousal", "valence", "dominance", "scale")
RATED_ROWS = [
    ("a.wav", "angry", "s1", "session1", "train", 4.5, 1.5, 4.0, "1,5"),
    ("h.wav", "happy", "s1", "session1", "train", 4.0, 4.5, 3.5, "1,5"),
    ("s.wav", "sad", "s2", "session2", "train", 1.5, 2.0, 2.0, "1,5"),
    ("clips/h2.wav", "happy", "s2", "session2", "dev", 3.5, 4.0, 3.0, "1,5"),
    ("clips/a2.wav", "angry", "s3", "session3", "test", 5.0, 1.0, 4.5, "1,5"),
    ("clips/s2.wav", "sad", "s3", "session3", "test", 1.0, 1.5, 1.5, "1,5"),
]


def write_metadata_folder(root: Path, write_wav, rows, header=("file_name", "label", "speaker"), *,
                          wav_options: dict | None = None, without_audio=()) -> Path:
    """`root/metadata.csv` with `rows` under `header`, and a wav for each file_name (not those in `without_audio`)."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(header)).to_csv(root / "metadata.csv", index=False)
    for seed, row in enumerate(rows):
        if row[0] not in without_audio:
            write_wav(root / row[0], seed=seed, **(wav_options or {}).get(row[0], {}))
    return root


def write_class_folders(root: Path, write_wav, files: list[str]) -> Path:
    """A wav at each relative path of `files` (`<label>/x.wav` or `<split>/<label>/x.wav`)."""
    for seed, name in enumerate(files):
        write_wav(root / name, seed=seed)
    return root


def build(manual_dir, data_dir, **kwargs):
    return build_dataset("audio_folder", manual_dir, data_dir, config=CONFIG, progress=False, **kwargs)


def split_counts(builder) -> dict[str, int]:
    return {name: info.num_examples for name, info in builder.info.splits.items()}


def examples(builder) -> dict[str, dict]:
    """`{id: example}` over every split."""
    return {
        example["id"].decode(): example
        for split in builder.info.splits
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


def assert_nothing_prepared(data_dir: Path) -> None:
    version_dir = data_dir / "audio_folder" / CONFIG
    assert not list(version_dir.glob("*1.0.0*")), "a failed build left a dataset folder"


@pytest.fixture(scope="module")
def plain(tmp_path_factory, write_wav):
    """`(manual dir, builder, warnings)`: the EmoDB-like folder, one file stereo at 44.1 kHz, built once."""
    root = tmp_path_factory.mktemp("plain")
    manual_dir = write_metadata_folder(root / "manual", write_wav, PLAIN_ROWS,
                                       wav_options={STEREO_44K: {"sample_rate": 44100, "channels": 2}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        builder = build(manual_dir, root / "tfds")
    return manual_dir, builder, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@pytest.fixture(scope="module")
def rated(tmp_path_factory, write_wav):
    """`(manual dir, builder)`: the folder with AVD, splits, speakers and groups, built once."""
    root = tmp_path_factory.mktemp("rated")
    manual_dir = write_metadata_folder(root / "manual", write_wav, RATED_ROWS, RATED_HEADER)
    return manual_dir, build(manual_dir, root / "tfds")


# === metadata.csv ===


def test_metadata_without_avd_gives_nan_avd_and_has_avd_false(plain):
    _, builder, _ = plain
    assert split_counts(builder) == {"train": 6}
    assert builder.info.features["label"].names == ["anger", "happiness", "neutral"]
    metadata = builder.info.metadata
    assert metadata["has_avd"] is False and metadata["has_splits"] is False
    assert "scale" not in metadata
    assert metadata["layout"] == "metadata.csv"
    found = examples(builder)
    assert sorted(found) == sorted(name[: -len(".wav")] for name, _, _ in PLAIN_ROWS)  # ids: path without suffix
    example = found["wav/s2_happy_02"]
    assert all(math.isnan(example[key]) for key in ("arousal", "valence", "dominance"))
    assert example["speaker"] == b"s2" and example["group"] == b""
    assert example["features"].shape == (88,) and np.isfinite(example["features"]).all()


def test_stereo_44k_file_is_downmixed_and_resampled_with_one_warning_each(plain):
    manual_dir, builder, messages = plain
    stereo = str(manual_dir / STEREO_44K)
    assert any(m.startswith(f"audio_folder: {stereo}: 2 channels; downmixed to mono") for m in messages)
    assert any(m.startswith(f"audio_folder: {stereo}: sampled at 44100 Hz") for m in messages)
    assert len(builder.info.metadata["audio_format_notes"]) == 2


def test_metadata_with_avd_keeps_ratings_scale_splits_speakers_and_groups(rated):
    _, builder = rated
    # dev is the protocol's validation split
    assert split_counts(builder) == {"train": 3, "validation": 1, "test": 2}
    assert builder.info.metadata["has_avd"] is True and builder.info.metadata["has_splits"] is True
    assert list(builder.info.metadata["scale"]) == [1.0, 5.0]
    example = examples(builder)["clips/a2"]
    assert (example["arousal"], example["valence"], example["dominance"]) == (5.0, 1.0, 4.5)
    assert (example["speaker"], example["group"]) == (b"s3", b"session3")
    assert builder.info.features["label"].int2str(example["label"]) == "angry"


def test_export_of_a_rated_folder_keeps_avd_scale_split_speaker_and_group(rated, tmp_path):
    _, builder = rated
    path = export_features_table(builder, None, tmp_path / "rated.csv")
    table = pd.read_csv(path)
    assert list(table.columns[:9]) == ["id", "label", "arousal", "valence", "dominance", "speaker", "group",
                                       "split", "scale"]
    assert table.shape == (6, 9 + 88)
    assert sorted(table["split"]) == ["test", "test", "train", "train", "train", "validation"]
    corpus, _ = read_features_table(path)  # what reproduce --table reads
    assert corpus.scale == (1.0, 5.0) and set(corpus.group) == {"session1", "session2", "session3"}


def test_unlisted_audio_files_give_one_warning_with_their_count(tmp_path, write_wav):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS)
    for seed, name in enumerate(("extra/x1.wav", "extra/x2.wav", "x4.wav")):
        write_wav(manual_dir / name, seed=seed)
    shutil.copy(manual_dir / PLAIN_ROWS[0][0], manual_dir / "x3.flac")  # any audio suffix counts; never read
    (manual_dir / "notes.txt").write_text("not audio: not counted")
    with pytest.warns(UserWarning, match=r"metadata.csv: 4 audio file\(s\) in .* are not listed, so not in the "
                      r"dataset: extra/x1.wav, extra/x2.wav, x3.flac and 1 other\(s\)"):
        builder = build(manual_dir, tmp_path / "tfds")
    assert builder.info.metadata["unlisted_audio_files"] == 4
    assert split_counts(builder) == {"train": 6}


# === Class folders (TFDS ImageFolder) ===


def test_class_folders_give_one_train_split_labelled_by_folder(tmp_path, write_wav):
    files = ["angry/a1.wav", "angry/nested/a2.wav", "calm/c1.wav", "calm/c2.wav"]
    manual_dir = write_class_folders(tmp_path / "manual", write_wav, files)
    (manual_dir / "README.txt").write_text("not audio: ignored")
    builder = build(manual_dir, tmp_path / "tfds")
    assert split_counts(builder) == {"train": 4}
    assert builder.info.features["label"].names == ["angry", "calm"]
    assert builder.info.metadata["layout"] == "class folders"
    assert builder.info.metadata["has_splits"] is False and builder.info.metadata["has_avd"] is False
    assert sorted(examples(builder)) == ["angry/a1", "angry/nested/a2", "calm/c1", "calm/c2"]


def test_split_then_class_folders_give_the_splits(tmp_path, write_wav):
    files = ["train/angry/a1.wav", "train/calm/c1.wav", "dev/angry/a2.wav", "test/calm/c2.wav"]
    builder = build(write_class_folders(tmp_path / "manual", write_wav, files), tmp_path / "tfds")
    assert split_counts(builder) == {"train": 2, "validation": 1, "test": 1}
    assert builder.info.metadata["layout"] == "split/class folders"
    assert builder.info.metadata["has_splits"] is True
    found = examples(builder)
    assert builder.info.features["label"].int2str(found["dev/angry/a2"]["label"]) == "angry"


# === The command line ===


def test_cli_build_writes_a_table_without_avd_columns(tmp_path, write_wav, capsys):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS,
                                       wav_options={STEREO_44K: {"sample_rate": 44100, "channels": 2}})
    table = tmp_path / "plain_egemaps.csv"
    code = main(["build", "audio_folder", "--manual-dir", str(manual_dir), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG, "--workers", "2", "--table", str(table)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"built audio_folder/{CONFIG}/1.0.0" in out and "train 6" in out
    assert "no arousal/valence/dominance ratings" in out
    assert "2 channels; downmixed to mono" in err and "sampled at 44100 Hz" in err
    frame = pd.read_csv(table)
    assert list(frame.columns[:4]) == ["id", "label", "speaker", "group"]
    assert not {"arousal", "valence", "dominance", "scale", "split"} & set(frame.columns)
    assert frame.shape == (6, 4 + 88)
    assert sorted(frame["speaker"].unique()) == ["s1", "s2"]


def test_load_corpus_of_a_dataset_without_avd_is_a_corpus_without_avd(plain, tmp_path):
    _, builder, _ = plain
    corpus, dropped = load_corpus(builder, None)
    assert corpus.has_avd is False and corpus.scale is None and dropped == {}
    assert corpus.avd.shape == (6, 3) and np.isnan(corpus.avd).all()
    assert corpus.class_names == ("anger", "happiness", "neutral") and corpus.num_features == 88
    # the same corpus as its features table reads back
    table, _ = read_features_table(export_features_table(builder, None, tmp_path / "plain.csv"))
    assert table.has_avd is False and table.scale is None
    order = np.argsort(table.ids)
    assert list(table.ids[order]) == sorted(corpus.ids)
    np.testing.assert_array_equal(table.features[order], corpus.features[np.argsort(corpus.ids)])


def test_cli_bad_folder_is_one_line_error(tmp_path, write_wav, capsys):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS,
                                       without_audio={"wav/s1_happy_01.wav"})
    code = main(["build", "audio_folder", "--manual-dir", str(manual_dir), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"emoconf build: error: {manual_dir / 'wav/s1_happy_01.wav'}: no such audio file, listed "
                          f"in {manual_dir / 'metadata.csv'} line 3 (file_name wav/s1_happy_01.wav)")


# === Bad input: one line naming it, nothing half-written ===


def test_listed_file_that_is_missing_is_named_with_its_row(tmp_path, write_wav):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS,
                                       without_audio={"wav/s2_angry_02.wav"})
    with pytest.raises(EmoconfError, match=r"wav/s2_angry_02.wav: no such audio file, listed in .*metadata.csv line 5 "
                       r"\(file_name wav/s2_angry_02.wav\); the audio_folder copy in the manual dir is incomplete"):
        build(manual_dir, tmp_path / "tfds")
    assert_nothing_prepared(tmp_path / "tfds")


def test_skip_failed_leaves_out_a_missing_file_and_lists_it(tmp_path, write_wav):
    rows = PLAIN_ROWS + [("wav/s3_angry_03.wav", "anger", "s3")]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows, without_audio={"wav/s3_angry_03.wav"})
    builder = build(manual_dir, tmp_path / "tfds", skip_failed=True)
    assert split_counts(builder) == {"train": 6}
    [record] = builder.info.metadata["failed_files"]
    assert record["id"] == "wav/s3_angry_03" and "metadata.csv line 8" in record["reason"]


def test_class_with_fewer_than_two_utterances_is_refused(tmp_path, write_wav):
    rows = PLAIN_ROWS + [("wav/s3_sad_01.wav", "sadness", "s3")]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows)
    with pytest.raises(EmoconfError, match=r"metadata.csv: class\(es\) with fewer than 2 utterances: 'sadness' \(1\)"):
        build(manual_dir, tmp_path / "tfds")
    assert_nothing_prepared(tmp_path / "tfds")


def test_class_folder_with_one_file_is_refused(tmp_path, write_wav):
    manual_dir = write_class_folders(tmp_path / "manual", write_wav, ["angry/a1.wav", "angry/a2.wav", "calm/c1.wav"])
    (manual_dir / "sad").mkdir()
    with pytest.raises(EmoconfError, match=r"fewer than 2 utterances: 'calm' \(1\), 'sad' \(0\)"):
        build(manual_dir, tmp_path / "tfds")


@pytest.mark.parametrize("damage", ["corrupt", "too_short"])
def test_unreadable_or_too_short_audio_is_named(tmp_path, write_wav, damage):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS)
    bad = manual_dir / "wav/s1_neutral_01.wav"
    if damage == "corrupt":
        bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 4)
    else:
        write_wav(bad, seed=0, seconds=0.005)
    reason = "cannot be read as audio" if damage == "corrupt" else r"too short for openSMILE functionals \(0.005 s\)"
    with pytest.raises(EmoconfError, match=rf"audio_folder: 1 of 6 audio file\(s\) failed: {bad}: {reason}"):
        build(manual_dir, tmp_path / "tfds")
    assert_nothing_prepared(tmp_path / "tfds")


def test_skip_failed_leaves_out_a_too_short_file(tmp_path, write_wav):
    rows = PLAIN_ROWS + [("wav/s3_angry_03.wav", "anger", "s3")]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows)
    write_wav(manual_dir / "wav/s3_angry_03.wav", seed=0, seconds=0.005)
    builder = build(manual_dir, tmp_path / "tfds", skip_failed=True)
    assert split_counts(builder) == {"train": 6}
    assert "too short" in builder.info.metadata["failed_files"][0]["reason"]


@pytest.mark.parametrize("present", [("arousal",), ("arousal", "valence")])
def test_avd_columns_partly_present_are_refused(tmp_path, write_wav, present):
    header = ("file_name", "label", "speaker", *present, "scale")
    rows = [(*row, *([3.0] * len(present)), "1,5") for row in PLAIN_ROWS]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows, header)
    absent = ", ".join(c for c in ("arousal", "valence", "dominance") if c not in present)
    with pytest.raises(EmoconfError, match=rf"metadata.csv: column\(s\) {', '.join(present)} but not {absent}; give "
                       r"all three AVD ratings"):
        build(manual_dir, tmp_path / "tfds")


def test_avd_outside_the_scale_is_refused_naming_the_line(tmp_path, write_wav):
    rows = [list(row) for row in RATED_ROWS]
    rows[2][6] = 6.0  # valence of s.wav, line 4, on a 1-5 scale
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows, RATED_HEADER)
    with pytest.raises(EmoconfError, match=r"metadata.csv: 1 valence value\(s\) outside the scale 1-5 on line\(s\) 4 "
                       r"\(e.g. 6\)"):
        build(manual_dir, tmp_path / "tfds")
    assert_nothing_prepared(tmp_path / "tfds")


def test_avd_without_scale_is_refused(tmp_path, write_wav):
    rows = [row[:-1] for row in RATED_ROWS]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows, RATED_HEADER[:-1])
    with pytest.raises(EmoconfError, match="metadata.csv: AVD ratings but no scale column"):
        build(manual_dir, tmp_path / "tfds")


@pytest.mark.parametrize("column", ["file_name", "label"])
def test_metadata_without_file_name_or_label_is_refused(tmp_path, write_wav, column):
    header = {"file_name": ("path", "label", "speaker"), "label": ("file_name", "emotion", "speaker")}[column]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS, header)
    with pytest.raises(EmoconfError, match=rf"metadata.csv: no column '{column}'; metadata.csv needs file_name"):
        build(manual_dir, tmp_path / "tfds")


def test_unknown_split_name_is_refused_naming_the_line(tmp_path, write_wav):
    rows = [list(row) for row in RATED_ROWS]
    rows[5][4] = "fold3"
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows, RATED_HEADER)
    with pytest.raises(EmoconfError, match=r"metadata.csv line 7: split 'fold3'; expected train, validation"):
        build(manual_dir, tmp_path / "tfds")


def test_file_listed_twice_is_refused_naming_both_lines(tmp_path, write_wav):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, PLAIN_ROWS + [PLAIN_ROWS[0]])
    with pytest.raises(EmoconfError, match=r"metadata.csv line 8: wav/s1_angry_01.wav is also listed on line 2"):
        build(manual_dir, tmp_path / "tfds")


def test_file_name_leading_outside_the_folder_is_refused(tmp_path, write_wav):
    rows = [("../outside.wav", "anger", "s1")] + PLAIN_ROWS[1:]
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, rows, without_audio={"../outside.wav"})
    with pytest.raises(EmoconfError, match=r"line 2 \(file_name ../outside.wav\): '../outside.wav' is not a file "
                       r"name inside the manual dir"):
        build(manual_dir, tmp_path / "tfds")


def test_audio_at_the_top_without_metadata_is_refused(tmp_path, write_wav):
    manual_dir = write_class_folders(tmp_path / "manual", write_wav, ["angry/a1.wav", "angry/a2.wav", "loose.wav"])
    with pytest.raises(EmoconfError, match=r"loose.wav is at the top of the folder, with no metadata.csv to label it"):
        build(manual_dir, tmp_path / "tfds")


def test_split_folders_mixed_with_class_folders_are_refused(tmp_path, write_wav):
    manual_dir = write_class_folders(tmp_path / "manual", write_wav,
                                     ["train/angry/a1.wav", "train/angry/a2.wav", "calm/c1.wav", "calm/c2.wav"])
    with pytest.raises(EmoconfError, match=r"split folder\(s\) train beside class folder\(s\) calm"):
        build(manual_dir, tmp_path / "tfds")


def test_read_audio_folder_is_usable_without_building(tmp_path, write_wav):
    manual_dir = write_metadata_folder(tmp_path / "manual", write_wav, RATED_ROWS, RATED_HEADER)
    listing = audio_folder.read_audio_folder(manual_dir)
    assert listing.class_names == ("angry", "happy", "sad") and listing.scale == (1.0, 5.0)
    assert [u.id for u in listing.utterances_by_split["test"]] == ["clips/a2", "clips/s2"]


# === Beam ===


def test_beam_direct_runner_builds_the_same_examples(rated, tmp_path):
    pytest.importorskip("apache_beam")
    manual_dir, reference = rated
    builder = build(manual_dir, tmp_path / "tfds", beam_runner="DirectRunner")
    assert split_counts(builder) == split_counts(reference)
    actual, expected = examples(builder), examples(reference)
    assert sorted(actual) == sorted(expected)
    for utterance_id, example in expected.items():
        for key in ("features", "label", "arousal", "valence", "dominance", "speaker", "group"):
            np.testing.assert_array_equal(actual[utterance_id][key], example[key], err_msg=f"{utterance_id} {key}")
