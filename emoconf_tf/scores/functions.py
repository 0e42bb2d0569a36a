"""The confidence scores of one prediction, from the networks' outputs: EmoConfidNet's `p_hat[c]`, the paper's
baseline (the top-two margin) and the classifier's other softmax scores.

Every score is float32 `[N]`, higher = more confident, in [0, 1] (non-negative, so that the paper's `t0 = 0` keeps
every prediction), computed from float `[N, K]` arrays. `validation_quantile` puts scores on one scale for blends
(`recommended.py`); the expected macro gain, which also needs validation statistics, is `macro_gain.py`.
"""

from __future__ import annotations

import numpy as np


def predicted_class(probabilities: np.ndarray) -> np.ndarray:
    """`argmax` of the classifier's softmax: int64 `[N]`."""
    return np.asarray(probabilities).argmax(axis=-1).astype(np.int64)


def emoconfidnet_confidence(probabilities: np.ndarray, p_hat: np.ndarray) -> np.ndarray:
    """EmoConfidNet's confidence `p_hat[c]` of the classifier's prediction `c = argmax(probabilities)`.

    Args:
        probabilities: float `[N, K]`, the classifier's softmax.
        p_hat: float `[N, K]`, EmoConfidNet's output.

    Returns:
        float32 `[N]`.
    """
    p_hat = np.asarray(p_hat)
    c = predicted_class(probabilities)
    return p_hat[np.arange(len(c)), c].astype(np.float32)


def top2_margin(probabilities: np.ndarray) -> np.ndarray:
    """The baseline: difference between the two largest softmax probabilities, float32 `[N]` in [0, 1]."""
    probabilities = np.asarray(probabilities)
    top2 = np.partition(probabilities, -2, axis=-1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]).astype(np.float32)


def max_probability(probabilities: np.ndarray) -> np.ndarray:
    """Maximum softmax probability, float32 `[N]`."""
    return np.asarray(probabilities).max(axis=-1).astype(np.float32)


def negative_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Negative entropy of the classifier's softmax, rescaled to [0, 1]: `1 - H(p) / log K`, float32 `[N]`.

    1 for a one-hot softmax, 0 for a uniform one; it ranks like `sum_k p_k log p_k` and, like every
    score here, is non-negative so that the paper's `t0 = 0` keeps everything.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    entropy = -(p * np.log(p)).sum(axis=-1)
    return np.clip(1.0 - entropy / np.log(p.shape[-1]), 0.0, 1.0).astype(np.float32)


def validation_quantile(validation_score: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Maps scores to their empirical CDF on validation: the fraction of validation scores <= each score.

    Puts scores of different ranges on one [0, 1] scale so they can be averaged; the mapping is
    fixed by the validation split alone. float64 `[N]`.
    """
    reference = np.sort(np.asarray(validation_score, dtype=np.float64))
    if reference.size == 0:
        return np.zeros(np.shape(score))
    return np.searchsorted(reference, np.asarray(score, dtype=np.float64), side="right") / reference.size
