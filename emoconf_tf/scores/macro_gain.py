"""The expected macro gain: how much keeping a prediction is expected to change macro precision + macro recall.

A score for the metrics users judge (macro-F1, UAR), which weigh each class alike. It needs the classifier's
precision, recall and counts per class on the validation split (`MacroGainStatistics`), which an export stores as
constants (`serving/served_score.py`). float32 `[N]` in [0, 1], higher = keep, like the scores of `functions.py`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def macro_gain(
    probabilities: np.ndarray, validation_probabilities: np.ndarray, validation_labels: np.ndarray, *,
    predicted: np.ndarray | None = None, validation_predicted: np.ndarray | None = None,
) -> np.ndarray:
    """The expected first-order change of macro precision + macro recall when a prediction is *kept*.

    Macro-F1 and UAR, unlike accuracy, weigh each class alike, so an error of a small class costs more
    than one of a large class. Keeping a prediction of class `c` whose true class is `y` changes
    precision `P_c = TP_c / M_c` by `(1[y = c] - P_c) / M_c` and recall `R_y = TP_y / N_y` by
    `(1[y = c] - R_y) / N_y`. Taking the expectation over `y` with the classifier's probabilities `q`:

        gain = (q_c - P_c) / M_c  +  q_c / N_c - sum_y q_y R_y / N_y

    with `P`, `R`, `M` (predictions per class) and `N` (true samples per class) measured on the
    validation split (counts + 1, so that an absent class does not divide by zero). Higher = keep. It
    needs the validation labels, which every rejection threshold already uses. Since `|gain| <= B =
    max_c 1 / (M_c + 1) + max_y 1 / (N_y + 1)`, the score returned is `(gain + B) / (2 B)`, in [0, 1] like
    the others (the same ranking), so that the paper's `t0 = 0` keeps everything.

    Args:
        probabilities: float `[N, K]`, the class probabilities `q` of the predictions to score: the classifier's
            softmax, or a better estimate such as an ensemble's mean softmax (`emoconf_tf.scores.ensemble`).
        validation_probabilities: float `[M, K]`, the classifier's softmax on the validation split (only its
            argmax is used, when `validation_predicted` is not given).
        validation_labels: int `[M]`, the validation labels.
        predicted: int `[N]`, optional: the predicted classes `c` to score (default: the argmax of
            `probabilities`). Give the classifier's own predictions when `probabilities` come from elsewhere.
        validation_predicted: int `[M]`, optional: the classifier's validation predictions that `P`, `R` and `M`
            are counted from (default: the argmax of `validation_probabilities`).

    Returns:
        float32 `[N]` in [0, 1].

    Example:
    >>> val_p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]); val_y = np.array([0, 1, 1])
    >>> # validation: predicted 0, 0, 1; P = (1/2, 1/1), R = (1/1, 1/2); M + 1 = (3, 2); N + 1 = (2, 3)
    >>> # [0.6, 0.4]: (0.6 - 0.5) / 3 + 0.6 / 2 - (0.6 * 1 / 2 + 0.4 * 0.5 / 3) = 0.0333 + 0.3 - 0.3667 = -0.0333
    >>> # B = max(1/3, 1/2) + max(1/2, 1/3) = 1; (-0.0333 + 1) / 2 = 0.4833
    >>> round(float(macro_gain(np.array([[0.6, 0.4]]), val_p, val_y)[0]), 4)
    0.4833
    """
    q = np.asarray(probabilities, dtype=np.float64)
    validation_probabilities = np.asarray(validation_probabilities, dtype=np.float64)
    labels = np.asarray(validation_labels)
    k = q.shape[-1]
    if validation_probabilities.shape[-1] != k or len(labels) != len(validation_probabilities):
        raise ValueError(
            f"validation probabilities {validation_probabilities.shape} and labels {labels.shape} do not match "
            f"probabilities with {k} classes"
        )
    validation_predicted = (validation_probabilities.argmax(axis=-1) if validation_predicted is None
                            else np.asarray(validation_predicted))
    statistics = macro_gain_statistics(labels, validation_predicted, k)
    c = q.argmax(axis=-1) if predicted is None else np.asarray(predicted)
    return macro_gain_from_statistics(q, c, statistics)


@dataclasses.dataclass(frozen=True)
class MacroGainStatistics:
    """What `macro_gain` measures on the validation split, float64 `[K]` each: the classifier's precision `P`
    and recall `R` per class, its predictions per class `M` and the true samples per class `N`.

    An export stores them as constants, so a served `macro_gain` needs no validation data.
    """

    precision: np.ndarray
    recall: np.ndarray
    n_predicted: np.ndarray
    n_true: np.ndarray

    @property
    def bound(self) -> float:
        """`B = max_c 1 / (M_c + 1) + max_y 1 / (N_y + 1)`, the largest `|gain|`."""
        return float(np.max(1.0 / (self.n_predicted + 1)) + np.max(1.0 / (self.n_true + 1)))

    def to_dict(self) -> dict:
        """JSON-ready lists (for run.json)."""
        return {name: [float(v) for v in getattr(self, name)]
                for name in ("precision", "recall", "n_predicted", "n_true")}

    @classmethod
    def from_dict(cls, data: dict) -> "MacroGainStatistics":
        return cls(*(np.asarray(data[name], dtype=np.float64)
                     for name in ("precision", "recall", "n_predicted", "n_true")))


def macro_gain_statistics(
    validation_labels: np.ndarray, validation_predicted: np.ndarray, num_classes: int
) -> MacroGainStatistics:
    """`MacroGainStatistics` of the validation labels and predictions (int `[M]` each) over `num_classes` classes.

    Example:
    >>> s = macro_gain_statistics(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    >>> s.precision.tolist(), s.recall.tolist(), s.n_predicted.tolist(), s.n_true.tolist(), s.bound
    ([0.5, 1.0], [1.0, 0.5], [2.0, 1.0], [1.0, 2.0], 1.0)
    """
    labels = np.asarray(validation_labels)
    predicted = np.asarray(validation_predicted)
    if len(predicted) != len(labels):
        raise ValueError(f"{len(predicted)} validation predictions but {len(labels)} labels")
    k = int(num_classes)
    hits = np.bincount(labels[labels == predicted], minlength=k).astype(np.float64)
    n_true = np.bincount(labels, minlength=k).astype(np.float64)
    n_predicted = np.bincount(predicted, minlength=k).astype(np.float64)
    precision = np.divide(hits, n_predicted, out=np.zeros(k), where=n_predicted > 0)
    recall = np.divide(hits, n_true, out=np.zeros(k), where=n_true > 0)
    return MacroGainStatistics(precision, recall, n_predicted, n_true)


def macro_gain_from_statistics(
    probabilities: np.ndarray, predicted: np.ndarray, statistics: MacroGainStatistics
) -> np.ndarray:
    """`macro_gain` of predictions `predicted` (int `[N]`) with class probabilities `probabilities` (float `[N, K]`)
    and validation `statistics`: float32 `[N]` in [0, 1]. What a SavedModel computes (`serving/served_score.py`)."""
    q = np.asarray(probabilities, dtype=np.float64)
    c = np.asarray(predicted)
    if len(c) != len(q):
        raise ValueError(f"{len(c)} predicted classes but {len(q)} rows of probabilities")
    s = statistics
    q_c = q[np.arange(len(c)), c]
    gain_precision = (q_c - s.precision[c]) / (s.n_predicted[c] + 1)
    gain_recall = q_c / (s.n_true[c] + 1) - q @ (s.recall / (s.n_true + 1))
    bound = s.bound
    return ((gain_precision + gain_recall + bound) / (2 * bound)).astype(np.float32)
