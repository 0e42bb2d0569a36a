"""Text from the tables of `evaluation.tables`: the terminal summary (`summary_lines`) and report.md
(`write_report`, with the curves of `evaluation.plots`), written atomically. Every number comes from the tables.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from emoconf_tf.atomic import write_text
from emoconf_tf.corpus import NO_AVD_RATINGS
from emoconf_tf.evaluation.plots import plot_curves, plot_risk_coverage
from emoconf_tf.evaluation.tables import (
    CHOICE_COLUMNS, CHOSEN_MODE_METHODS, PER_CLASS_COLUMNS, RESULTS_COLUMNS, RUNS_COLUMNS, SELECTIVE_COLUMNS,
    VALIDATION_CHOICE, _METRIC_NAMES, _REJECTION_DECIMALS, _TRAINING_ORDER, ReportTables, _check_level, _checked,
    _methods, _ordered, _trainings, _wide, filter_counts_table, method_display_name,
    mode_display_name, rejection_curves, rejection_label, rejection_view, relative_gains, removed_summary, table2,
)
from emoconf_tf.thresholds import REJECTION_MODES, THRESHOLD_SOURCES

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
    columns = ["n_train", "n_validation", "n_test", "n_filtered_out", "n_masked_features", "classifier_epochs",
               "confidence_epochs"]
    columns = [c for c in columns if c in runs]  # n_masked_features: absent from runs.csv written before masking
    grouped = runs.groupby("training", sort=False)
    table = grouped[columns].mean()
    table.insert(0, "runs", grouped.size())
    return table.reindex(_trainings(runs))


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
        f1, uar, aurc_row = rows.loc["f1_gain"], rows.loc["uar_gain"], rows.loc["aurc"]
        unit = "runs" if f1["ci_over"] == "runs" else "bootstrap resamples of the test utterances"
        if (rows[["mean_difference", "low", "high"]].abs() < 1e-12).all(axis=None):
            text.append("On validation the recommended score chose the top-two margin itself, with the global "
                        "threshold, so the two coincide on test: use the top-two margin.")
            return " ".join(text)
        # judged on the figures users judge, F1 and UAR gains; AURC (accuracy ranking) is shown for reference
        if f1["low"] > 0 and uar["mean_difference"] > 0:
            verdict = ("the recommended score is reliably better than the top-two margin here: use it "
                       "(its score, blend weights and rejection mode were chosen on validation only)")
        elif f1["high"] < 0 or uar["high"] < 0:
            verdict = "the top-two margin is better here: use it, it needs no extra training"
        else:
            verdict = ("the two cannot be told apart reliably on this data; the top-two margin is the simpler "
                       "choice, the recommended score the one tuned to this corpus")
        text.append(
            "Recommended vs the top-two margin with the paper's global threshold: F1 gain difference "
            f"{_interval(f1['mean_difference'], f1['low'], f1['high'])} points (recommended better in "
            f"{f1['a_better'] * 100:.0f} % of {unit}), UAR gain difference "
            f"{_interval(uar['mean_difference'], uar['low'], uar['high'])} points, AURC difference "
            f"{_interval(aurc_row['mean_difference'], aurc_row['low'], aurc_row['high'], '.3f')} (accuracy ranking, "
            f"for reference); {verdict}."
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


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """What a report says about the data and how much it analyses.

    Args:
        corpus_name: e.g. `"MSP-Podcast"`; goes into the title.
        synthetic: True when the data is generated, not a corpus; adds a banner and says so in the titles.
        class_names: the class names in class-id order (the corpus's); also Table 2's column order.
        merged_labels: `(category, class)` pairs the dataset merged (`Corpus.merged_labels`, e.g.
            `(("excited", "happy"),)` for IEMOCAP's default configs), stated in the header.
        settings: protocol settings to list in the header (`ProtocolConfig.fingerprint()`), or None.
        rejection: the level analysed in detail, default 0.2 (t20, as in the paper).
        n_boot: bootstrap resamples for the ranking's intervals.
        has_avd: False for a corpus without AVD ratings: the header and the conflict-filter section say "no AVD
            ratings" and what that left out (`Corpus.has_avd`).
    """

    corpus_name: str
    synthetic: bool
    class_names: Sequence[str]
    merged_labels: Sequence[tuple[str, str]] = ()
    settings: Mapping[str, object] | None = None
    rejection: float = 0.2
    n_boot: int = 1000
    has_avd: bool = True

    @classmethod
    def for_corpus(cls, corpus, **options) -> "ReportOptions":
        """The options that describe `corpus` (a `Corpus`: name, synthetic flag, class names, merged labels)."""
        return cls(corpus_name=corpus.name, synthetic=corpus.synthetic, class_names=tuple(corpus.class_names),
                   merged_labels=tuple(corpus.merged_labels), has_avd=corpus.has_avd, **options)


def write_report(out_dir: str | Path, tables: ReportTables, options: ReportOptions) -> Path:
    """Writes `curves.png`, `curves_per_class.png` (when there are per-class rows) and `report.md` into `out_dir`,
    each atomically.

    The report has, first, the paper's view: every method with the global threshold, plus `recommended` in the
    mode validation chose for each run: a header (corpus, a synthetic-data banner when `options.synthetic`, folds,
    seeds, sizes from `runs`, settings, categories the dataset merged), the F1 / UAR per threshold of the paper's
    Fig. 2 and coverage, the relative gains at `options.rejection`, Table 2 (per class, filtered training, and raw
    when present), the removed / correctly-removed counts and the conflict filter's counts per rule (the paper's
    Table 1) and fold. Then, when `results` has per-class rows, a "Per-class rejection" section (F1 / UAR per
    threshold and the relative gains with per-class thresholds); then, with `selective` and more than the paper's
    two methods, the ranking of every (method, rejection mode) with bootstrap intervals, a paired comparison of
    `recommended` with `top2_margin`'s global rows, what validation chose (`choices`), a generated recommendation
    and `risk_coverage.png` (from `predictions`, also used for intervals over test utterances when there is a
    single run); then the curves; then, when `results` has rows of thresholds set otherwise than on validation
    (its `threshold_source` column), "Operating point on new data": per method and rejection mode, how far the test
    coverage lands from the one asked for with each threshold source, and the F1 / UAR gains at `options.rejection`
    of each source. Every other section uses the rows of validation thresholds only. Every number comes from the
    tables passed in.

    Args:
        out_dir: output directory, created if needed.
        tables: the protocol's tables (`ReportTables`; a `ProtocolOutputs` is one).
        options: what the report says about the data (`ReportOptions`).

    Returns:
        Path of `report.md`.
    """
    corpus_name, synthetic, class_names = options.corpus_name, options.synthetic, options.class_names
    rejection, n_boot, settings = options.rejection, options.n_boot, options.settings
    merged_labels, filter_counts = options.merged_labels, tables.filter_counts
    results, per_class, runs = tables.results, tables.per_class, tables.runs
    selective, predictions, choices = tables.selective, tables.predictions, tables.choices
    every_source = _checked(results, RESULTS_COLUMNS, "results", threshold_source=None)
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
    if not options.has_avd:
        lines += [f"- AVD: {NO_AVD_RATINGS}"]
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
    if settings and not options.has_avd:  # the conflict filter's settings play no part without AVD ratings
        settings = {key: value for key, value in settings.items() if not key.startswith("filter_")}
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
    if not options.has_avd:
        lines += [f"Not applied: {NO_AVD_RATINGS}.", ""]
    elif filter_counts is not None and len(filter_counts):
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
    if "threshold_source" in every_source.columns and set(every_source["threshold_source"]) - {"validation"}:
        lines += operating_point_lines(every_source, level, n_boot=n_boot, synthetic=synthetic)
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
    from emoconf_tf.evaluation.statistics import paired_comparison, ranking

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
        "the area under the risk-coverage curve and balanced AURC FD-Shifts' `aurc_ba`, the area under the mean "
        "per-class error of the kept predictions against coverage, a class with none kept counting 0 (both lower "
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


_SOURCE_SENTENCES = {
    "validation": "**validation**, the paper's: thresholds set on the validation confidences, then applied to test",
    "batch": "**batch**: the same rule applied to the test fold's own unlabelled confidences and predicted classes, "
             "so that each batch rejects r of itself (in deployment, a batch is a session or a day of calls scored "
             "together; no labels are used)",
    "online": "**online**: the validation thresholds at a rate that adaptive conformal inference (Gibbs & Candès, "
              "NeurIPS 2021; `emoconf_tf.adaptive`) moves after each prediction, through the test rows in order, "
              "so that the long-run rejection rate tends to r",
}


def operating_point_lines(results: pd.DataFrame, rejection: float = 0.2, *, n_boot: int = 1000,
                          synthetic: bool = False) -> list[str]:
    """Markdown: "Operating point on new data", from `statistics.operating_point` of `results` (every threshold
    source): per training, method and rejection mode, the coverage error of each source with its 95 % bootstrap
    interval over runs, and the F1 and UAR gains at `rejection` with each source's thresholds."""
    from emoconf_tf.evaluation.statistics import operating_point

    table = operating_point(results, rejection, n_boot=n_boot)
    sources = [s for s in THRESHOLD_SOURCES if f"coverage_error_{s}" in table.columns]
    label = rejection_label(rejection)
    n_runs = int(table["n_runs"].max())
    spread = (f"Mean and 95 % bootstrap interval over {n_runs} runs (folds × seeds)" if n_runs > 1
              else "One run (fold × seed), so no interval over runs")
    not_run = ""
    if "online" not in sources:
        not_run = (" Online thresholds (adaptive conformal inference through the test rows in order) were not run: "
                   "`--threshold-source validation,batch,online` adds them.")
    lines = [
        "## Operating point on new data",
        "",
        "A rejection rate r promises to keep 1 − r of the predictions. Thresholds set on validation keep 1 − r of "
        "the validation predictions; on new speakers or sessions the confidences shift, and test coverage drifts "
        "from 1 − r. The coverage error of a run is the mean over the rates r > 0 of |test coverage − (1 − r)| "
        "(0 = every rate keeps what it promises). Threshold sources: "
        + "; ".join(_SOURCE_SENTENCES[s] for s in sources) + "." + not_run,
        "",
        f"{spread}. {method_display_name('recommended')} is one row, in the mode validation chose for each run. F1 "
        f"and UAR gains at {label} are relative to t0, as in the gains tables above, with each source's thresholds.",
        "",
    ]
    if synthetic:
        lines += ["These numbers come from SYNTHETIC data: they test the pipeline, not how thresholds hold on real "
                  "speech.", ""]
    for training in _ordered(table["training"].unique(), _TRAINING_ORDER):
        part = table[table["training"] == training]
        means = ", ".join(f"{part[f'coverage_error_{s}'].mean():.3f} with {s} thresholds" for s in sources)
        lines += [f"With the {training} training set, the coverage error averaged over every method and mode is "
                  f"{means}.", ""]
    shown = pd.DataFrame({
        "training": table["training"],
        "method": table["method"].map(method_display_name),
        "rejection mode": [_mode_cell(m, "") for m in table["rejection_mode"]],
    })
    for source in sources:
        cells = table[[f"coverage_error_{source}", f"coverage_error_{source}_low", f"coverage_error_{source}_high"]]
        shown[f"coverage error, {source}"] = [
            _interval(mean, low, high, ".3f") if n_runs > 1 else ("n/a" if not np.isfinite(mean) else f"{mean:.3f}")
            for mean, low, high in cells.to_numpy()]
    for figure, name in (("f1", "F1"), ("uar", "UAR")):
        for source in sources:
            shown[f"{name} gain % at {label}, {source}"] = [
                f"{v:.1f}" if np.isfinite(v) else "n/a" for v in table[f"{figure}_gain_{source}"]]
    lines += [_markdown_table(shown, index=False), ""]
    return lines
