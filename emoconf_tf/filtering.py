"""The training-set conflict filter: drop samples whose category contradicts their AVD (paper, Table 1).

| category                     | conflict                      |
|------------------------------|-------------------------------|
| happy                        | low arousal or low valence    |
| sad / disgusted / frustrated | high valence                  |
| angry                        | low arousal or high valence   |

"Low" and "high" mean strictly below / above the midpoint of the AVD scale unless a midpoint is
given: a value exactly at the midpoint (4 on 1-7, 3 on 1-5) is neither, so it never contradicts a
category. With `inclusive=True` (`ProtocolConfig(filter_inclusive=True)`, `--filter-inclusive`) low
means at or below and high at or above the midpoint, so such a value is both and a rule that names
either condition drops the row (a happy row with arousal 4.0 on 1-7, say). The paper does not say
which it means; the default is the strict reading, and the filter's results do not change unless
the option is given. Categories without a rule (neutral) are never dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from emoconf_tf.errors import EmoconfError

TRAININGS = ("raw", "filtered")
"""The protocol's two training sets: as given, and without the rows that conflict with their AVD."""

_CONDITIONS = ("low_arousal", "high_arousal", "low_valence", "high_valence")


@dataclasses.dataclass(frozen=True)
class ConflictRule:
    """A category and the AVD conditions that contradict it (any one suffices).

    Args:
        category: class name, e.g. `"happy"`.
        conditions: a subset of `low_arousal`, `high_arousal`, `low_valence`, `high_valence`.
    """

    category: str
    conditions: tuple[str, ...]

    def __post_init__(self):
        unknown = [c for c in self.conditions if c not in _CONDITIONS]
        if unknown or not self.conditions:
            raise EmoconfError(
                f"conflict rule for {self.category!r}: unknown condition(s) {unknown or '(none given)'}; "
                f"choose from {', '.join(_CONDITIONS)}"
            )

    @property
    def name(self) -> str:
        return f"{self.category}: " + " or ".join(c.replace("_", " ") for c in self.conditions)


PAPER_RULES: tuple[ConflictRule, ...] = (
    ConflictRule("happy", ("low_arousal", "low_valence")),
    ConflictRule("sad", ("high_valence",)),
    ConflictRule("disgusted", ("high_valence",)),
    ConflictRule("frustrated", ("high_valence",)),
    ConflictRule("angry", ("low_arousal", "high_valence")),
)


def parse_rules(text: str) -> tuple[ConflictRule, ...]:
    """Parses `"happy=low_arousal|low_valence;sad=high_valence"` into rules, the `filter_rules` of a
    `ProtocolConfig` (the CLI's `--filter-rules`).

    Raises:
        EmoconfError: a part without `=`, or a rule with an unknown condition; the message starts with
            `filter_rules`, its `argument`.
    """
    rules = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        category, _, conditions = part.partition("=")
        if not conditions:
            raise EmoconfError(
                f"filter_rules {part!r}: expected CATEGORY=COND|COND, e.g. happy=low_arousal|low_valence",
                argument="filter_rules",
            )
        try:
            rules.append(ConflictRule(category.strip(), tuple(c.strip() for c in conditions.split("|"))))
        except EmoconfError as error:  # the rule's own message names the rule, not the argument
            raise EmoconfError(f"filter_rules: {error}", argument="filter_rules") from None
    return tuple(rules)


def default_training(has_avd: bool) -> str:
    """The training set one model is trained on unless another is asked for (`emoconf train`): `"filtered"`, the
    paper's, on a corpus with AVD ratings; `"raw"` on one without, where the filter cannot run."""
    return "filtered" if has_avd else "raw"


def rule_masks(
    labels: Sequence[str] | np.ndarray,
    arousal: np.ndarray,
    valence: np.ndarray,
    *,
    scale: tuple[float, float] = (1.0, 7.0),
    midpoint: float | None = None,
    rules: Sequence[ConflictRule] = PAPER_RULES,
    inclusive: bool = False,
) -> dict[str, np.ndarray]:
    """One bool mask `[N]` per rule (keyed by `rule.name`), True where that rule drops the row.

    Arguments as `conflict_mask`'s.
    """
    labels = np.asarray(labels).astype(str)
    arousal = np.asarray(arousal, dtype=np.float64)
    valence = np.asarray(valence, dtype=np.float64)
    if not (labels.shape == arousal.shape == valence.shape) or labels.ndim != 1:
        raise EmoconfError(
            f"labels, arousal and valence must be 1-d of one length; got {labels.shape}, {arousal.shape}, "
            f"{valence.shape}"
        )
    mid = (scale[0] + scale[1]) / 2.0 if midpoint is None else float(midpoint)
    below, above = (np.less_equal, np.greater_equal) if inclusive else (np.less, np.greater)
    condition = {
        "low_arousal": below(arousal, mid),
        "high_arousal": above(arousal, mid),
        "low_valence": below(valence, mid),
        "high_valence": above(valence, mid),
    }
    masks = {}
    for rule in rules:
        hit = np.zeros(labels.shape, dtype=bool)
        for name in rule.conditions:
            hit |= condition[name]
        masks[rule.name] = hit & (labels == rule.category)
    return masks


def conflict_mask(
    labels: Sequence[str] | np.ndarray,
    arousal: np.ndarray,
    valence: np.ndarray,
    scale: tuple[float, float] = (1.0, 7.0),
    *,
    midpoint: float | None = None,
    rules: Sequence[ConflictRule] = PAPER_RULES,
    inclusive: bool = False,
) -> np.ndarray:
    """Which rows the conflict filter removes.

    Args:
        labels: str `[N]`, category names.
        arousal: float `[N]`, on the corpus scale.
        valence: float `[N]`, on the corpus scale.
        scale: `(lo, hi)` of the AVD scale; the midpoint `(lo + hi) / 2` separates low from high.
        midpoint: overrides the scale's midpoint.
        rules: the conflict rules; default the paper's.
        inclusive: bool, default False: low is `value < midpoint` and high `value > midpoint` (a value at the
            midpoint is neither). True: `<=` and `>=` (a value at the midpoint is both).

    Returns:
        bool `[N]`, True where the row contradicts its category and is filtered out.

    Example:
    >>> conflict_mask(["happy", "sad", "neutral"], [3.0, 5.0, 1.0], [6.0, 5.0, 1.0], scale=(1, 7))
    array([ True,  True, False])
    >>> at_midpoint = (["happy", "sad"], [4.0, 2.0], [6.0, 4.0])  # happy arousal 4, sad valence 4, on 1-7
    >>> conflict_mask(*at_midpoint, scale=(1, 7)), conflict_mask(*at_midpoint, scale=(1, 7), inclusive=True)
    (array([False, False]), array([ True,  True]))
    """
    masks = rule_masks(labels, arousal, valence, scale=scale, midpoint=midpoint, rules=rules, inclusive=inclusive)
    out = np.zeros(np.asarray(labels).shape, dtype=bool)
    for mask in masks.values():
        out |= mask
    return out


def filter_counts(masks: Mapping[str, np.ndarray]) -> dict[str, int]:
    """How many rows each rule removed (a row hit by two conditions of one rule counts once)."""
    return {name: int(mask.sum()) for name, mask in masks.items()}
