"""Rows of one feature matrix taken by index, for `model.fit` and inference without copying the rows.

The protocol trains on a fold's training rows and validates on its validation rows, both parts of the
corpus's one feature matrix `[N, D]` (1.3 GB at the size of MSP-Podcast with ComParE features).
`model.fit(features[rows], ...)` would copy those rows, and Keras would copy them again into tensors;
`row_batches` instead gathers each batch of 128 rows from the matrix as `fit` asks for it, and
`row_chunks` yields a few hundred rows at a time for inference and statistics.

`row_batches` draws the batches in exactly the order `model.fit(features[rows], targets, shuffle=...)`
does with the TensorFlow backend: it is Keras's own array input pipeline (`ArrayDataAdapter.get_tf_dataset`,
Keras 3: one `tf.random.shuffle` of the row positions per epoch, full batches, then the partial one), with
the batch gathered from the matrix in NumPy instead of from a tensor copy. So, for the same seed, a model
fitted on `row_batches` has bit-identical weights to one fitted on the copied arrays
(`tests/test_row_batches.py` checks it against Keras, so a Keras release that draws otherwise is noticed).

Keras's pipeline draws its permutation once per iterator from the shuffle op's seed, so once a global seed
is set (`keras.utils.set_random_seed`) every epoch sees the rows in the same order. With
`reshuffle_each_epoch=True` (what `TrainingConfig` asks for by default) each epoch draws a new permutation
instead, still fixed by the seed.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

CHUNK_ROWS = 512
"""Rows per chunk of `row_chunks` by default: float32 `[512, 6373]` is 13 MB. Inference on 512 rows at a time is as
fast as on 4096 and needs an eighth of the memory; a row's outputs do not depend on the chunk size."""


def row_batches(
    features: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    reshuffle_each_epoch: bool = False,
    seed: int | None = None,
):
    """A `tf.data.Dataset` of `(features[rows[b]], targets[b])` batches, as `model.fit` would draw them.

    Args:
        features: float32 `[N, D]`, the whole matrix; it is read, never copied (keep it unchanged while the
            dataset is in use).
        targets: `[n, ...]`, one target per selected row, in the order of `rows` (floats become float32).
        rows: int `[n]` row indices into `features`; None = all N rows (then n = N).
        batch_size: rows per batch; the last batch holds the `n % batch_size` rest, if any.
        shuffle: shuffle the rows (`tf.random.shuffle` of their positions, once per iterator, i.e. per epoch).
        reshuffle_each_epoch: with `shuffle`, draw a new order in every epoch, deterministic for a given `seed`
            (a `tf.data` shuffle with `reshuffle_each_iteration=True`). Keras's own pipeline, which the default
            mirrors, draws the *same* order in every epoch once a global seed is set.
        seed: the shuffle's seed when `reshuffle_each_epoch` (None = from the global seed).

    Returns:
        A dataset of `(x float32 [b, D], y [b, ...])` with known cardinality `ceil(n / batch_size)`; pass it as
        `model.fit(dataset, validation_data=...)` without `batch_size`. As with Keras's own pipeline, once a
        global seed is set (`keras.utils.set_random_seed`, as the `fit_*` functions do) the shuffle op's seed is
        fixed and every epoch draws the same order; without a global seed, each epoch draws a new one.

    Example:
    >>> import numpy as np
    >>> features = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> dataset = row_batches(features, np.zeros(3), rows=np.array([5, 0, 2]), batch_size=2)
    >>> [x.numpy().tolist() for x, _ in dataset]
    [[[10.0, 11.0], [0.0, 1.0]], [[4.0, 5.0]]]
    """
    import tensorflow as tf

    features, targets, rows = checked_rows(features, targets, rows)
    num_samples = len(targets)
    indices_dataset = batch_positions(num_samples, batch_size, shuffle=shuffle,
                                      reshuffle_each_epoch=reshuffle_each_epoch, seed=seed)

    def grab_batch(positions, data):
        (target_tensor,) = data
        return gathered_rows(features, rows, positions), tf.gather(target_tensor, positions, axis=0)

    dataset = tf.data.Dataset.zip(
        (indices_dataset, tf.data.Dataset.from_tensors((tf.convert_to_tensor(targets),)).repeat())
    )
    dataset = dataset.map(grab_batch, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    if shuffle:
        options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    dataset = dataset.with_options(options)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE).apply(tf.data.experimental.assert_cardinality(
        int(indices_dataset.cardinality())))


def batch_positions(num_samples: int, batch_size: int, *, shuffle: bool = False, reshuffle_each_epoch: bool = False,
                    seed: int | None = None):
    """The positions `0..num_samples-1` in the batches `row_batches` draws: a `tf.data.Dataset` of int64 `[b]`.

    Each iterator over it is one epoch (full batches of `batch_size`, then the `num_samples % batch_size` rest);
    `shuffle`, `reshuffle_each_epoch` and `seed` are `row_batches`'s. The order of the positions is decided
    here, so a loop that gathers rows by these positions trains on the batches `row_batches` would give.

    Example:
    >>> [b.numpy().tolist() for b in batch_positions(5, 2)]
    [[0, 1], [2, 3], [4]]
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    num_full_batches = num_samples // batch_size
    partial_batch_size = num_samples % batch_size

    # From here on, the structure of keras.src.trainers.data_adapters.array_data_adapter (Keras 3.15):
    # the random op and its place in the pipeline decide the order of the rows, so they are kept as they are.
    def permutation(_):
        indices = tf.range(num_samples, dtype=tf.int64)
        if shuffle:
            indices = tf.random.shuffle(indices)
        return indices

    indices_dataset = tf.data.Dataset.range(1).map(permutation).prefetch(1)

    def slice_batch_indices(indices):
        num_in_full_batch = num_full_batches * batch_size
        first_k_indices = tf.reshape(tf.slice(indices, [0], [num_in_full_batch]), [num_full_batches, batch_size])
        flat_dataset = tf.data.Dataset.from_tensor_slices(first_k_indices)
        if partial_batch_size:
            remainder = tf.data.Dataset.from_tensors(tf.slice(indices, [num_in_full_batch], [partial_batch_size]))
            flat_dataset = flat_dataset.concatenate(remainder)
        return flat_dataset

    indices_dataset = indices_dataset.flat_map(slice_batch_indices)
    if shuffle and reshuffle_each_epoch:
        # A new permutation per iterator (= per epoch of `fit`), the sequence fixed by the seed; same batch sizes.
        indices_dataset = (
            tf.data.Dataset.range(num_samples)
            .shuffle(max(num_samples, 1), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
        )
    num_batches = num_full_batches + (1 if partial_batch_size else 0)
    return indices_dataset.apply(tf.data.experimental.assert_cardinality(num_batches))


def row_chunks(
    features: np.ndarray, rows: np.ndarray | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[np.ndarray]:
    """Consecutive chunks of `features[rows]`, `[<= chunk_rows, D]`, without copying all the rows at once.

    Args:
        features: `[N, D]`, the whole matrix (chunks keep its dtype).
        rows: int `[n]` row indices; None = rows 0..N-1 (chunks are then views, not copies).
        chunk_rows: rows per chunk.

    Example:
    >>> import numpy as np
    >>> [c.tolist() for c in row_chunks(np.arange(5.0)[:, None], np.array([4, 3, 1]), chunk_rows=2)]
    [[[4.0], [3.0]], [[1.0]]]
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a matrix [N, D]; got shape {features.shape}")
    rows = _row_indices(rows, features.shape[0])
    count = features.shape[0] if rows is None else rows.shape[0]
    for start in range(0, count, chunk_rows):
        yield features[start:start + chunk_rows] if rows is None else features[rows[start:start + chunk_rows]]


def row_count(features: np.ndarray, rows: np.ndarray | None = None) -> int:
    """n: the number of selected rows (`len(rows)`, the True entries of a boolean mask, or N when `rows` is None)."""
    if rows is None:
        return int(np.shape(features)[0])
    rows = np.asarray(rows)
    return int(np.count_nonzero(rows) if rows.dtype == bool else rows.shape[0])


def gathered_rows(features: np.ndarray, rows: np.ndarray | None, positions):
    """A TensorFlow op: `features[rows[positions]]` (`features[positions]` with rows None), float32 `[b, D]`,
    gathered in NumPy from the matrix (`tf.numpy_function`), so that no tensor copy of the matrix is made.

    Args:
        features: float32 `[N, D]` (as from `checked_rows`); rows: int64 `[n]` or None.
        positions: int64 tensor `[b]`, positions into `rows` (or rows of `features`).
    """
    import tensorflow as tf

    def gather(batch_positions: np.ndarray) -> np.ndarray:
        return features[batch_positions if rows is None else rows[batch_positions]]

    batch = tf.numpy_function(gather, [positions], tf.float32, stateful=False)
    batch.set_shape([None, features.shape[1]])
    return batch


def checked_rows(features, targets, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`(features float32 [N, D], targets [n, ...], rows int64 [n] or None)` checked for `row_batches`: one
    target per selected row, float targets as float32 (as Keras casts float arrays to floatx)."""
    features = _float32_matrix(features)
    rows = _row_indices(rows, features.shape[0])
    targets = np.asarray(targets)
    if np.issubdtype(targets.dtype, np.floating) and targets.dtype != np.float32:
        targets = targets.astype(np.float32)
    count = features.shape[0] if rows is None else rows.shape[0]
    if targets.shape[0] != count:
        raise ValueError(f"targets has {targets.shape[0]} rows; expected one per selected row ({count})")
    return features, targets, rows


def _float32_matrix(features) -> np.ndarray:
    """The matrix as float32 `[N, D]` NumPy (no copy when it already is one)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be a matrix [N, D]; got shape {features.shape}")
    return features


def _row_indices(rows, num_rows: int) -> np.ndarray | None:
    """`rows` as int64 `[n]` within [0, num_rows), or None; a boolean mask `[N]` becomes its indices."""
    if rows is None:
        return None
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (num_rows,):
            raise ValueError(f"a boolean row mask must have shape ({num_rows},); got {rows.shape}")
        return np.flatnonzero(rows)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"rows must be a 1-d array of integer row indices; got {rows.dtype} {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= num_rows):
        raise ValueError(f"row indices must lie in [0, {num_rows}); got {rows.min()}..{rows.max()}")
    return rows.astype(np.int64, copy=False)
