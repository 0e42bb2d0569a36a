"""The paper's tables and curves (Section 5, Fig. 2, Table 2) computed from the protocol's result tables.

Computing is separate from plotting and writing: `rejection_view`, `rejection_curves`, `fig2_table`,
`relative_gains`, `table2`, `removed_summary` and `filter_counts_table` are pure (DataFrames in, DataFrames
out);
`plot_curves` draws `rejection_curves`, and `write_report` writes `curves.png`,
`curves_per_class.png` (when there are per-class rows) and `report.md` atomically.

The input tables are the protocol's:

- `results`: one row per fold, seed, training (`"raw"` | `"filtered"`), method, rejection mode and
  rejection level, with columns `fold, seed, training, method, rejection_mode, rejection, threshold,
  coverage, f1, uar, n_test, removed, removed_correct`. `rejection` is a fraction (0.2 is the paper's
  t20%); `rejection_mode` is `"global"` (the paper's: one threshold, `threshold`) or `"per_class"` (one
  threshold per predicted class, in `per_class`; `threshold` is NaN). Every method has rows in every
  mode the protocol ran, except `recommended`: one set of rows per run, in the mode validation chose.
- `per_class`: `fold, seed, training, method, rejection_mode, rejection, class, threshold, precision,
  recall, f1` (`threshold` is that class's; in global mode the same for every class).
- `runs`: `fold, seed, training, n_train, n_validation, n_test, n_filtered_out, classifier_epochs,
  confidence_epochs`.
- `selective` (`fold, seed, training, method, aurc, eaurc, auroc, fpr95, aurc_balanced`, one row per
  method: the ranking of the confidence, independent of the mode) and `choices` (`fold, seed, training,
  method, choice, rejection_mode, criterion, validation_value`), for the ranking of every method.

The pure functions summarise one rejection mode at a time (`rejection_view`): by default the paper's
view, `"global"`, which also holds `recommended`'s rows whatever mode it chose.

Means and standard deviations run over the folds x seeds of one (method, training, rejection);
standard deviations are sample ones (`ddof=1`), undefined (NaN) for a single run. Undefined
per-class values (NaN, e.g. precision of a class that is never predicted) are skipped in means.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from emoconf_tf.atomic import atomic_path, write_text
from emoconf_tf.confidence_methods import METHODS, method_names
from emoconf_tf.errors import EmoconfError
from emoconf_tf.thresholds import REJECTION_MODES, check_rejection_mode

RESULTS_COLUMNS = (
    "fold", "seed", "training", "method", "rejection_mode", "rejection", "threshold", "coverage",
    "f1", "uar", "n_test", "removed", "removed_correct",
)
PER_CLASS_COLUMNS = (
    "fold", "seed", "training", "method", "rejection_mode", "rejection", "class", "threshold",
    "precision", "recall", "f1",
)
SELECTIVE_COLUMNS = ("fold", "seed", "training", "method", "aurc", "eaurc", "auroc", "fpr95", "aurc_balanced")
CHOICE_COLUMNS = ("fold", "seed", "training", "method", "choice", "rejection_mode", "criterion", "validation_value")
RUNS_COLUMNS = (
    "fold", "seed", "training", "n_train", "n_validation", "n_test", "n_filtered_out",
    "classifier_epochs", "confidence_epochs",
)

_REFERENCE_NAMES = {"no_rejection": "No rejection"}
# `recommended` is reported once per run, in the rejection mode validation chose; every other method in every mode.
CHOSEN_MODE_METHODS = ("recommended",)
MODE_NAMES = {"global": "global threshold", "per_class": "per-class thresholds"}
VALIDATION_CHOICE = "validation's choice"  # the ranking's rejection mode of `recommended`
# Each registered method has its colour (the paper's Fig. 2: EmoConfidNet red, the baseline green); a method column
# that is not registered in this process takes the rest.
_OTHER_COLORS = ("tab:blue", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
TRAINING_LINESTYLES = {"raw": "-", "filtered": "--"}
# Fig. 2 legend suffixes: '-raw' for the raw training set, '-pre' for the preprocessed (filtered) one.
TRAINING_SUFFIXES = {"raw": "raw", "filtered": "pre"}

_TRAINING_ORDER = ("raw", "filtered")
_METRIC_NAMES = {"f1": "F1", "uar": "UAR", "coverage": "coverage", "precision": "Precision", "recall": "Recall"}
_RUN_KEYS = ["fold", "seed"]
_REJECTION_DECIMALS = 6  # 0.1 + 0.1 and 0.2 are one level


# ---------------------------------------------------------------------------------------------
# Names and labels
# ---------------------------------------------------------------------------------------------


def _method_color(method: str) -> str | None:
    return METHODS[method].color if method in METHODS else None


def method_display_name(method: str) -> str:
    """`"emoconfidnet"` -> `"EmoConfidNet"`, `"top2_margin"` -> `"Baseline (top-2 margin)"`; others as given."""
    if method in METHODS:
        return METHODS[method].display_name
    return _REFERENCE_NAMES.get(method, method)


def rejection_label(rejection: float) -> str:
    """The paper's threshold name for a rejection fraction: 0.2 -> `"t20"`, 0.125 -> `"t12.5"`."""
    percent = round(float(rejection) * 100, _REJECTION_DECIMALS - 2)
    return f"t{percent:g}"


def mode_display_name(mode: str) -> str:
    """`"global"` -> `"global threshold"`, `"per_class"` -> `"per-class thresholds"`; others as given."""
    return MODE_NAMES.get(mode, mode)


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """Known values in `order` first, then the others sorted."""
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))


def _methods(df: pd.DataFrame) -> list[str]:
    return _ordered(df["method"].unique(), method_names())


def _trainings(df: pd.DataFrame) -> list[str]:
    return _ordered(df["training"].unique(), _TRAINING_ORDER)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _checked(df: pd.DataFrame, required: Sequence[str], name: str) -> pd.DataFrame:
    """A copy of `df` with the required columns present and `rejection` rounded to one key per level."""
    if not isinstance(df, pd.DataFrame):
        raise EmoconfError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise EmoconfError(
            f"{name} is missing column(s) {', '.join(missing)}; expected columns: {', '.join(required)}"
        )
    if df.empty:
        raise EmoconfError(f"{name} has no rows; run the protocol first")
    df = df.copy()
    if "rejection" in df.columns:
        rejection = pd.to_numeric(df["rejection"], errors="coerce")
        bad = rejection.isna() | (rejection < 0) | (rejection >= 1)
        if bad.any():
            raise EmoconfError(
                f"{name}: rejection must be a fraction in [0, 1); got {df.loc[bad, 'rejection'].iloc[0]!r} "
                f"in row {df.index[bad][0]!r}"
            )
        df["rejection"] = rejection.round(_REJECTION_DECIMALS)
    for column in ("training", "method", "rejection_mode", "class"):
        if column in df.columns:
            df[column] = df[column].astype(str)
    return df


def _check_level(df: pd.DataFrame, rejection: float, name: str) -> float:
    level = round(float(rejection), _REJECTION_DECIMALS)
    levels = sorted(df["rejection"].unique())
    if level not in levels:
        raise EmoconfError(
            f"{name} has no rows at rejection {rejection:g}; available levels: {', '.join(f'{r:g}' for r in levels)}"
        )
    if 0.0 not in levels:
        raise EmoconfError(f"{name} has no rows at rejection 0 (t0, no rejection), needed as the reference")
    return level


def rejection_view(table: pd.DataFrame, rejection_mode: str = "global", *, recommended: bool | None = None,
                   name: str = "results") -> pd.DataFrame:
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


def _view(df: pd.DataFrame, rejection_mode: str | None, name: str) -> pd.DataFrame:
    """`rejection_view(df, rejection_mode)`, or `df` as it is (checked for one mode per method) when None."""
    view = _one_mode(df, name) if rejection_mode is None else rejection_view(df, rejection_mode, name=name)
    if view.empty:
        raise EmoconfError(f"{name} has no rows in rejection mode {rejection_mode}; modes present: "
                           f"{', '.join(sorted(set(df['rejection_mode'])))}")
    return view


# ---------------------------------------------------------------------------------------------
# Computing
# ---------------------------------------------------------------------------------------------


def rejection_curves(
    results: pd.DataFrame, *, metrics: Sequence[str] = ("f1", "uar", "coverage"), rejection_mode: str | None = "global",
) -> pd.DataFrame:
    """Mean and standard deviation over folds x seeds of each metric, per method, training and rejection.

    The data behind Fig. 2 (and `fig2_table`); `plot_curves` draws it.

    Args:
        results: the protocol's results table (see the module docstring).
        metrics: columns of `results` to summarise, default `("f1", "uar", "coverage")`.
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when `results` already holds one mode per method.

    Returns:
        DataFrame with one row per (method, training, rejection), ordered EmoConfidNet, baseline,
        others; raw before filtered; rejection ascending. Columns `method, training, rejection,
        n_runs` and `{metric}_mean`, `{metric}_std` (std NaN when `n_runs == 1`).
    """
    results = _view(_checked(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    unknown = [m for m in metrics if m not in results.columns]
    if unknown:
        raise EmoconfError(f"results has no metric column(s) {', '.join(unknown)}")
    keys = ["method", "training", "rejection"]
    grouped = results.groupby(keys, sort=False)
    out = grouped[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "n_runs", grouped.size())
    out = out.reset_index()
    method_rank = {m: i for i, m in enumerate(_methods(results))}
    training_rank = {t: i for i, t in enumerate(_trainings(results))}
    out = out.sort_values(
        keys, key=lambda col: col.map(method_rank) if col.name == "method"
        else col.map(training_rank) if col.name == "training" else col
    )
    return out.reset_index(drop=True)


def _wide(curves: pd.DataFrame, metrics: Sequence[str], column_name: Callable[[str, str, str], str]) -> pd.DataFrame:
    """Pivots `rejection_curves` means: rows t0, t10, ...; one column per metric x method x training."""
    columns = {}
    for metric in metrics:
        for (method, training), group in curves.groupby(["method", "training"], sort=False):
            columns[column_name(metric, method, training)] = group.set_index("rejection")[f"{metric}_mean"]
    table = pd.DataFrame(columns).sort_index()
    table.index = pd.Index([rejection_label(r) for r in table.index], name="threshold")
    return table


def _fig2_column(metric: str, method: str, training: str) -> str:
    return f"{metric} {method} ({training})"


def fig2_table(
    results: pd.DataFrame, *, metrics: Sequence[str] = ("f1", "uar"), rejection_mode: str | None = "global",
) -> pd.DataFrame:
    """F1 and UAR against the rejection threshold, mean over folds and seeds: the numbers of the paper's Fig. 2
    (the paper's Table 1 is the list of conflict rules, `filtering.PAPER_RULES`).

    Args:
        results: the protocol's results table.
        metrics: metric columns to tabulate, default `("f1", "uar")`; `("coverage",)` gives coverage.
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when `results` already holds one mode per method.

    Returns:
        DataFrame indexed by threshold `"t0", "t10", ...` (name `threshold`), one column per
        metric x method x training named `"{metric} {method} ({training})"`, e.g.
        `"f1 emoconfidnet (filtered)"`; metrics outermost, then methods, then raw before filtered.
    """
    curves = rejection_curves(results, metrics=metrics, rejection_mode=rejection_mode)
    return _wide(curves, metrics, _fig2_column)


def table1(results: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Deprecated in 0.1.1 and removed in 0.2.0: use `fig2_table` (the table is the paper's Fig. 2, and the
    paper's Table 1 is the list of conflict rules)."""
    import warnings

    warnings.warn("report.table1 is deprecated since emoconf-tf 0.1.1 and will be removed in 0.2.0; use "
                  "report.fig2_table (the paper's Fig. 2)", DeprecationWarning, stacklevel=2)
    return fig2_table(results, **kwargs)


def filter_counts_table(filter_counts: pd.DataFrame | Mapping[str, int]) -> pd.DataFrame:
    """Rows removed by each conflict rule, one column per fold.

    Args:
        filter_counts: the protocol's `ProtocolOutputs.filter_counts` (columns `fold, seed, rule, removed`: one
            seed's counts per fold), or `{rule: rows removed}` of one training set (e.g. a run's `run.json`).

    Returns:
        DataFrame indexed by rule (in the order given, name `rule`), one int column per fold named `fold F`
        (`rows removed` for a mapping), and a last row `all rules` with each column's sum.

    Example:
    >>> frame = pd.DataFrame({"fold": [0, 0, 1, 1], "seed": 0, "rule": ["happy", "sad"] * 2, "removed": [3, 1, 2, 0]})
    >>> filter_counts_table(frame).to_dict()
    {'fold 0': {'happy': 3, 'sad': 1, 'all rules': 4}, 'fold 1': {'happy': 2, 'sad': 0, 'all rules': 2}}
    """
    if isinstance(filter_counts, pd.DataFrame):
        missing = [c for c in ("fold", "rule", "removed") if c not in filter_counts.columns]
        if missing:
            raise EmoconfError(f"filter_counts: missing column(s) {', '.join(missing)}; expected fold, seed, rule, "
                               "removed (ProtocolOutputs.filter_counts)")
        rules = list(dict.fromkeys(filter_counts["rule"]))
        table = filter_counts.pivot_table(index="rule", columns="fold", values="removed", aggfunc="sum")
        table = table.reindex(rules).fillna(0).astype(int)
        table.columns = [f"fold {fold}" for fold in table.columns]
    else:
        table = pd.DataFrame({"rows removed": [int(v) for v in filter_counts.values()]},
                             index=pd.Index(list(filter_counts), name="rule"))
    table.index.name = "rule"
    table.loc["all rules"] = table.sum(axis=0)
    return table


def _gain_percent(after, before):
    """Relative gain in % of `after` over `before` (scalars or aligned Series); NaN where `before` is 0."""
    if isinstance(before, pd.Series):
        return (after - before) / before.where(before != 0) * 100.0
    return (after - before) / before * 100.0 if before != 0 else math.nan


def relative_gains(
    results: pd.DataFrame, rejection: float = 0.2, *, rejection_mode: str | None = "global",
) -> pd.DataFrame:
    """F1 and UAR at t0 and at `rejection`, and the relative gains the paper quotes (Section 5.2).

    `gain = (metric at t20 - metric at t0) / metric at t0 * 100`, computed on the means over
    folds x seeds. At t0 every method has the same numbers (nothing is removed); the t0 reference
    of one run is the mean over the methods' t0 rows.

    Args:
        results: the protocol's results table.
        rejection: fraction, default 0.2 (t20).
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when `results` already holds one mode per method.

    Returns:
        DataFrame with one row per (method, training) and columns `method, training, n_runs,
        f1_t0, f1_t20, f1_gain_pct, uar_t0, uar_t20, uar_gain_pct, coverage_t20` (the suffix
        follows `rejection_label(rejection)`). When some row has more than one run, also
        `{column}_std` for each of those: the standard deviation over folds x seeds of the per-run
        values (for gains: of each run's own relative gain).
    """
    results = _view(_checked(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    level = _check_level(results, rejection, "results")
    label = rejection_label(level)
    reference = (
        results[results["rejection"] == 0.0]
        .groupby(_RUN_KEYS + ["training"])[["f1", "uar"]].mean()
        .rename(columns={"f1": "f1_t0", "uar": "uar_t0"})
    )
    at_level = results[results["rejection"] == level].set_index(_RUN_KEYS + ["training"])
    per_run = at_level[["method", "f1", "uar", "coverage"]].join(reference, how="left")
    if per_run[["f1_t0", "uar_t0"]].isna().any().any():
        missing = per_run[per_run["f1_t0"].isna()].index[0]
        raise EmoconfError(f"results has no rejection-0 row for fold, seed, training = {missing}")
    per_run = per_run.rename(columns={"f1": f"f1_{label}", "uar": f"uar_{label}", "coverage": f"coverage_{label}"})
    per_run["f1_gain_pct"] = _gain_percent(per_run[f"f1_{label}"], per_run["f1_t0"])
    per_run["uar_gain_pct"] = _gain_percent(per_run[f"uar_{label}"], per_run["uar_t0"])
    per_run = per_run.reset_index()

    values = ["f1_t0", f"f1_{label}", "uar_t0", f"uar_{label}", f"coverage_{label}"]
    rows = []
    for method in _methods(per_run):
        for training in _trainings(per_run):
            group = per_run[(per_run["method"] == method) & (per_run["training"] == training)]
            if group.empty:
                continue
            mean = group[values].mean()
            row = {"method": method, "training": training, "n_runs": len(group)}
            row.update(
                f1_t0=mean["f1_t0"], **{f"f1_{label}": mean[f"f1_{label}"]},
                f1_gain_pct=_gain_percent(mean[f"f1_{label}"], mean["f1_t0"]),
                uar_t0=mean["uar_t0"], **{f"uar_{label}": mean[f"uar_{label}"]},
                uar_gain_pct=_gain_percent(mean[f"uar_{label}"], mean["uar_t0"]),
                **{f"coverage_{label}": mean[f"coverage_{label}"]},
            )
            std = group[values + ["f1_gain_pct", "uar_gain_pct"]].std()
            row.update({f"{column}_std": value for column, value in std.items()})
            rows.append(row)
    out = pd.DataFrame(rows)
    if out["n_runs"].max() <= 1:
        out = out.drop(columns=[c for c in out.columns if c.endswith("_std")])
    return out


def table2(
    results: pd.DataFrame,
    per_class: pd.DataFrame,
    rejection: float = 0.2,
    training: str = "filtered",
    *,
    class_names: Sequence[str] | None = None,
    rejection_mode: str | None = "global",
) -> pd.DataFrame:
    """The paper's Table 2: precision, recall and F1 per class, without rejection and per method.

    Per-class values are means over folds x seeds of the per-run values (NaN skipped). "No
    rejection" is rejection 0, where every method keeps every prediction (mean over methods).

    Args:
        results: the protocol's results table (gives the methods and checks the level exists).
        per_class: the protocol's per-class table.
        rejection: fraction, default 0.2 (t20).
        training: `"filtered"` (default, the paper's choice) or `"raw"`.
        class_names: column order; default the order of first appearance in `per_class`.
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when the tables already holds one mode per method.

    Returns:
        DataFrame indexed by (`metric` in precision, recall, f1; `method` in `"no_rejection"`, then
        the methods), one column per class.
    """
    results = _view(_checked(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    per_class = _view(_checked(per_class, PER_CLASS_COLUMNS, "per_class"), rejection_mode, "per_class")
    if training not in set(per_class["training"]):
        raise EmoconfError(
            f"per_class has no rows for training {training!r}; available: {', '.join(_trainings(per_class))}"
        )
    level = _check_level(per_class[per_class["training"] == training], rejection, f"per_class ({training})")
    if level == 0.0:
        raise EmoconfError("table2 compares against no rejection; choose a rejection level above 0")
    classes = list(dict.fromkeys(per_class["class"]))
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            raise EmoconfError(
                f"per_class has class(es) {', '.join(unknown)} not in class_names {', '.join(class_names)}"
            )
        classes = class_names
    metrics = ["precision", "recall", "f1"]
    rows = per_class[per_class["training"] == training]
    # One value per run and class at t0 (identical across methods), then the mean over runs.
    no_rejection = (
        rows[rows["rejection"] == 0.0].groupby(_RUN_KEYS + ["class"])[metrics].mean()
        .groupby("class")[metrics].mean().assign(method="no_rejection")
    )
    at_level = rows[rows["rejection"] == level].groupby(["method", "class"])[metrics].mean().reset_index("method")
    combined = pd.concat([no_rejection, at_level]).reset_index()
    method_order = ["no_rejection"] + _ordered(
        set(results["method"]) | set(at_level["method"]), method_names()
    )
    long = combined.melt(id_vars=["method", "class"], value_vars=metrics, var_name="metric")
    table = long.pivot_table(index=["metric", "method"], columns="class", values="value", aggfunc="mean", dropna=False)
    present = [m for m in method_order if m in set(combined["method"])]
    table = table.reindex(pd.MultiIndex.from_product([metrics, present], names=["metric", "method"]))
    table = table.reindex(columns=classes)
    table.columns.name = "class"
    return table


def removed_summary(
    results: pd.DataFrame, rejection: float = 0.2, *, rejection_mode: str | None = "global",
) -> pd.DataFrame:
    """How many test predictions each method removed at `rejection`, and how many of those were correct.

    The paper reports totals over one test split ("1,559 predictions were removed by the baseline,
    among which 477 are actually correct"). With cross-validation every sample is tested once per
    seed, so the totals here are sums over folds, averaged over seeds.

    Args:
        results: the protocol's results table.
        rejection: fraction, default 0.2 (t20).
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when `results` already holds one mode per method.

    Returns:
        DataFrame with one row per (training, method) and columns `training, method, n_folds,
        n_seeds, removed_mean, removed_correct_mean` (per run), `n_test_total, removed_total,
        removed_correct_total` (sum over folds, mean over seeds) and `correct_fraction`
        (`removed_correct_total / removed_total`, NaN when nothing was removed).
    """
    results = _view(_checked(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    level = _check_level(results, rejection, "results")
    rows = results[results["rejection"] == level]
    out = []
    for training in _trainings(rows):
        for method in _methods(rows):
            group = rows[(rows["training"] == training) & (rows["method"] == method)]
            if group.empty:
                continue
            per_seed = group.groupby("seed")[["n_test", "removed", "removed_correct"]].sum()
            totals = per_seed.mean()
            out.append({
                "training": training,
                "method": method,
                "n_folds": group["fold"].nunique(),
                "n_seeds": group["seed"].nunique(),
                "removed_mean": group["removed"].mean(),
                "removed_correct_mean": group["removed_correct"].mean(),
                "n_test_total": totals["n_test"],
                "removed_total": totals["removed"],
                "removed_correct_total": totals["removed_correct"],
                "correct_fraction": totals["removed_correct"] / totals["removed"] if totals["removed"] else math.nan,
            })
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
# Plotting
# ---------------------------------------------------------------------------------------------


def _curve_label(method: str, training: str) -> str:
    return f"{method_display_name(method)}-{TRAINING_SUFFIXES.get(training, training)}"


def plot_curves(results: pd.DataFrame, path: str | Path, *, title: str, rejection_mode: str | None = "global") -> Path:
    """Draws Fig. 2: (a) F1 and (b) UAR against the rejection threshold, and saves it atomically.

    One line per method x training: colour per method (EmoConfidNet red, the baseline green),
    solid for raw and dashed for filtered training (legend `-raw` / `-pre` as in the paper). Points
    are means over folds x seeds, with a shaded band of +-1 std when there is more than one run.
    Uses matplotlib's Agg canvas directly (no pyplot, no screen, no global backend change).

    Args:
        results: the protocol's results table.
        path: output file; the format follows the suffix (default PNG).
        title: figure title; name the corpus, and say "synthetic" for synthetic data (`report_title`).
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when `results` already holds one mode per method.

    Returns:
        `Path(path)`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = rejection_curves(results, metrics=("f1", "uar"), rejection_mode=rejection_mode)
    path = Path(path)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    other_colors = iter(_OTHER_COLORS * 10)
    colors = {
        method: _method_color(method) or next(other_colors) for method in _ordered(curves["method"], method_names())
    }
    percents = sorted({round(r * 100, _REJECTION_DECIMALS - 2) for r in curves["rejection"]})
    for ax, metric, letter in zip(axes, ("f1", "uar"), "ab"):
        for (method, training), group in curves.groupby(["method", "training"], sort=False):
            x = group["rejection"].to_numpy() * 100
            mean = group[f"{metric}_mean"].to_numpy()
            std = group[f"{metric}_std"].to_numpy()
            ax.plot(
                x, mean, marker="o", color=colors[method],
                linestyle=TRAINING_LINESTYLES.get(training, ":"), label=_curve_label(method, training),
            )
            if (group["n_runs"] > 1).any() and np.isfinite(std).any():
                ax.fill_between(x, mean - std, mean + std, color=colors[method], alpha=0.12, linewidth=0)
        ax.set_xticks(percents)
        ax.set_xticklabels([f"t{p:g}%" for p in percents])
        ax.set_xlabel("rejection threshold (fraction of validation predictions below it)")
        ax.set_ylabel(_METRIC_NAMES[metric])
        ax.set_title(f"({letter}) {_METRIC_NAMES[metric]} against threshold level")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    n_runs = int(curves["n_runs"].max())
    band = "; band: ±1 std over folds × seeds" if n_runs > 1 else ""
    fig.suptitle(f"{title}\n(mean over {n_runs} run(s){band})", fontsize="medium")
    suffix = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=120)
    return path


# ---------------------------------------------------------------------------------------------
# Text: terminal lines and report.md
# ---------------------------------------------------------------------------------------------


def _format_cell(value, floatfmt: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


_NUMBER_TEXT = re.compile(r"^(n/a|[-+]?[\d,.]+( ± [\d,.]+)?)$")


def _is_numeric_column(values: pd.Series) -> bool:
    """Numbers, and numbers rendered as text ("0.44 ± 0.03"), are right-aligned."""
    if pd.api.types.is_numeric_dtype(values):
        return True
    return bool(len(values)) and all(isinstance(v, str) and _NUMBER_TEXT.match(v) for v in values)


def _markdown_table(df: pd.DataFrame, floatfmt: str = ".3f", *, index: bool = True) -> str:
    """A GitHub-flavoured markdown table (index levels become leading columns); no `tabulate` needed."""
    frame = df.reset_index() if index else df
    header = [_format_cell(c if not isinstance(c, tuple) else " ".join(map(str, c)), floatfmt) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |"]
    align = ["---:" if _is_numeric_column(frame[c]) else ":---" for c in frame.columns]
    lines.append("| " + " | ".join(align) + " |")
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_format_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)


def _whole_as_int(df: pd.DataFrame) -> pd.DataFrame:
    """Float columns whose values are all whole (counts, sizes with one seed) shown as integers."""
    df = df.copy()
    for column in df.columns:
        values = df[column]
        if pd.api.types.is_float_dtype(values) and values.notna().any():
            present = values.dropna()
            if (present == present.round()).all():
                df[column] = values.round().astype("Int64")
    return df


def _mean_std(mean: float, std: float | None, fmt: str) -> str:
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return format(mean, fmt)
    return f"{format(mean, fmt)} ± {format(std, fmt)}"


def _gains_display(gains: pd.DataFrame, label: str) -> pd.DataFrame:
    """`relative_gains` as strings `mean ± std` (std only when there are several runs)."""
    columns = {
        "F1 t0": ("f1_t0", ".3f"),
        f"F1 {label}": (f"f1_{label}", ".3f"),
        "F1 gain %": ("f1_gain_pct", ".1f"),
        "UAR t0": ("uar_t0", ".3f"),
        f"UAR {label}": (f"uar_{label}", ".3f"),
        "UAR gain %": ("uar_gain_pct", ".1f"),
        f"coverage {label}": (f"coverage_{label}", ".3f"),
    }
    out = pd.DataFrame({
        "method": gains["method"].map(method_display_name),
        "training": gains["training"],
        "runs": gains["n_runs"],
    })
    for title, (column, fmt) in columns.items():
        std = gains[f"{column}_std"] if f"{column}_std" in gains.columns else [None] * len(gains)
        out[title] = [_mean_std(m, s, fmt) for m, s in zip(gains[column], std)]
    return out


def _count(value: float) -> str:
    """Counts as integers when whole (one seed), else with one decimal (a mean over seeds)."""
    return f"{int(round(value)):,}" if float(value).is_integer() else f"{value:,.1f}"


def summary_lines(results: pd.DataFrame, rejection: float = 0.2, *, rejection_mode: str = "global") -> list[str]:
    """A few terminal lines: F1 / UAR per threshold, method and training, then the gains at `rejection`.

    One rejection mode (`rejection_view`), default the paper's `"global"`, with `recommended` as it chose.
    """
    results = rejection_view(_checked(results, RESULTS_COLUMNS, "results"), rejection_mode)
    curves = rejection_curves(results, metrics=("f1", "uar", "coverage"), rejection_mode=None)
    n_runs = int(curves["n_runs"].max())
    cells = _wide(curves, ("f1",), lambda _, method, training: f"{method}/{training}")
    uar = _wide(curves, ("uar",), lambda _, method, training: f"{method}/{training}")
    table = cells.combine(uar, lambda f1, u: f1.map(lambda v: f"{v:.3f}") + " / " + u.map(lambda v: f"{v:.3f}"))
    table = table[cells.columns]
    table.index.name = None
    lines = [f"F1 / UAR by rejection threshold, {mode_display_name(rejection_mode)} "
             f"(mean over {n_runs} fold × seed run(s)):"]
    lines += table.to_string().splitlines()
    levels = set(curves["rejection"])
    level = round(float(rejection), _REJECTION_DECIMALS)
    if level in levels and 0.0 in levels and level != 0.0:
        gains = relative_gains(results, rejection, rejection_mode=None)
        label = rejection_label(level)
        for row in gains.itertuples(index=False):
            row = row._asdict()
            lines.append(
                f"{label} {row['method']}/{row['training']}: F1 {row['f1_gain_pct']:+.1f} %, "
                f"UAR {row['uar_gain_pct']:+.1f} % vs t0, coverage {row[f'coverage_{label}']:.3f}"
            )
    return lines


def _gains_sentence(gains: pd.DataFrame, training: str, label: str) -> str:
    rows = gains[gains["training"] == training]
    parts = [
        (method_display_name(r.method), r.f1_gain_pct, r.uar_gain_pct)
        for r in rows.itertuples(index=False)
    ]
    if not parts:
        return ""
    first, *others = parts
    text = (
        f"With the {training} training set, compared with t0 (no predictions removed), at {label} the relative "
        f"gain in F1 for {first[0]} is {first[1]:.1f} % and {first[2]:.1f} % in UAR"
    )
    if others:
        text += ", while " + "; ".join(
            f"{name} offers a {f1:.1f} % relative gain in F1 and {uar:.1f} % in UAR" for name, f1, uar in others
        )
    return text + "."


def _removed_sentence(summary: pd.DataFrame, training: str, label: str) -> str:
    rows = summary[summary["training"] == training]
    if rows.empty:
        return ""
    first = rows.iloc[0]
    scope = f"summed over {int(first['n_folds'])} fold(s)"
    if first["n_seeds"] > 1:
        scope += f", mean over {int(first['n_seeds'])} seeds"
    parts = []
    for row in rows.itertuples(index=False):
        share = f"{row.correct_fraction * 100:.1f} %" if not math.isnan(row.correct_fraction) else "n/a"
        parts.append(
            f"{_count(row.removed_total)} predictions were removed by {method_display_name(row.method)}, "
            f"among which {_count(row.removed_correct_total)} were correct ({share})"
        )
    return f"With the {training} training set at {label} ({scope}): " + "; ".join(parts) + "."


def _runs_summary(runs: pd.DataFrame) -> pd.DataFrame:
    columns = ["n_train", "n_validation", "n_test", "n_filtered_out", "classifier_epochs", "confidence_epochs"]
    grouped = runs.groupby("training", sort=False)
    table = grouped[columns].mean()
    table.insert(0, "runs", grouped.size())
    return table.reindex(_trainings(runs))


def plot_risk_coverage(predictions: pd.DataFrame, path: str | Path, *, title: str) -> Path:
    """Risk (error rate of kept predictions) against coverage, one panel per training, one line per method.

    Test predictions of every run are pooled. Saved atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from emoconf_tf.selective import risk_coverage_curve

    trainings = _ordered(predictions["training"].unique(), _TRAINING_ORDER)
    methods = [m for m in method_names() if m in predictions.columns] + [
        c for c in predictions.columns
        if c not in method_names() and c not in ("fold", "seed", "training", "id", "label", "predicted")
    ]
    fig = Figure(figsize=(5.5 * len(trainings), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(trainings)))
    other_colors = iter(_OTHER_COLORS * 10)
    for ax, training in zip(axes, trainings):
        part = predictions[predictions["training"] == training]
        correct = (part["label"] == part["predicted"]).to_numpy()
        for method in methods:
            coverage, risk = risk_coverage_curve(correct, part[method].to_numpy())
            ax.plot(coverage, risk, color=_method_color(method) or next(other_colors),
                    label=method_display_name(method), linewidth=2.0 if method == "recommended" else 1.2)
        ax.set_xlabel("coverage (fraction of test predictions kept, most confident first)")
        ax.set_ylabel("risk (error rate of kept predictions)")
        ax.set_title(f"{training} training")
        ax.set_xlim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=120)
    return path


def _interval(mean: float, low: float, high: float, fmt: str = ".1f") -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _ranked_name(method: str, mode: str) -> str:
    """A ranking row in words: `"Max softmax probability, per-class thresholds"`; `recommended` as it is."""
    if method in CHOSEN_MODE_METHODS or mode == VALIDATION_CHOICE:
        return method_display_name(method)
    return f"{method_display_name(method)}, {mode_display_name(mode)}"


def _mode_cell(mode: str, chosen_modes: str) -> str:
    if mode == VALIDATION_CHOICE:
        return f"chosen on validation ({chosen_modes})" if chosen_modes else "chosen on validation"
    return mode_display_name(mode)


def ranking_display(table: pd.DataFrame, rejection: float = 0.2) -> pd.DataFrame:
    """The ranking (`statistics.ranking`) with `mean [low, high]` cells and display names."""
    label = rejection_label(rejection)
    chosen = table["chosen_modes"] if "chosen_modes" in table.columns else [""] * len(table)

    def cells(figure: str, fmt: str) -> list[str]:
        return [_interval(*r, fmt) for r in table[[figure, f"{figure}_low", f"{figure}_high"]].to_numpy()]

    return pd.DataFrame({
        "training": table["training"],
        "method": table["method"].map(method_display_name),
        "rejection mode": [_mode_cell(m, c) for m, c in zip(table["rejection_mode"], chosen)],
        "F1 t0": table["f1_t0"],
        "UAR t0": table["uar_t0"],
        f"F1 gain % at {label}": cells("f1_gain", ".1f"),
        f"UAR gain % at {label}": cells("uar_gain", ".1f"),
        "AURC": cells("aurc", ".3f"),
        "balanced AURC": cells("aurc_balanced", ".3f"),
        "AUROC": cells("auroc", ".3f"),
    })


def _f1_gain_of(part: pd.DataFrame, method: str, mode: str) -> float | None:
    rows = part[(part["method"] == method) & (part["rejection_mode"] == mode)]
    return float(rows["f1_gain"].iloc[0]) if len(rows) else None


def recommendation_paragraph(table: pd.DataFrame, comparison: pd.DataFrame | None, training: str,
                             rejection: float = 0.2) -> str:
    """A plain-language recommendation for one training set, generated from the ranking (one row per method and
    rejection mode, `statistics.ranking`) and the paired comparison (`statistics.paired_comparison`)."""
    part = table[table["training"] == training].reset_index(drop=True)
    if part.empty:
        return ""
    label = rejection_label(rejection)
    best_gain = part.loc[part["f1_gain"].idxmax()]
    best_aurc = part.loc[part["aurc"].idxmin()]
    over = part["ci_over"].iloc[0]
    text = [
        f"With the {training} training set, the largest {label} F1 gain comes from "
        f"{_ranked_name(best_gain['method'], best_gain['rejection_mode'])} "
        f"({_interval(best_gain['f1_gain'], best_gain['f1_gain_low'], best_gain['f1_gain_high'])} %, 95 % bootstrap "
        f"interval over {over}), and the lowest AURC (best ranking of errors last, whatever the rejection mode) from "
        f"{method_display_name(best_aurc['method'])} ({best_aurc['aurc']:.3f})."
    ]
    ecn, base = _f1_gain_of(part, "emoconfidnet", "global"), _f1_gain_of(part, "top2_margin", "global")
    if ecn is not None and base is not None:
        sentence = (f"The paper's EmoConfidNet gains {ecn:.1f} % against {base:.1f} % for the top-two margin "
                    "(global threshold, as in the paper)")
        ecn_pc, base_pc = _f1_gain_of(part, "emoconfidnet", "per_class"), _f1_gain_of(part, "top2_margin", "per_class")
        if ecn_pc is not None and base_pc is not None:
            sentence += f"; with per-class thresholds, {ecn_pc:.1f} % against {base_pc:.1f} %"
        text.append(sentence + ".")
    if comparison is not None and not comparison.empty and "recommended" in set(part["method"]):
        rows = comparison[comparison["training"] == training].set_index("figure")
        if rows.empty:
            return " ".join(text)
        f1, aurc_row = rows.loc["f1_gain"], rows.loc["aurc"]
        unit = "runs" if f1["ci_over"] == "runs" else "bootstrap resamples of the test utterances"
        if (rows[["mean_difference", "low", "high"]].abs() < 1e-12).all(axis=None):
            text.append("On validation the recommended score chose the top-two margin itself, with the global "
                        "threshold, so the two coincide on test: use the top-two margin.")
            return " ".join(text)
        if f1["low"] > 0 and aurc_row["high"] <= 0:
            verdict = ("the recommended score is reliably better than the top-two margin here: use it "
                       "(its score, blend weights and rejection mode were chosen on validation only)")
        elif f1["high"] < 0 or aurc_row["low"] > 0:
            verdict = "the top-two margin is better here: use it, it needs no extra training"
        else:
            verdict = ("the two cannot be told apart reliably on this data; the top-two margin is the simpler "
                       "choice, the recommended score the one tuned to this corpus")
        text.append(
            "Recommended vs the top-two margin with the paper's global threshold: F1 gain difference "
            f"{_interval(f1['mean_difference'], f1['low'], f1['high'])} points (recommended better in "
            f"{f1['a_better'] * 100:.0f} % of {unit}), AURC difference "
            f"{_interval(aurc_row['mean_difference'], aurc_row['low'], aurc_row['high'], '.3f')}; {verdict}."
        )
    return " ".join(text)


_CRITERIA = {
    "f1_uar_area": "the mean area under the validation F1 and UAR curves, cross-fitted",
    "f1_area": "the area under the validation F1 curve, cross-fitted",
    "uar_area": "the area under the validation UAR curve, cross-fitted",
    "aurc": "the lowest validation AURC",
}


def _choice_counts(choices: pd.DataFrame) -> pd.DataFrame:
    """Runs per (training, method, choice, rejection mode); a mode-independent choice (`emoconfidnet_tau`) shows —."""
    modes = choices["rejection_mode"].fillna("").astype(str).replace({"nan": "", "": "—"})
    return (choices.assign(rejection_mode=modes)
            .groupby(["training", "method", "choice", "rejection_mode"]).size().rename("runs").reset_index()
            .sort_values(["training", "method", "runs"], ascending=[True, True, False], kind="stable"))


def _choices_sentence(choices: pd.DataFrame) -> str:
    text = ["The test split plays no part in these choices."]
    if "emoconfidnet_tau" in set(choices["method"]):
        text.insert(0, "`emoconfidnet_tau` picks the target temperature with the lowest validation AURC "
                       "(independent of the rejection mode, shown as —).")
    criteria = choices.loc[choices["method"] == "recommended", "criterion"].astype(str).unique()
    if len(criteria):
        described = "; ".join(f"`{c}`: {_CRITERIA.get(c, c)}" for c in sorted(criteria))
        text.insert(-1, f"`recommended` picks a score or blend and a rejection mode together, by {described}.")
    return " ".join(text)


def report_title(corpus_name: str, *, synthetic: bool, rejection_mode: str | None = None) -> str:
    """The curves' title: names the corpus, says "synthetic" for synthetic data, and the rejection mode if given."""
    data = f"{corpus_name} (synthetic data)" if synthetic else corpus_name
    mode = f" ({mode_display_name(rejection_mode)})" if rejection_mode else ""
    return f"{data} — F1 and UAR against rejection threshold{mode}"


def write_report(
    out_dir: str | Path,
    results: pd.DataFrame,
    per_class: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    corpus_name: str,
    synthetic: bool,
    class_names: Sequence[str],
    filter_counts: pd.DataFrame | Mapping[str, int] | None = None,
    settings: Mapping[str, object] | None = None,
    rejection: float = 0.2,
    selective: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    choices: pd.DataFrame | None = None,
    n_boot: int = 1000,
    merged_labels: Sequence[tuple[str, str]] = (),
) -> Path:
    """Writes `curves.png`, `curves_per_class.png` (when there are per-class rows) and `report.md` into `out_dir`,
    each atomically.

    The report has, first, the paper's view: every method with the global threshold, plus `recommended` in the
    mode validation chose for each run: a header (corpus, a synthetic-data banner when `synthetic`, folds, seeds,
    sizes from `runs`, `settings`, categories the dataset merged), the F1 / UAR per threshold of the paper's
    Fig. 2 and coverage, the relative gains at `rejection`, Table 2 (per class, filtered training, and raw when
    present), the removed / correctly-removed counts and the conflict filter's counts per rule (the paper's
    Table 1) and fold. Then, when `results` has per-class rows, a "Per-class
    rejection" section (F1 / UAR per threshold and the relative gains with per-class thresholds); then, with
    `selective` and more than the paper's two methods, the ranking of every (method, rejection mode); then the
    curves. Every number comes from the tables passed in.

    Args:
        out_dir: output directory, created if needed.
        results, per_class, runs: the protocol's tables (see the module docstring).
        corpus_name: e.g. `"MSP-Podcast"`; goes into the title.
        synthetic: True when the data is generated, not a corpus; adds a banner and says so in the titles.
        class_names: the class names in class-id order (the corpus's); also Table 2's column order.
        filter_counts: rows removed per conflict rule: the protocol's per-fold table
            (`ProtocolOutputs.filter_counts`) or one training set's `{rule: rows}` (`filtering.filter_counts`);
            None when not known.
        settings: protocol settings to list in the header, or None.
        rejection: the level analysed in detail, default 0.2 (t20, as in the paper).
        selective: the protocol's `selective.csv` table; with more than the paper's two methods the report
            gains a ranking of every (method, rejection mode) with bootstrap intervals, a paired comparison of
            `recommended` with `top2_margin`'s global rows, a generated recommendation and `risk_coverage.png`.
        predictions: the protocol's `predictions.csv` table (for intervals over test utterances when there is a
            single run, and the risk-coverage curves).
        choices: the protocol's `choices.csv` table (what validation chose).
        n_boot: bootstrap resamples.
        merged_labels: `(category, class)` pairs the dataset merged (`Corpus.merged_labels`, e.g.
            `(("excited", "happy"),)` for IEMOCAP's default configs), stated in the header.

    Returns:
        Path of `report.md`.
    """
    results = _checked(results, RESULTS_COLUMNS, "results")
    per_class = _checked(per_class, PER_CLASS_COLUMNS, "per_class")
    runs = _checked(runs, RUNS_COLUMNS, "runs")
    if selective is not None and len(selective):
        selective = _checked(selective, SELECTIVE_COLUMNS, "selective")
    else:
        selective = None
    choices = _checked(choices, CHOICE_COLUMNS, "choices") if choices is not None and len(choices) else None
    others = results[~results["method"].isin(CHOSEN_MODE_METHODS)]
    # The paper's view is the global threshold; a run without global rows shows its per-class rows there instead.
    main_mode = "global" if others.empty or (others["rejection_mode"] == "global").any() else "per_class"
    paper = rejection_view(results, main_mode, recommended=True)
    paper_per_class = rejection_view(per_class, main_mode, recommended=True, name="per_class")
    per_class_rows = rejection_view(results, "per_class") if main_mode == "global" else results.iloc[:0]
    level = _check_level(paper, rejection, "results")
    label = rejection_label(level)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    title = report_title(corpus_name, synthetic=synthetic)
    plot_curves(paper, out_dir / "curves.png", title=title, rejection_mode=None)
    per_class_curves = out_dir / "curves_per_class.png"
    if len(per_class_rows):
        plot_curves(per_class_rows, per_class_curves, rejection_mode=None,
                    title=report_title(corpus_name, synthetic=synthetic, rejection_mode="per_class"))
    else:
        per_class_curves.unlink(missing_ok=True)  # from an earlier report in this directory

    folds = sorted(results["fold"].unique())
    seeds = sorted(results["seed"].unique())
    trainings = _trainings(paper)
    methods = _methods(paper)
    modes = _ordered(results["rejection_mode"].unique(), REJECTION_MODES)
    lines = [f"# Confidence-aware emotion recognition: {corpus_name}", ""]
    if synthetic:
        lines += ["> **SYNTHETIC DATA — not a real corpus.** These numbers test the pipeline; "
                  "they say nothing about the method on real speech.", ""]
    lines += [
        f"- corpus: {corpus_name}" + (" (synthetic)" if synthetic else ""),
        f"- folds: {len(folds)} ({', '.join(map(str, folds))})",
        f"- seeds: {len(seeds)} ({', '.join(map(str, seeds))})",
        f"- training sets: {', '.join(trainings)}",
        f"- rejection methods: {', '.join(method_display_name(m) for m in methods)}",
        f"- rejection modes: {', '.join(mode_display_name(m) for m in modes)}",
        f"- classes: {', '.join(map(str, class_names))}",
    ]
    if merged_labels:
        merged = ", ".join(f"{category} counted as {name}" for category, name in merged_labels)
        lines += [f"- merged categories: {merged} (as the dataset was built; IEMOCAP's default configs merge "
                  "excited into happy, its *_hap_only configs do not)"]
    lines += [
        "",
        "Sizes per run (mean over folds x seeds):",
        "",
        _markdown_table(_whole_as_int(_runs_summary(runs)), ".1f"),
        "",
    ]
    if settings:
        lines += ["Settings:", ""] + [f"- `{key}`: {value}" for key, value in settings.items()] + [""]

    if main_mode == "global":
        view_note = "Every method with the paper's global threshold (one threshold from all validation confidences)"
    else:
        view_note = "These results have no global-threshold rows: every method with per-class thresholds"
    if any(m in CHOSEN_MODE_METHODS for m in methods):
        view_note += f"; {method_display_name('recommended')} in the rejection mode validation chose for each run"
    lines += [
        "## F1 and UAR against the rejection threshold (the paper's Fig. 2)",
        "",
        f"{view_note}. Mean over folds x seeds. tx is the threshold that removes x % of the validation predictions "
        "(lowest confidence first); t0 removes none.",
        "",
    ]
    lines += _threshold_tables(paper, coverage=True)
    lines += [f"## Relative gains at {label}", ""]
    lines += _gains_lines(paper, level)

    for training in [t for t in ("filtered", "raw") if t in trainings] + [
        t for t in trainings if t not in ("filtered", "raw")
    ]:
        if training not in set(paper_per_class["training"]):
            continue
        table = table2(paper, paper_per_class, level, training, class_names=class_names, rejection_mode=None)
        table = table.rename(index=method_display_name, level="method").rename(index=_METRIC_NAMES, level="metric")
        lines += [
            f"## Table 2: per-class precision, recall and F1 at {label} ({training} training)",
            "",
            "Mean over folds x seeds; 'No rejection' is t0.",
            "",
            _markdown_table(table),
            "",
        ]

    summary = removed_summary(paper, level, rejection_mode=None)
    lines += [f"## Predictions removed at {label}", ""]
    lines += [s + "\n" for t in trainings if (s := _removed_sentence(summary, t, label))]
    summary_display = summary.assign(method=summary["method"].map(method_display_name))
    lines += [_markdown_table(_whole_as_int(summary_display.set_index(["training", "method"])), ".3f"), ""]

    lines += ["## Conflict filter (training set; the rules of the paper's Table 1)", ""]
    if filter_counts is not None and len(filter_counts):
        counts = filter_counts_table(filter_counts)
        if isinstance(filter_counts, pd.DataFrame):
            seeds_used = sorted(set(filter_counts["seed"])) if "seed" in filter_counts.columns else []
            lines += [
                "Training rows each rule removed, per fold"
                + (f", with seed {', '.join(map(str, seeds_used))}" if seeds_used else "")
                + " (the filter does not depend on the seed); 'all rules' is the sum of the rows above. A row in "
                "the training set of several folds counts in each.",
                "",
            ]
        lines += [_markdown_table(counts), ""]
    else:
        lines += ["No filter counts were given.", ""]

    if len(per_class_rows):
        lines += [
            "## Per-class rejection",
            "",
            "One threshold per predicted class: the paper's rule applied to the validation predictions of each "
            "class, so that about the same share of every predicted class is rejected (a global threshold removes "
            f"mostly the classes the classifier is least sure of). {method_display_name('recommended')} is in the "
            "tables above, in the mode validation chose. Mean over folds x seeds.",
            "",
            "### F1 and UAR against the rejection threshold (per-class thresholds)",
            "",
        ]
        lines += _threshold_tables(per_class_rows, coverage=False)
        lines += [f"### Relative gains at {label} (per-class thresholds)", ""]
        lines += _gains_lines(per_class_rows, level)

    if selective is not None and len(methods) > 2:
        lines += _ranking_lines(results, per_class, selective, predictions, choices, out_dir, title=corpus_name + (
            " (synthetic data)" if synthetic else ""), class_names=class_names, rejection=level, n_boot=n_boot)

    lines += ["## Curves", "", "![curves](curves.png)", ""]
    if len(per_class_rows):
        lines += ["With per-class thresholds:", "", "![curves, per-class thresholds](curves_per_class.png)", ""]
    return write_text(out_dir / "report.md", "\n".join(lines))


def _display_column(metric: str, method: str, training: str) -> str:
    return f"{_METRIC_NAMES[metric]} {method_display_name(method)} ({training})"


def _threshold_tables(results: pd.DataFrame, *, coverage: bool) -> list[str]:
    """Markdown: F1 and UAR per threshold (and the coverage) of one rejection mode's rows."""
    curves = rejection_curves(results, rejection_mode=None)
    lines = [_markdown_table(_wide(curves, ("f1", "uar"), _display_column)), ""]
    if coverage:
        lines += ["Coverage (fraction of the test set kept):", "",
                  _markdown_table(_wide(curves, ("coverage",), _display_column)), ""]
    return lines


def _gains_lines(results: pd.DataFrame, level: float) -> list[str]:
    """Markdown: the relative gains at `level` of one rejection mode's rows, in sentences and a table."""
    label = rejection_label(level)
    gains = relative_gains(results, level, rejection_mode=None)
    lines = [s + "\n" for t in _trainings(gains) if (s := _gains_sentence(gains, t, label))]
    lines += [_markdown_table(_gains_display(gains, label), index=False), ""]
    if "f1_gain_pct_std" in gains.columns:
        lines += [
            "Gains are computed on the means; ± is the standard deviation over folds × seeds of the per-run "
            "values (for gains: of each run's own relative gain).",
            "",
        ]
    return lines


_FIGURE_NAMES = {"f1_gain": "F1 gain (points)", "uar_gain": "UAR gain (points)", "aurc": "AURC",
                 "aurc_balanced": "balanced AURC", "auroc": "AUROC"}


def _ranking_lines(results, per_class, selective, predictions, choices, out_dir: Path, *, title: str,
                   class_names: Sequence[str], rejection: float, n_boot: int) -> list[str]:
    from emoconf_tf.statistics import paired_comparison, ranking

    num_classes = len(class_names)
    table = ranking(results, selective, predictions, per_class, num_classes=num_classes, class_names=class_names,
                    rejection=rejection, n_boot=n_boot)
    pairs = set(zip(table["method"], table["rejection_mode"]))
    comparison = None
    if "recommended" in set(table["method"]) and ("top2_margin", "global") in pairs:
        comparison = paired_comparison(results, selective, predictions, per_class, num_classes=num_classes,
                                       class_names=class_names, rejection=rejection, n_boot=n_boot)
    label = rejection_label(rejection)
    over = table["ci_over"].iloc[0]
    lines = [
        "## Which confidence to trust: every method ranked",
        "",
        "One row per method and rejection mode (global threshold, the paper's, or per-class thresholds); "
        f"{method_display_name('recommended')} is one row, in the mode validation chose for each run. "
        f"Mean and 95 % bootstrap interval over {over} "
        + ("(folds × seeds)" if over == "runs" else "(test utterances of the single run, thresholds fixed)")
        + f". F1 t0 and UAR t0 are without rejection; gains at {label} are relative to t0, as in Table 1. AURC is "
        "the area under the risk-coverage curve and balanced AURC the area under 1 − UAR against coverage (lower "
        "is better); AUROC separates correct from wrong predictions (higher is better). These three rank the "
        "confidence itself, so a method's rows in both modes share them. Sorted by F1 gain.",
        "",
        _markdown_table(ranking_display(table, rejection), index=False),
        "",
    ]
    if comparison is not None:
        shown = comparison.assign(
            figure=comparison["figure"].map(_FIGURE_NAMES),
            difference=[_interval(m, lo, hi, ".3f") for m, lo, hi in
                        comparison[["mean_difference", "low", "high"]].to_numpy()],
            recommended_better=[f"{v * 100:.0f} %" if np.isfinite(v) else "n/a" for v in comparison["a_better"]],
        )[["training", "figure", "difference", "recommended_better", "ci_over"]]
        lines += ["### Paired comparison: recommended minus top-two margin (global threshold)", "",
                  "Recommended in the mode validation chose for each run; the top-two margin with the paper's "
                  "global threshold.", "", _markdown_table(shown, index=False), ""]
    if choices is not None and len(choices):
        lines += ["### What validation chose", "", _choices_sentence(choices), "",
                  _markdown_table(_choice_counts(choices), index=False), ""]
    lines += ["### Recommendation", ""]
    lines += [p + "\n" for t in _ordered(table["training"].unique(), _TRAINING_ORDER)
              if (p := recommendation_paragraph(table, comparison, t, rejection))]
    if predictions is not None and len(predictions):
        plot_risk_coverage(predictions, out_dir / "risk_coverage.png", title=f"{title} — risk against coverage")
        lines += ["![risk-coverage](risk_coverage.png)", ""]
    return lines
