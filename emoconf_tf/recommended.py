"""The `recommended` confidence: the score (or blend of two) with the lowest AURC on the *validation* split.

Candidates are every single score the protocol computed and, for each EmoConfidNet variant, a blend
with each of the classifier's own scores (`top2_margin`, `msp`):

    blend = w * q(emoconfidnet) + (1 - w) * q(classifier score),  w in {0.25, 0.5, 0.75}

where `q` maps a score to its empirical CDF on the validation split (`validation_quantile`), so the two
are on one scale. Every choice (which score, which weight) uses validation predictions only; the test
split is never seen. Ties go to the earlier candidate: single scores before blends, in `methods` order.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from emoconf_tf.confidence import validation_quantile
from emoconf_tf.errors import EmoconfError
from emoconf_tf.selective import aurc

BLEND_WEIGHTS = (0.25, 0.5, 0.75)
EMOCONFIDNET_SCORES = ("emoconfidnet", "emoconfidnet_tau")
CLASSIFIER_SCORES = ("top2_margin", "msp")


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """A chosen score: `components` pairs (method, weight) summing to 1, and its validation AURC."""

    components: tuple[tuple[str, float], ...]
    validation_aurc: float

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


def recommended_confidence(
    components: Sequence[tuple[str, float]],
    validation_scores: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The candidate's score on any split: a single score as is, a blend on validation quantiles. float64 `[N]`."""
    if len(components) == 1:
        return np.asarray(scores[components[0][0]], dtype=np.float64)
    return sum(w * validation_quantile(validation_scores[m], scores[m]) for m, w in components)


def choose_recommended(validation_correct: np.ndarray, validation_scores: Mapping[str, np.ndarray]) -> Recommendation:
    """Picks the candidate with the lowest AURC on validation.

    Args:
        validation_correct: bool `[M]`, whether the classifier's validation prediction is right.
        validation_scores: method name -> float `[M]` validation confidence.
    """
    if not validation_scores:
        raise EmoconfError("no confidence scores to choose from")
    best: Recommendation | None = None
    for components in candidates(list(validation_scores)):
        score = recommended_confidence(components, validation_scores, validation_scores)
        value = aurc(validation_correct, score)
        if best is None or value < best.validation_aurc - 1e-12:
            best = Recommendation(components, value)
    return best
