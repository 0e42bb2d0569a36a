"""The `ser_features` TFDS builder: a features table as a dataset, and back."""

from __future__ import annotations

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

import tfds_builders  # noqa: E402,F401  registers the builders
from emoconf_tf.corpus import read_features_table  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from tfds_builders.build import build_dataset, export_features_table  # noqa: E402


def examples(builder, split):
    return {
        example["id"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


def test_ser_features_splits_come_from_the_split_column(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual")
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == {
        "train": 4,
        "validation": 2,
        "test": 2,
    }


def test_ser_features_class_names_are_the_sorted_table_labels(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual")
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    names = builder.info.features["label"].names
    assert names == ["angry", "neutral", "sad"]
    assert names[examples(builder, "train")["utt00"]["label"]] == "sad"
    # Reloaded from the data dir alone, the names come back from label.labels.txt.
    reloaded = tfds.builder("ser_features/custom", data_dir=str(tmp_path / "tfds"), try_gcs=False)
    assert reloaded.info.features["label"].names == ["angry", "neutral", "sad"]


def test_ser_features_keeps_values_avd_speaker(tmp_path, fake_corpus):
    frame = fake_corpus.features_frame()
    fake_corpus.features_table(tmp_path / "manual", frame)
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    example = examples(builder, "test")["utt06"]
    np.testing.assert_array_equal(example["features"], frame.iloc[6, -5:].to_numpy(dtype=np.float32))
    assert (example["arousal"], example["valence"], example["dominance"]) == (6.5, 2.0, 6.0)
    assert example["speaker"].decode() == "s4"


def test_ser_features_without_split_column_is_one_train_split(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual", fake_corpus.features_frame(with_split=False), name="table.parquet")
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == {"train": 8}


def test_ser_features_egemaps_config_takes_an_88_column_table(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual", fake_corpus.features_frame(88))
    builder = build_dataset(
        "ser_features", tmp_path / "manual", tmp_path / "tfds", config="egemaps_v02", progress=False
    )
    assert builder.info.features["features"].shape == (88,)
    assert examples(builder, "validation")["utt04"]["features"].shape == (88,)


def test_ser_features_config_width_mismatch_is_a_clear_error(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual", fake_corpus.features_frame(5))
    with pytest.raises(EmoconfError, match=r"features.csv: 5 feature columns, but config 'egemaps_v02' expects 88"):
        build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="egemaps_v02", progress=False)


def test_ser_features_accepts_the_table_file_itself(tmp_path, fake_corpus):
    table = fake_corpus.features_table(tmp_path / "tables", name="my_corpus.csv")
    fake_corpus.features_table(tmp_path / "tables", fake_corpus.features_frame(seed=1), name="other.csv")
    builder = build_dataset("ser_features", table, tmp_path / "tfds", config="custom", progress=False)
    assert builder.info.splits["train"].num_examples == 4


def test_ser_features_overwrite_rebuilds_from_a_changed_table(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual")
    build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    fake_corpus.features_table(tmp_path / "manual", fake_corpus.features_frame(with_split=False))
    kept = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    assert set(kept.info.splits) == {"train", "validation", "test"}  # prepared: reused as it is
    rebuilt = build_dataset(
        "ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", overwrite=True, progress=False
    )
    assert {name: info.num_examples for name, info in rebuilt.info.splits.items()} == {"train": 8}


def test_ser_features_two_tables_in_the_folder_is_a_clear_error(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual", name="a.csv")
    fake_corpus.features_table(tmp_path / "manual", name="b.csv")
    with pytest.raises(EmoconfError, match=r"2 tables \(a.csv, b.csv\)"):
        build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)


def test_ser_features_keeps_the_tables_scale_and_merged_labels(tmp_path, fake_corpus):
    from tfds_builders.build import load_corpus

    frame = fake_corpus.features_frame()
    frame["scale"] = "1,5"
    frame["merged_labels"] = "excited=happy"
    frame[["arousal", "valence", "dominance"]] = frame[["arousal", "valence", "dominance"]].clip(1, 5)
    fake_corpus.features_table(tmp_path / "manual", frame)
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    assert list(builder.info.metadata["scale"]) == [1.0, 5.0]
    assert dict(builder.info.metadata["merged_labels"]) == {"excited": "happy"}
    corpus, _ = load_corpus(builder, tmp_path / "tfds")
    assert corpus.scale == (1.0, 5.0) and corpus.merged_labels == (("excited", "happy"),) and not corpus.synthetic
    assert load_corpus(builder, tmp_path / "tfds", scale="1,7")[0].scale == (1.0, 7.0)  # given: overrides


def test_ser_features_of_a_synthetic_table_stays_synthetic(tmp_path, fake_corpus):
    from tfds_builders.build import load_corpus

    frame = fake_corpus.features_frame()
    frame["synthetic"] = True
    fake_corpus.features_table(tmp_path / "manual", frame, name="anything.parquet")
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    assert load_corpus(builder, tmp_path / "tfds")[0].synthetic
    exported, _ = read_features_table(export_features_table(builder, tmp_path / "tfds", tmp_path / "out.csv"))
    assert exported.synthetic and exported.scale == (1.0, 7.0)


def test_ser_features_table_without_a_scale_is_refused_naming_the_column(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual", fake_corpus.features_frame().drop(columns=["scale"]))
    with pytest.raises(EmoconfError, match=r"features.csv: the table does not record its AVD scale \(no column "
                                           r"'scale'\).*or add a column 'scale' holding 'LO,HI' on every row"):
        build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)


def test_ser_features_export_round_trips_the_table(tmp_path, fake_corpus):
    frame = fake_corpus.features_frame()
    fake_corpus.features_table(tmp_path / "manual", frame)
    build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    out = export_features_table("ser_features", tmp_path / "tfds", tmp_path / "out.csv.gz", config="custom")
    original, _ = read_features_table(tmp_path / "manual" / "features.csv")
    exported, _ = read_features_table(out)
    order = np.argsort(exported.ids)
    np.testing.assert_array_equal(exported.ids[order], original.ids)
    np.testing.assert_array_equal(exported.features[order], original.features)
    np.testing.assert_array_equal(exported.avd[order], original.avd)
    np.testing.assert_array_equal(exported.split[order], original.split)
    assert exported.feature_names == original.feature_names


def test_build_dataset_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(EmoconfError, match="unknown dataset 'savee'"):
        build_dataset("savee", tmp_path, tmp_path / "tfds")


def test_build_dataset_unknown_config_is_a_clear_error(tmp_path, fake_corpus):
    fake_corpus.features_table(tmp_path / "manual")
    with pytest.raises(EmoconfError, match="unknown config 'mfcc' for ser_features"):
        build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="mfcc")
