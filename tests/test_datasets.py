"""`tf.data` pipelines: shapes, dtypes, one-hot labels, pairing under shuffling, and a TFDS round trip."""

from __future__ import annotations

import numpy as np
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


@pytest.fixture(scope="module")
def ser_features(tmp_path_factory, fake_corpus):
    """`(table frame, data dir, builder)`: conftest's 8-row features table built once as ser_features/custom.

    The table: classes angry, neutral, sad (sorted); splits train 4, validation 2, test 2; 5 float32 features.
    """
    from tfds_builders.build import build_dataset

    root = tmp_path_factory.mktemp("ser_features")
    frame = fake_corpus.features_frame()
    fake_corpus.features_table(root / "manual", frame)
    builder = build_dataset("ser_features", root / "manual", root / "tfds", config="custom", progress=False)
    return frame, root / "tfds", builder


def test_from_tfds_round_trips_a_ser_features_split(ser_features):
    frame, data_dir, _ = ser_features
    dataset = from_tfds("ser_features/custom", "train", data_dir, batch_size=4)
    x, y = collect(dataset)
    train = frame[frame["split"] == "Train"]
    feature_columns = [column for column in frame.columns if column.startswith("feat_")]
    assert x.shape == (4, 5) and x.dtype == np.float32
    assert y.shape == (4, 3) and y.dtype == np.float32
    # Rows come back in TFDS order: match them to the table by their feature values.
    expected_features = train[feature_columns].to_numpy(dtype=np.float32)
    order = [int(np.flatnonzero((expected_features == row).all(axis=1))[0]) for row in x]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_array_equal(x, expected_features[order])
    class_names = ["angry", "neutral", "sad"]
    np.testing.assert_array_equal(np.asarray(class_names)[y.argmax(axis=1)], train["label"].to_numpy()[order])
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(4))


def test_from_tfds_accepts_a_builder_and_shuffles(ser_features):
    _, _, builder = ser_features
    x, y = collect(from_tfds(builder, "validation+test", batch_size=2, shuffle=True, seed=0))
    assert x.shape == (4, 5) and y.shape == (4, 3)


def test_from_tfds_unprepared_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(EmoconfError, match="ser_features/custom/1.0.0 is not prepared; build it first"):
        from_tfds("ser_features/custom", "train", tmp_path / "empty")


def test_from_tfds_reads_a_prepared_dataset_without_the_builder_code(ser_features):
    """The library reads prepared datasets from their files: it never imports `tfds_builders` (no import cycle)."""
    import subprocess
    import sys

    _, data_dir, _ = ser_features
    code = (
        "import sys\n"
        "from emoconf_tf.datasets import from_tfds\n"
        f"batches = list(from_tfds('ser_features/custom', 'train', {str(data_dir)!r}, batch_size=4))\n"
        "print(sum(int(x.shape[0]) for x, _ in batches), 'tfds_builders' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows, builders_loaded = out.stdout.split()[-2:]
    assert int(rows) > 0 and builders_loaded == "False"


def test_only_the_cli_of_emoconf_tf_imports_tfds_builders():
    """emoconf_tf (the library) -> nothing of tfds_builders; tfds_builders -> emoconf_tf; the CLI uses both."""
    import ast
    from pathlib import Path

    import emoconf_tf

    importers = []
    for path in Path(emoconf_tf.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "tfds_builders" for name in names):
                importers.append(path.relative_to(Path(emoconf_tf.__file__).parent))
    assert importers and all(path.parts[0] == "cli" for path in importers), importers
