"""EmoConfidNet's pairwise confidence loss (paper, Eq. 1)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="emoconf_tf", name="PairwiseConfidenceLoss")
class PairwiseConfidenceLoss(keras.losses.Loss):
    """Mean pairwise squared loss that keeps both the ranking and the margins of the targets.

    For one sample with target `p` and prediction `p_hat` (both `[K]`):

        loss = sum_{i != j} ((p_hat_i - p_hat_j) - (p_i - p_j))^2 / C(K, 2)

    The sum runs over ordered pairs (i, j), i != j, exactly as the paper writes it, so each
    unordered pair is counted twice before dividing by C(K, 2) = K (K - 1) / 2. With
    `e = p_hat - p` the sum equals `2 K sum(e^2) - 2 (sum e)^2`, which is what is computed
    (O(K) per sample instead of O(K^2)). The batch loss is the mean over samples.

    Args:
        name: str, default `"pairwise_confidence"`.
        reduction: Keras reduction, default `"sum_over_batch_size"` (batch mean).
        dtype: loss dtype, default None (the global float type).

    Call arguments:
        y_true: float `[N, K]`, the targets `p` (rows sum to 1).
        y_pred: float `[N, K]`, EmoConfidNet's softmax output `p_hat`.

    Example:
    >>> loss = PairwiseConfidenceLoss()
    >>> float(loss([[0.5, 0.5]], [[1.0, 0.0]]))  # e = (0.5, -0.5): (2*2*0.5 - 0) / 1
    2.0

    Reference:
        Paper, Section 4.2, Eq. (1).
    """

    def __init__(self, name="pairwise_confidence", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._dtype_argument = dtype

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        num_classes = ops.shape(y_pred)[-1]
        k = ops.cast(num_classes, y_pred.dtype)
        error = y_pred - y_true
        pair_sum = 2.0 * k * ops.sum(ops.square(error), axis=-1) - 2.0 * ops.square(ops.sum(error, axis=-1))
        num_pairs = k * (k - 1.0) / 2.0
        return pair_sum / num_pairs

    def get_config(self):
        config = super().get_config()  # name, reduction
        config.update({"dtype": self._dtype_argument})
        return config
