"""Rejection thresholds from validation confidences (paper, Section 5.1), global or per predicted class.

Two rejection modes:

- `global` (the paper's): one threshold `t_r` for every prediction, from all validation confidences.
- `per_class`: one threshold per predicted class `c`, the paper's rule applied to the validation
  predictions of class `c`, so that about the same fraction `r` of each predicted class is rejected.
  A global threshold tends to remove mostly predictions of the classes the classifier is least sure of
  (often the minority classes), and their recall falls; per-class thresholds keep the mix of predicted
  classes, which is what macro-F1 and UAR reward.

Both are expressed as float `[K]` arrays (a global threshold repeated K times), and a prediction of
class `c` is kept when `confidence >= thresholds[c]`.

Three threshold sources (`THRESHOLD_SOURCES`), i.e. whose confidences the rule is applied to:

- `validation` (the paper's): the validation predictions' confidences, set once and applied to new data.
- `batch`: the batch being scored, its own unlabelled confidences and predicted classes (in the protocol, the
  test fold; in deployment, a session or a day of calls): the fraction `r` of the batch is rejected by its own
  quantiles, whatever shift there is between validation and the batch. No labels are used.
- `online`: the validation thresholds at a rate that adaptive conformal inference moves after each prediction,
  so that the long-run rejection rate of a stream is `r` (`emoconf_tf.adaptive`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from emoconf_tf.errors import EmoconfError, argument_named

PAPER_REJECTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
REJECTION_MODES = ("global", "per_class")
THRESHOLD_SOURCES = ("validation", "batch", "online")


def check_rejection_mode(mode: str, name: str = "rejection_mode") -> str:
    """`mode` if it is one of `REJECTION_MODES`, else `EmoconfError` naming the argument or field that held it
    (`name`: the Python argument, default `"rejection_mode"`, which is then the error's `argument`; or a field such
    as `"run/run.json: rejection_mode"`) and the modes allowed.

    Example:
    >>> check_rejection_mode("per_class")
    'per_class'
    """
    if not isinstance(mode, str) or mode not in REJECTION_MODES:
        raise EmoconfError(f"{name} {mode!r}: choose global (one threshold from all validation confidences, the "
                           "paper's) or per_class (one threshold per predicted class)", argument=argument_named(name))
    return mode


def check_threshold_source(source: str, name: str = "threshold_source") -> str:
    """`source` if it is one of `THRESHOLD_SOURCES`, else `EmoconfError` naming the argument or field that held it
    (`name`, as for `check_rejection_mode`; default `"threshold_source"`) and the sources allowed.

    Example:
    >>> check_threshold_source("batch")
    'batch'
    """
    if not isinstance(source, str) or source not in THRESHOLD_SOURCES:
        raise EmoconfError(f"{name} {source!r}: choose validation (thresholds from the validation confidences, the "
                           "paper's), batch (from the scored batch's own unlabelled confidences) or online (the "
                           "validation thresholds at a rate adaptive conformal inference moves along the stream)",
                           argument=argument_named(name))
    return source


def check_threshold_sources(sources: Sequence[str], name: str = "threshold_sources") -> tuple[str, ...]:
    """`sources` as a tuple when each is one of `THRESHOLD_SOURCES`, none is repeated and `"validation"` is among
    them (every figure of the paper's view is validation-based); else `EmoconfError` naming `name` (as for
    `check_rejection_mode`; default `"threshold_sources"`, `ProtocolConfig`'s field).

    Example:
    >>> check_threshold_sources(["validation", "online"])
    ('validation', 'online')
    """
    sources = tuple(sources)
    for source in sources:
        check_threshold_source(source, name)
    if len(set(sources)) != len(sources):
        raise EmoconfError(f"{name} {', '.join(sources)}: a source is given twice", argument=argument_named(name))
    if "validation" not in sources:
        raise EmoconfError(f"{name} {', '.join(sources) or '(none)'}: must include validation (the paper's "
                           "thresholds, which every other figure of the report uses), e.g. validation,batch",
                           argument=argument_named(name))
    return sources


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
    return _threshold_of_descending(scores, rejection)


def _threshold_of_descending(scores: np.ndarray, rejection: float) -> float:
    """`rejection_threshold` of float `[n]` scores already sorted in descending order (n >= 1, 0 < rejection < 1)."""
    # round() guards against 100 * (1 - 0.2) = 80.00000000000001 becoming 81.
    position = max(1, math.ceil(round(scores.size * (1.0 - float(rejection)), 9)))
    return float(scores[position - 1])


def rejection_thresholds(
    validation_confidence: np.ndarray, rejections: Sequence[float] = PAPER_REJECTIONS
) -> np.ndarray:
    """`rejection_threshold` for each rate: float64 `[R]`, non-decreasing in the rate."""
    return np.array([rejection_threshold(validation_confidence, r) for r in rejections], dtype=np.float64)


def class_thresholds(
    validation_confidence: np.ndarray,
    validation_predicted: np.ndarray,
    rejection: float,
    num_classes: int,
    mode: str = "global",
) -> np.ndarray:
    """The threshold for predictions of each class at rejection rate `rejection`: float64 `[K]`.

    Args:
        validation_confidence: float `[n]`, the validation predictions' confidences.
        validation_predicted: int `[n]`, their predicted classes in [0, K).
        rejection: float in [0, 1).
        num_classes: K.
        mode: `"global"` — every entry is `rejection_threshold(validation_confidence, rejection)`;
            `"per_class"` — entry `c` is `rejection_threshold` of the confidences of the validation
            predictions of class `c`. A class never predicted on validation gets the global threshold.

    Example:
    >>> conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    >>> class_thresholds(conf, np.array([0, 0, 1, 1, 1, 1]), 0.5, 3, "per_class").tolist()
    [0.9, 0.6, 0.7]
    """
    check_rejection_mode(mode, "mode")
    confidence, predicted = _confidence_and_predicted(validation_confidence, validation_predicted)
    overall = rejection_threshold(confidence, rejection)
    out = np.full(num_classes, overall, dtype=np.float64)
    if mode == "per_class" and rejection != 0:
        for c in range(num_classes):
            mine = confidence[predicted == c]
            if mine.size:
                out[c] = rejection_threshold(mine, rejection)
    return out


def _confidence_and_predicted(confidence, predicted) -> tuple[np.ndarray, np.ndarray]:
    """float64 `[n]` confidences and their `[n]` predicted classes, refused when their lengths differ."""
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    predicted = np.asarray(predicted).ravel()
    if predicted.shape != confidence.shape:
        raise EmoconfError(
            f"validation confidences {confidence.shape} and predicted classes {predicted.shape} differ in length"
        )
    return confidence, predicted


def class_thresholds_table(
    validation_confidence: np.ndarray,
    validation_predicted: np.ndarray,
    num_classes: int,
    rejections: Sequence[float] = PAPER_REJECTIONS,
    mode: str = "global",
) -> np.ndarray:
    """`class_thresholds` for each rate: float64 `[R, K]`, each column non-decreasing in the rate."""
    return np.stack([class_thresholds(validation_confidence, validation_predicted, r, num_classes, mode)
                     for r in rejections])


class ThresholdLookup:
    """`class_thresholds` at any rejection rate, for callers that ask for many rates (one per prediction of a
    stream, `emoconf_tf.adaptive`): the validation confidences are sorted once, and a threshold is then a position
    lookup, `O(1)` instead of a sort.

    Args:
        validation_confidence: float `[n]`, n >= 1.
        validation_predicted: int `[n]`, predicted classes in [0, K).
        num_classes: K.
        mode: `"global"` or `"per_class"`, as for `class_thresholds`.

    Example:
    >>> lookup = ThresholdLookup(np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), np.array([0, 0, 1, 1, 1, 1]), 3,
    ...                          "per_class")
    >>> lookup.thresholds(0.5).tolist(), lookup.threshold(0.5, 1)
    ([0.9, 0.6, 0.7], 0.6)
    """

    def __init__(self, validation_confidence: np.ndarray, validation_predicted: np.ndarray, num_classes: int,
                 mode: str = "global"):
        check_rejection_mode(mode, "mode")
        confidence, predicted = _confidence_and_predicted(validation_confidence, validation_predicted)
        if confidence.size == 0:
            raise EmoconfError("no validation confidences: the validation set is empty")
        overall = np.sort(confidence)[::-1]
        # a class never predicted on validation takes the global threshold, as in `class_thresholds`
        self._scores = [overall] * num_classes
        if mode == "per_class":
            for c in range(num_classes):
                mine = confidence[predicted == c]
                if mine.size:
                    self._scores[c] = np.sort(mine)[::-1]

    def threshold(self, rejection: float, predicted_class: int) -> float:
        """`class_thresholds(...)[predicted_class]` at `rejection` (a fraction in [0, 1), not checked: the caller's)."""
        if rejection == 0:
            return 0.0
        return _threshold_of_descending(self._scores[predicted_class], rejection)

    def thresholds(self, rejection: float) -> np.ndarray:
        """`class_thresholds(...)` at `rejection`: float64 `[K]`."""
        return np.array([self.threshold(rejection, c) for c in range(len(self._scores))], dtype=np.float64)


def accept(confidence: np.ndarray, threshold: float | np.ndarray, predicted: np.ndarray | None = None) -> np.ndarray:
    """bool `[N]`: True where a prediction is kept.

    Args:
        confidence: float `[N]`.
        threshold: a float (global), or float `[K]` per predicted class (then `predicted` is needed).
        predicted: int `[N]` predicted classes, for per-class thresholds.

    A prediction of class `c` is kept when `confidence >= threshold[c]` (or `>= threshold`).
    """
    confidence = np.asarray(confidence)
    # In the confidences' precision (float32 scores against float64 thresholds compare in float32), as NumPy
    # does for a Python-float threshold and as the SavedModel does: a threshold read back from a CSV may sit
    # a hair above the float32 score it came from.
    dtype = confidence.dtype if np.issubdtype(confidence.dtype, np.floating) else np.float64
    threshold = np.asarray(threshold, dtype=dtype)
    if threshold.ndim == 0:
        return confidence >= threshold
    if predicted is None:
        raise EmoconfError("per-class thresholds need the predicted class of each prediction")
    return confidence >= threshold[np.asarray(predicted)]
