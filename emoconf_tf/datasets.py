"""`tf.data` pipelines for `model.fit`: features with one-hot labels, or with confidence targets.

The protocol (`emoconf_tf.training`) fits on NumPy arrays; these helpers are for your own
`model.fit` loops (see `examples/`) and for datasets built with the TFDS builders:

- `classifier_dataset`: a `Corpus` or features `[N, D]` + class ids `[N]` -> `(features, one_hot)`,
- `confidence_dataset`: features `[N, D]` + EmoConfidNet targets `[N, K]` -> `(features, targets)`,
- `from_tfds`: a prepared `msp_podcast` / `iemocap` / `ser_features` split -> `(features, one_hot)`.

Every dataset yields batches: features float32 `[B, D]` and float32 `[B, K]` (the last batch may be
smaller), is mapped with `num_parallel_calls=tf.data.AUTOTUNE` and prefetched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError

DEFAULT_SHUFFLE_BUFFER = 10_000
"""Examples held in `from_tfds`' shuffle buffer (a TFDS split need not fit in memory)."""


def classifier_dataset(
    corpus_or_features: Corpus | np.ndarray,
    labels: np.ndarray | None = None,
    *,
    num_classes: int | None = None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = 0,
) -> tf.data.Dataset:
    """Batches of `(features, one_hot)` for fitting the classifier (`build_classifier`).

    Args:
        corpus_or_features: a `Corpus` (its `features` and `labels` are used; pass a subset, e.g.
            `corpus.subset(corpus.split == "train")`), or float `[N, D]` features.
        labels: int `[N]` class ids in `[0, num_classes)`; only with a features array.
        num_classes: K. Taken from the corpus when a `Corpus` is given; required with arrays.
        batch_size: int, default 128 (the protocol's).
        shuffle: reshuffle the rows every epoch (use False for validation and test data).
        seed: int or None, default 0; the shuffling seed (the same seed gives the same order of
            epochs).

    Returns:
        A `tf.data.Dataset` of `(features float32 [B, D], one_hot float32 [B, K])`.

    Raises:
        EmoconfError: for mismatched lengths, labels outside `[0, num_classes)`, or a missing K.

    Example:
    >>> import numpy as np
    >>> dataset = classifier_dataset(np.zeros((5, 3)), np.array([0, 1, 2, 1, 0]), num_classes=3, batch_size=4)
    >>> [tuple(y.shape) for _, y in dataset]
    [(4, 3), (1, 3)]
    """
    if isinstance(corpus_or_features, Corpus):
        corpus = corpus_or_features
        if labels is not None:
            raise EmoconfError("labels: leave it out when passing a Corpus; its labels are used")
        if num_classes is not None and int(num_classes) != corpus.num_classes:
            raise EmoconfError(
                f"num_classes={num_classes}, but the corpus {corpus.name!r} has {corpus.num_classes} classes "
                f"({', '.join(corpus.class_names)})"
            )
        features, labels, num_classes = corpus.features, corpus.labels, corpus.num_classes
    else:
        features = corpus_or_features
        if labels is None or num_classes is None:
            raise EmoconfError("with a features array, pass labels (int [N]) and num_classes (K) as well")
    features = _features_matrix(features)
    labels = np.asarray(labels)
    num_classes = int(num_classes)
    if num_classes < 2:
        raise EmoconfError(f"num_classes must be at least 2; got {num_classes}")
    if labels.shape != (features.shape[0],):
        raise EmoconfError(f"labels must be [N] with N = {features.shape[0]} feature rows; got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise EmoconfError(f"labels must be integer class ids; got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise EmoconfError(
            f"labels must lie in [0, {num_classes}) (num_classes = {num_classes}); got {labels.min()}..{labels.max()}"
        )
    features_tensor = tf.constant(features)
    labels_tensor = tf.constant(labels.astype(np.int64))

    def gather(index):
        return tf.gather(features_tensor, index), tf.one_hot(tf.gather(labels_tensor, index), num_classes)

    return _batched_rows(features.shape[0], gather, batch_size=batch_size, shuffle=shuffle, seed=seed)


def confidence_dataset(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = 0,
) -> tf.data.Dataset:
    """Batches of `(features, targets)` for fitting EmoConfidNet (`build_emoconfidnet`).

    Args:
        features: float `[N, D]` (raw features for the combined model, or penultimate embeddings
            `[N, 256]` for a head alone).
        targets: float `[N, K]`, from `confidence_targets`; rows sum to 1.
        batch_size: int, default 128.
        shuffle: reshuffle the rows every epoch.
        seed: int or None, default 0; the shuffling seed.

    Returns:
        A `tf.data.Dataset` of `(features float32 [B, D], targets float32 [B, K])`. For the combined
        model, whose outputs are a dict, map the targets to `{"p_hat": targets}` or pass them as
        they are (Keras matches a single target to the one loss given).

    Raises:
        EmoconfError: for mismatched lengths or targets that are not `[N, K]`.
    """
    features = _features_matrix(features)
    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim != 2 or targets.shape[0] != features.shape[0]:
        raise EmoconfError(
            f"targets must be [N, K] with N = {features.shape[0]} feature rows; got shape {targets.shape}"
        )
    features_tensor = tf.constant(features)
    targets_tensor = tf.constant(targets)

    def gather(index):
        return tf.gather(features_tensor, index), tf.gather(targets_tensor, index)

    return _batched_rows(features.shape[0], gather, batch_size=batch_size, shuffle=shuffle, seed=seed)


def from_tfds(
    name_or_builder,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int | None = 0,
    shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """A split of a prepared TFDS dataset as batches of `(features, one_hot)`.

    The dataset must already be built (`emoconf build` or `tfds_builders.build.build_dataset`);
    nothing is downloaded or prepared here.

    Args:
        name_or_builder: a prepared `tfds.core.DatasetBuilder`, or a name such as `"iemocap"`,
            `"msp_podcast/egemaps_v02"` or `"ser_features/custom"`.
        split: a TFDS split expression, e.g. `"train"`, `"session1+session2"`, `"train[:80%]"`.
        data_dir: the TFDS data dir (used when a name is given); None = the TFDS default.
        batch_size: int, default 128.
        shuffle: shuffle the files and the examples (True for training). Default False.
        seed: int or None, default 0; seeds file and example shuffling.
        shuffle_buffer_size: examples in the shuffle buffer, default 10,000.

    Returns:
        A `tf.data.Dataset` of `(features float32 [B, D], one_hot float32 [B, K])`, with K the
        number of the dataset's label names.

    Raises:
        EmoconfError: for an unknown name or a dataset that is not prepared in `data_dir`.
    """
    import tensorflow_datasets as tfds

    _check_batch_size(batch_size)
    builder = prepared_builder(name_or_builder, data_dir)
    num_classes = builder.info.features["label"].num_classes
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    dataset = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=read_config)
    dataset = dataset.map(
        lambda example: (tf.cast(example["features"], tf.float32), example["label"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda features, label: (features, tf.one_hot(label, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def prepared_builder(builder_or_name, data_dir: str | os.PathLike | None = None, config: str | None = None):
    """The builder given, or the prepared dataset named, e.g. `"iemocap/egemaps_v02"`; it must be prepared.

    A name is looked up on disk in `data_dir` (None = TFDS's default): TFDS reads a prepared dataset from its
    files (`dataset_info.json`, features, splits, metadata) when no builder class of that name is imported, so
    reading needs neither the `tfds_builders` code nor the network (`try_gcs=False`).

    Raises:
        EmoconfError: for a name with no prepared dataset in `data_dir`, or a builder that is not prepared.
    """
    import tensorflow_datasets as tfds

    if isinstance(builder_or_name, str):
        kwargs = {} if config is None or "/" in builder_or_name else {"config": config}
        try:
            builder = tfds.builder(
                builder_or_name,
                data_dir=None if data_dir is None else os.fspath(Path(data_dir).expanduser()),
                try_gcs=False,
                **kwargs,
            )
        except (tfds.core.registered.DatasetNotFoundError, ValueError) as error:
            where = tfds.core.constants.DATA_DIR if data_dir is None else data_dir
            raise EmoconfError(
                f"unknown dataset {builder_or_name!r}: no prepared copy in {where} and no builder of that name "
                f"({str(error).splitlines()[0]}); build it with `emoconf build NAME --manual-dir DIR`"
            ) from None
    else:
        builder = builder_or_name
    if not builder.is_prepared():
        raise EmoconfError(
            f"{builder.data_dir}: {builder.info.full_name} is not prepared; build it first "
            f"(emoconf build {builder.name} --manual-dir DIR, or build_dataset)"
        )
    return builder


def _batched_rows(num_rows: int, gather, *, batch_size: int, shuffle: bool, seed: int | None) -> tf.data.Dataset:
    """Batches of row indices (shuffled every epoch if asked) mapped through `gather`.

    Shuffling indices rather than rows keeps one copy of the features in memory: a row shuffle
    buffer over 6,373-d rows would hold a second copy of the training set.
    """
    _check_batch_size(batch_size)
    indices = tf.data.Dataset.range(num_rows)
    if shuffle:
        indices = indices.shuffle(max(num_rows, 1), seed=seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _features_matrix(features) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise EmoconfError(f"features must be [N, D]; got shape {features.shape}")
    return features


def _check_batch_size(batch_size: int) -> None:
    if int(batch_size) < 1:
        raise EmoconfError(f"batch_size must be at least 1; got {batch_size}")
