"""Uncertainty of the protocol's figures: bootstrap confidence intervals, a ranking of the confidence
scores, and a paired comparison of two scores.

Every figure is keyed by method *and* rejection mode (`"global"`, the paper's one threshold, or
`"per_class"`, one threshold per predicted class; `emoconf_tf.thresholds`): a method is evaluated in
each mode, except `recommended`, which has one mode per run, the one validation chose.

With several runs (folds x seeds) the bootstrap resamples runs; with a single run it resamples the
test utterances of that run (thresholds stay those set on validation: the global one from
`results`, the per-class ones from `per_class`). Percentile intervals; the resampling is
`scipy.stats.bootstrap`'s, the figures those of `emoconf_tf.metrics` and `emoconf_tf.selective`.

Every figure comes from the rows of validation thresholds (`protocol_tables.threshold_source_view`), except those of
`operating_point`, which compares the threshold sources.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import DegenerateDataWarning, bootstrap

from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.protocol_tables import (
    CHOSEN_MODE_METHODS,
    PER_CLASS_COLUMNS,
    RESULTS_COLUMNS,
    SELECTIVE_COLUMNS,
    VALIDATION_CHOICE,
    checked_table,
)
from emoconf_tf.metrics import macro_f1_uar
from emoconf_tf.selective import aurc, auroc, balanced_aurc
from emoconf_tf.thresholds import REJECTION_MODES, accept

RUN_KEYS = ["fold", "seed"]
FIGURE_KEYS = RUN_KEYS + ["training", "method", "rejection_mode"]
"""One per-run figure per run, training, method and rejection mode."""
FIGURES = ("f1_gain", "uar_gain", "aurc", "aurc_balanced", "auroc")
LOWER_IS_BETTER = ("aurc", "aurc_balanced")
_RANKING_FIGURES = ("aurc", "aurc_balanced", "auroc")  # of the confidence itself: the same in every mode


def bootstrap_mean_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of `values` `[n]` and its percentile bootstrap interval `(mean, low, high)` (`scipy.stats.bootstrap`,
    `n_boot` resamples seeded by `seed`, interval at confidence `level`).

    A single value gives `(value, value, value)`; NaNs are dropped.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"),) * 3
    mean = float(values.mean())
    if values.size == 1:
        return mean, mean, mean
    interval = bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile",
                         random_state=np.random.default_rng(seed)).confidence_interval
    return mean, float(interval.low), float(interval.high)


def per_run_figures(results: pd.DataFrame, selective: pd.DataFrame, rejection: float = 0.2) -> pd.DataFrame:
    """One row per run, training, method and rejection mode: F1 and UAR at t0, their relative gains (%) at
    `rejection` vs t0, and the confidence's AURC, balanced AURC and AUROC (from `selective`, the same in every mode).

    Columns: fold, seed, training, method, rejection_mode, f1_t0, uar_t0, f1_gain, uar_gain, aurc, aurc_balanced,
    auroc.
    """
    results = checked_table(results, RESULTS_COLUMNS, "results")
    selective = checked_table(selective, SELECTIVE_COLUMNS, "selective")
    level = round(float(rejection), 6)
    at_level = results[results.rejection == level]
    if at_level.empty:
        raise EmoconfError(f"no results at rejection {rejection}")
    repeated = at_level.duplicated(FIGURE_KEYS, keep=False)
    if repeated.any():
        first = at_level[repeated].iloc[0]
        raise EmoconfError(f"results has more than one row for {', '.join(f'{k}={first[k]}' for k in FIGURE_KEYS)} "
                           f"at rejection {rejection}")
    at_level = at_level.set_index(FIGURE_KEYS)[["f1", "uar"]]
    base = results[results.rejection == 0].drop_duplicates(FIGURE_KEYS).set_index(FIGURE_KEYS)[["f1", "uar"]]
    base = base.reindex(at_level.index)
    if base.isna().any(axis=None):
        missing = base.index[base.isna().any(axis=1)][0]
        raise EmoconfError(f"results has no rejection-0 row for {dict(zip(FIGURE_KEYS, missing))}")
    figures = pd.DataFrame({
        "f1_t0": base.f1,
        "uar_t0": base.uar,
        "f1_gain": (at_level.f1 / base.f1 - 1.0) * 100.0,
        "uar_gain": (at_level.uar / base.uar - 1.0) * 100.0,
    }).reset_index()
    ranking_figures = selective[RUN_KEYS + ["training", "method", *_RANKING_FIGURES]].drop_duplicates(
        RUN_KEYS + ["training", "method"])
    return figures.merge(ranking_figures, on=RUN_KEYS + ["training", "method"], how="left")


def _thresholds(results: pd.DataFrame, per_class: pd.DataFrame | None, level: float, num_classes: int,
                class_names: Sequence[str] | None) -> dict[tuple, float | np.ndarray]:
    """The validation thresholds at `level` of every (fold, seed, training, method, rejection_mode): a float
    (global, `results.threshold`) or float `[K]` by class id (per class, `per_class.threshold`)."""
    at_level = results[results.rejection == level]
    thresholds: dict[tuple, float | np.ndarray] = {}
    for row in at_level[at_level.rejection_mode == "global"][FIGURE_KEYS + ["threshold"]].itertuples(index=False):
        thresholds[tuple(row[:-1])] = float(row[-1])
    wanted = at_level[at_level.rejection_mode == "per_class"]
    if wanted.empty:
        return thresholds
    if per_class is None:
        raise EmoconfError(f"results has per_class rows at rejection {level:g}: the utterance bootstrap needs their "
                           "thresholds; pass the per_class table (per_class.csv)")
    per_class = checked_table(per_class, PER_CLASS_COLUMNS, "per_class")
    names = [str(c) for c in class_names] if class_names is not None else list(dict.fromkeys(per_class["class"]))
    if len(names) != num_classes:
        raise EmoconfError(f"per_class names {len(names)} classes ({', '.join(names)}) but num_classes is "
                           f"{num_classes}; pass class_names in class-id order")
    rows = per_class[(per_class.rejection == level) & (per_class.rejection_mode == "per_class")]
    by_key = {key: group for key, group in rows.groupby(FIGURE_KEYS, sort=False)}
    for key in wanted[FIGURE_KEYS].itertuples(index=False):
        key = tuple(key)
        group = by_key.get(key)
        values = (group.drop_duplicates("class").set_index("class").threshold.reindex(names)
                  if group is not None else pd.Series(np.nan, index=names))
        if values.isna().any():
            raise EmoconfError(
                f"per_class has no threshold at rejection {level:g} for class(es) "
                f"{', '.join(values.index[values.isna()])} of {dict(zip(FIGURE_KEYS, key))}"
            )
        thresholds[key] = values.to_numpy(np.float64)
    return thresholds


def utterance_bootstrap(
    predictions: pd.DataFrame, results: pd.DataFrame, per_class: pd.DataFrame | None = None, *, num_classes: int,
    class_names: Sequence[str] | None = None, rejection: float = 0.2, n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Bootstrap over the test utterances of each run: `n_boot` rows per run, training, method and rejection mode.

    Each resample (`scipy.stats.bootstrap`) draws test rows with replacement (the same rows for every method and
    mode, so differences are paired) and recomputes the F1/UAR gain at `rejection` with the run's validation
    thresholds, and the confidence's AURC, balanced AURC and AUROC. In global mode the threshold is
    `results.threshold`; in per-class mode a prediction of class `c` is kept when its confidence is >=
    `per_class.threshold` of class `c`.

    Args:
        predictions: the protocol's `predictions.csv` (fold, seed, training, id, label, predicted, one confidence
            column per method; `label` and `predicted` are class ids).
        results: the protocol's `results.csv`; its rows at `rejection` say which (method, mode) to resample.
        per_class: the protocol's `per_class.csv`, for the per-class thresholds; needed when `results` has
            per_class rows.
        num_classes: K.
        class_names: the class names of ids 0..K-1 as `per_class` spells them; default the order in which
            `per_class` first lists them (the protocol's order, class-id order).
        rejection: fraction, default 0.2; n_boot: resamples; seed: seeds the resampling.

    Returns:
        DataFrame with columns fold, seed, training, method, rejection_mode, boot, f1_gain, uar_gain, aurc,
        aurc_balanced, auroc.
    """
    results = checked_table(results, RESULTS_COLUMNS, "results")
    level = round(float(rejection), 6)
    thresholds = _thresholds(results, per_class, level, num_classes, class_names)
    by_run: dict[tuple, list[tuple[str, str, float | np.ndarray]]] = {}
    for (fold, seed_, training, method, mode), threshold in thresholds.items():
        by_run.setdefault((fold, seed_, training), []).append((method, mode, threshold))
    columns = FIGURE_KEYS + ["boot", *FIGURES]
    frames = []
    for (fold, seed_, training), run in predictions.groupby(RUN_KEYS + ["training"], sort=True):
        entries = [e for e in by_run.get((fold, seed_, training), []) if e[0] in run.columns]
        if not entries:
            continue
        if len(run) < 2:
            raise EmoconfError(f"fold {fold}, seed {seed_}, {training}: {len(run)} test prediction(s); the utterance "
                               "bootstrap needs at least 2")
        methods = list(dict.fromkeys(method for method, _, _ in entries))
        confidences = {method: run[method].to_numpy(np.float64) for method in methods}
        y_true = run.label.to_numpy()
        y_pred = run.predicted.to_numpy()

        def figures(rows: np.ndarray) -> np.ndarray:
            """float `[E * 5]`: each entry's `FIGURES` on the test rows at positions `rows`."""
            t, p = y_true[rows], y_pred[rows]
            f1_0, uar_0 = macro_f1_uar(t, p, num_classes)
            ranked = {method: (aurc(t == p, confidences[method][rows]),
                               balanced_aurc(t, p, confidences[method][rows]),
                               auroc(t == p, confidences[method][rows])) for method in methods}
            out = []
            for method, _, threshold in entries:
                kept = accept(confidences[method][rows], threshold, p)
                f1, uar = macro_f1_uar(t[kept], p[kept], num_classes)
                out.append(((f1 / f1_0 - 1) * 100 if f1_0 else np.nan, (uar / uar_0 - 1) * 100 if uar_0 else np.nan,
                            *ranked[method]))
            return np.ravel(out)

        # The statistic resamples row positions, so every array (labels, predictions, each confidence) moves together.
        # Only the resamples are kept; scipy's own interval is NaN (and warns) when a resample has no F1 at t0.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            resampled = bootstrap((np.arange(len(run)),), figures, n_resamples=n_boot, vectorized=False,
                                  method="percentile", random_state=np.random.default_rng(seed))
        distribution = resampled.bootstrap_distribution.reshape(len(entries), len(FIGURES), n_boot)
        for (method, mode, _), values in zip(entries, distribution):
            frames.append(pd.DataFrame({**dict(zip(FIGURE_KEYS, (fold, seed_, training, method, mode))),
                                        "boot": np.arange(n_boot), **dict(zip(FIGURES, values))}))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _ranking_mode(frame: pd.DataFrame) -> pd.Series:
    """The ranking's mode of each row: its rejection mode, or `VALIDATION_CHOICE` for `recommended`."""
    return frame.rejection_mode.where(~frame.method.isin(CHOSEN_MODE_METHODS), VALIDATION_CHOICE)


def _chosen_modes(modes: pd.Series) -> str:
    """`"global ×2, per_class ×1"`: how often validation chose each mode."""
    counts = modes.value_counts()
    order = [m for m in REJECTION_MODES if m in counts.index] + sorted(set(counts.index) - set(REJECTION_MODES))
    return ", ".join(f"{mode} ×{counts[mode]}" for mode in order)


def ranking(
    results: pd.DataFrame, selective: pd.DataFrame, predictions: pd.DataFrame | None,
    per_class: pd.DataFrame | None = None, *, num_classes: int, class_names: Sequence[str] | None = None,
    rejection: float = 0.2, n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Every (method, rejection mode)'s figures with 95 % bootstrap intervals, per training, best F1 gain first.

    `recommended` is one row, whatever mode validation chose in each run: its `rejection_mode` is
    `VALIDATION_CHOICE` and `chosen_modes` counts the runs per mode (e.g. `"global ×2, per_class ×1"`).

    Args:
        results, selective: the protocol's tables.
        predictions: the protocol's `predictions.csv`, or None; with a single run, the intervals resample its test
            utterances (`utterance_bootstrap`), else they resample runs.
        per_class: the protocol's `per_class.csv` (the per-class thresholds for `utterance_bootstrap`).
        num_classes: K; class_names: as for `utterance_bootstrap`.
        rejection: fraction, default 0.2; n_boot: resamples; seed: seeds the bootstrap.

    Returns:
        DataFrame with columns training, method, rejection_mode, chosen_modes, n_runs, ci_over ("runs" or
        "utterances"), f1_t0, uar_t0 (means over runs), and for each of f1_gain, uar_gain, aurc, aurc_balanced,
        auroc: the mean and `<figure>_low`, `<figure>_high`.
    """
    per_run = per_run_figures(results, selective, rejection)
    per_run = per_run.assign(ranking_mode=_ranking_mode(per_run))
    n_runs = per_run.groupby(RUN_KEYS).ngroups
    rows = []
    boot = None
    if n_runs == 1 and predictions is not None and len(predictions):
        boot = utterance_bootstrap(predictions, results, per_class, num_classes=num_classes, class_names=class_names,
                                   rejection=rejection, n_boot=n_boot, seed=seed)
        boot = boot.assign(ranking_mode=_ranking_mode(boot))
    for (training, method, mode), group in per_run.groupby(["training", "method", "ranking_mode"], sort=False):
        row = {"training": training, "method": method, "rejection_mode": mode,
               "chosen_modes": _chosen_modes(group.rejection_mode) if mode == VALIDATION_CHOICE else "",
               "n_runs": len(group), "ci_over": "utterances" if boot is not None else "runs",
               "f1_t0": float(group.f1_t0.mean()), "uar_t0": float(group.uar_t0.mean())}
        if boot is not None:
            resampled = boot[(boot.training == training) & (boot.method == method) & (boot.ranking_mode == mode)]
        for figure in FIGURES:
            if boot is not None:
                values = resampled[figure].to_numpy()
                mean = float(group[figure].mean())
                finite = values[np.isfinite(values)]
                low, high = (np.quantile(finite, [0.025, 0.975]) if finite.size else (np.nan, np.nan))
            else:
                mean, low, high = bootstrap_mean_ci(group[figure].to_numpy(), n_boot=n_boot, seed=seed)
            row.update({figure: mean, f"{figure}_low": float(low), f"{figure}_high": float(high)})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["training", "f1_gain"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _side(frame: pd.DataFrame, method: str, mode: str | None, role: str) -> pd.DataFrame:
    """The rows of `method` (in `mode`, or all of them when None), one per run and training (and resample)."""
    rows = frame[frame.method == method]
    if mode is not None:
        rows = rows[rows.rejection_mode == mode]
    if rows.empty:
        pairs = sorted(set(zip(frame.method, frame.rejection_mode)))
        raise EmoconfError(f"paired comparison needs rows of {method}" + (f" in rejection mode {mode}" if mode else "")
                           + f"; found (method, mode) {pairs}")
    keys = [k for k in RUN_KEYS + ["training", "boot"] if k in rows.columns]
    if rows.duplicated(keys).any():
        modes = ", ".join(sorted(set(rows.rejection_mode)))
        raise EmoconfError(f"{method} has rows in several rejection modes per run ({modes}); "
                           f"choose one with {role}_mode")
    return rows.set_index(keys)


def paired_comparison(
    results: pd.DataFrame, selective: pd.DataFrame, predictions: pd.DataFrame | None,
    per_class: pd.DataFrame | None = None, *, num_classes: int, class_names: Sequence[str] | None = None,
    a: str = "recommended",
    b: str = "top2_margin", a_mode: str | None = None, b_mode: str | None = "global", rejection: float = 0.2,
    n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Difference `a - b` per training for each figure, paired by run (or by bootstrap resample for one run).

    Args:
        results, selective, predictions, per_class: as for `ranking`.
        num_classes, class_names: as for `utterance_bootstrap`.
        a, b: the methods compared, default `recommended` minus `top2_margin`.
        a_mode, b_mode: their rejection modes; None takes all of a method's rows, which must be one per run
            (`recommended`, in the mode validation chose). Default: `a` as it is, `b` with the paper's global
            threshold.
        rejection: fraction, default 0.2; n_boot: resamples; seed: seeds the bootstrap.

    Returns:
        DataFrame with columns training, figure, mean_difference, low, high, a_better (fraction of runs or
        resamples where `a` is better: higher gain or AUROC, lower AURC or balanced AURC), ci_over.
    """
    per_run = per_run_figures(results, selective, rejection)
    a_runs, b_runs = _side(per_run, a, a_mode, "a"), _side(per_run, b, b_mode, "b")
    n_runs = per_run.groupby(RUN_KEYS).ngroups
    if n_runs == 1 and predictions is not None and len(predictions):
        checked = checked_table(results, RESULTS_COLUMNS, "results")
        wanted = pd.Series(False, index=checked.index)
        for method, mode in ((a, a_mode), (b, b_mode)):
            wanted |= (checked.method == method) & ((checked.rejection_mode == mode) if mode else True)
        columns = list(dict.fromkeys([*RUN_KEYS, "training", "id", "label", "predicted", a, b]))
        source = utterance_bootstrap(predictions[columns], checked[wanted], per_class, num_classes=num_classes,
                                     class_names=class_names, rejection=rejection, n_boot=n_boot, seed=seed)
        a_source, b_source, ci_over = _side(source, a, a_mode, "a"), _side(source, b, b_mode, "b"), "utterances"
    else:
        a_source, b_source, ci_over = a_runs, b_runs, "runs"
    rows = []
    trainings = set(a_source.index.get_level_values("training")) & set(b_source.index.get_level_values("training"))
    for training in sorted(trainings):
        part_a = a_source.xs(training, level="training")
        part_b = b_source.xs(training, level="training").reindex(part_a.index)
        for figure in FIGURES:
            diff = (part_a[figure] - part_b[figure]).to_numpy(np.float64)
            diff = diff[np.isfinite(diff)]
            if ci_over == "runs":
                mean, low, high = bootstrap_mean_ci(diff, n_boot=n_boot, seed=seed)
            else:
                mean = float(a_runs.xs(training, level="training")[figure].mean()
                             - b_runs.xs(training, level="training")[figure].mean())
                low, high = (np.quantile(diff, [0.025, 0.975]) if diff.size else (np.nan, np.nan))
            better = diff < 0 if figure in LOWER_IS_BETTER else diff > 0
            rows.append({"training": training, "figure": figure, "mean_difference": mean, "low": float(low),
                         "high": float(high), "a_better": float(better.mean()) if diff.size else np.nan,
                         "ci_over": ci_over})
    return pd.DataFrame(rows, columns=["training", "figure", "mean_difference", "low", "high", "a_better", "ci_over"])


def operating_point(results: pd.DataFrame, rejection: float = 0.2, *, n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """How well each (method, rejection mode) keeps its operating point on test, per threshold source: the coverage
    error with a 95 % bootstrap interval over runs, and the F1 / UAR relative gains at `rejection`.

    Args:
        results: the protocol's results table with every threshold source (`threshold_source` column; a table
            without it holds validation rows only).
        rejection: fraction, default 0.2 (t20), for the gains.
        n_boot: bootstrap resamples; seed: seeds them.

    Returns:
        DataFrame with one row per training, method and rejection mode (`recommended`: one row, its rejection mode
        `VALIDATION_CHOICE`), in the report's order, and columns training, method, rejection_mode, n_runs, then for
        each threshold source `s` present, in `THRESHOLD_SOURCES` order: `coverage_error_<s>` (mean over runs of
        `tables.coverage_errors`), `coverage_error_<s>_low`, `coverage_error_<s>_high` (`bootstrap_mean_ci`; the
        mean itself for one run), and `f1_gain_<s>`, `uar_gain_<s>` (`tables.relative_gains`, in %: computed on the
        means over runs, as the report's gains are).
    """
    from emoconf_tf.evaluation.protocol_tables import rejection_view
    from emoconf_tf.evaluation.tables import (
        TRAINING_ORDER,
        coverage_errors,
        ordered,
        relative_gains,
    )
    from emoconf_tf.scores import method_names
    from emoconf_tf.thresholds import THRESHOLD_SOURCES

    results = checked_table(results, RESULTS_COLUMNS, "results", threshold_source=None)
    if "threshold_source" not in results.columns:
        results = results.assign(threshold_source="validation")
    sources = [s for s in THRESHOLD_SOURCES if s in set(results.threshold_source)]
    errors = coverage_errors(results)
    errors = errors.assign(ranking_mode=_ranking_mode(errors))
    gains: dict[tuple, dict[str, float]] = {}
    chosen = results.method.isin(CHOSEN_MODE_METHODS)
    for source in sources:
        views = [(mode, rejection_view(results, mode, recommended=False, threshold_source=source))
                 for mode in REJECTION_MODES]
        views.append((VALIDATION_CHOICE, results[chosen & (results.threshold_source == source)]))
        for mode, view in views:
            if view.empty:
                continue
            table = relative_gains(view, rejection, rejection_mode=None, threshold_source=source)
            for row in table.itertuples(index=False):
                gains.setdefault((row.training, row.method, mode), {}).update(
                    {f"f1_gain_{source}": row.f1_gain_pct, f"uar_gain_{source}": row.uar_gain_pct})
    rows = []
    groups = errors.groupby(["training", "method", "ranking_mode"], sort=False)
    mode_order = (*REJECTION_MODES, VALIDATION_CHOICE)
    for training in ordered(errors.training.unique(), TRAINING_ORDER):
        for method in ordered(errors.method.unique(), method_names()):
            for mode in ordered(errors.ranking_mode.unique(), mode_order):
                if (training, method, mode) not in groups.groups:
                    continue
                group = groups.get_group((training, method, mode))
                row = {"training": training, "method": method, "rejection_mode": mode,
                       "n_runs": group.groupby(RUN_KEYS).ngroups}
                for source in sources:
                    values = group.loc[group.threshold_source == source, "coverage_error"].to_numpy()
                    mean, low, high = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
                    row.update({f"coverage_error_{source}": mean, f"coverage_error_{source}_low": low,
                                f"coverage_error_{source}_high": high})
                    row.update({f"{figure}_gain_{source}": gains.get((training, method, mode), {}).get(
                        f"{figure}_gain_{source}", float("nan")) for figure in ("f1", "uar")})
                rows.append(row)
    return pd.DataFrame(rows)
