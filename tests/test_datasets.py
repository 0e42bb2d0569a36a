"""`tf.data` pipelines: shapes, dtypes, one-hot labels, pairing under shuffling, and a TFDS round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emoconf_tf.datasets import classifier_dataset, confidence_dataset, from_tfds
from emoconf_tf.errors import EmoconfError
from emoconf_tf.synthetic import make_synthetic_corpus


def collect(dataset):
    """Concatenates every batch: `(x [N, D], y [N, K])` as NumPy."""
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(xs), np.concatenate(ys)


def indexed_rows(n: int = 10, num_features: int = 3, num_classes: int = 3):
    """Row i has every feature equal to i and label i % K, so a batch shows which rows it holds."""
    features = np.repeat(np.arange(n, dtype=np.float32)[:, None], num_features, axis=1)
    labels = np.arange(n) % num_classes
    return features, labels


def test_classifier_dataset_batches_are_float32_features_and_one_hot():
    features, labels = indexed_rows(10)
    dataset = classifier_dataset(features, labels, num_classes=3, batch_size=4, shuffle=False)
    batches = list(dataset)
    # 10 rows in batches of 4: 4 + 4 + 2.
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3), (4, 3), (2, 3)]
    assert [tuple(y.shape) for _, y in batches] == [(4, 3), (4, 3), (2, 3)]
    assert {x.dtype.name for x, _ in batches} == {"float32"}
    assert {y.dtype.name for _, y in batches} == {"float32"}


def test_classifier_dataset_one_hot_rows_are_the_labels():
    features, labels = indexed_rows(10)
    x, y = collect(classifier_dataset(features, labels, num_classes=3, batch_size=4, shuffle=False))
    np.testing.assert_array_equal(x, features)
    np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[labels])
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(10))


def test_classifier_dataset_shuffling_keeps_features_and_labels_paired():
    features, labels = indexed_rows(50)
    x, y = collect(classifier_dataset(features, labels, num_classes=3, batch_size=8, shuffle=True, seed=3))
    assert not np.array_equal(x[:, 0], features[:, 0])  # the order changed
    np.testing.assert_array_equal(np.sort(x[:, 0]), features[:, 0])  # a permutation of every row
    np.testing.assert_array_equal(y.argmax(axis=1), x[:, 0].astype(int) % 3)  # each row kept its label


def test_classifier_dataset_same_seed_gives_the_same_order():
    features, labels = indexed_rows(50)
    first, _ = collect(classifier_dataset(features, labels, num_classes=3, shuffle=True, seed=7))
    second, _ = collect(classifier_dataset(features, labels, num_classes=3, shuffle=True, seed=7))
    np.testing.assert_array_equal(first, second)


def test_classifier_dataset_from_a_corpus_takes_its_labels_and_classes():
    corpus = make_synthetic_corpus(n_utterances=40, num_features=6, seed=0)
    x, y = collect(classifier_dataset(corpus, batch_size=16, shuffle=False))
    np.testing.assert_array_equal(x, corpus.features)
    assert y.shape == (40, corpus.num_classes)
    np.testing.assert_array_equal(y.argmax(axis=1), corpus.labels)


def test_classifier_dataset_corpus_with_other_num_classes_is_a_clear_error():
    corpus = make_synthetic_corpus(n_utterances=40, num_features=6, seed=0)
    with pytest.raises(EmoconfError, match="num_classes=3, but the corpus 'synthetic' has 5 classes"):
        classifier_dataset(corpus, num_classes=3)


def test_classifier_dataset_arrays_without_num_classes_is_a_clear_error():
    features, labels = indexed_rows(10)
    with pytest.raises(EmoconfError, match="pass labels .* and num_classes"):
        classifier_dataset(features, labels)


def test_classifier_dataset_label_outside_num_classes_is_a_clear_error():
    features, labels = indexed_rows(10)
    with pytest.raises(EmoconfError, match=r"labels must lie in \[0, 2\).*got 0\.\.2"):
        classifier_dataset(features, labels, num_classes=2)


def test_classifier_dataset_length_mismatch_is_a_clear_error():
    features, labels = indexed_rows(10)
    with pytest.raises(EmoconfError, match=r"labels must be \[N\] with N = 10 feature rows; got shape \(9,\)"):
        classifier_dataset(features, labels[:9], num_classes=3)


def test_confidence_dataset_pairs_features_with_their_targets():
    features, _ = indexed_rows(10)
    targets = np.random.default_rng(0).dirichlet(np.ones(4), size=10).astype(np.float32)
    x, t = collect(confidence_dataset(features, targets, batch_size=3, shuffle=True, seed=1))
    assert x.dtype == np.float32 and t.dtype == np.float32
    assert t.shape == (10, 4)
    np.testing.assert_array_equal(t, targets[x[:, 0].astype(int)])
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)


def test_confidence_dataset_targets_of_another_length_is_a_clear_error():
    features, _ = indexed_rows(10)
    with pytest.raises(EmoconfError, match=r"targets must be \[N, K\] with N = 10 feature rows; got shape \(8, 4\)"):
        confidence_dataset(features, np.full((8, 4), 0.25))


def test_zero_batch_size_is_a_clear_error():
    features, labels = indexed_rows(10)
    with pytest.raises(EmoconfError, match="batch_size must be at least 1; got 0"):
        classifier_dataset(features, labels, num_classes=3, batch_size=0)


# --- TFDS ---------------------------------------------------------------------------------------

tfds = pytest.importorskip("tensorflow_datasets")


def ser_features_table(path) -> pd.DataFrame:
    """Twelve utterances, three classes (sorted: angry, neutral, sad), AVD on 1-7, 4 features, three splits."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"utt{i:02d}" for i in range(12)],
            "label": ["sad", "angry", "neutral", "angry", "sad", "neutral"] * 2,
            "arousal": rng.uniform(1, 7, 12),
            "valence": rng.uniform(1, 7, 12),
            "dominance": rng.uniform(1, 7, 12),
            "speaker": [f"s{i // 2}" for i in range(12)],
            "group": [""] * 12,
            "split": ["train"] * 6 + ["validation"] * 3 + ["test"] * 3,
            "scale": ["1,7"] * 12,  # the AVD scale, which ser_features needs the table to record
        }
    )
    features = pd.DataFrame(rng.normal(size=(12, 4)).astype(np.float32), columns=[f"feat_{j}" for j in range(4)])
    frame = pd.concat([frame, features], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.9g")
    return frame


def test_from_tfds_round_trips_a_ser_features_split(tmp_path):
    from tfds_builders.build import build_dataset

    frame = ser_features_table(tmp_path / "manual" / "features.csv")
    build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    dataset = from_tfds("ser_features/custom", "train", tmp_path / "tfds", batch_size=4)
    x, y = collect(dataset)
    train = frame[frame["split"] == "train"]
    assert x.shape == (6, 4) and x.dtype == np.float32
    assert y.shape == (6, 3) and y.dtype == np.float32
    # Rows come back in TFDS order: match them to the table by their feature values.
    expected_features = train[[f"feat_{j}" for j in range(4)]].to_numpy(dtype=np.float32)
    order = [int(np.flatnonzero((expected_features == row).all(axis=1))[0]) for row in x]
    np.testing.assert_array_equal(x, expected_features[order])
    class_names = ["angry", "neutral", "sad"]
    np.testing.assert_array_equal(np.asarray(class_names)[y.argmax(axis=1)], train["label"].to_numpy()[order])
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(6))


def test_from_tfds_accepts_a_builder_and_shuffles(tmp_path):
    from tfds_builders.build import build_dataset

    ser_features_table(tmp_path / "manual" / "features.csv")
    builder = build_dataset("ser_features", tmp_path / "manual", tmp_path / "tfds", config="custom", progress=False)
    x, y = collect(from_tfds(builder, "validation+test", batch_size=2, shuffle=True, seed=0))
    assert x.shape == (6, 4) and y.shape == (6, 3)


def test_from_tfds_unprepared_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(EmoconfError, match="ser_features/custom/1.0.0 is not prepared; build it first"):
        from_tfds("ser_features/custom", "train", tmp_path / "empty")
