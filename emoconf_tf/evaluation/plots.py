"""The paper's Fig. 2 (F1 and UAR against the rejection threshold) and risk-coverage curves, drawn from computed
tables (`tables.rejection_curves`, `report_tables.risk_coverage_curves`) with matplotlib's Agg canvas (no pyplot, no
screen) and saved atomically. Computing is theirs, drawing is this module's (as scikit-learn's `calibration_curve`
and `CalibrationDisplay`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emoconf_tf.atomic import atomic_path
from emoconf_tf.evaluation.protocol_tables import REJECTION_DECIMALS
from emoconf_tf.evaluation.tables import (
    METRIC_NAMES,
    method_display_name,
    ordered,
    rejection_curves,
)
from emoconf_tf.scores import METHODS, method_names

# Each registered method has its colour (the paper's Fig. 2: EmoConfidNet red, the baseline green); a method column
# that is not registered in this process takes the rest.
_OTHER_COLORS = ("tab:blue", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
TRAINING_LINESTYLES = {"raw": "-", "filtered": "--"}
# Fig. 2 legend suffixes: '-raw' for the raw training set, '-pre' for the preprocessed (filtered) one.
TRAINING_SUFFIXES = {"raw": "raw", "filtered": "pre"}


def _method_color(method: str) -> str | None:
    return METHODS[method].color if method in METHODS else None


def _curve_label(method: str, training: str) -> str:
    return f"{method_display_name(method)}-{TRAINING_SUFFIXES.get(training, training)}"


def plot_curves(results: pd.DataFrame, path: str | Path, *, title: str, rejection_mode: str | None = "global") -> Path:
    """Draws Fig. 2: (a) F1 and (b) UAR against the rejection threshold, and saves it atomically.

    `rejection_curves` of `results`, drawn by `plot_rejection_curves`: one line per method x training, colour per
    method (EmoConfidNet red, the baseline green), solid for raw and dashed for filtered training (legend `-raw` /
    `-pre` as in the paper), means over folds x seeds with a band of +-1 std when there is more than one run.

    Args:
        results: the protocol's results table.
        path: output file; the format follows the suffix (default PNG).
        title: figure title; name the corpus, and say "synthetic" for synthetic data (`report_title`).
        rejection_mode: `"global"` (default: the paper's view, with `recommended` in the mode it chose),
            `"per_class"` (`rejection_view`), or None when `results` already holds one mode per method.

    Returns:
        `Path(path)`.
    """
    curves = rejection_curves(results, metrics=("f1", "uar"), rejection_mode=rejection_mode)
    return plot_rejection_curves(curves, path, title=title)


def plot_rejection_curves(curves: pd.DataFrame, path: str | Path, *, title: str) -> Path:
    """Draws Fig. 2 from computed curves: (a) F1 and (b) UAR against the rejection threshold; saves it atomically.

    One line per method x training: colour per method (EmoConfidNet red, the baseline green),
    solid for raw and dashed for filtered training (legend `-raw` / `-pre` as in the paper). Points
    are means over folds x seeds, with a shaded band of +-1 std when there is more than one run.
    Uses matplotlib's Agg canvas directly (no pyplot, no screen, no global backend change).

    Args:
        curves: a `tables.rejection_curves` table with the `f1` and `uar` metrics (columns `method, training,
            rejection, n_runs, f1_mean, f1_std, uar_mean, uar_std`; other metrics are ignored).
        path: output file; the format follows the suffix (default PNG).
        title: figure title; name the corpus, and say "synthetic" for synthetic data (`report_title`).

    Returns:
        `Path(path)`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    other_colors = iter(_OTHER_COLORS * 10)
    colors = {
        method: _method_color(method) or next(other_colors) for method in ordered(curves["method"], method_names())
    }
    percents = sorted({round(r * 100, REJECTION_DECIMALS - 2) for r in curves["rejection"]})
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
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.set_title(f"({letter}) {METRIC_NAMES[metric]} against threshold level")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    n_runs = int(curves["n_runs"].max())
    band = "; band: ±1 std over folds × seeds" if n_runs > 1 else ""
    fig.suptitle(f"{title}\n(mean over {n_runs} run(s){band})", fontsize="medium")
    suffix = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=120)
    return path


def plot_risk_coverage(curves: pd.DataFrame, path: str | Path, *, title: str) -> Path:
    """Draws risk (error rate of the kept predictions) against coverage from computed curves, one panel per
    training, one line per method (`recommended` thicker), and saves it atomically.

    Args:
        curves: a `report_tables.risk_coverage_curves` table (columns `training, method, coverage, risk`; the test
            predictions of every run pooled), drawn in its order of trainings and methods.
        path: output file; the format follows the suffix (default PNG).
        title: figure title.

    Returns:
        `Path(path)`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    trainings = list(dict.fromkeys(curves["training"]))
    fig = Figure(figsize=(5.5 * len(trainings), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(trainings)))
    other_colors = iter(_OTHER_COLORS * 10)
    for ax, training in zip(axes, trainings):
        part = curves[curves["training"] == training]
        for method, curve in part.groupby("method", sort=False):
            ax.plot(curve["coverage"].to_numpy(), curve["risk"].to_numpy(),
                    color=_method_color(method) or next(other_colors),
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
