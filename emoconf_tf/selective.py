"""Selective-prediction metrics of a confidence score: risk-coverage, AURC, E-AURC, AUROC, FPR at 95 % TPR,
and FD-Shifts' balanced-accuracy AURC (`aurc_ba`).

"Error" is 1 - correct (the 0/1 loss of the classifier's prediction). The functions take
`correct: bool [N]` (prediction == label) and `confidence: float [N]` (higher = more confident);
`balanced_aurc` takes the labels and predictions, since its risk, the mean per-class error, depends on the classes.

Reference:
    Geifman, Uziel, El-Yaniv, "Bias-reduced uncertainty estimation for deep neural classifiers",
    ICLR 2019 (AURC, E-AURC); Hendrycks & Gimpel, ICLR 2017 (AUROC, FPR at 95 % TPR);
    Traub et al., "Overcoming common flaws in the evaluation of selective classification systems",
    NeurIPS 2024, and its code IML-DKFZ/fd-shifts, `fd_shifts/analysis/rc_stats.py` (`aurc_ba`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from emoconf_tf.errors import EmoconfError


def _check(correct, confidence) -> tuple[np.ndarray, np.ndarray]:
    correct = np.asarray(correct, dtype=bool)
    confidence = np.asarray(confidence, dtype=np.float64)
    if correct.shape != confidence.shape or correct.ndim != 1:
        raise EmoconfError(
            f"correct and confidence must be 1-d of one length; got {correct.shape} and {confidence.shape}"
        )
    if correct.size == 0:
        raise EmoconfError("no predictions to score")
    if not np.isfinite(confidence).all():
        raise EmoconfError("confidence has NaN or infinite values")
    return correct, confidence


def risk_coverage_curve(correct, confidence) -> tuple[np.ndarray, np.ndarray]:
    """Risk (error rate of the kept predictions) at each coverage k/N, keeping the k most confident.

    Predictions are sorted by confidence, descending; ties keep their input order (a stable sort).

    Returns:
        `(coverage, risk)`, both float64 `[N]`: coverage `k/N` and risk among the top k, k = 1..N.
    """
    correct, confidence = _check(correct, confidence)
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order])
    k = np.arange(1, correct.size + 1)
    return k / correct.size, errors / k


def aurc(correct, confidence) -> float:
    """Area under the risk-coverage curve: the mean of the risk over coverages k/N, k = 1..N (lower is better)."""
    return float(risk_coverage_curve(correct, confidence)[1].mean())


def balanced_risk_coverage_curve(y_true, y_pred, confidence) -> tuple[np.ndarray, np.ndarray]:
    """Balanced risk of the k most confident predictions, at each coverage k/N: FD-Shifts' selective BA-risk.

    The balanced risk is the mean over the K classes of `y_true` (all N labels, not only the kept ones) of each
    class's error rate among the kept predictions; a class with no kept prediction counts 0. While every class is
    kept it equals 1 - UAR (`1 - sklearn.metrics.balanced_accuracy_score`); with P < K classes kept it is P / K
    times that. Ties keep their input order here; `balanced_aurc` only uses the points between ties.

    Args:
        y_true, y_pred: int `[N]` class ids; confidence: float `[N]`.

    Returns:
        `(coverage, risk)`, both float64 `[N]`: coverage `k/N` and the balanced risk among the top k, k = 1..N.

    Example:
    >>> coverage, risk = balanced_risk_coverage_curve([0, 0, 1], [0, 1, 1], [0.9, 0.2, 0.5])
    >>> risk.tolist()  # keep {0}: errors 0, class 1 absent -> 0; + the 1: (0 + 0) / 2; + the wrong 0: (1/2 + 0) / 2
    [0.0, 0.0, 0.25]
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_pred.shape != y_true.shape:
        raise EmoconfError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in length")
    correct, confidence = _check(y_true == y_pred, confidence)
    order = np.argsort(-confidence, kind="stable")
    classes, true_ids = np.unique(y_true[order], return_inverse=True)
    onehot = np.zeros((y_true.size, classes.size))
    onehot[np.arange(y_true.size), true_ids] = 1.0
    kept = np.cumsum(onehot, axis=0)  # [N, K] predictions of each true class among the top k
    errors = np.cumsum(onehot * ~correct[order][:, None], axis=0)
    class_error = np.divide(errors, kept, out=np.zeros_like(errors), where=kept > 0)
    k = np.arange(1, y_true.size + 1)
    return k / y_true.size, class_error.mean(axis=1)


def balanced_aurc(y_true, y_pred, confidence) -> float:
    """FD-Shifts' `aurc_ba`: the area under the balanced risk-coverage curve, on the scale [0, 1]; lower is better.

    The same number as `RiskCoverageStats(confids, residuals=1 - correct, labels=y_true).aurc_ba` in FD-Shifts
    (`fd_shifts/analysis/rc_stats.py`, `selective_risk_ba_stats` and `evaluate_auc`), divided by its display
    scale of 1000:

    - risk: the mean over all K classes of `y_true` of each class's error rate among the kept predictions, a class
      with no kept prediction counting 0 (not left out, as `1 - balanced_accuracy_score` of the kept ones would);
    - points: one per distinct confidence value t, keeping every prediction with confidence >= t (tied predictions
      are kept or rejected together, so input order does not matter), plus (coverage 0, risk of the smallest
      kept set);
    - area: the trapezoidal rule over those points (their `-np.trapz(risks, coverages)`).

    Unlike `aurc` (the mean over k = 1..N, ties broken by input order), a score that rejects mostly the minority
    classes' predictions pays for it.

    Args:
        y_true, y_pred: int `[N]` class ids; confidence: float `[N]`.

    Returns:
        The area, a float in [0, 1].

    Example:
    >>> round(balanced_aurc([0, 0, 1, 1], [0, 1, 1, 0], [0, 1, 2, 3]), 6)  # FD-Shifts' own toy case
    0.5
    """
    _, risk = balanced_risk_coverage_curve(y_true, y_pred, confidence)
    descending = np.sort(np.asarray(confidence, dtype=np.float64).ravel())[::-1]
    group_end = np.append(descending[:-1] != descending[1:], True)  # the last of each run of tied confidences
    coverage = np.concatenate([[0.0], np.flatnonzero(group_end) + 1.0]) / descending.size
    risk = np.concatenate([risk[group_end][:1], risk[group_end]])
    return float(np.sum(np.diff(coverage) * (risk[1:] + risk[:-1]) / 2))


def optimal_aurc(correct) -> float:
    """AURC of an oracle that ranks every correct prediction above every wrong one (same error count)."""
    correct = np.asarray(correct, dtype=bool)
    return aurc(np.sort(correct)[::-1], np.arange(correct.size, 0, -1, dtype=np.float64))


def eaurc(correct, confidence) -> float:
    """Excess AURC: `aurc - optimal_aurc`, the part due to the ranking rather than the classifier's error rate."""
    return aurc(correct, confidence) - optimal_aurc(correct)


def auroc(correct, confidence) -> float:
    """AUROC of the confidence for telling correct (positive) from wrong predictions; NaN if only one kind.

    The Mann-Whitney form: the fraction of (correct, wrong) pairs the confidence ranks right, a tie counting one
    half; the same number as `sklearn.metrics.roc_auc_score(correct, confidence)`, at a fraction of its cost in
    bootstrap loops (`emoconf_tf.evaluation.statistics`). Reference: Hanley & McNeil, Radiology 143(1), 1982.
    """
    from scipy.stats import rankdata  # SciPy (a second to import) when measured, not when the score registry loads

    correct, confidence = _check(correct, confidence)
    n_correct = int(correct.sum())
    n_wrong = correct.size - n_correct
    if n_correct == 0 or n_wrong == 0:
        return float("nan")
    ranks = rankdata(confidence)  # average ranks, so a tie between a correct and a wrong prediction counts 1/2
    return float((ranks[correct].sum() - n_correct * (n_correct + 1) / 2) / (n_correct * n_wrong))


def fpr_at_95_tpr(correct, confidence) -> float:
    """Fraction of wrong predictions accepted at the lowest threshold that accepts 95 % of the correct ones."""
    from sklearn.metrics import roc_curve  # scikit-learn likewise

    correct, confidence = _check(correct, confidence)
    if correct.all() or not correct.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(correct, confidence)
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


@dataclasses.dataclass(frozen=True)
class SelectiveSummary:
    aurc: float
    eaurc: float
    auroc: float
    fpr95: float


def selective_summary(correct, confidence) -> SelectiveSummary:
    """All four numbers for one score."""
    return SelectiveSummary(
        aurc=aurc(correct, confidence),
        eaurc=eaurc(correct, confidence),
        auroc=auroc(correct, confidence),
        fpr95=fpr_at_95_tpr(correct, confidence),
    )
