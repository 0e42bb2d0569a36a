import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError, read_features_table
from emoconf_tf.corpus import normalize_split, parse_scale, write_features_table


def table(n=6, **extra):
    frame = pd.DataFrame({
        "id": [f"utt{i}" for i in range(n)],
        "label": ["happy", "sad", "neutral"] * (n // 3),
        "arousal": np.linspace(1, 7, n),
        "valence": np.linspace(7, 1, n),
        "dominance": [4.0] * n,
        "split": ["Train", "Development", "Test1"] * (n // 3),
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


def test_avd_outside_the_scale_warns_and_keeps(tmp_path):
    path = tmp_path / "t.csv"
    table(dominance=[5.2, 4, 4, 4, 4, 4]).to_csv(path, index=False)
    with pytest.warns(UserWarning, match="dominance value.*outside the scale 1-5"):
        corpus, _ = read_features_table(path, scale="1,5")
    assert corpus.avd[0, 2] == pytest.approx(5.2)


@pytest.mark.parametrize("text", ["1", "7,1", "a,b", "1,2,3", "1,inf"])
def test_malformed_scale_is_refused(text):
    with pytest.raises(EmoconfError, match="scale"):
        parse_scale(text)
