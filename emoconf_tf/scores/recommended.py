"""The `recommended` confidence: the score (or blend of two) *and* rejection mode that validation says serve
macro-F1 and UAR best.

Candidates are every single score the protocol computed and, for each EmoConfidNet variant, a blend
with each of the classifier's own scores (`top2_margin`, `msp`):

    blend = w * q(emoconfidnet) + (1 - w) * q(classifier score),  w in {0.25, 0.5, 0.75}

where `q` maps a score to its empirical CDF on the validation split (`validation_quantile`), so the two
are on one scale. Each candidate is paired with each rejection mode (`global`, `per_class`,
`emoconf_tf.thresholds`), and the pair with the best *criterion* on the validation split wins:

- `"f1_uar_area"` (default): the mean of the macro-F1 and the UAR of the kept validation predictions over the
  rejection rates 0, 0.05, ..., 0.5 (coverage 1 to 0.5), the area under the paper's two curves. The metrics
  users judge, rather than accuracy.
- `"f1_area"`, `"uar_area"`: one of the two curves alone.
- `"aurc"`: the area under the accuracy risk-coverage curve (mode-independent; the old choice, kept to
  compare).

The areas are *cross-fitted*: the validation predictions are split in `crossfit_folds` parts (seeded); the
thresholds are set on all parts but one and the metrics measured on the one left out, in turn, so a candidate
is judged as it will be used, on predictions its thresholds did not see.

One validation split of a thousand or two utterances ranks 40-odd candidates noisily, and the best of them on
validation is often not the best on test (the winner's curse). So, as in the one-standard-error rule of model
selection, a *default* candidate is kept unless validation clearly prefers another: the best candidate replaces
the default only when it has the larger area in at least `switch_confidence` (0.9) of `n_boot` bootstrap
resamples of the validation predictions. The default is `macro_gain_ensemble` with per-class thresholds
(`DEFAULT_CHOICES`): the score derived for macro precision and recall, on a deep ensemble's class probabilities,
with thresholds that treat every predicted class alike; then `macro_gain` (the classifier's own probabilities)
when the ensemble was not computed; when neither was, the best candidate is taken as it is.

Every choice uses validation predictions only; the test split is never seen. Ties go to the earlier candidate:
single scores before blends, in `methods` order, global mode before per-class.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.metrics import macro_f1_uar
from emoconf_tf.scores.functions import validation_quantile
from emoconf_tf.selective import aurc
from emoconf_tf.settings import CRITERIA, DEFAULT_CRITERION
from emoconf_tf.thresholds import REJECTION_MODES, accept, check_rejection_mode, class_thresholds

BLEND_WEIGHTS = (0.25, 0.5, 0.75)
EMOCONFIDNET_SCORES = ("emoconfidnet", "emoconfidnet_tau")
CLASSIFIER_SCORES = ("top2_margin", "msp")
AREA_REJECTIONS = tuple(round(0.05 * i, 2) for i in range(11))
"""Rejection rates over which the F1 and UAR curves are averaged: 0, 0.05, ..., 0.5 (coverage 1 to 0.5)."""
CROSSFIT_FOLDS = 2
DEFAULT_CHOICES = (("macro_gain_ensemble", "per_class"), ("macro_gain", "per_class"))
"""The candidate kept unless validation clearly prefers another, (score, rejection mode): the first computed."""
SWITCH_CONFIDENCE = 0.9
BOOTSTRAP_RESAMPLES = 100


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """A chosen score and mode.

    Attributes:
        components: pairs (method, weight) summing to 1.
        rejection_mode: `"global"` or `"per_class"`.
        criterion: the criterion it was chosen by (`CRITERIA`).
        validation_value: the criterion's value on validation (an area: higher is better; `aurc`: lower).
        switch_rate: when a default was given and the best candidate differs from it, the fraction of validation
            bootstrap resamples in which the best beat the default (it replaced the default when >= the switch
            confidence); NaN otherwise.
    """

    components: tuple[tuple[str, float], ...]
    rejection_mode: str
    criterion: str
    validation_value: float
    switch_rate: float = float("nan")

    @property
    def name(self) -> str:
        if len(self.components) == 1:
            return self.components[0][0]
        return " + ".join(f"{w:.2f}*{m}" for m, w in self.components)


def candidates(methods: Sequence[str]) -> list[tuple[tuple[str, float], ...]]:
    """Every candidate's components, singles first."""
    out = [((m, 1.0),) for m in methods]
    for emo in EMOCONFIDNET_SCORES:
        for partner in CLASSIFIER_SCORES:
            if emo in methods and partner in methods:
                out.extend(((emo, w), (partner, 1.0 - w)) for w in BLEND_WEIGHTS)
    return out


def default_choice(validation_scores: Mapping[str, np.ndarray]) -> tuple[str, str] | None:
    """The first of `DEFAULT_CHOICES` whose score was computed; None if none was.

    >>> default_choice({"top2_margin": None, "macro_gain": None})
    ('macro_gain', 'per_class')
    """
    return next((choice for choice in DEFAULT_CHOICES if choice[0] in validation_scores), None)


def recommended_confidence(
    components: Sequence[tuple[str, float]],
    validation_scores: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The candidate's score on any split: a single score as is, a blend on validation quantiles. float64 `[N]`."""
    if len(components) == 1:
        return np.asarray(scores[components[0][0]], dtype=np.float64)
    return sum(w * validation_quantile(validation_scores[m], scores[m]) for m, w in components)


def selective_curve_area(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    *,
    num_classes: int,
    mode: str = "global",
    rejections: Sequence[float] = AREA_REJECTIONS,
    fit: np.ndarray | None = None,
) -> tuple[float, float]:
    """Mean macro-F1 and mean UAR of the kept predictions over `rejections`.

    Args:
        y_true, y_pred: int `[n]`; confidence: float `[n]`.
        num_classes: K.
        mode: rejection mode of the thresholds.
        rejections: rates (fractions in [0, 1)).
        fit: bool `[n]`, optional: set the thresholds on the rows where True and measure on the others
            (default: set and measure on all rows).

    Returns:
        `(f1_area, uar_area)`, each in [0, 1].

    Example:
    >>> y = np.array([0, 0, 1, 1]); p = np.array([0, 1, 1, 1]); c = np.array([0.9, 0.1, 0.8, 0.7])
    >>> f1, uar = selective_curve_area(y, p, c, num_classes=2, rejections=(0.0, 0.25))
    >>> round(uar, 4)  # r=0: recalls 1/2, 2/2 -> 0.75; r=0.25 drops the wrong 0.1: 1, 1 -> 1
    0.875
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    confidence = np.asarray(confidence, dtype=np.float64)
    if fit is None:
        fit = measure = np.ones(len(y_true), dtype=bool)
    else:
        fit = np.asarray(fit, dtype=bool)
        measure = ~fit
    measured_true, measured_pred, measured_confidence = y_true[measure], y_pred[measure], confidence[measure]
    f1s, uars = [], []
    for rejection in rejections:
        thresholds = class_thresholds(confidence[fit], y_pred[fit], rejection, num_classes, mode)
        kept = accept(measured_confidence, thresholds, measured_pred)
        # Counted with bincount rather than selective_scores (scikit-learn): the same numbers, and the validation
        # bootstrap of `choose_recommended` calls this thousands of times per unit.
        f1, uar = macro_f1_uar(measured_true[kept], measured_pred[kept], num_classes)
        f1s.append(f1)
        uars.append(uar)
    return float(np.mean(f1s)), float(np.mean(uars))


def crossfit_parts(n: int, folds: int = CROSSFIT_FOLDS, seed: int = 0) -> np.ndarray:
    """int `[n]`: the part (0..folds-1) of each validation row, a seeded random split into near-equal parts."""
    if folds < 1:
        raise EmoconfError(f"crossfit folds must be at least 1, got {folds}")
    parts = np.empty(n, dtype=np.int64)
    parts[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return parts


def criterion_value(
    criterion: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    *,
    num_classes: int,
    mode: str,
    parts: np.ndarray | None = None,
) -> float:
    """A candidate's criterion on validation (`CRITERIA`); areas are averaged over the cross-fitting `parts`
    (int `[n]`; None or a single part = thresholds set and measured on the same rows)."""
    if criterion not in CRITERIA:
        raise EmoconfError(f"criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
    if criterion == "aurc":
        return aurc(np.asarray(y_true) == np.asarray(y_pred), confidence)
    folds = [None] if parts is None or len(np.unique(parts)) < 2 else [parts != p for p in np.unique(parts)]
    areas = np.mean([selective_curve_area(y_true, y_pred, confidence, num_classes=num_classes, mode=mode, fit=fit)
                     for fit in folds], axis=0)
    return float({"f1_uar_area": areas.mean(), "f1_area": areas[0], "uar_area": areas[1]}[criterion])


def choose_recommended(
    validation_labels: np.ndarray,
    validation_predicted: np.ndarray,
    validation_scores: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    modes: Sequence[str] = REJECTION_MODES,
    criterion: str = DEFAULT_CRITERION,
    crossfit_folds: int = CROSSFIT_FOLDS,
    seed: int = 0,
    default: tuple[str, str] | None | str = "auto",
    switch_confidence: float = SWITCH_CONFIDENCE,
    n_boot: int = BOOTSTRAP_RESAMPLES,
) -> Recommendation:
    """Picks the candidate score and rejection mode with the best criterion on validation.

    Args:
        validation_labels, validation_predicted: int `[M]`: the validation labels and the classifier's predictions.
        validation_scores: method name -> float `[M]` validation confidence.
        num_classes: K.
        modes: rejection modes to choose from.
        criterion: one of `CRITERIA`.
        crossfit_folds: parts of the validation split for cross-fitting the areas (1 = none).
        seed: seeds the split into parts and the bootstrap.
        default: `(score, mode)` kept unless the best candidate beats it in at least `switch_confidence` of
            `n_boot` bootstrap resamples of the validation predictions (areas on each resample); `"auto"`: the
            first of `DEFAULT_CHOICES` computed (`default_choice`); None, a score not in `validation_scores` or
            a mode not in `modes`: the best candidate, as it is. Not used with `criterion="aurc"`.
        switch_confidence: in (0, 1].
        n_boot: bootstrap resamples for the switch.
    """
    if not validation_scores:
        raise EmoconfError("no confidence scores to choose from")
    if not modes:
        raise EmoconfError("no rejection modes to choose from")
    for mode in modes:
        check_rejection_mode(mode, "rejection modes")
    if criterion not in CRITERIA:
        raise EmoconfError(f"criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
    if isinstance(default, str):
        if default != "auto":
            raise EmoconfError(f"default {default!r}: give a (score, mode) pair, None or 'auto'")
        default = default_choice(validation_scores)
    labels = np.asarray(validation_labels)
    predicted = np.asarray(validation_predicted)
    parts = crossfit_parts(len(labels), crossfit_folds, seed)
    lower_is_better = criterion == "aurc"
    if not 0 < switch_confidence <= 1:
        raise EmoconfError(f"switch confidence {switch_confidence}: must lie in (0, 1]")
    best: Recommendation | None = None
    fallback: Recommendation | None = None
    for components in candidates(list(validation_scores)):
        score = recommended_confidence(components, validation_scores, validation_scores)
        for mode in modes:
            value = criterion_value(criterion, labels, predicted, score, num_classes=num_classes, mode=mode,
                                    parts=parts)
            better = (best is None or (value < best.validation_value - 1e-12 if lower_is_better
                                       else value > best.validation_value + 1e-12))
            if better:
                best = Recommendation(tuple(components), mode, criterion, value)
            if default is not None and components == ((default[0], 1.0),) and mode == default[1]:
                fallback = Recommendation(tuple(components), mode, criterion, value)
    if fallback is None or lower_is_better or best == fallback:
        return best
    rate = _bootstrap_win_rate(best, fallback, labels, predicted, validation_scores, num_classes=num_classes,
                               n_boot=n_boot, seed=seed)
    chosen = best if rate >= switch_confidence else fallback
    return dataclasses.replace(chosen, switch_rate=rate)


def _bootstrap_win_rate(
    challenger: Recommendation, default: Recommendation, labels: np.ndarray, predicted: np.ndarray,
    validation_scores: Mapping[str, np.ndarray], *, num_classes: int, n_boot: int, seed: int,
) -> float:
    """Fraction of `n_boot` bootstrap resamples of the validation rows on which `challenger` has the larger
    criterion (thresholds set and measured on the resample) than `default`; paired: the same rows for both."""
    rng = np.random.default_rng(seed)
    scores = [recommended_confidence(r.components, validation_scores, validation_scores) for r in (challenger, default)]
    wins = 0
    for _ in range(n_boot):
        rows = rng.integers(0, len(labels), len(labels))
        a, b = (criterion_value(challenger.criterion, labels[rows], predicted[rows], score[rows],
                                num_classes=num_classes, mode=r.rejection_mode)
                for score, r in zip(scores, (challenger, default)))
        wins += a > b
    return wins / n_boot if n_boot else 0.0
