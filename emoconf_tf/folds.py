"""Train/validation/test folds: from the table's `split` column, or leave-one-group-out by `group`."""

from __future__ import annotations

import dataclasses

import numpy as np

from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError

CV_MODES = ("split", "group")


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold: int row indices `[n]` into the corpus for each part."""

    index: int
    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_folds(corpus: Corpus, cv: str = "split") -> list[Fold]:
    """The protocol's folds.

    Args:
        corpus: the corpus.
        cv: `"split"` — one fold from the `split` column (train / validation / test);
            `"group"` — one fold per group k: test = group k, validation = the next group
            (cyclically, in sorted order), training = the rest (IEMOCAP: 3/1/1 sessions, 5 folds).

    Raises:
        EmoconfError: when a part is empty or the table lacks what the mode needs.
    """
    if cv not in CV_MODES:
        raise EmoconfError(f"--cv {cv!r}: choose one of {', '.join(CV_MODES)}")
    if cv == "split":
        if not any(corpus.split):
            raise EmoconfError(
                f"{corpus.name}: the table has no 'split' column; add one (train/validation/test) "
                "or use --cv group with a 'group' column"
            )
        parts = {s: np.flatnonzero(corpus.split == s) for s in ("train", "validation", "test")}
        for part, rows in parts.items():
            if rows.size == 0:
                raise EmoconfError(
                    f"{corpus.name}: the split column has no '{part}' rows; the protocol needs all three"
                )
        return [Fold(0, "split", parts["train"], parts["validation"], parts["test"])]

    if not any(corpus.group):
        raise EmoconfError(f"{corpus.name}: --cv group needs a non-empty 'group' column (e.g. the recording session)")
    groups = sorted(set(corpus.group))
    if len(groups) < 3:
        raise EmoconfError(
            f"{corpus.name}: --cv group needs at least 3 groups (test, validation, training); found {len(groups)}: "
            f"{', '.join(map(str, groups))}"
        )
    folds = []
    for k, test_group in enumerate(groups):
        validation_group = groups[(k + 1) % len(groups)]
        test = np.flatnonzero(corpus.group == test_group)
        validation = np.flatnonzero(corpus.group == validation_group)
        train = np.flatnonzero((corpus.group != test_group) & (corpus.group != validation_group))
        folds.append(Fold(k, f"test={test_group} validation={validation_group}", train, validation, test))
    return folds
