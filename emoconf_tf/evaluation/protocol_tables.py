"""The protocol's tables as the report reads them: their columns, the check every reader runs
(`checked_table`), and the views of one threshold source (`threshold_source_view`) and one rejection mode
(`rejection_view`). `evaluation.tables` computes the paper's tables from these views.

The tables are the protocol's:

- `results`: one row per fold, seed, training (`"raw"` | `"filtered"`), method, rejection mode, threshold
  source and rejection level, with columns `fold, seed, training, method, rejection_mode, threshold_source,
  rejection, threshold, coverage, f1, uar, n_test, removed, removed_correct`. `rejection` is a fraction (0.2
  is the paper's t20%); `rejection_mode` is `"global"` (the paper's: one threshold, `threshold`) or
  `"per_class"` (one threshold per predicted class, in `per_class`; `threshold` is NaN). Every method has
  rows in every mode the protocol ran, except `recommended`: one set of rows per run, in the mode validation
  chose. `threshold_source` (`thresholds.THRESHOLD_SOURCES`) says whose confidences set the thresholds:
  `"validation"` (the paper's), `"batch"` (the test fold's own) or `"online"` (adaptive, `threshold` NaN).
- `per_class`: `fold, seed, training, method, rejection_mode, threshold_source, rejection, class, threshold,
  precision, recall, f1` (`threshold` is that class's; in global mode the same for every class).
- `runs`: `fold, seed, training, n_train, n_validation, n_test, n_filtered_out, classifier_epochs,
  confidence_epochs`.
- `selective` (`fold, seed, training, method, aurc, eaurc, auroc, fpr95, aurc_balanced`, one row per
  method: the ranking of the confidence, independent of the mode, then `coverage_error_<source>_<mode>`,
  `metrics.coverage_error` of the method's rows in that source and mode, NaN where not computed) and
  `choices` (`fold, seed, training, method, choice, rejection_mode, criterion, validation_value`), for the
  ranking of every method.

The report summarises one rejection mode at a time (`rejection_view`): by default the paper's
view, `"global"`, which also holds `recommended`'s rows whatever mode it chose. It reads the rows with
validation thresholds only (`threshold_source_view`), unless told otherwise; a table without a
`threshold_source` column (output format 2, or built by hand) holds validation rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from emoconf_tf.errors import EmoconfError
from emoconf_tf.thresholds import (
    REJECTION_MODES,
    THRESHOLD_SOURCES,
    check_rejection_mode,
    check_threshold_source,
)

RESULTS_COLUMNS = (
    "fold", "seed", "training", "method", "rejection_mode", "threshold_source", "rejection", "threshold",
    "coverage", "f1", "uar", "n_test", "removed", "removed_correct",
)
PER_CLASS_COLUMNS = (
    "fold", "seed", "training", "method", "rejection_mode", "threshold_source", "rejection", "class", "threshold",
    "precision", "recall", "f1",
)
COVERAGE_ERROR_COLUMNS = tuple(f"coverage_error_{source}_{mode}" for source in THRESHOLD_SOURCES
                               for mode in REJECTION_MODES)
SELECTIVE_COLUMNS = (
    "fold", "seed", "training", "method", "aurc", "eaurc", "auroc", "fpr95", "aurc_balanced", *COVERAGE_ERROR_COLUMNS,
)
# Columns of output format 3 that a table may lack (format 2, or built by hand): it then holds validation rows only.
# Columns a table written before they existed lacks (read as validation rows / not measured / nothing masked).
_OPTIONAL_COLUMNS = ("threshold_source", *COVERAGE_ERROR_COLUMNS, "n_masked_features")
CHOICE_COLUMNS = ("fold", "seed", "training", "method", "choice", "rejection_mode", "criterion", "validation_value")
RUNS_COLUMNS = (
    "fold", "seed", "training", "n_train", "n_validation", "n_test", "n_filtered_out", "n_masked_features",
    "classifier_epochs", "confidence_epochs",
)
# `recommended` is reported once per run, in the rejection mode validation chose; every other method in every mode.
CHOSEN_MODE_METHODS = ("recommended",)
VALIDATION_CHOICE = "validation's choice"  # the ranking's rejection mode of `recommended`
REJECTION_DECIMALS = 6
"""Decimals of the rejection keys: 0.1 + 0.1 and 0.2 are one level."""


def threshold_source_view(table: pd.DataFrame, threshold_source: str = "validation", *,
                          name: str = "results") -> pd.DataFrame:
    """The rows whose thresholds came from `threshold_source` (`thresholds.THRESHOLD_SOURCES`), columns unchanged.

    Every figure of the paper's view is computed from the `"validation"` rows (the default); a table without a
    `threshold_source` column (output format 2, or built by hand) holds validation rows only.

    Example:
    >>> rows = pd.DataFrame({"threshold_source": ["validation", "batch"], "coverage": [0.7, 0.8]})
    >>> threshold_source_view(rows)["coverage"].tolist()
    [0.7]
    """
    check_threshold_source(threshold_source)
    if "threshold_source" not in table.columns:
        return table if threshold_source == "validation" else table.iloc[:0]
    sources = table["threshold_source"].astype(str)
    for source in sorted(set(sources)):
        check_threshold_source(source, f"{name}: threshold_source")
    return table[sources == threshold_source]


def checked_table(df: pd.DataFrame, required: Sequence[str], name: str, *,
                  threshold_source: str | None = "validation") -> pd.DataFrame:
    """The protocol's table `df`, checked and normalised, as every function of the report reads it.

    Args:
        df: one of the protocol's tables (see the module docstring).
        required: its columns (`RESULTS_COLUMNS`, ...); `threshold_source`, the `coverage_error_*` columns and
            `n_masked_features` may be absent (tables written before they existed).
        name: the table's name, for errors (`"results"`, `"per_class"`, ...).
        threshold_source: keep only the rows of these thresholds (`threshold_source_view`; default
            `"validation"`), or None to keep them all.

    Returns:
        A copy of the rows kept, columns unchanged, with `rejection` (a fraction in [0, 1)) rounded to
        `REJECTION_DECIMALS` decimals (one key per level) and `training, method, rejection_mode, threshold_source,
        class` as strings.

    Raises:
        EmoconfError: `df` is not a DataFrame, lacks a required column, has no rows (of `threshold_source`), or a
            rejection outside [0, 1).
    """
    if not isinstance(df, pd.DataFrame):
        raise EmoconfError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns and c not in _OPTIONAL_COLUMNS]
    if missing:
        raise EmoconfError(
            f"{name} is missing column(s) {', '.join(missing)}; expected columns: {', '.join(required)}"
        )
    if df.empty:
        raise EmoconfError(f"{name} has no rows; run the protocol first")
    if threshold_source is not None:
        df = threshold_source_view(df, threshold_source, name=name)
        if df.empty:
            raise EmoconfError(f"{name} has no rows with {threshold_source} thresholds (threshold_source column)")
    df = df.copy()
    if "rejection" in df.columns:
        rejection = pd.to_numeric(df["rejection"], errors="coerce")
        bad = rejection.isna() | (rejection < 0) | (rejection >= 1)
        if bad.any():
            raise EmoconfError(
                f"{name}: rejection must be a fraction in [0, 1); got {df.loc[bad, 'rejection'].iloc[0]!r} "
                f"in row {df.index[bad][0]!r}"
            )
        df["rejection"] = rejection.round(REJECTION_DECIMALS)
    for column in ("training", "method", "rejection_mode", "threshold_source", "class"):
        if column in df.columns:
            df[column] = df[column].astype(str)
    return df


def checked_level(df: pd.DataFrame, rejection: float, name: str) -> float:
    """The key of the rejection level `rejection` (a fraction) in `df` (a `checked_table`): `rejection` rounded to
    `REJECTION_DECIMALS` decimals. Raises `EmoconfError` when `df` has no rows at that level, or none at 0 (t0, the
    reference of every gain)."""
    level = round(float(rejection), REJECTION_DECIMALS)
    levels = sorted(df["rejection"].unique())
    if level not in levels:
        raise EmoconfError(
            f"{name} has no rows at rejection {rejection:g}; available levels: {', '.join(f'{r:g}' for r in levels)}"
        )
    if 0.0 not in levels:
        raise EmoconfError(f"{name} has no rows at rejection 0 (t0, no rejection), needed as the reference")
    return level


def rejection_view(table: pd.DataFrame, rejection_mode: str = "global", *, recommended: bool | None = None,
                   name: str = "results", threshold_source: str = "validation") -> pd.DataFrame:
    """The rows of one rejection mode: one row per run, training, method and rejection (and class).

    Args:
        table: the protocol's `results` or `per_class` table (with a `rejection_mode` column).
        rejection_mode: `"global"` (default, the paper's: one threshold from all validation confidences) or
            `"per_class"` (one threshold per predicted class).
        recommended: also keep `recommended`'s rows, in whatever mode validation chose for each run; default
            True for `"global"` (the paper's view shows it beside the others) and False for `"per_class"`
            (its per-class rows exist only for the runs where validation chose that mode, so their means would
            run over other runs than the other methods').
        name: the table's name, for errors.
        threshold_source: whose thresholds (`threshold_source_view`): `"validation"` (default, the paper's),
            `"batch"` or `"online"`.

    Returns:
        The selected rows (a copy), columns unchanged.

    Example:
    >>> rows = pd.DataFrame({"method": ["msp", "msp", "recommended"], "rejection_mode": ["global", "per_class",
    ...                      "per_class"], "rejection": [0.2, 0.2, 0.2]})
    >>> rejection_view(rows, "global")["rejection_mode"].tolist()
    ['global', 'per_class']
    """
    check_rejection_mode(rejection_mode)
    missing = [c for c in ("method", "rejection_mode") if c not in table.columns]
    if missing:
        raise EmoconfError(f"{name} is missing column(s) {', '.join(missing)}; the output format has a rejection "
                           "mode per row since emoconf-tf output format 2: rerun the protocol")
    table = threshold_source_view(table, threshold_source, name=name)
    modes = table["rejection_mode"].astype(str)
    for mode in sorted(set(modes)):
        check_rejection_mode(mode, f"{name}: rejection_mode")
    chosen = table["method"].astype(str).isin(CHOSEN_MODE_METHODS)
    if recommended is None:
        recommended = rejection_mode == "global"
    keep = (modes == rejection_mode) & ~chosen
    if recommended:
        keep |= chosen
    return _one_mode(table[keep].copy(), name)


def _one_mode(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """`df`, refused when it holds more than one rejection mode of a method in one run (means would mix them)."""
    keys = [c for c in ("fold", "seed", "training", "method", "rejection", "class") if c in df.columns]
    repeated = df.duplicated(keys, keep=False)
    if repeated.any():
        first = df[repeated].iloc[0]
        modes = sorted(set(df.loc[repeated, "rejection_mode"].astype(str))) if "rejection_mode" in df else []
        raise EmoconfError(
            f"{name} has more than one row for {', '.join(f'{k}={first[k]}' for k in keys)}"
            + (f" (rejection modes {', '.join(modes)})" if modes else "")
            + "; select one mode with report.rejection_view(table, mode)"
        )
    return df


def one_mode_view(df: pd.DataFrame, rejection_mode: str | None, name: str,
                  threshold_source: str = "validation") -> pd.DataFrame:
    """`rejection_view(df, rejection_mode)`, or `df` as it is (checked for one mode per method) when None; refused
    (`EmoconfError`) when no row is left."""
    view = _one_mode(df, name) if rejection_mode is None else rejection_view(
        df, rejection_mode, name=name, threshold_source=threshold_source)
    if view.empty:
        raise EmoconfError(f"{name} has no rows in rejection mode {rejection_mode}; modes present: "
                           f"{', '.join(sorted(set(df['rejection_mode'])))}")
    return view
