"""Adaptive rejection: the validation thresholds at a rejection rate that adaptive conformal inference moves along
a stream of predictions, so that the stream's long-run rejection rate is the one asked for.

Validation thresholds (`emoconf_tf.thresholds`) reject the fraction `r` of *validation* predictions; on new
speakers or sessions the confidences shift, and the same thresholds reject more or less than `r`. Adaptive
conformal inference (ACI) keeps the threshold rule and corrects the rate it is asked at: after each prediction,

    r_{t+1} = r_t + step_size * (r - rejected_t),    rejected_t = 1 if prediction t was rejected, else 0

(the paper's `alpha_{t+1} = alpha_t + gamma (alpha - err_t)`, with "rejected" for "miscovered"): a stream that
rejects too much lowers the rate asked for, one that rejects too little raises it. After a batch of predictions,
`rejected_t` is the fraction of the batch rejected.

The state is one float, `r_t`, that a client keeps between requests: it asks the validation thresholds for
`rejection` (r_t clipped to [0, 1): e.g. the SavedModel's `threshold` signature with `rejection = r_t`) and
rejects every prediction while `rejects_all` (r_t >= 1, the paper's empty prediction set).

Reference:
    Gibbs & Candès, "Adaptive conformal inference under distribution shift", NeurIPS 2021.
"""

from __future__ import annotations

import math

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.thresholds import ThresholdLookup, check_rejection_mode

DEFAULT_STEP_SIZE = 0.005
"""The step size gamma: the paper's choice for its experiments (it also tried 0.001 to 0.05)."""
MAX_REJECTION = 1.0 - 1e-6
"""The largest rate asked of the thresholds (they take rates in [0, 1)): the highest validation score."""


class AdaptiveRejection:
    """The ACI state of one stream: the rejection rate `r_t` at which the validation thresholds are applied.

    Guarantee (Gibbs & Candès 2021, Proposition 4.1), for *any* sequence of predictions, shifted or adversarial:
    after T updates starting from `r_1 = state`,

        |(1/T) sum_t rejected_t - target_rate| <= (max(r_1, 1 - r_1) + step_size) / (step_size * T),

    so the long-run rejection rate tends to `target_rate`. It holds as long as rates <= 0 reject nothing (the
    threshold at rate 0 is 0, and every confidence here is non-negative) and `rejects_all` rejects everything;
    `r_t` then stays within [-step_size, 1 + step_size]. With one update per batch, `rejected_t` is the batch's
    rejected fraction and T counts batches. A larger step adapts faster and oscillates more.

    Args:
        target_rate: r, the long-run fraction of predictions to reject, in [0, 1).
        step_size: gamma > 0 (default `DEFAULT_STEP_SIZE`, 0.005).
        state: r_t to start from, a finite float (default `target_rate`): a client passes back the `state` it
            kept after its previous request.

    Example:
    >>> aci = AdaptiveRejection(0.2, step_size=0.1)
    >>> aci.update(True)   # rejected: 0.2 + 0.1 * (0.2 - 1) = 0.12
    0.12
    >>> round(aci.update([False, False, True, False]), 6)   # a batch, 1/4 rejected: 0.12 + 0.1 * (0.2 - 0.25)
    0.115
    >>> AdaptiveRejection(0.2, step_size=0.1, state=aci.state).state == aci.state   # the state is one float
    True
    """

    def __init__(self, target_rate: float, step_size: float = DEFAULT_STEP_SIZE, *, state: float | None = None):
        if not _is_real(target_rate) or not 0.0 <= float(target_rate) < 1.0:
            raise EmoconfError(f"target_rate {target_rate!r}: expected a rejection rate, a fraction in [0, 1)")
        if not _is_real(step_size) or not float(step_size) > 0.0:
            raise EmoconfError(f"step_size {step_size!r}: expected a positive number, e.g. {DEFAULT_STEP_SIZE}")
        if state is not None and not _is_real(state):
            raise EmoconfError(f"state {state!r}: expected the finite rate r_t a previous AdaptiveRejection.state "
                               "returned")
        self.target_rate = float(target_rate)
        self.step_size = float(step_size)
        self._state = self.target_rate if state is None else float(state)

    @property
    def state(self) -> float:
        """r_t, ACI's alpha_t, not clipped: the float a client keeps between requests."""
        return self._state

    @property
    def rejection(self) -> float:
        """The rate to ask the validation thresholds for: r_t clipped to [0, `MAX_REJECTION`]."""
        return min(max(self._state, 0.0), MAX_REJECTION)

    @property
    def rejects_all(self) -> bool:
        """True while r_t >= 1: reject every prediction (no threshold of rate < 1 would)."""
        return self._state >= 1.0

    def update(self, rejected) -> float:
        """Moves r_t after a prediction (`rejected`: bool) or a batch (bool `[B]`, B >= 1); returns the new r_t."""
        if isinstance(rejected, (bool, np.bool_)):
            error = float(rejected)
        else:
            values = np.asarray(rejected)
            if values.size == 0 or not np.isin(values, (0, 1)).all():
                raise EmoconfError(f"rejected {rejected!r}: expected a bool or a non-empty array of bools, one per "
                                   "prediction of the batch")
            error = float(values.mean())
        self._state += self.step_size * (self.target_rate - error)
        return self._state

    def __repr__(self) -> str:
        return (f"AdaptiveRejection(target_rate={self.target_rate!r}, step_size={self.step_size!r}, "
                f"state={self._state!r})")


def online_accept(
    confidence: np.ndarray,
    predicted: np.ndarray,
    validation_confidence: np.ndarray,
    validation_predicted: np.ndarray,
    rejection: float,
    num_classes: int,
    mode: str = "global",
    step_size: float = DEFAULT_STEP_SIZE,
) -> np.ndarray:
    """bool `[N]`: True where a prediction of the stream is kept, the rows taken in order, each thresholded by the
    validation thresholds (`thresholds.class_thresholds`) at the current rate of an `AdaptiveRejection` that is
    updated after every row.

    Args:
        confidence: float `[N]`, the stream's confidences, in arrival order.
        predicted: int `[N]`, their predicted classes in [0, K).
        validation_confidence: float `[n]`; validation_predicted: int `[n]`: what the thresholds are set on.
        rejection: the target rate r, a fraction in [0, 1).
        num_classes: K.
        mode: `"global"` or `"per_class"` (`thresholds.REJECTION_MODES`).
        step_size: ACI's gamma (default `DEFAULT_STEP_SIZE`).

    The comparison is made in the confidences' precision, as `thresholds.accept` does.

    Example:
    >>> validation = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    >>> online_accept(np.array([0.15, 0.15, 0.15]), np.zeros(3, int), validation, np.zeros(10, int), 0.2, 1,
    ...               step_size=0.1).tolist()   # t_0.2 = 0.3, then t_0.12 = 0.2, then t_0.04 = 0.1
    [False, False, True]
    """
    check_rejection_mode(mode)
    confidence = np.asarray(confidence).ravel()
    predicted = np.asarray(predicted).ravel()
    if predicted.shape != confidence.shape:
        raise EmoconfError(f"confidences {confidence.shape} and predicted classes {predicted.shape} differ in length")
    aci = AdaptiveRejection(rejection, step_size)
    # Thresholds are validation scores: rounded to the stream's precision first (rounding keeps their order), the
    # comparisons below in float64 are those `accept` makes in that precision.
    dtype = confidence.dtype if np.issubdtype(confidence.dtype, np.floating) else np.float64
    lookup = ThresholdLookup(np.asarray(validation_confidence).astype(dtype), validation_predicted, num_classes, mode)
    kept = np.zeros(confidence.size, dtype=bool)
    for row, (score, cls) in enumerate(zip(confidence.astype(np.float64).tolist(), predicted.tolist())):
        keep = not aci.rejects_all and score >= lookup.threshold(aci.rejection, cls)
        kept[row] = keep
        aci.update(not keep)
    return kept


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(float(value))
