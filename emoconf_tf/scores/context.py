"""What a scorer is given and what it returns: one unit's `ScoringContext` and its `Scored` result.

A scorer (`registry.register_method`) reads the trained networks' outputs from the context and returns its scores
on the two scored splits by name, `Scored(validation=..., test=...)`, or `Scored.from_parts(score)` with a
function of the split's name.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from emoconf_tf.settings import ProtocolConfig

if TYPE_CHECKING:
    import keras

SCORED_PARTS = ("validation", "test")
"""The splits every method scores, the fields of `Scored`: thresholds come from validation, metrics from test."""


@dataclasses.dataclass
class ScoringContext:
    """What a scorer may use for one (fold, seed, training) unit. Arrays are indexed by split name.

    Attributes:
        probabilities: float `[N, K]` classifier softmax per scored split (`"validation"`, `"test"`).
        p_hat: float `[N, K]` EmoConfidNet outputs per scored split (empty without AVD ratings: no head).
        predicted: int `[N]` predicted class per scored split.
        labels: int `[N]` labels per split (`"train"`, `"validation"`, `"test"`; test labels are for the
            evaluation only, a scorer must not read them).
        embedded: float `[N, 256]` penultimate embeddings per split (`"train"`, `"validation"`, `"test"`).
        distances: float `[N, K]` Manhattan AVD distances to the class centroids (`"train"`, `"validation"`;
            empty without AVD ratings).
        rows: int row indices of each split into `features`.
        features: float32 `[rows, D]`, the corpus feature matrix.
        classifier: the trained Keras classifier.
        config: the `ProtocolConfig` (training settings, MC-dropout passes, taus, rejection modes, ...).
        seed: the unit's seed.
        num_classes: K.
        methods: the methods asked for.
        has_avd: False for a corpus without AVD ratings: no EmoConfidNet head, no distances, and the
            `needs_avd` methods are not run.
        scores: per scored split, the scores computed so far, `{method: float [N]}`.
        artifacts: what scorers trained or chose that an export needs: `"ensemble_members"` (the extra Keras
            classifiers of `macro_gain_ensemble`), `"recommendation"` (`recommended`'s `Recommendation`).
    """

    probabilities: dict[str, np.ndarray]
    p_hat: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    embedded: dict[str, np.ndarray]
    distances: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    features: np.ndarray
    classifier: keras.Model
    config: ProtocolConfig
    seed: int
    num_classes: int
    methods: tuple[str, ...]
    has_avd: bool = True
    scores: dict[str, dict[str, np.ndarray]] = dataclasses.field(
        default_factory=lambda: {part: {} for part in SCORED_PARTS})
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scored:
    """A scorer's result, by name: float `[N]` scores on `validation` and `test`, higher = more confident.

    Attributes:
        validation: the scores of the validation split (the thresholds are set on them).
        test: the scores of the test split (the metrics are measured on them).
        choice: optional row for choices.csv (`choice`, `rejection_mode`, `criterion`, `validation_value`), when
            the scorer chose something on validation.
        rejection_modes: optional: the only modes it is reported in (default: every mode of the protocol).

    Example:
    >>> scored = Scored.from_parts(lambda part: np.full(2 if part == "validation" else 1, 0.5))
    >>> scored.validation.tolist(), scored.test.tolist()
    ([0.5, 0.5], [0.5])
    """

    validation: np.ndarray
    test: np.ndarray
    choice: dict | None = None
    rejection_modes: tuple[str, ...] | None = None

    @classmethod
    def from_parts(cls, score: Callable[[str], np.ndarray], *, choice: dict | None = None,
                   rejection_modes: tuple[str, ...] | None = None) -> Scored:
        """`Scored` with `score("validation")` and `score("test")`, computed in that order (a scorer that draws
        random numbers draws them for validation first)."""
        validation = score("validation")
        test = score("test")
        return cls(validation=validation, test=test, choice=choice, rejection_modes=rejection_modes)
