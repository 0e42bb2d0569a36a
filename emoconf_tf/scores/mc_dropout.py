"""Monte-Carlo dropout confidence: the classifier's dropout kept on at inference, T stochastic passes.

Reference: Gal & Ghahramani, "Dropout as a Bayesian approximation", ICML 2016.

Keras (and with it TensorFlow) loads when the passes run, not on import, so the score registry stays TensorFlow-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emoconf_tf.row_batches import row_chunks, row_count

if TYPE_CHECKING:
    import keras


def mc_dropout_probabilities(classifier: keras.Model, features: np.ndarray, *, passes: int = 10, seed: int = 0,
                             batch_size: int = 4096, rows: np.ndarray | None = None) -> np.ndarray:
    """Softmax outputs of `passes` stochastic passes: float32 `[T, N, K]`.

    Dropout layers sample fresh masks (seeded by `seed`); every other layer runs in inference mode
    (BatchNorm uses its moving statistics), so only the dropout noise differs between passes.
    The classifier must be the chain `build_classifier` makes.

    Args:
        features: float32 `[N, D]`.
        rows: int `[n]`, optional: the passes over `features[rows]` (output `[T, n, K]`), `batch_size` rows
            gathered at a time instead of a copy of them all.
        batch_size: rows per call. The masks are drawn per call, so the same `seed` with another `batch_size`
            gives other (equally valid) masks.
    """
    import keras  # TensorFlow only when the passes run

    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    generator = keras.random.SeedGenerator(seed)
    layers = [layer for layer in classifier.layers if not isinstance(layer, keras.layers.InputLayer)]
    out = np.empty((passes, row_count(features, rows), int(classifier.output.shape[-1])), dtype=np.float32)
    for t in range(passes):
        for start, chunk in zip(range(0, out.shape[1], batch_size), row_chunks(features, rows, batch_size)):
            x = keras.ops.convert_to_tensor(chunk)
            for layer in layers:
                if isinstance(layer, keras.layers.Dropout):
                    x = keras.random.dropout(x, layer.rate, seed=generator)
                else:
                    x = layer(x, training=False)
            out[t, start:start + batch_size] = np.asarray(x)
    return out


def mc_dropout_confidence(mean_probabilities: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean over passes of the probability of the deterministic prediction `c`: float32 `[N]`.

    Args:
        mean_probabilities: float `[N, K]`, the passes' mean softmax.
        predicted: int `[N]`, the classifier's deterministic prediction.
    """
    return np.asarray(mean_probabilities)[np.arange(len(predicted)), predicted].astype(np.float32)
