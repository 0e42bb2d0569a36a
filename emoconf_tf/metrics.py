"""Metrics on the test predictions that survive a rejection threshold (paper, Section 5.1)."""

from __future__ import annotations

import dataclasses

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.thresholds import accept


@dataclasses.dataclass(frozen=True)
class SelectiveScores:
    """Scores of the accepted predictions at one threshold.

    Attributes:
        f1: 2 P R / (P + R) of macro precision P and macro recall R (the paper's F1).
        uar: unweighted average recall (= R).
        precision: float `[K]` per class; recall: float `[K]`; class_f1: float `[K]` per-class F1.
        coverage: fraction of test predictions kept.
        n_test: number of test predictions; removed: how many were rejected;
        removed_correct: how many of the rejected were correct.
    """

    f1: float
    uar: float
    precision: np.ndarray
    recall: np.ndarray
    class_f1: np.ndarray
    coverage: float
    n_test: int
    removed: int
    removed_correct: int


def macro_f1_uar(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[float, float]:
    """The paper's F1 (2PR/(P+R) of macro precision P and macro recall R) and UAR (= R) of every prediction given.

    The same numbers as `selective_scores(...).f1` and `.uar` with nothing rejected, counted with `np.bincount`
    instead of scikit-learn: for loops that score thousands of subsets (bootstraps, validation curves).

    Args:
        y_true: int `[N]` true class ids in [0, K); y_pred: int `[N]` predicted ids in [0, K).
        num_classes: K.

    Returns:
        `(f1, uar)`; a class never predicted has precision 0, one never true has recall 0, and F1 is 0 when
        P + R = 0 (also when N = 0).

    Example:
    >>> f1, uar = macro_f1_uar(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    >>> round(f1, 4), uar  # P = (1 + 2/3) / 2 = 5/6, R = (1/2 + 1) / 2 = 3/4, F1 = 2PR / (P + R) = 15/19
    (0.7895, 0.75)
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    hits = np.bincount(y_true[y_true == y_pred], minlength=num_classes)
    predicted = np.bincount(y_pred, minlength=num_classes)
    actual = np.bincount(y_true, minlength=num_classes)
    precision = float(np.divide(hits, predicted, out=np.zeros(num_classes), where=predicted > 0).mean())
    recall = float(np.divide(hits, actual, out=np.zeros(num_classes), where=actual > 0).mean())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f1, recall


def coverage_error(rejections, coverages) -> float:
    """How far the test coverage lands from the one asked for: the mean over the rejection rates r > 0 of
    `|coverage - (1 - r)|`. 0 when every rate keeps exactly `1 - r` of the test predictions.

    Args:
        rejections: float `[R]`, rejection rates (fractions in [0, 1)).
        coverages: float `[R]`, the fraction of test predictions kept at each.

    Returns:
        float; NaN when no rate is above 0.

    Example:
    >>> round(coverage_error([0.0, 0.1, 0.2], [1.0, 0.85, 0.82]), 6)  # (|0.85 - 0.9| + |0.82 - 0.8|) / 2
    0.035
    """
    rejections = np.asarray(rejections, dtype=np.float64)
    coverages = np.asarray(coverages, dtype=np.float64)
    if rejections.shape != coverages.shape:
        raise EmoconfError(f"rejections {rejections.shape} and coverages {coverages.shape} differ in shape")
    asked = rejections > 0
    if not asked.any():
        return float("nan")
    return float(np.abs(coverages[asked] - (1.0 - rejections[asked])).mean())


def selective_scores(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, threshold: float | np.ndarray, num_classes: int
) -> SelectiveScores:
    """Scores of the predictions whose confidence is >= `threshold` (of their predicted class, if per class).

    Per-class precision and recall come from scikit-learn over all K classes (a class with no
    accepted prediction has precision 0; one with no accepted true sample has recall 0). Macro P and
    R are their plain means; F1 = 2PR/(P+R) (0 when P + R = 0).

    Args:
        y_true: int `[N]` true class ids; y_pred: int `[N]` predicted ids.
        confidence: float `[N]`; threshold: float, or float `[K]` per predicted class
            (`emoconf_tf.thresholds.class_thresholds`).
        num_classes: K.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    kept = accept(confidence, threshold, y_pred)
    correct = y_true == y_pred
    labels = np.arange(num_classes)
    if kept.any():
        # scikit-learn (2 s to import) when counted, not on import: the score registry, which the CLI loads
        # to check its options, imports this module.
        from sklearn.metrics import precision_recall_fscore_support

        precision, recall, class_f1, _ = precision_recall_fscore_support(
            y_true[kept], y_pred[kept], labels=labels, average=None, zero_division=0
        )
    else:
        precision = recall = class_f1 = np.zeros(num_classes)
    macro_p, macro_r = float(np.mean(precision)), float(np.mean(recall))
    f1 = 2 * macro_p * macro_r / (macro_p + macro_r) if macro_p + macro_r > 0 else 0.0
    return SelectiveScores(
        f1=f1,
        uar=macro_r,
        precision=np.asarray(precision, dtype=np.float64),
        recall=np.asarray(recall, dtype=np.float64),
        class_f1=np.asarray(class_f1, dtype=np.float64),
        coverage=float(kept.mean()) if kept.size else 0.0,
        n_test=int(kept.size),
        removed=int((~kept).sum()),
        removed_correct=int((~kept & correct).sum()),
    )
