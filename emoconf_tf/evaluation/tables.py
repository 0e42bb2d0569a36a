"""The paper's tables (Section 5, Fig. 2, Table 2) computed from the protocol's result tables: pure functions,
DataFrames in, DataFrames out. `plots.py` draws them; `markdown.py` writes the terminal summary and report.md.

The input tables are the protocol's:

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

The functions summarise one rejection mode at a time (`rejection_view`): by default the paper's
view, `"global"`, which also holds `recommended`'s rows whatever mode it chose. They read the rows with
validation thresholds only (`threshold_source_view`), unless told otherwise; a table without a
`threshold_source` column (output format 2, or built by hand) holds validation rows only.

Means and standard deviations run over the folds x seeds of one (method, training, rejection);
standard deviations are sample ones (`ddof=1`), undefined (NaN) for a single run. Undefined
per-class values (NaN, e.g. precision of a class that is never predicted) are skipped in means.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Mapping, Sequence

import pandas as pd

from emoconf_tf.confidence_methods import METHODS, method_names
from emoconf_tf.errors import EmoconfError
from emoconf_tf.thresholds import REJECTION_MODES, THRESHOLD_SOURCES, check_rejection_mode, check_threshold_source

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
_REFERENCE_NAMES = {"no_rejection": "No rejection"}
# `recommended` is reported once per run, in the rejection mode validation chose; every other method in every mode.
CHOSEN_MODE_METHODS = ("recommended",)
MODE_NAMES = {"global": "global threshold", "per_class": "per-class thresholds"}
VALIDATION_CHOICE = "validation's choice"  # the ranking's rejection mode of `recommended`
_TRAINING_ORDER = ("raw", "filtered")
_METRIC_NAMES = {"f1": "F1", "uar": "UAR", "coverage": "coverage", "precision": "Precision", "recall": "Recall"}
_RUN_KEYS = ["fold", "seed"]
_REJECTION_DECIMALS = 6  # 0.1 + 0.1 and 0.2 are one level


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


def _checked(df: pd.DataFrame, required: Sequence[str], name: str, *,
             threshold_source: str | None = "validation") -> pd.DataFrame:
    """A copy of `df` with the required columns present (`_OPTIONAL_COLUMNS` may be absent), `rejection` rounded
    to one key per level, and only the rows of `threshold_source` (`threshold_source_view`; None keeps them all)."""
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
        df["rejection"] = rejection.round(_REJECTION_DECIMALS)
    for column in ("training", "method", "rejection_mode", "threshold_source", "class"):
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


def _view(df: pd.DataFrame, rejection_mode: str | None, name: str,
          threshold_source: str = "validation") -> pd.DataFrame:
    """`rejection_view(df, rejection_mode)`, or `df` as it is (checked for one mode per method) when None."""
    view = _one_mode(df, name) if rejection_mode is None else rejection_view(
        df, rejection_mode, name=name, threshold_source=threshold_source)
    if view.empty:
        raise EmoconfError(f"{name} has no rows in rejection mode {rejection_mode}; modes present: "
                           f"{', '.join(sorted(set(df['rejection_mode'])))}")
    return view


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
    threshold_source: str = "validation",
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
        threshold_source: the rows of which thresholds (`threshold_source_view`; default `"validation"`).

    Returns:
        DataFrame with one row per (method, training) and columns `method, training, n_runs,
        f1_t0, f1_t20, f1_gain_pct, uar_t0, uar_t20, uar_gain_pct, coverage_t20` (the suffix
        follows `rejection_label(rejection)`). When some row has more than one run, also
        `{column}_std` for each of those: the standard deviation over folds x seeds of the per-run
        values (for gains: of each run's own relative gain).
    """
    results = _checked(results, RESULTS_COLUMNS, "results", threshold_source=threshold_source)
    results = _view(results, rejection_mode, "results", threshold_source)
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


def coverage_errors(results: pd.DataFrame) -> pd.DataFrame:
    """How far each run's test coverage lands from the one asked for, per threshold source: one row per fold, seed,
    training, method, rejection mode and threshold source, with `coverage_error` = the mean over the rejection rates
    r > 0 of `|coverage - (1 - r)|` (`metrics.coverage_error`; what selective.csv's `coverage_error_*` hold).

    Args:
        results: the protocol's results table, every threshold source (a table without `threshold_source` is
            read as validation rows).

    Returns:
        DataFrame with columns `fold, seed, training, method, rejection_mode, threshold_source, coverage_error`
        (NaN for a run with no rate above 0).

    Example:
    >>> rows = pd.DataFrame({"fold": 0, "seed": 0, "training": "raw", "method": "msp", "rejection_mode": "global",
    ...                      "threshold_source": "batch", "rejection": [0.0, 0.1, 0.2], "coverage": [1.0, 0.9, 0.78]})
    >>> coverage_errors(rows)["coverage_error"].round(6).tolist()   # (|0.9 - 0.9| + |0.78 - 0.8|) / 2
    [0.01]
    """
    from emoconf_tf.metrics import coverage_error

    required = ("fold", "seed", "training", "method", "rejection_mode", "rejection", "coverage")
    results = _checked(results, required, "results", threshold_source=None)
    if "threshold_source" not in results.columns:
        results = results.assign(threshold_source="validation")
    keys = ["fold", "seed", "training", "method", "rejection_mode", "threshold_source"]
    rows = [dict(zip(keys, key), coverage_error=coverage_error(group["rejection"], group["coverage"]))
            for key, group in results.groupby(keys, sort=False)]
    return pd.DataFrame(rows, columns=keys + ["coverage_error"])


@dataclasses.dataclass
class ReportTables:
    """The protocol's tables a report is made of (see the module docstring); `evaluation.protocol.ProtocolOutputs`
    is one. Only `results`, `per_class` and `runs` are required; the others add sections when present.

    `filter_counts`: the rows each conflict rule removed (`ProtocolOutputs.filter_counts`, or one training set's
    `{rule: rows}`). `selective`, `predictions`, `choices`: the protocol's selective.csv, predictions.csv and
    choices.csv.
    """

    results: pd.DataFrame
    per_class: pd.DataFrame
    runs: pd.DataFrame
    selective: pd.DataFrame | None = None
    choices: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    filter_counts: pd.DataFrame | Mapping[str, int] | None = None
