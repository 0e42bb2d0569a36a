"""Keras functional models: the emotion classifier and the EmoConfidNet head on its penultimate layer.

Classifier (paper, Section 4.3)::

    features [D] -> ClipToRange (training min/max) -> Normalization (training mean/std)
                 -> 2 x (Dense 256 -> BatchNorm -> ReLU -> Dropout 0.5) -> Dense K softmax ("probabilities")

(`ClipToRange` is this package's addition, on by default, `TrainingConfig.clip_inputs`: see its docstring.)

The second block's ReLU output is the layer named `penultimate` (256-d): the input of the classifier's
last dense layer at inference time. EmoConfidNet is a head of the same body on that output::

    penultimate [256] -> 2 x (Dense 256 -> BatchNorm -> ReLU -> Dropout 0.5) -> Dense K softmax ("p_hat")
"""

from __future__ import annotations

import numpy as np
import keras

PENULTIMATE = "penultimate"
CLIP_NAME = "clip_to_training_range"
HEAD_NAME = "emoconfidnet_head"
FROZEN_CLASSIFIER_NAME = "frozen_classifier"
# Training steps per `tf.function` call in `fit`: one Python round trip per 32 batches instead of per batch.
# Results are bit-identical to 1 and fitting is faster, the head (tiny steps) most (timings: docs/performance.md).
# Callbacks and the progress bar then update every 32 batches within an epoch.
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
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> keras.Model:
    """The emotion classifier, compiled with Adam and categorical cross-entropy.

    Args:
        mean: float `[D]`, training-set feature means (standardisation lives in the model).
        variance: float `[D]`, training-set feature variances. A 0 (a feature constant on the training rows) is
            stored as infinity, which masks the feature: its standardised value is 0 whatever the input
            (`standardized_variance`).
        num_classes: K.
        units: int, default 256, width of both hidden layers.
        dropout_rate: float, default 0.5.
        learning_rate: float, default 1e-4 (Adam).
        seed: int or None, seeds the initialisers and dropout.
        lower, upper: float `[D]`, the training rows' minimum and maximum of each feature: with them, a
            `ClipToRange` layer (named `clip_to_training_range`) clips the input to that range before the
            standardisation. Default None: no clipping (the paper's network).

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
    variance = standardized_variance(variance)
    num_features = int(mean.shape[-1])
    seeds = _layer_seeds(seed)
    # === Layers / Functional Model ===
    inputs = keras.Input(shape=(num_features,), dtype="float32", name="features")
    x = inputs if lower is None else ClipToRange(lower, upper, name=CLIP_NAME)(inputs)
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardize")(x)
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


def standardized_variance(variance: np.ndarray) -> np.ndarray:
    """The variances the `standardize` layer stores: float32 `[D]`, each 0 replaced by infinity (the feature masked).

    A feature constant on the training rows (common for ComParE functionals on a small corpus) has variance 0, and
    training never moves the first-layer weights it feeds (its standardised value is 0 on every training row, so
    their gradient is 0): on a test session where it does vary, it would reach the network through random initial
    weights (on the IEMOCAP dev table a column 0 in training and 1000 on one session cost that fold 0.37 of t0 F1).
    Keras's `Normalization` computes `(x - mean) / sqrt(variance)`, so variance infinity makes it 0 for any finite
    input: the feature has no influence, as if scikit-learn's `VarianceThreshold` had dropped it, in the Keras
    model, the folded network (its kernel rows are scaled by 1 / inf = 0) and the SavedModel alike.

    Args:
        variance: float `[D]`, training-set variances (>= 0).

    Returns:
        float32 `[D]`: `variance` where it is positive, infinity where it is 0.

    Example:
    >>> standardized_variance(np.array([4.0, 0.0])).tolist()
    [4.0, inf]
    """
    variance = np.asarray(variance, dtype=np.float32)
    return np.where(variance > 0, variance, np.float32(np.inf)).astype(np.float32)


def masked_feature_count(model: keras.Model) -> int:
    """How many input features `model`'s `standardize` layer masks (variance infinity: constant in training)."""
    variance = np.asarray(find_layer(model, "standardize").variance, dtype=np.float64)
    return int(np.isinf(variance).sum())


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


@keras.saving.register_keras_serializable(package="emoconf_tf", name="ClipToRange")
class ClipToRange(keras.layers.Layer):
    """Clips each feature to the range it had on the training rows: `min(max(x, lower), upper)`.

    The network never saw a value outside that range, and a standardised input far beyond it drives the
    activations where training never went. Functionals such as eGeMAPS's `*_stddevNorm` (a standard deviation
    divided by a mean near 0) are heavy-tailed: on EmoDB with speaker folds, one validation utterance's
    `mfcc2V_sma3nz_stddevNorm` lies 12,183 training standard deviations from the training mean (the largest
    training value is 6.5), its cross-entropy grows with every epoch, so early stopping on validation loss keeps
    the first epoch's weights and that fold's test UAR is 0.17 (0.44 clipped). Values inside the range pass
    unchanged. Like Keras's `Normalization`, the bounds are kept in the layer's config.

    Args:
        lower: float `[D]`, the smallest training value of each feature.
        upper: float `[D]`, the largest (>= `lower`).
        **kwargs: `keras.layers.Layer` arguments, e.g. `name`.

    Call arguments:
        inputs: float32 `[N, D]`.

    Returns:
        float32 `[N, D]`, each column clipped to `[lower, upper]`.

    Example:
    >>> import numpy as np
    >>> clip = ClipToRange([0.0, -1.0], [1.0, 1.0])
    >>> np.asarray(clip(np.array([[5.0, -3.0], [0.5, 0.25]], "float32"))).tolist()
    [[1.0, -1.0], [0.5, 0.25]]
    """

    def __init__(self, lower, upper, **kwargs):
        super().__init__(**kwargs)
        self.lower = np.asarray(lower, dtype=np.float32)
        self.upper = np.asarray(upper, dtype=np.float32)
        if self.lower.ndim != 1 or self.lower.shape != self.upper.shape or not (self.lower <= self.upper).all():
            raise ValueError(f"lower and upper must be [D] with lower <= upper; got shapes {self.lower.shape}, "
                             f"{self.upper.shape}")

    def call(self, inputs):
        return keras.ops.minimum(keras.ops.maximum(inputs, self.lower), self.upper)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"lower": self.lower.tolist(), "upper": self.upper.tolist()})
        return config


@keras.saving.register_keras_serializable(package="emoconf_tf", name="InferenceOnly")
class InferenceOnly(keras.layers.Layer):
    """A frozen model that always runs in inference mode inside another model.

    Keras 3's functional models pass the outer call's `training` flag to every layer they call, overriding a
    `training=False` written into the graph (`base(inputs, training=False)`): in `fit`, a frozen base would
    still apply its dropout. This layer takes no `training` argument and calls `model(inputs, training=False)`,
    so batch norms use their moving statistics and dropout is off, in `fit` as at inference.

    Args:
        model: `keras.Model`, the frozen base; its layers are set `trainable=False`.
        **kwargs: `keras.layers.Layer` arguments, e.g. `name`.

    Call arguments:
        inputs: what `model` takes, e.g. float32 `[N, D]` features.

    Returns:
        `model`'s outputs in inference mode.

    Example:
    >>> import numpy as np
    >>> inputs = keras.Input(shape=(2,))
    >>> base = keras.Model(inputs, keras.layers.Dropout(0.5)(inputs))
    >>> frozen = InferenceOnly(base)
    >>> np.asarray(frozen(np.ones((1, 2), "float32"))).tolist()
    [[1.0, 1.0]]
    """

    def __init__(self, model: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.trainable = False
        self.built = True  # the model is built already

    def call(self, inputs):
        return self.model(inputs, training=False)

    def compute_output_spec(self, inputs):
        return self.model.compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config.update({"model": keras.saving.serialize_keras_object(self.model)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def build_emoconfidnet(classifier: keras.Model, head: keras.Model | None = None, **head_kwargs) -> keras.Model:
    """Attaches an EmoConfidNet head to the classifier's `penultimate` layer in one functional graph.

    The frozen-base idiom of Keras transfer learning: the classifier is frozen (`trainable=False`) and run with
    `training=False` (by `InferenceOnly`, since Keras 3 overrides a `training=False` written into a functional
    graph), so its batch norms use their moving statistics and its dropout is off in `fit` as at inference.
    `model.fit(x, {"p_hat": targets})` therefore trains the head on the same inference-mode `penultimate`
    embeddings as `fit_emoconfidnet`, which computes them once instead of in every epoch.

    Args:
        classifier: a model from `build_classifier` (trained).
        head: an existing head from `build_confidence_head`; a new one is built when None.
        **head_kwargs: passed to `build_confidence_head` (units, dropout_rate, learning_rate, seed).

    Returns:
        A `keras.Model` from `features` `[None, D]` to a dict with `probabilities` `[None, K]`
        (the classifier's output) and `p_hat` `[None, K]` (EmoConfidNet's output). The classifier runs in the
        `InferenceOnly` layer `frozen_classifier` (`[None, D]` -> `[penultimate [None, 256], probabilities
        [None, K]]`, sharing the classifier's layers), the head is the nested model `emoconfidnet_head`.
        Compiled with `PairwiseConfidenceLoss` on `p_hat` only.

    Example:
    >>> import numpy as np
    >>> model = build_emoconfidnet(build_classifier(np.zeros(8), np.ones(8), num_classes=5))
    >>> sorted(model.output)
    ['p_hat', 'probabilities']
    >>> model.get_layer("frozen_classifier").model.get_layer("penultimate").output.shape
    (None, 256)
    """
    from emoconf_tf.losses import PairwiseConfidenceLoss

    classifier.trainable = False
    # === Layers ===
    body = keras.Model(classifier.input, [classifier.get_layer(PENULTIMATE).output, classifier.output],
                       name="classifier_outputs")
    frozen = InferenceOnly(body, name=FROZEN_CLASSIFIER_NAME)
    num_classes = int(classifier.output.shape[-1])
    if head is None:
        head = build_confidence_head(int(classifier.get_layer(PENULTIMATE).output.shape[-1]), num_classes,
                                     **head_kwargs)
    # === Functional Model ===
    inputs = keras.Input(shape=tuple(classifier.input.shape[1:]), dtype=classifier.input.dtype, name="features")
    penultimate, probabilities = frozen(inputs)
    outputs = {
        "probabilities": keras.layers.Identity(name="probabilities_out")(probabilities),
        "p_hat": keras.layers.Identity(name="p_hat_out")(head(penultimate)),
    }
    model = keras.Model(inputs, outputs, name="emoconfidnet")
    # === Config ===
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=head_kwargs.get("learning_rate", 1e-4)),
        loss={"p_hat": PairwiseConfidenceLoss()},
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def find_layer(model: keras.Model, name: str):
    """The layer called `name` in `model` or in a model nested in it (depth first), e.g. `standardize` of a
    model from `build_emoconfidnet`, whose classifier layers sit in its `frozen_classifier` layer.

    Raises:
        ValueError: no such layer.
    """
    for layer in model.layers:
        if layer.name == name:
            return layer
    for layer in model.layers:
        inner = layer.model if isinstance(layer, InferenceOnly) else layer
        if isinstance(inner, keras.Model):
            try:
                return find_layer(inner, name)
            except ValueError:
                continue
    raise ValueError(f"model {model.name!r} has no layer named {name!r}")


def penultimate_model(classifier: keras.Model) -> keras.Model:
    """The classifier up to its `penultimate` layer: `[None, D]` -> `[None, 256]`."""
    return keras.Model(classifier.input, classifier.get_layer(PENULTIMATE).output, name="penultimate_features")


def _layer_seeds(seed: int | None):
    base = 0 if seed is None else int(seed)
    i = 0
    while True:
        i += 1
        yield None if seed is None else base * 1000 + i
