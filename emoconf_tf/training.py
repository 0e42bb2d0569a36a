"""Fitting the classifier and the EmoConfidNet head (Adam 1e-4, early stopping on validation loss)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from emoconf_tf.models import (
    build_classifier, build_confidence_head, build_emoconfidnet, build_tcp_head, penultimate_model,
)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Settings shared by the classifier and the EmoConfidNet head (paper, Section 4.3).

    Args:
        units: hidden width, default 256.
        dropout_rate: default 0.5.
        learning_rate: Adam learning rate, default 1e-4.
        batch_size: default 128 (the paper does not give one).
        max_epochs: upper bound on epochs, default 200; early stopping normally ends sooner.
        patience: early-stopping patience on validation loss, default 10; best weights are restored.
        verbose: Keras `fit` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
    """

    units: int = 256
    dropout_rate: float = 0.5
    learning_rate: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10
    verbose: int = 0


def feature_moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training-set mean and variance `[D]` (float32), accumulated in float64 without copying the matrix."""
    features = np.asarray(features)
    mean = features.mean(axis=0, dtype=np.float64)
    variance = features.var(axis=0, dtype=np.float64)
    return mean.astype(np.float32), variance.astype(np.float32)


def _fit(model: keras.Model, x, y, x_val, y_val, config: TrainingConfig) -> int:
    """`model.fit` with the paper's early stopping (validation loss, patience, best weights); returns epochs run."""
    history = model.fit(
        x, y, validation_data=(x_val, y_val),
        batch_size=config.batch_size, epochs=config.max_epochs, shuffle=True,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                 restore_best_weights=True)],
        verbose=config.verbose,
    )
    return len(history.history["loss"])


def fit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    config: TrainingConfig = TrainingConfig(),
    *,
    seed: int | None = None,
) -> tuple[keras.Model, int]:
    """Builds and trains the classifier with early stopping on validation cross-entropy.

    Args:
        x_train: float32 `[N, D]` raw features (standardisation statistics are taken from them).
        y_train: int `[N]` class ids.
        x_val: float32 `[M, D]`; y_val: int `[M]`.
        num_classes: K.
        config: `TrainingConfig`.
        seed: seeds weights, dropout and shuffling.

    Returns:
        `(classifier, epochs_run)`; the weights are those of the best validation epoch.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    mean, variance = feature_moments(x_train)
    classifier = build_classifier(
        mean, variance, num_classes, units=config.units, dropout_rate=config.dropout_rate,
        learning_rate=config.learning_rate, seed=seed,
    )
    eye = np.eye(num_classes, dtype=np.float32)
    return classifier, _fit(classifier, x_train, eye[y_train], x_val, eye[y_val], config)


def fit_emoconfidnet(
    classifier: keras.Model,
    x_train: np.ndarray,
    targets_train: np.ndarray,
    x_val: np.ndarray,
    targets_val: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    *,
    seed: int | None = None,
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

    Returns:
        `(emoconfidnet, epochs_run)`: the combined model from `build_emoconfidnet` (outputs
        `probabilities` and `p_hat`), whose head holds the best validation weights.
    """
    extractor = penultimate_model(classifier)
    head, epochs = fit_confidence_head(
        embed(extractor, x_train), targets_train, embed(extractor, x_val), targets_val, config, seed=seed
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
                      np.asarray(targets_val, dtype=np.float32), config)


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
                      np.asarray(tcp_val, dtype=np.float32)[:, None], config)


def embed(extractor: keras.Model, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Outputs of `extractor` (e.g. `penultimate_model`) in inference mode, float32 `[N, 256]`.

    Direct calls on large batches: no `tf.function` is traced per freshly trained model, as `predict` would.
    """
    chunks = [np.asarray(extractor(features[i:i + batch_size], training=False)) for i in range(0, len(features), batch_size)]
    return np.concatenate(chunks).astype(np.float32)
