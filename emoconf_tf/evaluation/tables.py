"""The paper's tables (Section 5, Fig. 2, Table 2) computed from the protocol's result tables: pure functions,
DataFrames in, DataFrames out; and the names and order the report shows them in. `plots.py` draws them,
`report_tables.py` gathers those of report.md, `markdown.py` writes the terminal summary and report.md.

The input tables (`results`, `per_class`, `runs`, `selective`, `choices`), their columns and their views of one
threshold source and one rejection mode are those of `evaluation.protocol_tables` (its docstring describes them);
the column tuples and views are importable from here too.

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
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd

from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.protocol_tables import (
    CHOICE_COLUMNS,
    CHOSEN_MODE_METHODS,
    COVERAGE_ERROR_COLUMNS,
    PER_CLASS_COLUMNS,
    REJECTION_DECIMALS,
    RESULTS_COLUMNS,
    RUNS_COLUMNS,
    SELECTIVE_COLUMNS,
    VALIDATION_CHOICE,
    checked_level,
    checked_table,
    one_mode_view,
    rejection_view,
    threshold_source_view,
)
from emoconf_tf.scores import METHODS, method_names

# The public names, with the columns and views of `protocol_tables`, which `evaluation.protocol`, `serving.rundir`
# and notebooks import from here.
__all__ = [
    "CHOICE_COLUMNS", "CHOSEN_MODE_METHODS", "COVERAGE_ERROR_COLUMNS", "METRIC_NAMES", "MODE_NAMES",
    "PER_CLASS_COLUMNS", "RESULTS_COLUMNS", "RUNS_COLUMNS", "SELECTIVE_COLUMNS", "TRAINING_ORDER",
    "VALIDATION_CHOICE", "ReportTables", "coverage_errors", "fig2_table", "filter_counts_table",
    "method_display_name", "methods_in", "mode_display_name", "ordered", "rejection_curves", "rejection_label",
    "rejection_view", "relative_gains", "removed_summary", "table2", "threshold_source_view", "threshold_table",
    "trainings_in",
]

_REFERENCE_NAMES = {"no_rejection": "No rejection"}
MODE_NAMES = {"global": "global threshold", "per_class": "per-class thresholds"}
TRAINING_ORDER = ("raw", "filtered")
"""The report's order of the training sets; others follow, sorted (`ordered`)."""
METRIC_NAMES = {"f1": "F1", "uar": "UAR", "coverage": "coverage", "precision": "Precision", "recall": "Recall"}
"""The report's names of the metric columns (`f1` -> `"F1"`), in table headers and plot axes."""
_RUN_KEYS = ["fold", "seed"]


def method_display_name(method: str) -> str:
    """`"emoconfidnet"` -> `"EmoConfidNet"`, `"top2_margin"` -> `"Baseline (top-2 margin)"`; others as given."""
    if method in METHODS:
        return METHODS[method].display_name
    return _REFERENCE_NAMES.get(method, method)


def rejection_label(rejection: float) -> str:
    """The paper's threshold name for a rejection fraction: 0.2 -> `"t20"`, 0.125 -> `"t12.5"`."""
    percent = round(float(rejection) * 100, REJECTION_DECIMALS - 2)
    return f"t{percent:g}"


def mode_display_name(mode: str) -> str:
    """`"global"` -> `"global threshold"`, `"per_class"` -> `"per-class thresholds"`; others as given."""
    return MODE_NAMES.get(mode, mode)


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """The distinct `values`: those in `order` first, in that order, then the others sorted.

    Example:
    >>> ordered(["x", "filtered", "raw", "a", "raw"], TRAINING_ORDER)
    ['raw', 'filtered', 'a', 'x']
    """
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))


def methods_in(df: pd.DataFrame) -> list[str]:
    """The methods of `df["method"]` in the report's order: registered ones as registered, then the others sorted."""
    return ordered(df["method"].unique(), method_names())


def trainings_in(df: pd.DataFrame) -> list[str]:
    """The training sets of `df["training"]` in the report's order (`TRAINING_ORDER`: raw, then filtered)."""
    return ordered(df["training"].unique(), TRAINING_ORDER)




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
    results = one_mode_view(checked_table(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    unknown = [m for m in metrics if m not in results.columns]
    if unknown:
        raise EmoconfError(f"results has no metric column(s) {', '.join(unknown)}")
    keys = ["method", "training", "rejection"]
    grouped = results.groupby(keys, sort=False)
    out = grouped[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "n_runs", grouped.size())
    out = out.reset_index()
    method_rank = {m: i for i, m in enumerate(methods_in(results))}
    training_rank = {t: i for i, t in enumerate(trainings_in(results))}
    out = out.sort_values(
        keys, key=lambda col: col.map(method_rank) if col.name == "method"
        else col.map(training_rank) if col.name == "training" else col
    )
    return out.reset_index(drop=True)


def threshold_table(curves: pd.DataFrame, metrics: Sequence[str],
                    column_name: Callable[[str, str, str], str]) -> pd.DataFrame:
    """The means of `rejection_curves` pivoted to one row per threshold: the layout of the paper's Fig. 2 numbers.

    Args:
        curves: a `rejection_curves` table.
        metrics: the metrics to show, e.g. `("f1", "uar")`; each needs its `{metric}_mean` column in `curves`.
        column_name: `column_name(metric, method, training)` -> the column's name.

    Returns:
        DataFrame indexed by threshold `"t0", "t10", ...` (name `threshold`, rejection ascending), one column per
        metric x method x training (metrics outermost, then `curves`' order), holding the mean over folds x seeds
        (F1 and UAR in [0, 1]; coverage the fraction of the test set kept).
    """
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
    return threshold_table(curves, metrics, _fig2_column)


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
    results = checked_table(results, RESULTS_COLUMNS, "results", threshold_source=threshold_source)
    results = one_mode_view(results, rejection_mode, "results", threshold_source)
    level = checked_level(results, rejection, "results")
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
    for method in methods_in(per_run):
        for training in trainings_in(per_run):
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
    results = one_mode_view(checked_table(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    per_class = one_mode_view(checked_table(per_class, PER_CLASS_COLUMNS, "per_class"), rejection_mode, "per_class")
    if training not in set(per_class["training"]):
        raise EmoconfError(
            f"per_class has no rows for training {training!r}; available: {', '.join(trainings_in(per_class))}"
        )
    level = checked_level(per_class[per_class["training"] == training], rejection, f"per_class ({training})")
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
    method_order = ["no_rejection"] + ordered(
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
    results = one_mode_view(checked_table(results, RESULTS_COLUMNS, "results"), rejection_mode, "results")
    level = checked_level(results, rejection, "results")
    rows = results[results["rejection"] == level]
    out = []
    for training in trainings_in(rows):
        for method in methods_in(rows):
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
    results = checked_table(results, required, "results", threshold_source=None)
    if "threshold_source" not in results.columns:
        results = results.assign(threshold_source="validation")
    keys = ["fold", "seed", "training", "method", "rejection_mode", "threshold_source"]
    rows = [dict(zip(keys, key), coverage_error=coverage_error(group["rejection"], group["coverage"]))
            for key, group in results.groupby(keys, sort=False)]
    return pd.DataFrame(rows, columns=keys + ["coverage_error"])


@dataclasses.dataclass
class ReportTables:
    """The protocol's tables a report is made of (see `evaluation.protocol_tables`);
    `evaluation.protocol.ProtocolOutputs` is one. Only `results`, `per_class` and `runs` are required; the others
    add sections when present.

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
