"""Fitting the classifier and the EmoConfidNet head (Adam 1e-4, early stopping on validation loss)."""

from __future__ import annotations

import keras
import numpy as np

from emoconf_tf.epoch_loop import fit_early_stopped
from emoconf_tf.models import (
    build_classifier, build_confidence_head, build_emoconfidnet, build_tcp_head, penultimate_model,
)
from emoconf_tf.row_batches import CHUNK_ROWS, row_batches, row_chunks, row_count
from emoconf_tf.settings import TrainingConfig  # noqa: F401  (also importable from here, as it always was)


def feature_range(
    features: np.ndarray, rows: np.ndarray | None = None, *, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest value `[D]` (float32) of each feature over `features[rows]`, `chunk_rows` rows
    at a time (no copy of the selected rows).

    Example:
    >>> import numpy as np
    >>> lower, upper = feature_range(np.array([[1.0, 0.0], [3.0, -2.0], [100.0, 7.0]]), rows=[0, 1])
    >>> lower.tolist(), upper.tolist()
    ([1.0, -2.0], [3.0, 0.0])
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a matrix [N, D]; got shape {features.shape}")
    if row_count(features, rows) == 0:
        raise ValueError("feature_range needs at least one row")
    lower = np.full(features.shape[1], np.inf, dtype=np.float32)
    upper = np.full(features.shape[1], -np.inf, dtype=np.float32)
    for chunk in row_chunks(features, rows, chunk_rows):
        np.minimum(lower, chunk.min(axis=0), out=lower)
        np.maximum(upper, chunk.max(axis=0), out=upper)
    return lower, upper


def feature_moments(
    features: np.ndarray, rows: np.ndarray | None = None, *, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Training-set mean and variance `[D]` (float32) of `features[rows]`, accumulated in float64.

    Args:
        features: float `[N, D]`.
        rows: int `[n]` row indices (or a boolean mask `[N]`); None = every row.
        chunk_rows: rows converted to float64 at a time: one float64 chunk `[chunk_rows, D]` is held, never a
            float64 copy, nor a copy of the selected rows, of the whole matrix.

    The sums run over the rows in order, each chunk's rows added after the running total, so the float64
    sums are those of `features[rows].mean(axis=0, dtype=np.float64)` and `.var(axis=0, dtype=np.float64)`
    (two passes: the mean, then the mean squared deviation from it).

    Example:
    >>> import numpy as np
    >>> mean, variance = feature_moments(np.array([[1.0, 0.0], [3.0, 0.0], [100.0, 7.0]]), rows=[0, 1])
    >>> mean.tolist(), variance.tolist()
    ([2.0, 0.0], [1.0, 0.0])
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a matrix [N, D]; got shape {features.shape}")
    count = row_count(features, rows)
    if count == 0:
        raise ValueError("feature_moments needs at least one row")
    num_features = features.shape[1]
    # buffer[0] carries the running total into the next chunk's reduction: ((total + r0) + r1) + ...
    buffer = np.empty((min(chunk_rows, count) + 1, num_features), dtype=np.float64)
    total = np.zeros(num_features, dtype=np.float64)
    for chunk in row_chunks(features, rows, chunk_rows):
        buffer[0] = total
        buffer[1:len(chunk) + 1] = chunk
        np.add.reduce(buffer[:len(chunk) + 1], axis=0, out=total)
    mean = total / count
    total = np.zeros(num_features, dtype=np.float64)
    for chunk in row_chunks(features, rows, chunk_rows):
        buffer[0] = total
        deviations = buffer[1:len(chunk) + 1]
        np.subtract(chunk, mean, out=deviations)
        np.multiply(deviations, deviations, out=deviations)
        np.add.reduce(buffer[:len(chunk) + 1], axis=0, out=total)
    variance = total / count
    return mean.astype(np.float32), variance.astype(np.float32)


def _fit(model: keras.Model, x, y, x_val, y_val, config: TrainingConfig, *, rows=None, validation_rows=None,
         seed: int | None = None) -> int:
    """`model.fit` with the paper's early stopping (validation loss, patience, best weights); returns epochs run.

    Trains on `x[rows]` against `y` and validates on `x_val[validation_rows]` against `y_val` (rows None = all),
    the batches gathered by `row_batches` in the order `model.fit(x[rows], y, shuffle=True)` would draw them,
    so that neither Keras nor the caller copies the feature rows. Silent (`config.verbose` 0), the epochs run in
    `epoch_loop.fit_early_stopped` (the same weights, in less time); with a progress bar, in `model.fit`.
    """
    settings = dict(rows=rows, validation_rows=validation_rows, batch_size=config.batch_size,
                    max_epochs=config.max_epochs, patience=config.patience,
                    reshuffle_each_epoch=config.reshuffle_each_epoch, seed=seed)
    if config.verbose:
        return len(keras_fit_early_stopped(model, x, y, x_val, y_val, verbose=config.verbose, **settings))
    return len(fit_early_stopped(model, x, y, x_val, y_val, **settings))


def keras_fit_early_stopped(model: keras.Model, x, y, x_val, y_val, *, rows=None, validation_rows=None,
                            batch_size: int, max_epochs: int, patience: int, reshuffle_each_epoch: bool = False,
                            seed: int | None = None, verbose: int = 0) -> list[float]:
    """`epoch_loop.fit_early_stopped` done by Keras itself: `model.fit` on `row_batches` with `EarlyStopping`
    (the same weights; Keras's progress bar with `verbose` 1 or 2). Returns the validation loss of each epoch."""
    history = model.fit(
        row_batches(x, y, rows, batch_size=batch_size, shuffle=True, reshuffle_each_epoch=reshuffle_each_epoch,
                    seed=seed),
        validation_data=row_batches(x_val, y_val, validation_rows, batch_size=batch_size),
        shuffle=False,  # the batches come shuffled; Keras would only warn that it cannot shuffle a dataset
        epochs=max_epochs,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)],
        verbose=verbose,
    )
    return history.history["val_loss"]


def fit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    config: TrainingConfig = TrainingConfig(),
    *,
    seed: int | None = None,
    train_rows: np.ndarray | None = None,
    validation_rows: np.ndarray | None = None,
) -> tuple[keras.Model, int]:
    """Builds and trains the classifier with early stopping on validation cross-entropy.

    Args:
        x_train: float32 `[N, D]` raw features (standardisation statistics, and the clipping range with
            `config.clip_inputs`, are taken from them).
        y_train: int `[N]` class ids.
        x_val: float32 `[M, D]`; y_val: int `[M]`.
        num_classes: K.
        config: `TrainingConfig`.
        seed: seeds weights, dropout and shuffling.
        train_rows: int `[n]`, optional: train on the rows `x_train[train_rows]` without copying them (e.g. a
            fold's training rows of the whole corpus); `y_train` is then int `[n]`, one label per selected row.
        validation_rows: int `[m]`, optional: likewise validate on `x_val[validation_rows]` (`y_val` int `[m]`).

    Returns:
        `(classifier, epochs_run)`; the weights are those of the best validation epoch.

    The batches are gathered from the feature matrices as training asks for them (`row_batches`), in the
    order in which `model.fit(x_train[train_rows], ..., shuffle=True)` would draw them: the weights are the
    same, bit for bit, without a copy of the rows in memory.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    for part, x, rows, y in (("train", x_train, train_rows, y_train), ("validation", x_val, validation_rows, y_val)):
        if row_count(x, rows) != len(y):
            raise ValueError(f"{part}: {row_count(x, rows)} feature rows but {len(y)} labels")
    mean, variance = feature_moments(x_train, train_rows)
    lower, upper = feature_range(x_train, train_rows) if config.clip_inputs else (None, None)
    classifier = build_classifier(
        mean, variance, num_classes, units=config.units, dropout_rate=config.dropout_rate,
        learning_rate=config.learning_rate, seed=seed, lower=lower, upper=upper,
    )
    eye = np.eye(num_classes, dtype=np.float32)
    return classifier, _fit(classifier, x_train, eye[y_train], x_val, eye[y_val], config, rows=train_rows,
                            validation_rows=validation_rows, seed=seed)


def fit_emoconfidnet(
    classifier: keras.Model,
    x_train: np.ndarray,
    targets_train: np.ndarray,
    x_val: np.ndarray,
    targets_val: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    *,
    seed: int | None = None,
    train_rows: np.ndarray | None = None,
    validation_rows: np.ndarray | None = None,
) -> tuple[keras.Model, int]:
    """Trains an EmoConfidNet head on the frozen classifier's penultimate layer.

    The classifier is frozen and its penultimate outputs are computed once, in inference mode
    (BatchNorm moving statistics, no dropout); the head is then fitted on them with
    `PairwiseConfidenceLoss` and early stopping on the validation loss. Equivalent to fitting the
    combined graph with the classifier frozen, without re-running the 6,373-d first layer every epoch.

    Args:
        classifier: trained model from `fit_classifier`.
        x_train, x_val: float32 `[N, D]` raw features.
        targets_train, targets_val: float32 `[N, K]` targets from `confidence_targets`.
        train_rows, validation_rows: int `[n]` / `[m]`, optional: embed the rows `x_train[train_rows]` and
            `x_val[validation_rows]` without copying them; the targets then have one row per selected row.

    Returns:
        `(emoconfidnet, epochs_run)`: the combined model from `build_emoconfidnet` (outputs
        `probabilities` and `p_hat`), whose head holds the best validation weights.
    """
    extractor = penultimate_model(classifier)
    head, epochs = fit_confidence_head(
        embed(extractor, x_train, rows=train_rows), targets_train, embed(extractor, x_val, rows=validation_rows),
        targets_val, config, seed=seed,
    )
    return build_emoconfidnet(classifier, head, learning_rate=config.learning_rate), epochs


def fit_confidence_head(
    embed_train: np.ndarray,
    targets_train: np.ndarray,
    embed_val: np.ndarray,
    targets_val: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    *,
    seed: int | None = None,
) -> tuple[keras.Model, int]:
    """Fits an EmoConfidNet head on penultimate embeddings `[N, 256]` against targets `[N, K]`.

    Returns `(head, epochs_run)`; the head holds the best validation weights.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed + 1)
    head = build_confidence_head(
        embed_train.shape[-1], int(np.shape(targets_train)[-1]), units=config.units,
        dropout_rate=config.dropout_rate, learning_rate=config.learning_rate, seed=seed,
    )
    return head, _fit(head, embed_train, np.asarray(targets_train, dtype=np.float32), embed_val,
                      np.asarray(targets_val, dtype=np.float32), config, seed=None if seed is None else seed + 1)


def fit_tcp_head(
    embed_train: np.ndarray,
    tcp_train: np.ndarray,
    embed_val: np.ndarray,
    tcp_val: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    *,
    seed: int | None = None,
) -> tuple[keras.Model, int]:
    """Fits ConfidNet's true-class-probability head (MSE) on embeddings; `tcp_*` float `[N]` in [0, 1]."""
    if seed is not None:
        keras.utils.set_random_seed(seed + 2)
    head = build_tcp_head(
        embed_train.shape[-1], units=config.units, dropout_rate=config.dropout_rate,
        learning_rate=config.learning_rate, seed=seed,
    )
    return head, _fit(head, embed_train, np.asarray(tcp_train, dtype=np.float32)[:, None], embed_val,
                      np.asarray(tcp_val, dtype=np.float32)[:, None], config, seed=None if seed is None else seed + 2)


def embed(
    extractor: keras.Model, features: np.ndarray, batch_size: int = CHUNK_ROWS, *, rows: np.ndarray | None = None
) -> np.ndarray:
    """Outputs of `extractor` (e.g. `penultimate_model`) in inference mode, float32 `[N, 256]`.

    Args:
        extractor: a model from features `[None, D]`.
        features: float32 `[N, D]`.
        batch_size: rows per call; a row's output does not depend on it.
        rows: int `[n]`, optional: embed `features[rows]` (output `[n, 256]`), `batch_size` rows gathered at a time.

    Direct calls on large batches: no `tf.function` is traced per freshly trained model, as `predict` would.
    """
    count = row_count(features, rows)
    out = None  # filled chunk by chunk: no list of chunks next to their concatenation
    for start, chunk in zip(range(0, count, batch_size), row_chunks(features, rows, batch_size)):
        values = np.asarray(extractor(chunk, training=False))
        if out is None:
            out = np.empty((count, *values.shape[1:]), dtype=np.float32)
        out[start:start + len(values)] = values
    if out is None:
        return np.zeros((0, int(extractor.output.shape[-1])), dtype=np.float32)
    return out
