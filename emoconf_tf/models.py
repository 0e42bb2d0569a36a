"""Keras functional models: the emotion classifier and the EmoConfidNet head on its penultimate layer.

Classifier (paper, Section 4.3)::

    features [D] -> Normalization (training mean/std) -> 2 x (Dense 256 -> BatchNorm -> ReLU -> Dropout 0.5)
                 -> Dense K softmax ("probabilities")

The second block's ReLU output is the layer named `penultimate` (256-d): the input of the classifier's
last dense layer at inference time. EmoConfidNet is a head of the same body on that output::

    penultimate [256] -> 2 x (Dense 256 -> BatchNorm -> ReLU -> Dropout 0.5) -> Dense K softmax ("p_hat")
"""

from __future__ import annotations

import numpy as np
import keras

PENULTIMATE = "penultimate"
HEAD_NAME = "emoconfidnet_head"
# Training steps per `tf.function` call in `fit`: one Python round trip per 32 batches instead of per batch.
# Results are bit-identical to 1; fitting is 10-25 % faster on 2 CPU cores (the head, with tiny steps, gains most;
# docs/performance.md). Callbacks and the progress bar then update every 32 batches within an epoch.
STEPS_PER_EXECUTION = 32


def _dense_block(x, units: int, prefix: str, *, relu_name: str | None = None):
    """Dense -> BatchNorm -> ReLU (the dropout that follows is added by the caller, with its seed)."""
    x = keras.layers.Dense(units, name=f"{prefix}_dense")(x)
    x = keras.layers.BatchNormalization(name=f"{prefix}_batchnorm")(x)
    return keras.layers.ReLU(name=relu_name or f"{prefix}_relu")(x)


def build_classifier(
    mean: np.ndarray,
    variance: np.ndarray,
    num_classes: int,
    *,
    units: int = 256,
    dropout_rate: float = 0.5,
    learning_rate: float = 1e-4,
    seed: int | None = None,
) -> keras.Model:
    """The emotion classifier, compiled with Adam and categorical cross-entropy.

    Args:
        mean: float `[D]`, training-set feature means (standardisation lives in the model).
        variance: float `[D]`, training-set feature variances.
        num_classes: K.
        units: int, default 256, width of both hidden layers.
        dropout_rate: float, default 0.5.
        learning_rate: float, default 1e-4 (Adam).
        seed: int or None, seeds the initialisers and dropout.

    Returns:
        A `keras.Model` from `features` float32 `[None, D]` to `probabilities` float32 `[None, K]`,
        with a layer named `penultimate` (256-d).

    Example:
    >>> import numpy as np
    >>> model = build_classifier(np.zeros(8), np.ones(8), num_classes=5)
    >>> model.output_shape
    (None, 5)
    """
    mean = np.asarray(mean, dtype=np.float32)
    variance = np.asarray(variance, dtype=np.float32)
    num_features = int(mean.shape[-1])
    seeds = _layer_seeds(seed)
    # === Layers / Functional Model ===
    inputs = keras.Input(shape=(num_features,), dtype="float32", name="features")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardize")(inputs)
    x = _dense_block(x, units, "block1")
    x = keras.layers.Dropout(dropout_rate, seed=next(seeds), name="block1_dropout")(x)
    x = _dense_block(x, units, "block2", relu_name=PENULTIMATE)
    x = keras.layers.Dropout(dropout_rate, seed=next(seeds), name="block2_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="emotion_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def build_confidence_head(
    embedding_dim: int,
    num_classes: int,
    *,
    units: int = 256,
    dropout_rate: float = 0.5,
    learning_rate: float = 1e-4,
    seed: int | None = None,
) -> keras.Model:
    """EmoConfidNet's own layers: penultimate embedding `[None, 256]` -> `p_hat` `[None, K]`.

    Compiled with Adam and `PairwiseConfidenceLoss`.
    """
    from emoconf_tf.losses import PairwiseConfidenceLoss

    seeds = _layer_seeds(seed)
    inputs = keras.Input(shape=(embedding_dim,), dtype="float32", name="embedding")
    x = _dense_block(inputs, units, "head_block1")
    x = keras.layers.Dropout(dropout_rate, seed=next(seeds), name="head_block1_dropout")(x)
    x = _dense_block(x, units, "head_block2")
    x = keras.layers.Dropout(dropout_rate, seed=next(seeds), name="head_block2_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="p_hat")(x)
    head = keras.Model(inputs, outputs, name=HEAD_NAME)
    head.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=PairwiseConfidenceLoss(),
                 steps_per_execution=STEPS_PER_EXECUTION)
    return head


def build_tcp_head(
    embedding_dim: int,
    *,
    units: int = 256,
    dropout_rate: float = 0.5,
    learning_rate: float = 1e-4,
    seed: int | None = None,
) -> keras.Model:
    """ConfidNet's head: penultimate embedding `[None, 256]` -> true-class probability `tcp` `[None, 1]`.

    The same body as EmoConfidNet with one sigmoid output, compiled with Adam and mean squared error
    against the classifier's softmax probability of the true class.

    Reference:
        Corbiere et al., "Addressing failure prediction by learning model confidence", NeurIPS 2019.
    """
    seeds = _layer_seeds(seed)
    inputs = keras.Input(shape=(embedding_dim,), dtype="float32", name="embedding")
    x = _dense_block(inputs, units, "tcp_block1")
    x = keras.layers.Dropout(dropout_rate, seed=next(seeds), name="tcp_block1_dropout")(x)
    x = _dense_block(x, units, "tcp_block2")
    x = keras.layers.Dropout(dropout_rate, seed=next(seeds), name="tcp_block2_dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="tcp")(x)
    head = keras.Model(inputs, outputs, name="confidnet_tcp_head")
    head.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=keras.losses.MeanSquaredError(),
                 steps_per_execution=STEPS_PER_EXECUTION)
    return head


def build_emoconfidnet(classifier: keras.Model, head: keras.Model | None = None, **head_kwargs) -> keras.Model:
    """Attaches an EmoConfidNet head to the classifier's `penultimate` layer in one functional graph.

    The classifier's layers are frozen (`trainable=False`): training this model trains the head only.

    Args:
        classifier: a model from `build_classifier` (trained).
        head: an existing head from `build_confidence_head`; a new one is built when None.
        **head_kwargs: passed to `build_confidence_head` (units, dropout_rate, learning_rate, seed).

    Returns:
        A `keras.Model` from `features` `[None, D]` to a dict with `probabilities` `[None, K]`
        (the classifier's output) and `p_hat` `[None, K]` (EmoConfidNet's output). Compiled with
        `PairwiseConfidenceLoss` on `p_hat` only, so `model.fit(x, {"p_hat": targets})` trains the
        head (note: in `fit`, the frozen classifier's first dropout layer is still active, as Keras
        applies `training=True` through the whole graph; `fit_emoconfidnet` avoids that by fitting the
        head on inference-mode embeddings).
    """
    from emoconf_tf.losses import PairwiseConfidenceLoss

    classifier.trainable = False
    penultimate = classifier.get_layer(PENULTIMATE).output
    num_classes = int(classifier.output.shape[-1])
    if head is None:
        head = build_confidence_head(int(penultimate.shape[-1]), num_classes, **head_kwargs)
    p_hat = head(penultimate)
    outputs = {
        "probabilities": keras.layers.Identity(name="probabilities_out")(classifier.output),
        "p_hat": keras.layers.Identity(name="p_hat_out")(p_hat),
    }
    model = keras.Model(classifier.input, outputs, name="emoconfidnet")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=head_kwargs.get("learning_rate", 1e-4)),
        loss={"p_hat": PairwiseConfidenceLoss()},
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def penultimate_model(classifier: keras.Model) -> keras.Model:
    """The classifier up to its `penultimate` layer: `[None, D]` -> `[None, 256]`."""
    return keras.Model(classifier.input, classifier.get_layer(PENULTIMATE).output, name="penultimate_features")


def _layer_seeds(seed: int | None):
    base = 0 if seed is None else int(seed)
    i = 0
    while True:
        i += 1
        yield None if seed is None else base * 1000 + i
