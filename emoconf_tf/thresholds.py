"""Rejection thresholds from validation confidences (paper, Section 5.1)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from emoconf_tf.errors import EmoconfError

PAPER_REJECTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def rejection_threshold(validation_confidence: np.ndarray, rejection: float) -> float:
    """The threshold `t_r` for a rejection rate `r` (a fraction in [0, 1)).

    The validation confidences are sorted in descending order and `t_r` is the score at the
    position that marks coverage `1 - r`: the `ceil(n (1 - r))`-th score (1-based). The paper's
    example: 100 validation samples, `t_0.2` is the 80th score. `t_0 = 0`: nothing is rejected.

    Args:
        validation_confidence: float `[n]`, n >= 1.
        rejection: float in [0, 1).

    Returns:
        The threshold (float); a prediction is kept when its confidence is >= the threshold.
    """
    if not (0.0 <= float(rejection) < 1.0) or not math.isfinite(float(rejection)):
        raise EmoconfError(f"rejection rate {rejection!r} is outside [0, 1)")
    if rejection == 0:
        return 0.0
    scores = np.sort(np.asarray(validation_confidence, dtype=np.float64).ravel())[::-1]
    if scores.size == 0:
        raise EmoconfError("no validation confidences: the validation set is empty")
    # round() guards against 100 * (1 - 0.2) = 80.00000000000001 becoming 81.
    position = max(1, math.ceil(round(scores.size * (1.0 - float(rejection)), 9)))
    return float(scores[position - 1])


def rejection_thresholds(
    validation_confidence: np.ndarray, rejections: Sequence[float] = PAPER_REJECTIONS
) -> np.ndarray:
    """`rejection_threshold` for each rate: float64 `[R]`, non-decreasing in the rate."""
    return np.array([rejection_threshold(validation_confidence, r) for r in rejections], dtype=np.float64)


def accept(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """bool `[N]`: True where a prediction is kept (confidence >= threshold)."""
    return np.asarray(confidence) >= threshold
