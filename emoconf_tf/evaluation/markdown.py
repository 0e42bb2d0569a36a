"""Text from computed tables: the terminal summary (`summary_lines`) and report.md (`write_report`, with the curves
of `evaluation.plots`), written atomically. Every number comes from the tables: `report_tables.compute_report_tables`
computes those of report.md, `statistics_text` writes its sections on the bootstrap statistics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from emoconf_tf.atomic import write_text
from emoconf_tf.corpus import NO_AVD_RATINGS
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.markdown_table import markdown_table, whole_as_int
from emoconf_tf.evaluation.plots import plot_rejection_curves, plot_risk_coverage
from emoconf_tf.evaluation.protocol_tables import (
    CHOSEN_MODE_METHODS,
    REJECTION_DECIMALS,
    RESULTS_COLUMNS,
    checked_table,
)
from emoconf_tf.evaluation.report_tables import (
    ComputedReportTables,
    compute_report_tables,
)
from emoconf_tf.evaluation.statistics_text import operating_point_lines, ranking_lines
from emoconf_tf.evaluation.tables import (
    METRIC_NAMES,
    ReportTables,
    method_display_name,
    mode_display_name,
    rejection_curves,
    rejection_label,
    rejection_view,
    relative_gains,
    threshold_table,
    trainings_in,
)


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
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def summary_lines(results: pd.DataFrame, rejection: float = 0.2, *, rejection_mode: str = "global") -> list[str]:
    """A few terminal lines: F1 / UAR per threshold, method and training, then the gains at `rejection`.

    One rejection mode (`rejection_view`), default the paper's `"global"`, with `recommended` as it chose.
    """
    results = rejection_view(checked_table(results, RESULTS_COLUMNS, "results"), rejection_mode)
    curves = rejection_curves(results, metrics=("f1", "uar", "coverage"), rejection_mode=None)
    n_runs = int(curves["n_runs"].max())
    cells = threshold_table(curves, ("f1",), lambda _, method, training: f"{method}/{training}")
    uar = threshold_table(curves, ("uar",), lambda _, method, training: f"{method}/{training}")
    table = cells.combine(uar, lambda f1, u: f1.map(lambda v: f"{v:.3f}") + " / " + u.map(lambda v: f"{v:.3f}"))
    table = table[cells.columns]
    table.index.name = None
    lines = [(f"F1 / UAR by rejection threshold, {mode_display_name(rejection_mode)} "
              f"(mean over {n_runs} fold × seed run(s)):")]
    lines += table.to_string().splitlines()
    levels = set(curves["rejection"])
    level = round(float(rejection), REJECTION_DECIMALS)
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
    def for_corpus(cls, corpus, **options) -> ReportOptions:
        """The options that describe `corpus` (a `Corpus`: name, synthetic flag, class names, merged labels)."""
        return cls(corpus_name=corpus.name, synthetic=corpus.synthetic, class_names=tuple(corpus.class_names),
                   merged_labels=tuple(corpus.merged_labels), has_avd=corpus.has_avd, **options)


def write_report(out_dir: str | Path, tables: ReportTables | None, options: ReportOptions, *,
                 computed: ComputedReportTables | None = None) -> Path:
    """Writes `curves.png`, `curves_per_class.png` (when there are per-class rows), `risk_coverage.png` (with the
    ranking and predictions) and `report.md` into `out_dir`, each atomically, from computed tables: `computed`, or
    `compute_report_tables(tables, ...)` with `options`' class names, rejection level and bootstrap resamples.

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
    computed tables; this function only formats and writes them.

    Args:
        out_dir: output directory, created if needed.
        tables: the protocol's tables (`ReportTables`; a `ProtocolOutputs` is one); may be None when `computed`
            is given.
        options: what the report says about the data (`ReportOptions`).
        computed: the report's tables (`report_tables.compute_report_tables`), or None (default) to compute them
            from `tables`.

    Returns:
        Path of `report.md`.
    """
    if computed is None:
        if tables is None:
            raise EmoconfError("write_report needs the protocol's tables or their compute_report_tables")
        computed = compute_report_tables(tables, class_names=options.class_names, rejection=options.rejection,
                                         n_boot=options.n_boot)
    corpus_name, synthetic, class_names = options.corpus_name, options.synthetic, options.class_names
    settings, merged_labels = options.settings, options.merged_labels
    main_mode, methods, level = computed.main_mode, computed.methods, computed.rejection
    label = rejection_label(level)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    title = report_title(corpus_name, synthetic=synthetic)
    plot_rejection_curves(computed.curves, out_dir / "curves.png", title=title)
    per_class_curves = out_dir / "curves_per_class.png"
    if computed.per_class_curves is not None:
        plot_rejection_curves(computed.per_class_curves, per_class_curves,
                              title=report_title(corpus_name, synthetic=synthetic, rejection_mode="per_class"))
    else:
        per_class_curves.unlink(missing_ok=True)  # from an earlier report in this directory
    if computed.risk_coverage is not None:
        data = corpus_name + (" (synthetic data)" if synthetic else "")
        plot_risk_coverage(computed.risk_coverage, out_dir / "risk_coverage.png",
                           title=f"{data} — risk against coverage")

    folds, seeds = computed.folds, computed.seeds
    lines = [f"# Confidence-aware emotion recognition: {corpus_name}", ""]
    if synthetic:
        lines += [("> **SYNTHETIC DATA — not a real corpus.** These numbers test the pipeline; "
                   "they say nothing about the method on real speech."), ""]
    lines += [
        f"- corpus: {corpus_name}" + (" (synthetic)" if synthetic else ""),
        f"- folds: {len(folds)} ({', '.join(map(str, folds))})",
        f"- seeds: {len(seeds)} ({', '.join(map(str, seeds))})",
        f"- training sets: {', '.join(computed.trainings)}",
        f"- rejection methods: {', '.join(method_display_name(m) for m in methods)}",
        f"- rejection modes: {', '.join(mode_display_name(m) for m in computed.modes)}",
        f"- classes: {', '.join(map(str, class_names))}",
    ]
    if not options.has_avd:
        lines += [f"- AVD: {NO_AVD_RATINGS}"]
    if merged_labels:
        merged = ", ".join(f"{category} counted as {name}" for category, name in merged_labels)
        lines += [(f"- merged categories: {merged} (as the dataset was built; IEMOCAP's default configs merge "
                   "excited into happy, its *_hap_only configs do not)")]
    lines += [
        "",
        "Sizes per run (mean over folds x seeds):",
        "",
        markdown_table(whole_as_int(computed.runs), ".1f"),
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
        (f"{view_note}. Mean over folds x seeds. tx is the threshold that removes x % of the validation "
         "predictions (lowest confidence first); t0 removes none."),
        "",
    ]
    lines += _threshold_tables(computed.curves, coverage=True)
    lines += [f"## Relative gains at {label}", ""]
    lines += _gains_lines(computed.gains, level)

    for training, table in computed.table2.items():
        table = table.rename(index=method_display_name, level="method").rename(index=METRIC_NAMES, level="metric")
        lines += [
            f"## Table 2: per-class precision, recall and F1 at {label} ({training} training)",
            "",
            "Mean over folds x seeds; 'No rejection' is t0.",
            "",
            markdown_table(table),
            "",
        ]

    summary = computed.removed
    lines += [f"## Predictions removed at {label}", ""]
    lines += [s + "\n" for t in computed.trainings if (s := _removed_sentence(summary, t, label))]
    summary_display = summary.assign(method=summary["method"].map(method_display_name))
    lines += [markdown_table(whole_as_int(summary_display.set_index(["training", "method"])), ".3f"), ""]

    lines += ["## Conflict filter (training set; the rules of the paper's Table 1)", ""]
    if not options.has_avd:
        lines += [f"Not applied: {NO_AVD_RATINGS}.", ""]
    elif computed.filter_counts is not None:
        if computed.filter_seeds is not None:
            seeds_used = computed.filter_seeds
            lines += [
                "Training rows each rule removed, per fold"
                + (f", with seed {', '.join(map(str, seeds_used))}" if seeds_used else "")
                + " (the filter does not depend on the seed); 'all rules' is the sum of the rows above. A row in "
                "the training set of several folds counts in each.",
                "",
            ]
        lines += [markdown_table(computed.filter_counts), ""]
    else:
        lines += ["No filter counts were given.", ""]

    if computed.per_class_curves is not None:
        lines += [
            "## Per-class rejection",
            "",
            ("One threshold per predicted class: the paper's rule applied to the validation predictions of each "
             "class, so that about the same share of every predicted class is rejected (a global threshold removes "
             f"mostly the classes the classifier is least sure of). {method_display_name('recommended')} is in the "
             "tables above, in the mode validation chose. Mean over folds x seeds."),
            "",
            "### F1 and UAR against the rejection threshold (per-class thresholds)",
            "",
        ]
        lines += _threshold_tables(computed.per_class_curves, coverage=False)
        lines += [f"### Relative gains at {label} (per-class thresholds)", ""]
        lines += _gains_lines(computed.per_class_gains, level)

    if computed.ranking is not None:
        lines += ranking_lines(computed.ranking, computed.comparison, computed.choices, computed.choice_counts,
                               rejection=level)
        if computed.risk_coverage is not None:
            lines += ["![risk-coverage](risk_coverage.png)", ""]

    lines += ["## Curves", "", "![curves](curves.png)", ""]
    if computed.per_class_curves is not None:
        lines += ["With per-class thresholds:", "", "![curves, per-class thresholds](curves_per_class.png)", ""]
    if computed.operating_point is not None:
        lines += operating_point_lines(computed.operating_point, level, synthetic=synthetic)
    return write_text(out_dir / "report.md", "\n".join(lines))


def _display_column(metric: str, method: str, training: str) -> str:
    return f"{METRIC_NAMES[metric]} {method_display_name(method)} ({training})"


def _threshold_tables(curves: pd.DataFrame, *, coverage: bool) -> list[str]:
    """Markdown: F1 and UAR per threshold (and the coverage) of one rejection mode's `rejection_curves`."""
    lines = [markdown_table(threshold_table(curves, ("f1", "uar"), _display_column)), ""]
    if coverage:
        lines += ["Coverage (fraction of the test set kept):", "",
                  markdown_table(threshold_table(curves, ("coverage",), _display_column)), ""]
    return lines


def _gains_lines(gains: pd.DataFrame, level: float) -> list[str]:
    """Markdown: one rejection mode's `relative_gains` at `level`, in sentences and a table."""
    label = rejection_label(level)
    lines = [s + "\n" for t in trainings_in(gains) if (s := _gains_sentence(gains, t, label))]
    lines += [markdown_table(_gains_display(gains, label), index=False), ""]
    if "f1_gain_pct_std" in gains.columns:
        lines += [
            ("Gains are computed on the means; ± is the standard deviation over folds × seeds of the per-run "
             "values (for gains: of each run's own relative gain)."),
            "",
        ]
    return lines
