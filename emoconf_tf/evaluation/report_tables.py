"""The tables report.md is made of, computed before a word of it is written: `compute_report_tables` gathers the
paper's tables (`evaluation.tables`), the bootstrap statistics (`evaluation.statistics`) and the risk-coverage
curves into a `ComputedReportTables`; `markdown.write_report` formats and writes them, `plots` draws them.

Every function here is pure: the protocol's tables in (`tables.ReportTables`), DataFrames out. Rejection levels are
fractions in [0, 1) (0.2 is the paper's t20); F1, UAR, coverage and risk are fractions in [0, 1]; gains are in %.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from emoconf_tf.evaluation.protocol_tables import (
    CHOICE_COLUMNS,
    CHOSEN_MODE_METHODS,
    PER_CLASS_COLUMNS,
    RESULTS_COLUMNS,
    RUNS_COLUMNS,
    SELECTIVE_COLUMNS,
    checked_level,
    checked_table,
    rejection_view,
)
from emoconf_tf.evaluation.tables import (
    TRAINING_ORDER,
    ReportTables,
    filter_counts_table,
    methods_in,
    ordered,
    rejection_curves,
    relative_gains,
    removed_summary,
    table2,
    trainings_in,
)
from emoconf_tf.scores import method_names
from emoconf_tf.thresholds import REJECTION_MODES

_RUN_SIZES = ("n_train", "n_validation", "n_test", "n_filtered_out", "n_masked_features", "classifier_epochs",
              "confidence_epochs")
_PREDICTION_KEYS = ("fold", "seed", "training", "id", "label", "predicted")


def runs_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The sizes of the runs, per training set: report.md's "Sizes per run".

    Args:
        runs: the protocol's runs table (`protocol_tables.RUNS_COLUMNS`; `n_masked_features` may be absent, as in
            runs.csv written before masking).

    Returns:
        DataFrame indexed by training (raw, then filtered, then others sorted) with columns `runs` (the number of
        fold x seed runs) and the means over those runs of `n_train, n_validation, n_test, n_filtered_out,
        n_masked_features` (rows or features) and `classifier_epochs, confidence_epochs` (epochs trained).
    """
    columns = [c for c in _RUN_SIZES if c in runs]
    grouped = runs.groupby("training", sort=False)
    table = grouped[columns].mean()
    table.insert(0, "runs", grouped.size())
    return table.reindex(trainings_in(runs))


def choice_counts(choices: pd.DataFrame) -> pd.DataFrame:
    """How often validation made each choice: report.md's "What validation chose".

    Args:
        choices: the protocol's choices table (`protocol_tables.CHOICE_COLUMNS`).

    Returns:
        DataFrame with columns `training, method, choice, rejection_mode, runs` (the number of fold x seed runs
        that chose it), sorted by training and method, most frequent choice first; a choice independent of the
        rejection mode (`emoconfidnet_tau`) has rejection mode `"—"`.
    """
    modes = choices["rejection_mode"].fillna("").astype(str).replace({"nan": "", "": "—"})
    return (choices.assign(rejection_mode=modes)
            .groupby(["training", "method", "choice", "rejection_mode"]).size().rename("runs").reset_index()
            .sort_values(["training", "method", "runs"], ascending=[True, True, False], kind="stable"))


def risk_coverage_curves(predictions: pd.DataFrame) -> pd.DataFrame:
    """The risk-coverage curve of every confidence column, the test predictions of every run pooled per training.

    Args:
        predictions: the protocol's predictions table (`fold, seed, training, id, label, predicted`, then one
            confidence column per method; `label` and `predicted` are class ids).

    Returns:
        DataFrame with columns `training, method, coverage, risk` and N rows per training and method (N the pooled
        test predictions of that training): `coverage` = k / N, the fraction kept, most confident first, and `risk`
        the error rate of those k (`selective.risk_coverage_curve`), k = 1..N. Trainings raw, then filtered, then
        others sorted; methods as registered, then the other columns in their order.
    """
    from emoconf_tf.selective import risk_coverage_curve

    trainings = ordered(predictions["training"].unique(), TRAINING_ORDER)
    methods = [m for m in method_names() if m in predictions.columns] + [
        c for c in predictions.columns if c not in method_names() and c not in _PREDICTION_KEYS
    ]
    frames = []
    for training in trainings:
        part = predictions[predictions["training"] == training]
        correct = (part["label"] == part["predicted"]).to_numpy()
        for method in methods:
            coverage, risk = risk_coverage_curve(correct, part[method].to_numpy())
            frames.append(pd.DataFrame({"training": training, "method": method, "coverage": coverage, "risk": risk}))
    if not frames:
        return pd.DataFrame(columns=["training", "method", "coverage", "risk"])
    return pd.concat(frames, ignore_index=True)


@dataclasses.dataclass(frozen=True)
class ComputedReportTables:
    """Every table report.md shows, computed (`compute_report_tables`); `markdown.write_report` only formats them.

    The paper's view is every method in `main_mode` (the global threshold, unless the results have none), plus
    `recommended` in the mode validation chose for each run; every table is of the rows with validation thresholds,
    except `operating_point`.

    Attributes:
        main_mode: the rejection mode of the paper's view, `"global"` or `"per_class"`.
        rejection: the level analysed in detail, a fraction (the key of `tables.rejection_label`, 0.2 -> t20).
        folds, seeds: the folds and seeds of the results, sorted.
        trainings, methods: the training sets and methods of the paper's view, in the report's order.
        modes: the rejection modes of the results (`thresholds.REJECTION_MODES` order).
        runs: `runs_summary` (runs and mean sizes per training).
        curves: `tables.rejection_curves` of the paper's view: per method, training and rejection, `n_runs` and the
            mean and std over runs of `f1`, `uar` and `coverage`.
        gains: `tables.relative_gains` of the paper's view at `rejection`: F1 and UAR at t0 and at `rejection`,
            their relative gains in %, coverage, per method and training.
        table2: `tables.table2` of the paper's view per training (filtered, then raw, then others): precision,
            recall and F1 per class without rejection and per method at `rejection`.
        removed: `tables.removed_summary` of the paper's view at `rejection`: predictions removed, and correct
            among them, per training and method.
        filter_counts: `tables.filter_counts_table` (rows each conflict rule removed, per fold), or None when no
            counts were given.
        filter_seeds: the seeds of the filter counts (a per-fold table), or None when they are one training set's.
        per_class_curves, per_class_gains: as `curves` and `gains`, of every method but `recommended` with
            per-class thresholds; None when the results have no per-class rows besides the paper's view.
        ranking: `statistics.ranking` at `rejection` (every method and mode with 95 % bootstrap intervals), when
            `selective` was given and there are more than the paper's two methods; else None.
        comparison: `statistics.paired_comparison`, recommended minus the top-two margin's global rows, when
            `ranking` has both; else None.
        choices: the protocol's choices (checked), beside `ranking`; None without choices or ranking.
        choice_counts: `choice_counts` of `choices`, or None.
        risk_coverage: `risk_coverage_curves` of the predictions, beside `ranking`; None without predictions.
        operating_point: `statistics.operating_point` at `rejection` (coverage errors and gains per threshold
            source), when the results have thresholds set otherwise than on validation; else None.
    """

    main_mode: str
    rejection: float
    folds: list
    seeds: list
    trainings: list[str]
    methods: list[str]
    modes: list[str]
    runs: pd.DataFrame
    curves: pd.DataFrame
    gains: pd.DataFrame
    table2: dict[str, pd.DataFrame]
    removed: pd.DataFrame
    filter_counts: pd.DataFrame | None = None
    filter_seeds: list | None = None
    per_class_curves: pd.DataFrame | None = None
    per_class_gains: pd.DataFrame | None = None
    ranking: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    choices: pd.DataFrame | None = None
    choice_counts: pd.DataFrame | None = None
    risk_coverage: pd.DataFrame | None = None
    operating_point: pd.DataFrame | None = None


def compute_report_tables(tables: ReportTables, *, class_names: Sequence[str], rejection: float = 0.2,
                          n_boot: int = 1000) -> ComputedReportTables:
    """Computes every table of report.md from the protocol's tables (see `ComputedReportTables`).

    Args:
        tables: the protocol's tables (`tables.ReportTables`; a `ProtocolOutputs` is one).
        class_names: the class names in class-id order; Table 2's column order, K for the bootstrap.
        rejection: the level analysed in detail, a fraction, default 0.2 (t20, as in the paper).
        n_boot: bootstrap resamples of the ranking, the paired comparison and the operating point.

    Returns:
        A `ComputedReportTables`.

    Raises:
        EmoconfError: a table lacks a column or rows, or the results have no rows at `rejection` or at 0.
    """
    from emoconf_tf.evaluation.statistics import (
        operating_point,
        paired_comparison,
        ranking,
    )

    every_source = checked_table(tables.results, RESULTS_COLUMNS, "results", threshold_source=None)
    results = checked_table(tables.results, RESULTS_COLUMNS, "results")
    per_class = checked_table(tables.per_class, PER_CLASS_COLUMNS, "per_class")
    runs = checked_table(tables.runs, RUNS_COLUMNS, "runs")
    selective, choices, predictions = tables.selective, tables.choices, tables.predictions
    if selective is not None and len(selective):
        selective = checked_table(selective, SELECTIVE_COLUMNS, "selective")
    else:
        selective = None
    choices = checked_table(choices, CHOICE_COLUMNS, "choices") if choices is not None and len(choices) else None
    others = results[~results["method"].isin(CHOSEN_MODE_METHODS)]
    # The paper's view is the global threshold; a run without global rows shows its per-class rows there instead.
    main_mode = "global" if others.empty or (others["rejection_mode"] == "global").any() else "per_class"
    paper = rejection_view(results, main_mode, recommended=True)
    paper_per_class = rejection_view(per_class, main_mode, recommended=True, name="per_class")
    per_class_rows = rejection_view(results, "per_class") if main_mode == "global" else results.iloc[:0]
    level = checked_level(paper, rejection, "results")
    trainings, methods = trainings_in(paper), methods_in(paper)

    computed = {"table2": {}}
    for training in [t for t in ("filtered", "raw") if t in trainings] + [
        t for t in trainings if t not in ("filtered", "raw")
    ]:
        if training in set(paper_per_class["training"]):
            computed["table2"][training] = table2(paper, paper_per_class, level, training, class_names=class_names,
                                                  rejection_mode=None)
    filter_counts = tables.filter_counts
    if filter_counts is not None and len(filter_counts):
        computed["filter_counts"] = filter_counts_table(filter_counts)
        if isinstance(filter_counts, pd.DataFrame):
            computed["filter_seeds"] = sorted(set(filter_counts["seed"])) if "seed" in filter_counts.columns else []
    if len(per_class_rows):
        computed["per_class_curves"] = rejection_curves(per_class_rows, rejection_mode=None)
        computed["per_class_gains"] = relative_gains(per_class_rows, level, rejection_mode=None)
    if selective is not None and len(methods) > 2:
        num_classes = len(class_names)
        table = ranking(results, selective, predictions, per_class, num_classes=num_classes, class_names=class_names,
                        rejection=level, n_boot=n_boot)
        computed["ranking"] = table
        pairs = set(zip(table["method"], table["rejection_mode"]))
        if "recommended" in set(table["method"]) and ("top2_margin", "global") in pairs:
            computed["comparison"] = paired_comparison(
                results, selective, predictions, per_class, num_classes=num_classes, class_names=class_names,
                rejection=level, n_boot=n_boot)
        if choices is not None:
            computed.update(choices=choices, choice_counts=choice_counts(choices))
        if predictions is not None and len(predictions):
            computed["risk_coverage"] = risk_coverage_curves(predictions)
    if "threshold_source" in every_source.columns and set(every_source["threshold_source"]) - {"validation"}:
        computed["operating_point"] = operating_point(every_source, level, n_boot=n_boot)

    return ComputedReportTables(
        main_mode=main_mode, rejection=level, folds=sorted(results["fold"].unique()),
        seeds=sorted(results["seed"].unique()), trainings=trainings, methods=methods,
        modes=ordered(results["rejection_mode"].unique(), REJECTION_MODES), runs=runs_summary(runs),
        curves=rejection_curves(paper, rejection_mode=None), gains=relative_gains(paper, level, rejection_mode=None),
        removed=removed_summary(paper, level, rejection_mode=None), **computed,
    )
