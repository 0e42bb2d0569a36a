"""The paper's tables and curves (Section 5, Fig. 2, Table 2) computed from the protocol's result tables.

Computing is separate from plotting and writing: `rejection_curves`, `table1`, `relative_gains`,
`table2` and `removed_summary` are pure (DataFrames in, DataFrames out); `plot_curves` draws
`rejection_curves`, and `write_report` writes `curves.png` and `report.md` atomically.

The input tables are the protocol's:

- `results`: one row per fold, seed, training (`"raw"` | `"filtered"`), method and rejection level,
  with columns `fold, seed, training, method, rejection, threshold, coverage, f1, uar, n_test,
  removed, removed_correct`. `rejection` is a fraction (0.2 is the paper's t20%).
- `per_class`: `fold, seed, training, method, rejection, class, precision, recall, f1`.
- `runs`: `fold, seed, training, n_train, n_validation, n_test, n_filtered_out, classifier_epochs,
  confidence_epochs`.

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
from emoconf_tf.errors import EmoconfError

RESULTS_COLUMNS = (
    "fold", "seed", "training", "method", "rejection", "threshold", "coverage",
    "f1", "uar", "n_test", "removed", "removed_correct",
)
PER_CLASS_COLUMNS = ("fold", "seed", "training", "method", "rejection", "class", "precision", "recall", "f1")
RUNS_COLUMNS = (
    "fold", "seed", "training", "n_train", "n_validation", "n_test", "n_filtered_out",
    "classifier_epochs", "confidence_epochs",
)

METHOD_NAMES = {
    "emoconfidnet": "EmoConfidNet",
    "top2_margin": "Baseline (top-2 margin)",
    "no_rejection": "No rejection",
    "msp": "Max softmax probability",
    "entropy": "Negative entropy",
    "mc_dropout": "MC dropout",
    "tcp": "ConfidNet (TCP)",
    "emoconfidnet_tau": "EmoConfidNet (tuned tau)",
    "recommended": "Recommended",
}
# The paper's colours (Fig. 2): EmoConfidNet red, the baseline green; other methods take the rest.
METHOD_COLORS = {
    "emoconfidnet": "tab:red", "top2_margin": "tab:green", "recommended": "black", "msp": "tab:blue",
    "entropy": "tab:cyan", "mc_dropout": "tab:purple", "tcp": "tab:brown", "emoconfidnet_tau": "tab:orange",
}
_OTHER_COLORS = ("tab:blue", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
TRAINING_LINESTYLES = {"raw": "-", "filtered": "--"}
# Fig. 2 legend suffixes: '-raw' for the raw training set, '-pre' for the preprocessed (filtered) one.
TRAINING_SUFFIXES = {"raw": "raw", "filtered": "pre"}

_METHOD_ORDER = ("emoconfidnet", "top2_margin", "msp", "entropy", "mc_dropout", "tcp", "emoconfidnet_tau", "recommended")
_TRAINING_ORDER = ("raw", "filtered")
_METRIC_NAMES = {"f1": "F1", "uar": "UAR", "coverage": "coverage", "precision": "Precision", "recall": "Recall"}
_RUN_KEYS = ["fold", "seed"]
_REJECTION_DECIMALS = 6  # 0.1 + 0.1 and 0.2 are one level


# ---------------------------------------------------------------------------------------------
# Names and labels
# ---------------------------------------------------------------------------------------------


def method_display_name(method: str) -> str:
    """`"emoconfidnet"` -> `"EmoConfidNet"`, `"top2_margin"` -> `"Baseline (top-2 margin)"`; others as given."""
    return METHOD_NAMES.get(method, method)


def rejection_label(rejection: float) -> str:
    """The paper's threshold name for a rejection fraction: 0.2 -> `"t20"`, 0.125 -> `"t12.5"`."""
    percent = round(float(rejection) * 100, _REJECTION_DECIMALS - 2)
    return f"t{percent:g}"


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """Known values in `order` first, then the others sorted."""
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))


def _methods(df: pd.DataFrame) -> list[str]:
    return _ordered(df["method"].unique(), _METHOD_ORDER)


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
    for column in ("training", "method", "class"):
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


# ---------------------------------------------------------------------------------------------
# Computing
# ---------------------------------------------------------------------------------------------


def rejection_curves(results: pd.DataFrame, *, metrics: Sequence[str] = ("f1", "uar", "coverage")) -> pd.DataFrame:
    """Mean and standard deviation over folds x seeds of each metric, per method, training and rejection.

    The data behind Fig. 2 (and `table1`); `plot_curves` draws it.

    Args:
        results: the protocol's results table (see the module docstring).
        metrics: columns of `results` to summarise, default `("f1", "uar", "coverage")`.

    Returns:
        DataFrame with one row per (method, training, rejection), ordered EmoConfidNet, baseline,
        others; raw before filtered; rejection ascending. Columns `method, training, rejection,
        n_runs` and `{metric}_mean`, `{metric}_std` (std NaN when `n_runs == 1`).
    """
    results = _checked(results, RESULTS_COLUMNS, "results")
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


def _table1_column(metric: str, method: str, training: str) -> str:
    return f"{metric} {method} ({training})"


def table1(results: pd.DataFrame, *, metrics: Sequence[str] = ("f1", "uar")) -> pd.DataFrame:
    """F1 and UAR against the rejection threshold, mean over folds and seeds (the numbers of Fig. 2).

    Args:
        results: the protocol's results table.
        metrics: metric columns to tabulate, default `("f1", "uar")`; `("coverage",)` gives coverage.

    Returns:
        DataFrame indexed by threshold `"t0", "t10", ...` (name `threshold`), one column per
        metric x method x training named `"{metric} {method} ({training})"`, e.g.
        `"f1 emoconfidnet (filtered)"`; metrics outermost, then methods, then raw before filtered.
    """
    curves = rejection_curves(results, metrics=metrics)
    return _wide(curves, metrics, _table1_column)


def _gain_percent(after, before):
    """Relative gain in % of `after` over `before` (scalars or aligned Series); NaN where `before` is 0."""
    if isinstance(before, pd.Series):
        return (after - before) / before.where(before != 0) * 100.0
    return (after - before) / before * 100.0 if before != 0 else math.nan


def relative_gains(results: pd.DataFrame, rejection: float = 0.2) -> pd.DataFrame:
    """F1 and UAR at t0 and at `rejection`, and the relative gains the paper quotes (Section 5.2).

    `gain = (metric at t20 - metric at t0) / metric at t0 * 100`, computed on the means over
    folds x seeds. At t0 every method has the same numbers (nothing is removed); the t0 reference
    of one run is the mean over the methods' t0 rows.

    Args:
        results: the protocol's results table.
        rejection: fraction, default 0.2 (t20).

    Returns:
        DataFrame with one row per (method, training) and columns `method, training, n_runs,
        f1_t0, f1_t20, f1_gain_pct, uar_t0, uar_t20, uar_gain_pct, coverage_t20` (the suffix
        follows `rejection_label(rejection)`). When some row has more than one run, also
        `{column}_std` for each of those: the standard deviation over folds x seeds of the per-run
        values (for gains: of each run's own relative gain).
    """
    results = _checked(results, RESULTS_COLUMNS, "results")
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

    Returns:
        DataFrame indexed by (`metric` in precision, recall, f1; `method` in `"no_rejection"`, then
        the methods), one column per class.
    """
    results = _checked(results, RESULTS_COLUMNS, "results")
    per_class = _checked(per_class, PER_CLASS_COLUMNS, "per_class")
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
        set(results["method"]) | set(at_level["method"]), _METHOD_ORDER
    )
    long = combined.melt(id_vars=["method", "class"], value_vars=metrics, var_name="metric")
    table = long.pivot_table(index=["metric", "method"], columns="class", values="value", aggfunc="mean", dropna=False)
    present = [m for m in method_order if m in set(combined["method"])]
    table = table.reindex(pd.MultiIndex.from_product([metrics, present], names=["metric", "method"]))
    table = table.reindex(columns=classes)
    table.columns.name = "class"
    return table


def removed_summary(results: pd.DataFrame, rejection: float = 0.2) -> pd.DataFrame:
    """How many test predictions each method removed at `rejection`, and how many of those were correct.

    The paper reports totals over one test split ("1,559 predictions were removed by the baseline,
    among which 477 are actually correct"). With cross-validation every sample is tested once per
    seed, so the totals here are sums over folds, averaged over seeds.

    Args:
        results: the protocol's results table.
        rejection: fraction, default 0.2 (t20).

    Returns:
        DataFrame with one row per (training, method) and columns `training, method, n_folds,
        n_seeds, removed_mean, removed_correct_mean` (per run), `n_test_total, removed_total,
        removed_correct_total` (sum over folds, mean over seeds) and `correct_fraction`
        (`removed_correct_total / removed_total`, NaN when nothing was removed).
    """
    results = _checked(results, RESULTS_COLUMNS, "results")
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


def plot_curves(results: pd.DataFrame, path: str | Path, *, title: str) -> Path:
    """Draws Fig. 2: (a) F1 and (b) UAR against the rejection threshold, and saves it atomically.

    One line per method x training: colour per method (EmoConfidNet red, the baseline green),
    solid for raw and dashed for filtered training (legend `-raw` / `-pre` as in the paper). Points
    are means over folds x seeds, with a shaded band of +-1 std when there is more than one run.
    Uses matplotlib's Agg canvas directly (no pyplot, no screen, no global backend change).

    Args:
        results: the protocol's results table.
        path: output file; the format follows the suffix (default PNG).
        title: figure title; name the corpus, and say "synthetic" for synthetic data.

    Returns:
        `Path(path)`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = rejection_curves(results, metrics=("f1", "uar"))
    path = Path(path)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    other_colors = iter(_OTHER_COLORS * 10)
    colors = {
        method: METHOD_COLORS.get(method) or next(other_colors) for method in _ordered(curves["method"], _METHOD_ORDER)
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


def summary_lines(results: pd.DataFrame, rejection: float = 0.2) -> list[str]:
    """A few terminal lines: F1 / UAR per threshold, method and training, then the gains at `rejection`."""
    curves = rejection_curves(results, metrics=("f1", "uar", "coverage"))
    n_runs = int(curves["n_runs"].max())
    cells = _wide(curves, ("f1",), lambda _, method, training: f"{method}/{training}")
    uar = _wide(curves, ("uar",), lambda _, method, training: f"{method}/{training}")
    table = cells.combine(uar, lambda f1, u: f1.map(lambda v: f"{v:.3f}") + " / " + u.map(lambda v: f"{v:.3f}"))
    table = table[cells.columns]
    table.index.name = None
    lines = [f"F1 / UAR by rejection threshold (mean over {n_runs} fold × seed run(s)):"]
    lines += table.to_string().splitlines()
    levels = set(curves["rejection"])
    level = round(float(rejection), _REJECTION_DECIMALS)
    if level in levels and 0.0 in levels and level != 0.0:
        gains = relative_gains(results, rejection)
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
    methods = [m for m in _METHOD_ORDER if m in predictions.columns] + [
        c for c in predictions.columns
        if c not in _METHOD_ORDER and c not in ("fold", "seed", "training", "id", "label", "predicted")
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
            ax.plot(coverage, risk, color=METHOD_COLORS.get(method) or next(other_colors),
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


def ranking_display(table: pd.DataFrame) -> pd.DataFrame:
    """The ranking with `mean [low, high]` cells and display names."""
    return pd.DataFrame({
        "training": table["training"],
        "method": table["method"].map(method_display_name),
        "F1 gain % at t20": [_interval(*r) for r in table[["f1_gain", "f1_gain_low", "f1_gain_high"]].to_numpy()],
        "UAR gain % at t20": [_interval(*r) for r in table[["uar_gain", "uar_gain_low", "uar_gain_high"]].to_numpy()],
        "AURC": [_interval(*r, ".3f") for r in table[["aurc", "aurc_low", "aurc_high"]].to_numpy()],
        "AUROC": [_interval(*r, ".3f") for r in table[["auroc", "auroc_low", "auroc_high"]].to_numpy()],
    })


def recommendation_paragraph(table: pd.DataFrame, comparison: pd.DataFrame | None, training: str) -> str:
    """A plain-language recommendation for one training set, generated from the ranking and the paired comparison."""
    part = table[table["training"] == training].set_index("method")
    if part.empty:
        return ""
    best_gain = part["f1_gain"].idxmax()
    best_aurc = part["aurc"].idxmin()
    over = part["ci_over"].iloc[0]
    text = [
        f"With the {training} training set, the largest t20 F1 gain comes from {method_display_name(best_gain)} "
        f"({_interval(*part.loc[best_gain, ['f1_gain', 'f1_gain_low', 'f1_gain_high']])} %, 95 % bootstrap interval "
        f"over {over}), and the lowest AURC (best ranking of errors last) from {method_display_name(best_aurc)} "
        f"({part.loc[best_aurc, 'aurc']:.3f})."
    ]
    if "emoconfidnet" in part.index and "top2_margin" in part.index:
        text.append(
            f"The paper's EmoConfidNet gains {part.loc['emoconfidnet', 'f1_gain']:.1f} % against "
            f"{part.loc['top2_margin', 'f1_gain']:.1f} % for the top-two margin."
        )
    if comparison is not None and not comparison.empty and "recommended" in part.index:
        rows = comparison[comparison["training"] == training].set_index("figure")
        f1, aurc_row = rows.loc["f1_gain"], rows.loc["aurc"]
        unit = "runs" if f1["ci_over"] == "runs" else "bootstrap resamples of the test utterances"
        if (rows[["mean_difference", "low", "high"]].abs() < 1e-12).all(axis=None):
            text.append("On validation the recommended score chose the top-two margin itself, so the two coincide "
                        "on test: use the top-two margin.")
            return " ".join(text)
        if f1["low"] > 0 and aurc_row["high"] <= 0:
            verdict = ("the recommended score is reliably better than the top-two margin here: use it "
                       "(its blend and weights were chosen on validation only)")
        elif f1["high"] < 0 or aurc_row["low"] > 0:
            verdict = "the top-two margin is better here: use it, it needs no extra training"
        else:
            verdict = ("the two cannot be told apart reliably on this data; the top-two margin is the simpler "
                       "choice, the recommended score the one tuned to this corpus")
        text.append(
            f"Recommended vs top-two margin: F1 gain difference {_interval(f1['mean_difference'], f1['low'], f1['high'])} "
            f"points (recommended better in {f1['a_better'] * 100:.0f} % of {unit}), AURC difference "
            f"{_interval(aurc_row['mean_difference'], aurc_row['low'], aurc_row['high'], '.3f')}; {verdict}."
        )
    return " ".join(text)


def _choice_counts(choices: pd.DataFrame) -> pd.DataFrame:
    return (choices.groupby(["training", "method", "choice"]).size().rename("runs").reset_index()
            .sort_values(["training", "method", "runs"], ascending=[True, True, False]))


def report_title(corpus_name: str, *, synthetic: bool) -> str:
    """The curves' title: names the corpus and says "synthetic" for synthetic data."""
    return f"{corpus_name} (synthetic data) — F1 and UAR against rejection threshold" if synthetic else (
        f"{corpus_name} — F1 and UAR against rejection threshold"
    )


def write_report(
    out_dir: str | Path,
    results: pd.DataFrame,
    per_class: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    corpus_name: str,
    synthetic: bool,
    class_names: Sequence[str],
    filter_counts: Mapping[str, int] | None = None,
    settings: Mapping[str, object] | None = None,
    rejection: float = 0.2,
    selective: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    choices: pd.DataFrame | None = None,
    n_boot: int = 1000,
) -> Path:
    """Writes `curves.png` and `report.md` into `out_dir`, each atomically.

    The report has: a header (corpus, a synthetic-data banner when `synthetic`, folds, seeds,
    sizes from `runs`, `settings`), Table 1 (F1 / UAR per threshold) and coverage, the relative
    gains at `rejection`, Table 2 (per class, filtered training, and raw when present), the
    removed / correctly-removed counts, the conflict filter's counts per rule, and the curves.
    Every number comes from the tables passed in.

    Args:
        out_dir: output directory, created if needed.
        results, per_class, runs: the protocol's tables.
        corpus_name: e.g. `"MSP-Podcast"`; goes into the title.
        synthetic: True when the data is generated, not a corpus; adds a banner and says so in the title.
        class_names: Table 2 column order.
        filter_counts: rows removed per conflict rule (`filtering.filter_counts`), or None.
        settings: protocol settings to list in the header, or None.
        rejection: the level analysed in detail, default 0.2 (t20, as in the paper).
        selective: the protocol's `selective.csv` table; with more than the paper's two methods the report
            gains a ranking of all methods with bootstrap intervals, a paired comparison of `recommended`
            with `top2_margin`, a generated recommendation and `risk_coverage.png`.
        predictions: the protocol's `predictions.csv` table (for intervals over test utterances and the
            risk-coverage curves).
        choices: the protocol's `choices.csv` table (what validation chose).
        n_boot: bootstrap resamples.

    Returns:
        Path of `report.md`.
    """
    results = _checked(results, RESULTS_COLUMNS, "results")
    per_class = _checked(per_class, PER_CLASS_COLUMNS, "per_class")
    runs = _checked(runs, RUNS_COLUMNS, "runs")
    level = _check_level(results, rejection, "results")
    label = rejection_label(level)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    title = report_title(corpus_name, synthetic=synthetic)
    plot_curves(results, out_dir / "curves.png", title=title)

    folds = sorted(results["fold"].unique())
    seeds = sorted(results["seed"].unique())
    trainings = _trainings(results)
    methods = _methods(results)
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
        f"- classes: {', '.join(map(str, class_names))}",
        "",
        "Sizes per run (mean over folds x seeds):",
        "",
        _markdown_table(_whole_as_int(_runs_summary(runs)), ".1f"),
        "",
    ]
    if settings:
        lines += ["Settings:", ""] + [f"- `{key}`: {value}" for key, value in settings.items()] + [""]

    display_column = lambda metric, method, training: (  # noqa: E731
        f"{_METRIC_NAMES[metric]} {method_display_name(method)} ({training})"
    )
    curves = rejection_curves(results)
    lines += [
        "## Table 1: F1 and UAR against the rejection threshold",
        "",
        "Mean over folds x seeds. tx is the threshold that removes x % of the validation predictions "
        "(lowest confidence first); t0 removes none.",
        "",
        _markdown_table(_wide(curves, ("f1", "uar"), display_column)),
        "",
        "Coverage (fraction of the test set kept):",
        "",
        _markdown_table(_wide(curves, ("coverage",), display_column)),
        "",
        f"## Relative gains at {label}",
        "",
    ]
    gains = relative_gains(results, level)
    lines += [s + "\n" for t in trainings if (s := _gains_sentence(gains, t, label))]
    lines += [_markdown_table(_gains_display(gains, label), index=False), ""]
    if "f1_gain_pct_std" in gains.columns:
        lines += [
            "Gains are computed on the means; ± is the standard deviation over folds × seeds of the per-run "
            "values (for gains: of each run's own relative gain).",
            "",
        ]

    for training in [t for t in ("filtered", "raw") if t in trainings] + [
        t for t in trainings if t not in ("filtered", "raw")
    ]:
        if training not in set(per_class["training"]):
            continue
        table = table2(results, per_class, level, training, class_names=class_names)
        table = table.rename(index=method_display_name, level="method").rename(index=_METRIC_NAMES, level="metric")
        lines += [
            f"## Table 2: per-class precision, recall and F1 at {label} ({training} training)",
            "",
            "Mean over folds x seeds; 'No rejection' is t0.",
            "",
            _markdown_table(table),
            "",
        ]

    summary = removed_summary(results, level)
    lines += [f"## Predictions removed at {label}", ""]
    lines += [s + "\n" for t in trainings if (s := _removed_sentence(summary, t, label))]
    summary_display = summary.assign(method=summary["method"].map(method_display_name))
    lines += [_markdown_table(_whole_as_int(summary_display.set_index(["training", "method"])), ".3f"), ""]

    lines += ["## Conflict filter (training set)", ""]
    if filter_counts:
        counts = pd.DataFrame({"rule": list(filter_counts), "rows removed": [int(v) for v in filter_counts.values()]})
        lines += [_markdown_table(counts, index=False), ""]
        lines += [f"Sum over rules: {int(counts['rows removed'].sum()):,} training rows.", ""]
    else:
        lines += ["No filter counts were given.", ""]

    if selective is not None and len(selective) and len(methods) > 2:
        lines += _ranking_lines(results, selective, predictions, choices, out_dir, title=corpus_name + (
            " (synthetic data)" if synthetic else ""), num_classes=len(class_names), rejection=level, n_boot=n_boot)

    lines += ["## Curves", "", "![curves](curves.png)", ""]
    return write_text(out_dir / "report.md", "\n".join(lines))


def _ranking_lines(results, selective, predictions, choices, out_dir: Path, *, title: str, num_classes: int,
                   rejection: float, n_boot: int) -> list[str]:
    from emoconf_tf.statistics import paired_comparison, ranking

    table = ranking(results, selective, predictions, num_classes=num_classes, rejection=rejection, n_boot=n_boot)
    methods = set(table["method"])
    comparison = None
    if {"recommended", "top2_margin"} <= methods:
        comparison = paired_comparison(results, selective, predictions, num_classes=num_classes,
                                       rejection=rejection, n_boot=n_boot)
    over = table["ci_over"].iloc[0]
    lines = [
        "## Which confidence to trust: every method ranked",
        "",
        f"Mean and 95 % bootstrap interval over {over} "
        + ("(folds × seeds)" if over == "runs" else "(test utterances of the single run, thresholds fixed)")
        + ". Gains are relative to t0, as in Table 1; AURC is the area under the risk-coverage curve (lower is "
        "better), AUROC separates correct from wrong predictions (higher is better). Sorted by F1 gain.",
        "",
        _markdown_table(ranking_display(table), index=False),
        "",
    ]
    if comparison is not None:
        shown = comparison.assign(
            figure=comparison["figure"].map({"f1_gain": "F1 gain (points)", "uar_gain": "UAR gain (points)",
                                             "aurc": "AURC", "auroc": "AUROC"}),
            difference=[_interval(m, lo, hi, ".3f") for m, lo, hi in
                        comparison[["mean_difference", "low", "high"]].to_numpy()],
            recommended_better=[f"{v * 100:.0f} %" if np.isfinite(v) else "n/a" for v in comparison["a_better"]],
        )[["training", "figure", "difference", "recommended_better", "ci_over"]]
        lines += ["### Paired comparison: recommended minus top-two margin", "", _markdown_table(shown, index=False), ""]
    if choices is not None and len(choices):
        lines += ["### What validation chose", "",
                  "`emoconfidnet_tau` picks the target temperature and `recommended` the score or blend with the "
                  "lowest validation AURC; the test split plays no part.", "",
                  _markdown_table(_choice_counts(choices), index=False), ""]
    lines += ["### Recommendation", ""]
    lines += [p + "\n" for t in _ordered(table["training"].unique(), _TRAINING_ORDER)
              if (p := recommendation_paragraph(table, comparison, t))]
    if predictions is not None and len(predictions):
        plot_risk_coverage(predictions, out_dir / "risk_coverage.png", title=f"{title} — risk against coverage")
        lines += ["![risk-coverage](risk_coverage.png)", ""]
    return lines
