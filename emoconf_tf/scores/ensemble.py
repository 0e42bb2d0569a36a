"""Deep-ensemble probabilities: the mean softmax of the protocol's classifier and `members - 1` more trained alike.

Reference: Lakshminarayanan, Pritzel & Blundell, "Simple and scalable predictive uncertainty estimation using
deep ensembles", NeurIPS 2017.

The protocol's classifier still makes every prediction (the paper's predictions, identical with or without an
ensemble); the extra members only estimate better how likely each of its predictions is to be right. Each member
is `fit_classifier` on the same training rows, early-stopped on the same validation rows, from its own seed
(`member_seeds`), so a unit stays deterministic. The cost is `members - 1` more classifier trainings per unit.
This module loads TensorFlow only when it trains, so the score registry imports it without TensorFlow.
"""

from __future__ import annotations

import numpy as np

from emoconf_tf.settings import DEFAULT_MEMBERS, TrainingConfig

MEMBER_SEED_STRIDE = 1000
"""Member `j` (1, 2, ...) of a unit with seed `s` trains from seed `s + 1000 j`: other seeds than the protocol's own."""


def member_seeds(seed: int, members: int) -> tuple[int, ...]:
    """Seeds of the extra members (the protocol's classifier, seed `seed`, is member 0).

    >>> member_seeds(2, 3)
    (1002, 2002)
    """
    if members < 1:
        raise ValueError(f"an ensemble needs at least 1 member, got {members}")
    return tuple(seed + MEMBER_SEED_STRIDE * j for j in range(1, members))


def mean_softmax(softmaxes) -> np.ndarray:
    """The ensemble's probabilities: the float64 sum of the members' softmaxes (float `[n, K]` each, the protocol's
    classifier first), added in order, divided by their number, as float32 `[n, K]`. The SavedModel computes the
    same sum in the same order (`serving/served_score.py`).

    >>> mean_softmax([np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])]).tolist()
    [[0.75, 0.25]]
    """
    softmaxes = list(softmaxes)
    total = np.asarray(softmaxes[0], dtype=np.float64).copy()
    for softmax in softmaxes[1:]:
        total += np.asarray(softmax, dtype=np.float64)
    return (total / len(softmaxes)).astype(np.float32)


def ensemble_probabilities(
    probabilities: dict[str, np.ndarray],
    features: np.ndarray,
    labels: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    num_classes: int,
    config: TrainingConfig | None = None,
    *,
    seed: int,
    members: int = DEFAULT_MEMBERS,
    parts: tuple[str, ...] = ("validation", "test"),
    trained: list | None = None,
) -> dict[str, np.ndarray]:
    """The ensemble's mean softmax on each of `parts`.

    Args:
        probabilities: part -> float `[n, K]`, the protocol's classifier's softmax (member 0).
        features: float32 `[rows, D]`, the feature matrix the row indices point into.
        labels: int labels of `"train"` and `"validation"` (`[n]`, one per row of `rows[part]`).
        rows: part -> int `[n]` row indices (`"train"`, `"validation"` and each of `parts`).
        num_classes: K.
        config: the `TrainingConfig` of every member (the protocol's; default `TrainingConfig()`).
        seed: the unit's seed; the members' are `member_seeds(seed, members)`.
        members: classifiers in the ensemble; 1 = the classifier alone (its probabilities returned as they are).
        parts: the parts to return.
        trained: optional list the extra members (Keras classifiers, in seed order) are appended to, for a caller
            that keeps them (`emoconf train` saves them for the export).

    Returns:
        part -> float32 `[n, K]`, the mean of the `members` softmax outputs.
    """
    from emoconf_tf.training import embed, fit_classifier  # TensorFlow only when training

    config = TrainingConfig() if config is None else config
    seeds = member_seeds(seed, members)
    outputs = {part: [probabilities[part]] for part in parts}
    for member_seed in seeds:
        member, _ = fit_classifier(
            features, labels["train"], features, labels["validation"], num_classes, config, seed=member_seed,
            train_rows=rows["train"], validation_rows=rows["validation"],
        )
        for part in parts:
            outputs[part].append(embed(member, features, rows=rows[part]))
        if trained is not None:
            trained.append(member)
    return {part: mean_softmax(softmaxes) for part, softmaxes in outputs.items()}
