"""Confidence scores for a prediction: EmoConfidNet's `p_hat[c]` and the baselines.

Every score is float `[N]`, higher = more confident, computed from float `[N, K]` arrays.
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


METHODS = ("emoconfidnet", "top2_margin")


def confidence_scores(probabilities: np.ndarray, p_hat: np.ndarray) -> dict[str, np.ndarray]:
    """All the protocol's scores, keyed by the `method` names used in the outputs."""
    return {
        "emoconfidnet": emoconfidnet_confidence(probabilities, p_hat),
        "top2_margin": top2_margin(probabilities),
    }
