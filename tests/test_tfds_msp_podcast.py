"""The `msp_podcast` TFDS builder, on tiny fake releases in the real file layouts and formats."""

from __future__ import annotations

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("opensmile")

import tfds_builders  # noqa: E402,F401  registers the builders
from emoconf_tf.corpus import read_features_table  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from tfds_builders.build import build_dataset, export_features_table  # noqa: E402

CONFIG = "egemaps_v02"  # 88 features: fast; compare_2016 is exercised in test_extraction.py

# Of the default fake release (conftest.MSP_PODCAST_ROWS): the X (train) and C (test2) rows are skipped.
SPLITS = {"train": 2, "validation": 1, "test1": 2, "test2": 1}


def examples(builder, split):
    return {
        example["id"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory, fake_corpus):
    root = tmp_path_factory.mktemp("msp_podcast")
    manual_dir = fake_corpus.msp_podcast(root / "manual")
    data_dir = root / "tfds"
    builder = build_dataset("msp_podcast", manual_dir, data_dir, config=CONFIG, num_workers=2, progress=False)
    return builder, manual_dir, data_dir


def test_msp_podcast_splits_follow_split_set(built):
    builder, _, _ = built
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == SPLITS


def test_msp_podcast_labels_are_the_five_classes(built):
    builder, _, _ = built
    names = builder.info.features["label"].names
    assert names == ["angry", "disgusted", "happy", "neutral", "sad"]
    test1 = examples(builder, "test1")
    assert names[test1["MSP-PODCAST_0003_0001"]["label"]] == "sad"
    assert names[test1["MSP-PODCAST_0003_0002"]["label"]] == "disgusted"
    assert names[examples(builder, "validation")["MSP-PODCAST_0002_0033"]["label"]] == "happy"


def test_msp_podcast_avd_comes_from_act_val_dom_on_the_1_7_scale(built):
    builder, _, _ = built
    example = examples(builder, "train")["MSP-PODCAST_0001_0019"]  # EmoAct 6.0, EmoVal 2.0, EmoDom 5.6
    assert example["arousal"] == pytest.approx(6.0)
    assert example["valence"] == pytest.approx(2.0)
    assert example["dominance"] == pytest.approx(5.6)
    assert list(builder.info.metadata["scale"]) == [1.0, 7.0]


def test_msp_podcast_counts_skipped_classes(built):
    builder, _, _ = built
    assert dict(builder.info.metadata["skipped_classes"]) == {"C": 1, "X": 1}


def test_msp_podcast_records_the_split_counts_after_class_selection(built):
    builder, _, _ = built
    # Rows per split, without the X (train) and C (test2) rows: train 3 - 1, validation 1, test1 2, test2 2 - 1.
    assert dict(builder.info.metadata["class_selection_counts"]) == {"train": 2, "validation": 1, "test1": 2,
                                                                     "test2": 1}


def test_class_selection_summary_sets_the_counts_beside_the_papers():
    from tfds_builders.msp_podcast.msp_podcast_dataset_builder import class_selection_summary

    assert class_selection_summary({"train": 2, "validation": 1, "test1": 2, "test2": 1}) == (
        "after class selection: train 2 (paper 34,280), validation 1 (paper 5,958), test1 2 (paper 10,124), test2 1")
    # a split the paper counts but the release lacks shows 0 beside the paper's
    assert class_selection_summary({"train": 5}).endswith("validation 0 (paper 5,958), test1 0 (paper 10,124)")


def test_msp_podcast_build_logs_the_counts_after_class_selection(tmp_path, caplog, fake_corpus):
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual")
    with caplog.at_level("INFO", logger="tfds_builders.msp_podcast.msp_podcast_dataset_builder"):
        build_dataset("msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)
    assert ("msp_podcast: after class selection: train 2 (paper 34,280), validation 1 (paper 5,958), test1 2 "
            "(paper 10,124), test2 1") in caplog.messages


def test_msp_podcast_speaker_is_kept_and_unknown_is_empty(built):
    builder, _, _ = built
    assert examples(builder, "train")["MSP-PODCAST_0001_0008"]["speaker"].decode() == "127"
    example = examples(builder, "validation")["MSP-PODCAST_0002_0033"]
    assert example["speaker"].decode() == ""
    assert example["group"].decode() == ""


def test_msp_podcast_features_have_the_config_dimension(built):
    builder, _, _ = built
    example = examples(builder, "train")["MSP-PODCAST_0001_0008"]
    assert example["features"].shape == (88,) and example["features"].dtype == np.float32


def test_msp_podcast_exports_a_table_the_protocol_reads(built, tmp_path):
    builder, _, data_dir = built
    table = export_features_table(f"msp_podcast/{CONFIG}", data_dir, tmp_path / "msp.parquet")
    corpus, _ = read_features_table(table)  # the scale comes with the table
    assert corpus.scale == (1.0, 7.0) and corpus.merged_labels == ()
    assert len(corpus) == sum(SPLITS.values()) and corpus.num_features == 88
    # test1 is the protocol's test set; test2 keeps its name.
    assert sorted(corpus.split) == sorted(["train"] * 2 + ["validation"] + ["test"] * 2 + ["test2"])
    row = list(corpus.ids).index("MSP-PODCAST_0001_0019")
    np.testing.assert_allclose(corpus.avd[row], [6.0, 2.0, 5.6], rtol=1e-6)
    original = examples(builder, "train")["MSP-PODCAST_0001_0019"]["features"]
    np.testing.assert_array_equal(corpus.features[row], original)


def test_msp_podcast_reads_old_spelling_partitions_and_nested_audio(tmp_path, fake_corpus):
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual", old_layout=True)
    builder = build_dataset("msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == SPLITS


def test_msp_podcast_missing_labels_file_error_names_the_path(tmp_path, fake_corpus):
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual")
    (manual_dir / "Labels" / "labels_consensus.csv").unlink()
    with pytest.raises(EmoconfError, match=r"Labels/labels_consensus.csv: no such file"):
        build_dataset("msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)


def test_msp_podcast_missing_wav_error_names_the_path(tmp_path, fake_corpus):
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual")
    (manual_dir / "Audios" / "MSP-PODCAST_0002_0033.wav").unlink()
    with pytest.raises(EmoconfError, match=r"Audios/MSP-PODCAST_0002_0033.wav: no such audio file"):
        build_dataset("msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)


def test_msp_podcast_missing_partitions_error_names_the_path(tmp_path, fake_corpus):
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual", old_layout=True)
    (manual_dir / "Partitions.txt").unlink()
    with pytest.raises(EmoconfError, match=r"Partitions.txt does not exist"):
        build_dataset("msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)


def test_msp_podcast_unknown_partition_error_names_the_file(tmp_path, fake_corpus):
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual")
    labels = manual_dir / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text().replace("Test2", "Holdout"))
    with pytest.raises(EmoconfError, match=r"MSP-PODCAST_0004_0002.wav has partition 'Holdout'"):
        build_dataset("msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)


def test_msp_podcast_empty_manual_dir_is_refused(tmp_path):
    (tmp_path / "manual").mkdir()
    with pytest.raises(EmoconfError, match="the folder is empty"):
        build_dataset("msp_podcast", tmp_path / "manual", tmp_path / "tfds", config=CONFIG, progress=False)
