"""Train/validation/test folds: from the table's `split` column, or leave-one-group-out by `group`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.settings import CV_MODES

if TYPE_CHECKING:
    import pandas as pd



@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold: int row indices `[n]` into the corpus for each part."""

    index: int
    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_folds(corpus: Corpus, cv: str = "split", folds: int | None = None) -> list[Fold]:
    """The protocol's folds.

    Args:
        corpus: the corpus.
        cv: `"split"` — one fold from the `split` column (train / validation / test);
            `"group"` — one fold per group k: test = group k, validation = the next group
            (cyclically, in sorted order), training = the rest (IEMOCAP: 3/1/1 sessions, 5 folds). The groups are
            the `group` column, or, for a corpus without one (most have no sessions), the `speaker` column
            (leave-speakers-out).
        folds: with `cv="group"`, gather the groups into this many folds first (`fold_groups`: deterministic, near
            equal in rows), so that e.g. ten speakers make 5 folds of two; default None, one fold per group.

    Raises:
        EmoconfError: when a part is empty or the table lacks what the mode needs.
    """
    if cv not in CV_MODES:
        raise EmoconfError(f"cv {cv!r}: choose one of {', '.join(CV_MODES)}", argument="cv")
    if folds is not None and cv != "group":
        raise EmoconfError(f"folds {folds}: folds are made from groups or speakers; use it with cv='group'",
                           argument="folds")
    if cv == "split":
        if not any(corpus.split):
            raise EmoconfError(
                f"{corpus.name}: the table has no 'split' column; add one (train/validation/test) "
                "or use cv='group' with a 'group' (or 'speaker') column"
            )
        parts = {s: np.flatnonzero(corpus.split == s) for s in ("train", "validation", "test")}
        for part, rows in parts.items():
            if rows.size == 0:
                raise EmoconfError(
                    f"{corpus.name}: the split column has no '{part}' rows; the protocol needs all three"
                )
        return [Fold(0, "split", parts["train"], parts["validation"], parts["test"])]

    column, values = group_column(corpus)
    if folds is not None:
        assignment = fold_groups(values, folds)
        names = {k: "+".join(g for g, f in assignment.items() if f == k) for k in range(folds)}
        values = np.array([names[assignment[v]] for v in values], dtype=object)
    groups = sorted(set(values))
    if len(groups) < 3:
        raise EmoconfError(
            f"{corpus.name}: cv='group' needs at least 3 {column}s or folds (test, validation, training); found "
            f"{len(groups)}: {', '.join(map(str, groups))}"
        )
    out = []
    for k, test_group in enumerate(groups if folds is None else [names[k] for k in range(folds)]):
        validation_group = (groups[(k + 1) % len(groups)] if folds is None else names[(k + 1) % folds])
        test = np.flatnonzero(values == test_group)
        validation = np.flatnonzero(values == validation_group)
        train = np.flatnonzero((values != test_group) & (values != validation_group))
        out.append(Fold(k, f"test={test_group} validation={validation_group}", train, validation, test))
    return out


def group_column(corpus: Corpus) -> tuple[str, np.ndarray]:
    """`("group", corpus.group)`, or `("speaker", corpus.speaker)` when the corpus has no groups; object `[N]`.

    Raises:
        EmoconfError: the corpus has neither.
    """
    if any(corpus.group):
        return "group", np.asarray(corpus.group, dtype=object)
    speaker = getattr(corpus, "speaker", None)
    if speaker is not None and any(speaker):
        return "speaker", np.asarray(speaker, dtype=object)
    raise EmoconfError(f"{corpus.name}: cv='group' needs a non-empty 'group' column (e.g. the recording session) or, "
                       "for leave-speakers-out folds, a 'speaker' column")


def check_fold_count(folds: int) -> int:
    """`folds` if that many leave-one-group-out folds can be made, 3 or more (a test, a validation and at least one
    training fold); else `EmoconfError` naming it (`argument="folds"`).

    Example:
    >>> check_fold_count(5)
    5
    """
    if folds < 3:
        raise EmoconfError(f"folds {folds}: need at least 3 (a test, a validation and a training fold)",
                           argument="folds")
    return folds


def cv_for_dataset(corpus: Corpus, cv: str, dataset: str) -> tuple[str, str]:
    """The fold mode a dataset prepared with `emoconf build` runs with, and one line saying why when it is not `cv`
    ("" when it is).

    A dataset split by recording session has no train/validation/test split to use (IEMOCAP: its TFDS splits are
    its sessions, which `tfds_builders.build.load_corpus` puts in `corpus.group`, leaving `corpus.split` empty), so
    `cv="split"` becomes `"group"`: leave one session out.

    Args:
        corpus: the dataset's corpus.
        cv: the mode asked for, one of `CV_MODES`.
        dataset: its name for the line, e.g. `"iemocap/egemaps_v02"`.
    """
    if cv == "split" and not (corpus.split != "").all():
        return "group", (f"folds: leave one session out ({', '.join(sorted(set(corpus.group)))}); {dataset} has no "
                         "train/validation/test split")
    return cv, ""


def fold_groups(groups: np.ndarray, folds: int) -> dict[str, int]:
    """Gathers groups (speakers, sessions) into `folds` folds of near-equal size, deterministically.

    The groups are taken largest first (ties by name) and each goes to the fold with the fewest rows so far (ties:
    the lowest fold index), so a group is never split and the assignment depends on the counts only.

    Args:
        groups: the group of each row, `[N]`.
        folds: K >= 3 (test, validation and at least one training fold).

    Returns:
        group -> fold index in [0, K).

    Example:
    >>> fold_groups(np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2 + ["e"]), 3)
    {'a': 0, 'b': 1, 'c': 2, 'd': 2, 'e': 1}
    """
    check_fold_count(folds)
    names, counts = np.unique(np.asarray(groups, dtype=str), return_counts=True)
    if len(names) < folds:
        raise EmoconfError(f"folds {folds}: only {len(names)} groups/speakers to gather into folds", argument="folds")
    size = [0] * folds
    assignment = {}
    for index in sorted(range(len(names)), key=lambda i: (-counts[i], names[i])):
        fold = min(range(folds), key=lambda k: (size[k], k))
        assignment[str(names[index])] = fold
        size[fold] += int(counts[index])
    return dict(sorted(assignment.items()))


def fold_assignment(corpus: Corpus, folds: list[Fold]) -> pd.DataFrame:
    """One row per utterance and fold: `id`, `fold`, `part` (train / validation / test / unused), for the output
    (`folds.csv`), so the assignment can be checked and reused."""
    import pandas as pd

    frames = []
    for fold in folds:
        part = np.full(len(corpus), "unused", dtype=object)
        for name in ("train", "validation", "test"):
            part[getattr(fold, name)] = name
        frames.append(pd.DataFrame({"id": corpus.ids, "fold": fold.index, "fold_name": fold.name, "part": part}))
    return pd.concat(frames, ignore_index=True)
