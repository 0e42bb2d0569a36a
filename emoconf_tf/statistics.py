"""Uncertainty of the protocol's figures: bootstrap confidence intervals, a ranking of the confidence
scores, and a paired comparison of two scores.

With several runs (folds x seeds) the bootstrap resamples runs; with a single run it resamples the
test utterances of that run (thresholds stay those set on validation). Percentile intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from emoconf_tf.errors import EmoconfError

RUN_KEYS = ["fold", "seed"]


def bootstrap_mean_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of `values` `[n]` and its percentile bootstrap interval `(mean, low, high)`.

    A single value gives `(value, value, value)`; NaNs are dropped.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"),) * 3
    mean = float(values.mean())
    if values.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)


def macro_f1_uar(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[float, float]:
    """The paper's F1 (2PR/(P+R) of macro P and R) and UAR, by counting; same as `metrics.selective_scores`."""
    hits = np.bincount(y_true[y_true == y_pred], minlength=num_classes)
    predicted = np.bincount(y_pred, minlength=num_classes)
    actual = np.bincount(y_true, minlength=num_classes)
    precision = np.divide(hits, predicted, out=np.zeros(num_classes), where=predicted > 0).mean()
    recall = np.divide(hits, actual, out=np.zeros(num_classes), where=actual > 0).mean()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(f1), float(recall)


def _aurc_auroc(correct: np.ndarray, confidence: np.ndarray) -> tuple[float, float]:
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order])
    aurc = float((errors / np.arange(1, correct.size + 1)).mean())
    n_pos, n_neg = int(correct.sum()), int((~correct).sum())
    if n_pos == 0 or n_neg == 0:
        return aurc, float("nan")
    ranks = rankdata(confidence)
    auroc = (ranks[correct].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return aurc, float(auroc)


def per_run_figures(results: pd.DataFrame, selective: pd.DataFrame, rejection: float = 0.2) -> pd.DataFrame:
    """One row per run, training and method: relative F1/UAR gain (%) at `rejection` vs t0, AURC, AUROC."""
    level = results[np.isclose(results.rejection, rejection)]
    base = results[results.rejection == 0].set_index(RUN_KEYS + ["training", "method"])[["f1", "uar"]]
    if level.empty:
        raise EmoconfError(f"no results at rejection {rejection}")
    level = level.set_index(RUN_KEYS + ["training", "method"])[["f1", "uar"]]
    figures = pd.DataFrame({
        "f1_gain": (level.f1 / base.f1.reindex(level.index) - 1.0) * 100.0,
        "uar_gain": (level.uar / base.uar.reindex(level.index) - 1.0) * 100.0,
    })
    figures = figures.join(selective.set_index(RUN_KEYS + ["training", "method"])[["aurc", "auroc"]])
    return figures.reset_index()


def utterance_bootstrap(
    predictions: pd.DataFrame, results: pd.DataFrame, *, num_classes: int, rejection: float = 0.2,
    n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Bootstrap over the test utterances of each run: `n_boot` rows per run, training and method.

    Each resample draws test rows with replacement (the same rows for every method, so differences
    are paired) and recomputes the F1/UAR gain at `rejection` with the run's validation thresholds,
    the AURC and the AUROC. Columns: fold, seed, training, method, boot, f1_gain, uar_gain, aurc, auroc.
    """
    thresholds = results[np.isclose(results.rejection, rejection)].set_index(RUN_KEYS + ["training", "method"]).threshold
    rows = []
    for (fold, seed_, training), run in predictions.groupby(RUN_KEYS + ["training"], sort=True):
        rng = np.random.default_rng(seed)
        y_true = run.label.to_numpy()
        y_pred = run.predicted.to_numpy()
        methods = [m for m in run.columns if (fold, seed_, training, m) in thresholds.index]
        samples = rng.integers(0, len(run), size=(n_boot, len(run)))
        for b, index in enumerate(samples):
            t, p = y_true[index], y_pred[index]
            f1_0, uar_0 = macro_f1_uar(t, p, num_classes)
            for method in methods:
                confidence = run[method].to_numpy()[index]
                kept = confidence >= thresholds[(fold, seed_, training, method)]
                f1, uar = macro_f1_uar(t[kept], p[kept], num_classes) if kept.any() else (0.0, 0.0)
                aurc, auroc = _aurc_auroc(t == p, confidence)
                rows.append((fold, seed_, training, method, b,
                             (f1 / f1_0 - 1) * 100 if f1_0 else np.nan, (uar / uar_0 - 1) * 100 if uar_0 else np.nan,
                             aurc, auroc))
    return pd.DataFrame(rows, columns=RUN_KEYS + ["training", "method", "boot", "f1_gain", "uar_gain", "aurc", "auroc"])


FIGURES = ("f1_gain", "uar_gain", "aurc", "auroc")


def ranking(
    results: pd.DataFrame, selective: pd.DataFrame, predictions: pd.DataFrame | None, *, num_classes: int,
    rejection: float = 0.2, n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Every method's figures with 95 % bootstrap intervals, per training, best t20 F1 gain first.

    Columns: training, method, n_runs, ci_over ("runs" or "utterances"), and for each of f1_gain,
    uar_gain, aurc, auroc: the mean and `<figure>_low`, `<figure>_high`.
    """
    per_run = per_run_figures(results, selective, rejection)
    n_runs = per_run.groupby(RUN_KEYS).ngroups
    rows = []
    boot = None
    if n_runs == 1 and predictions is not None and len(predictions):
        boot = utterance_bootstrap(predictions, results, num_classes=num_classes, rejection=rejection,
                                   n_boot=n_boot, seed=seed)
    for (training, method), group in per_run.groupby(["training", "method"], sort=False):
        row = {"training": training, "method": method, "n_runs": len(group),
               "ci_over": "utterances" if boot is not None else "runs"}
        for figure in FIGURES:
            if boot is not None:
                values = boot[(boot.training == training) & (boot.method == method)][figure].to_numpy()
                mean = float(group[figure].mean())
                finite = values[np.isfinite(values)]
                low, high = (np.quantile(finite, [0.025, 0.975]) if finite.size else (np.nan, np.nan))
            else:
                mean, low, high = bootstrap_mean_ci(group[figure].to_numpy(), n_boot=n_boot, seed=seed)
            row.update({figure: mean, f"{figure}_low": float(low), f"{figure}_high": float(high)})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["training", "f1_gain"], ascending=[True, False], kind="stable").reset_index(drop=True)


def paired_comparison(
    results: pd.DataFrame, selective: pd.DataFrame, predictions: pd.DataFrame | None, *, num_classes: int,
    a: str = "recommended", b: str = "top2_margin", rejection: float = 0.2, n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Difference `a - b` per training for each figure, paired by run (or by bootstrap resample for one run).

    Columns: training, figure, mean_difference, low, high, a_better (fraction of runs or resamples where
    `a` is better: higher gain or AUROC, lower AURC), ci_over.
    """
    per_run = per_run_figures(results, selective, rejection)
    if not {a, b} <= set(per_run.method):
        raise EmoconfError(f"paired comparison needs methods {a} and {b}; found {sorted(set(per_run.method))}")
    n_runs = per_run.groupby(RUN_KEYS).ngroups
    if n_runs == 1 and predictions is not None and len(predictions):
        source = utterance_bootstrap(predictions[[*RUN_KEYS, "training", "id", "label", "predicted", a, b]], results,
                                     num_classes=num_classes, rejection=rejection, n_boot=n_boot, seed=seed)
        keys, ci_over = RUN_KEYS + ["training", "boot"], "utterances"
    else:
        source, keys, ci_over = per_run, RUN_KEYS + ["training"], "runs"
    wide = source.pivot_table(index=keys, columns="method", values=list(FIGURES))
    rows = []
    for training in sorted(source.training.unique()):
        part = wide.xs(training, level="training")
        for figure in FIGURES:
            diff = (part[(figure, a)] - part[(figure, b)]).to_numpy()
            diff = diff[np.isfinite(diff)]
            if ci_over == "runs":
                mean, low, high = bootstrap_mean_ci(diff, n_boot=n_boot, seed=seed)
            else:
                mean = float(per_run[(per_run.training == training) & (per_run.method == a)][figure].mean()
                             - per_run[(per_run.training == training) & (per_run.method == b)][figure].mean())
                low, high = (np.quantile(diff, [0.025, 0.975]) if diff.size else (np.nan, np.nan))
            better = diff < 0 if figure == "aurc" else diff > 0
            rows.append({"training": training, "figure": figure, "mean_difference": mean, "low": float(low),
                         "high": float(high), "a_better": float(better.mean()) if diff.size else np.nan,
                         "ci_over": ci_over})
    return pd.DataFrame(rows)
