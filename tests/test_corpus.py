import dataclasses

import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError, read_features_table
from emoconf_tf.corpus import check_class_names, normalize_split, parse_scale, write_features_table


def table(n=6, **extra):
    """A features table as `emoconf build --table` writes it: the AVD scale in its `scale` column."""
    frame = pd.DataFrame({
        "id": [f"utt{i}" for i in range(n)],
        "label": ["happy", "sad", "neutral"] * (n // 3),
        "arousal": np.linspace(1, 7, n),
        "valence": np.linspace(7, 1, n),
        "dominance": [4.0] * n,
        "split": ["Train", "Development", "Test1"] * (n // 3),
        "scale": ["1,7"] * n,
        "f0_mean": np.arange(n, dtype=float),
        "mfcc1_stddev": np.arange(n, dtype=float) * 2,
    })
    for key, value in extra.items():
        frame[key] = value
    return frame


def test_reads_csv_with_feature_dimension_from_the_data(tmp_path):
    path = tmp_path / "corpus.csv"
    table().to_csv(path, index=False)
    corpus, dropped = read_features_table(path)
    assert corpus.num_features == 2 and corpus.feature_names == ("f0_mean", "mfcc1_stddev")
    assert corpus.features.dtype == np.float32 and corpus.features.shape == (6, 2)
    assert corpus.class_names == ("happy", "neutral", "sad")
    assert list(corpus.labels[:3]) == [0, 2, 1]
    assert list(corpus.split[:3]) == ["train", "validation", "test"]
    np.testing.assert_allclose(corpus.avd[1], [2.2, 5.8, 4.0], rtol=1e-6)
    assert dropped == {} and corpus.name == "corpus"


def test_reads_parquet_the_same_as_csv(tmp_path):
    table().to_csv(tmp_path / "a.csv", index=False)
    table().to_parquet(tmp_path / "a.parquet", index=False)
    a, _ = read_features_table(tmp_path / "a.csv")
    b, _ = read_features_table(tmp_path / "a.parquet")
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_write_then_read_round_trip(tmp_path):
    table().to_csv(tmp_path / "a.csv", index=False)
    a, _ = read_features_table(tmp_path / "a.csv")
    write_features_table(a, tmp_path / "b.parquet")
    b, _ = read_features_table(tmp_path / "b.parquet")
    np.testing.assert_array_equal(a.features, b.features)
    assert list(a.split) == list(b.split) and list(a.ids) == list(b.ids)


def test_labels_outside_classes_are_dropped_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    corpus, dropped = read_features_table(path, classes=["sad", "happy"])
    assert corpus.class_names == ("sad", "happy") and len(corpus) == 4
    assert dropped == {"neutral": 2}


@pytest.mark.parametrize("value, expected", [
    ("Train", "train"), ("Development", "validation"), ("VALIDATION", "validation"), ("Test1", "test"),
    ("test", "test"), ("Test2", "test2"),
])
def test_split_names_are_normalised(value, expected):
    assert normalize_split(value) == expected


def test_unknown_split_names_the_row(tmp_path):
    path = tmp_path / "t.csv"
    table(split=["train", "holdout", "test", "train", "test", "test"]).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=r"utt1.*'holdout'"):
        read_features_table(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(EmoconfError, match="nope.csv: no such file"):
        read_features_table(tmp_path / "nope.csv")


def test_directory_and_empty_file_are_refused(tmp_path):
    with pytest.raises(EmoconfError, match="is a directory"):
        read_features_table(tmp_path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EmoconfError, match="empty"):
        read_features_table(tmp_path / "empty.csv")


def test_missing_label_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    table().drop(columns=["label"]).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match="missing column.*label"):
        read_features_table(path)


def test_non_numeric_feature_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    table(gender=["f", "m", "f", "m", "f", "m"]).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=r"feature column 'gender' is not numeric.*utt0"):
        read_features_table(path)


def test_nan_features_name_the_rows(tmp_path):
    frame = table()
    frame.loc[[2, 4], "f0_mean"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(EmoconfError, match="NaN or infinite feature values in row id.*utt2, utt4"):
        read_features_table(path)


def test_duplicate_ids_are_named(tmp_path):
    path = tmp_path / "t.csv"
    table(id=["a", "b", "a", "c", "d", "e"]).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match="duplicate id.*a"):
        read_features_table(path)


def test_scale_comes_from_the_tables_scale_column(tmp_path):
    path = tmp_path / "iemocap.csv"
    table(scale=["1,5"] * 6, arousal=[1, 2, 3, 4, 5, 3], valence=[5, 4, 3, 2, 1, 3]).to_csv(path, index=False)
    corpus, _ = read_features_table(path)
    assert corpus.scale == (1.0, 5.0) and corpus.feature_names == ("f0_mean", "mfcc1_stddev")


def test_an_explicit_scale_overrides_the_recorded_one(tmp_path):
    path = tmp_path / "t.parquet"
    table(scale=["1,5"] * 6).to_parquet(path, index=False)
    with pytest.warns(UserWarning, match="outside the scale 1-5"):  # arousal goes up to 7: read as 1-5 first
        assert read_features_table(path)[0].scale == (1.0, 5.0)
    assert read_features_table(path, scale="1,7")[0].scale == (1.0, 7.0)
    assert read_features_table(path, scale=(1, 7))[0].scale == (1.0, 7.0)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_without_a_scale_and_no_scale_given_is_refused(tmp_path, suffix):
    path = tmp_path / f"iemocap{suffix}"
    frame = table().drop(columns=["scale"])
    frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=rf"iemocap{suffix}: the table does not record its AVD scale \(no column "
                       r"'scale'\); give it \(--scale 1,5 for IEMOCAP, --scale 1,7 for MSP-Podcast"):
        read_features_table(path)
    assert read_features_table(path, scale="1,7")[0].scale == (1.0, 7.0)


@pytest.mark.parametrize("values, message", [
    (["1,7", "1,7", "1,5", "1,7", "1,7", "1,7"], r"column 'scale' holds 2 different values \(1,7, 1,5\)"),
    (["1,7", None, "1,7", "1,7", "1,7", "1,7"], r"column 'scale' is empty in row id\(s\) utt1"),
    (["7,1"] * 6, r"column 'scale' holds '7,1'; expected the AVD scale as 'LO,HI'"),
])
def test_a_bad_scale_column_names_the_file_and_column(tmp_path, values, message):
    path = tmp_path / "t.csv"
    table(scale=values).to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=r"t.csv: " + message):
        read_features_table(path)


def test_synthetic_comes_from_the_synthetic_column_not_the_file_name(tmp_path):
    named = tmp_path / "synthetic_sessions.csv"
    table().to_csv(named, index=False)
    assert not read_features_table(named)[0].synthetic  # the name says nothing
    marked = tmp_path / "mine.csv"
    table(synthetic=[True] * 6).to_csv(marked, index=False)
    corpus, _ = read_features_table(marked)
    assert corpus.synthetic and "synthetic" not in corpus.feature_names


def test_written_table_records_scale_synthetic_and_merged_labels(tmp_path):
    from emoconf_tf.synthetic import make_synthetic_corpus

    corpus = make_synthetic_corpus(n_utterances=60, num_features=3, seed=0)
    corpus = dataclasses.replace(corpus, scale=(1.0, 5.0), avd=np.clip(corpus.avd, 1, 5),
                                 merged_labels=(("excited", "happy"),))
    for name in ("mine.csv", "mine.parquet"):
        written = write_features_table(corpus, tmp_path / name)
        frame = pd.read_parquet(written) if name.endswith(".parquet") else pd.read_csv(written)
        assert list(frame.columns[:11]) == ["id", "label", "arousal", "valence", "dominance", "speaker", "group",
                                            "split", "scale", "synthetic", "merged_labels"]
        assert set(frame["scale"]) == {"1,5"} and set(frame["merged_labels"]) == {"excited=happy"}
        read, _ = read_features_table(written)
        assert read.scale == (1.0, 5.0) and read.synthetic and read.merged_labels == (("excited", "happy"),)
        assert read.num_features == 3


def test_a_real_corpus_table_has_a_scale_column_only(tmp_path):
    table().to_csv(tmp_path / "a.csv", index=False)
    corpus, _ = read_features_table(tmp_path / "a.csv")
    written = write_features_table(corpus, tmp_path / "b.csv")
    columns = list(pd.read_csv(written).columns)
    assert "scale" in columns and "synthetic" not in columns and "merged_labels" not in columns


def test_avd_outside_the_scale_warns_and_keeps(tmp_path):
    path = tmp_path / "t.csv"
    table(dominance=[5.2, 4, 4, 4, 4, 4]).to_csv(path, index=False)
    with pytest.warns(UserWarning, match="dominance value.*outside the scale 1-5"):
        corpus, _ = read_features_table(path, scale="1,5")
    assert corpus.avd[0, 2] == pytest.approx(5.2)


@pytest.mark.parametrize("text", ["1", "a,b", "1,2,3", "1-5"])
def test_a_scale_that_is_not_two_numbers_names_the_argument(text):
    with pytest.raises(EmoconfError, match=rf"^scale '{text}': expected two numbers 'LO,HI', e.g. '1,7'$") as raised:
        parse_scale(text)
    assert raised.value.argument == "scale"


@pytest.mark.parametrize("text", ["7,1", "1,inf", "3,3"])
def test_a_scale_not_low_below_high_and_finite_is_refused(text):
    with pytest.raises(EmoconfError, match=rf"^scale '{text}': expected LO < HI, both finite$"):
        parse_scale(text)


@pytest.mark.parametrize("classes", [["happy", "", "sad"], ["sad", " sad"]])
def test_class_names_must_be_unique_and_non_empty(classes):
    expected = rf"^classes {','.join(classes)}: class names must be unique and non-empty$"
    with pytest.raises(EmoconfError, match=expected) as raised:
        check_class_names(classes)
    assert raised.value.argument == "classes"
    assert check_class_names([" happy", "sad "]) == ("happy", "sad")


def test_read_features_table_refuses_repeated_classes_naming_the_argument(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    with pytest.raises(EmoconfError, match=r"^classes sad,sad: class names must be unique") as raised:
        read_features_table(path, classes=["sad", "sad"])
    assert raised.value.argument == "classes"
