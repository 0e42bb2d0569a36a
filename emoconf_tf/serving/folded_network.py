"""Inference-mode folding of the classifier and EmoConfidNet head into plain dense layers, for serving.

At inference the model's element-wise layers are affine maps with fixed statistics, so they can be
merged into the dense layers around them (exact up to float32 rounding)::

    Normalization   (x - mean) / max(sqrt(variance), eps)        -> mean kept as one subtraction,
                                                                    1 / std folded into the next kernel
                    (variance infinity for a feature constant
                    in training: its kernel rows become 0, the
                    feature masked; `models.standardized_variance`)
    Dense -> BatchNorm   gamma (xW + b - mu) / sqrt(var + eps) + beta
                                                                 -> x (W s) + (b - mu) s + beta,
                                                                    s = gamma / sqrt(var + eps)
    Dropout         identity at inference                        -> dropped
    ClipToRange     min(max(x, lower), upper)                    -> kept as is, before the mean subtraction
                    (the training range; `models.ClipToRange`)

The folded network is ``x - mean`` followed by six `Dense` layers (ReLU, ReLU, softmax for the classifier;
ReLU, ReLU, softmax for the head on the classifier's penultimate activation): the exported
`serving_default` graph has 53 nodes instead of 104. A classifier without the head (an ensemble member, or the
network of a run without AVD ratings, which has no EmoConfidNet) folds the same way (`fold_classifier`). The
mean subtraction stays a separate op, exactly as the model computes it, so inputs far from zero are not
cancelled inside a large kernel (features with a tiny standard deviation would otherwise lose every
significant digit).

Folding is done in float64 and the results stored in float32; on the synthetic corpus the folded
probabilities agree with the Keras model's to within 2e-6 (`emoconf export` checks 1e-5 before publishing).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from emoconf_tf.errors import EmoconfError
from emoconf_tf.models import HEAD_NAME, PENULTIMATE, ClipToRange, InferenceOnly


@dataclasses.dataclass(frozen=True)
class FoldedDense:
    """One folded layer: `activation(x @ kernel + bias)`.

    Attributes:
        name: the Keras `Dense` layer it comes from.
        kernel: float32 `[in, out]`.
        bias: float32 `[out]`.
        activation: `"relu"`, `"softmax"` or `"linear"`.
    """

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: str


@dataclasses.dataclass(frozen=True)
class FoldedEmoConfidNet:
    """The EmoConfidNet model with its element-wise inference layers folded away.

    Attributes:
        input_mean: float32 `[D]`, subtracted from the raw features first.
        classifier: the classifier's folded layers; the input of the last one is the `penultimate` activation.
        head: EmoConfidNet's folded layers, applied to the `penultimate` activation.
        input_range: `(lower, upper)`, float32 `[D]` each, the features are clipped to before the mean subtraction
            (`models.ClipToRange`); None for a classifier without that layer.
    """

    input_mean: np.ndarray
    classifier: tuple[FoldedDense, ...]
    head: tuple[FoldedDense, ...]
    input_range: tuple[np.ndarray, np.ndarray] | None = None


def fold_emoconfidnet(emoconfidnet: keras.Model) -> FoldedEmoConfidNet:
    """Folds a model from `build_emoconfidnet` (standardisation, batch norms, dropout) into dense layers.

    Args:
        emoconfidnet: Keras model `features [None, D]` -> `{"probabilities", "p_hat"}` `[None, K]`.

    Returns:
        `FoldedEmoConfidNet`.

    Raises:
        EmoconfError: the model is not the chain `build_emoconfidnet` makes (a layer that cannot be folded).
    """
    head = emoconfidnet.get_layer(HEAD_NAME)
    input_range, classifier_layers = _input_range(_classifier_layers(emoconfidnet, head))
    if not classifier_layers or not isinstance(classifier_layers[0], keras.layers.Normalization):
        raise EmoconfError("cannot fold the model: its first layer is not the standardisation (Normalization)")
    mean, std = _standardisation(classifier_layers[0])
    classifier = _fold_chain(classifier_layers[1:], input_scale=1.0 / std)
    names = [layer.name for layer in classifier_layers]
    if PENULTIMATE not in names or names.index(PENULTIMATE) > names.index(classifier[-1].name):
        raise EmoconfError(f"cannot fold the model: no '{PENULTIMATE}' layer before its output layer")
    head_layers = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    return FoldedEmoConfidNet(mean.astype(np.float32), classifier, _fold_chain(head_layers), input_range)


@dataclasses.dataclass(frozen=True)
class FoldedClassifier:
    """A classifier from `build_classifier` with its element-wise inference layers folded away (an ensemble
    member of `macro_gain_ensemble`, or the served classifier of a run without AVD ratings).

    Attributes:
        input_mean: float32 `[D]`, subtracted from the raw features first.
        layers: the folded layers; the last one's softmax is the classifier's output.
        input_range: as `FoldedEmoConfidNet.input_range`.
    """

    input_mean: np.ndarray
    layers: tuple[FoldedDense, ...]
    input_range: tuple[np.ndarray, np.ndarray] | None = None


def fold_classifier(classifier: keras.Model) -> FoldedClassifier:
    """Folds a model from `build_classifier` (standardisation, batch norms, dropout) into dense layers.

    Raises:
        EmoconfError: the model is not the chain `build_classifier` makes.
    """
    input_range, layers = _input_range(
        [layer for layer in classifier.layers if not isinstance(layer, keras.layers.InputLayer)])
    if not layers or not isinstance(layers[0], keras.layers.Normalization):
        raise EmoconfError("cannot fold the classifier: its first layer is not the standardisation (Normalization)")
    mean, std = _standardisation(layers[0])
    return FoldedClassifier(mean.astype(np.float32), _fold_chain(layers[1:], input_scale=1.0 / std), input_range)


def _input_range(layers: list) -> tuple[tuple[np.ndarray, np.ndarray] | None, list]:
    """`(lower, upper)` of a leading `ClipToRange` layer (None without one), and the layers after it."""
    if layers and isinstance(layers[0], ClipToRange):
        return (layers[0].lower.astype(np.float32), layers[0].upper.astype(np.float32)), layers[1:]
    return None, layers


def _standardisation(normalization) -> tuple[np.ndarray, np.ndarray]:
    """float64 `[D]` mean and scale of a `Normalization` layer, as Keras computes them."""
    mean = np.asarray(normalization.mean, dtype=np.float64).reshape(-1)
    # `build_classifier` stores variance infinity for a feature constant in training (masked): scale 1 / inf = 0
    # here too (a model saved before stores 1, or divides by epsilon, the same in both).
    std = np.maximum(np.sqrt(np.asarray(normalization.variance, dtype=np.float64).reshape(-1)),
                     keras.backend.epsilon())
    return mean, std


def _classifier_layers(emoconfidnet: keras.Model, head) -> list:
    """The classifier's layers in graph order: those of the `InferenceOnly` layer `build_emoconfidnet` wraps the
    classifier in (or, in a model saved before it did, the model's own layers besides the head)."""
    layers = []
    for layer in emoconfidnet.layers:
        if layer is head or isinstance(layer, (keras.layers.InputLayer, keras.layers.Identity)):
            continue
        inner = layer.model if isinstance(layer, InferenceOnly) else layer
        if isinstance(inner, keras.Model):
            layers += [sub for sub in inner.layers if not isinstance(sub, keras.layers.InputLayer)]
        else:
            layers.append(layer)
    return layers


class FoldedInference(tf.Module):
    """The folded network as TensorFlow variables, for a SavedModel's signatures.

    Calling it on raw features float32 `[N, D]` returns `(probabilities, p_hat)`, float32 `[N, K]` each,
    the Keras model's outputs in inference mode up to float32 rounding.
    """

    def __init__(self, folded: FoldedEmoConfidNet, name: str = "folded_emoconfidnet"):
        super().__init__(name=name)
        self.input_mean = tf.Variable(folded.input_mean, trainable=False, name="input_mean")
        self.input_range = _range_variables(folded.input_range)
        self.classifier = [_variables(layer) for layer in folded.classifier]
        self.head = [_variables(layer) for layer in folded.head]
        self._activations = {"classifier": [layer.activation for layer in folded.classifier],
                             "head": [layer.activation for layer in folded.head]}

    def __call__(self, features):
        x = _clipped(features, self.input_range) - self.input_mean
        penultimate = _dense_chain(self.classifier[:-1], self._activations["classifier"][:-1], x)
        probabilities = _dense_chain(self.classifier[-1:], self._activations["classifier"][-1:], penultimate)
        return probabilities, _dense_chain(self.head, self._activations["head"], penultimate)


class FoldedClassifierInference(tf.Module):
    """A `FoldedClassifier` as TensorFlow variables: called on raw features float32 `[N, D]`, returns the
    classifier's softmax float32 `[N, K]` (the Keras model's in inference mode, up to float32 rounding)."""

    def __init__(self, folded: FoldedClassifier, name: str = "folded_classifier"):
        super().__init__(name=name)
        self.input_mean = tf.Variable(folded.input_mean, trainable=False, name="input_mean")
        self.input_range = _range_variables(folded.input_range)
        self.layers = [_variables(layer) for layer in folded.layers]
        self._activations = [layer.activation for layer in folded.layers]

    def __call__(self, features):
        return _dense_chain(self.layers, self._activations, _clipped(features, self.input_range) - self.input_mean)


def _range_variables(input_range) -> tuple | None:
    if input_range is None:
        return None
    return (tf.Variable(input_range[0], trainable=False, name="input_lower"),
            tf.Variable(input_range[1], trainable=False, name="input_upper"))


def _clipped(features, input_range):
    """`features` clipped to the training range as `ClipToRange` does, or as they are without one."""
    if input_range is None:
        return features
    return tf.minimum(tf.maximum(features, input_range[0]), input_range[1])


def _variables(layer: FoldedDense) -> tuple:
    return (tf.Variable(layer.kernel, trainable=False, name=f"{layer.name}/folded_kernel"),
            tf.Variable(layer.bias, trainable=False, name=f"{layer.name}/folded_bias"))


def _dense_chain(variables, activations, x):
    for (kernel, bias), activation in zip(variables, activations):
        x = tf.nn.bias_add(tf.matmul(x, kernel), bias)
        if activation == "relu":
            x = tf.nn.relu(x)
        elif activation == "softmax":
            x = tf.nn.softmax(x)
    return x


def _fold_chain(layers, input_scale=1.0) -> tuple[FoldedDense, ...]:
    """Dense [-> BatchNorm] [-> ReLU] [-> Dropout] blocks -> `FoldedDense`s (float64 maths, float32 out)."""
    folded: list[FoldedDense] = []
    kernel = bias = None
    name, activation = "", "linear"

    def flush():
        if kernel is not None:
            folded.append(FoldedDense(name, kernel.astype(np.float32), bias.astype(np.float32), activation))

    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            flush()
            kernel = np.asarray(layer.kernel, dtype=np.float64)
            if not folded:
                kernel = kernel * np.reshape(input_scale, (-1, 1))
            bias = (np.asarray(layer.bias, dtype=np.float64) if layer.use_bias else np.zeros(layer.units))
            name = layer.name
            activation = keras.activations.serialize(layer.activation)  # a name for Keras's own activations
        elif isinstance(layer, keras.layers.BatchNormalization) and kernel is not None and activation == "linear":
            variance = np.asarray(layer.moving_variance, np.float64)
            scale = np.asarray(layer.gamma, np.float64) / np.sqrt(variance + layer.epsilon)
            kernel = kernel * scale
            bias = (bias - np.asarray(layer.moving_mean, np.float64)) * scale + np.asarray(layer.beta, np.float64)
        elif isinstance(layer, keras.layers.ReLU) and kernel is not None and activation == "linear" \
                and layer.max_value is None and not layer.negative_slope and not layer.threshold:
            activation = "relu"
        elif isinstance(layer, keras.layers.Dropout):
            continue
        else:
            raise EmoconfError(f"cannot fold the model: layer {layer.name!r} ({type(layer).__name__}) is not part of "
                               "a Dense -> BatchNorm -> ReLU -> Dropout chain")
        if activation not in ("linear", "relu", "softmax"):
            raise EmoconfError(f"cannot fold the model: layer {name!r} has activation {activation!r}")
    flush()
    return tuple(folded)

