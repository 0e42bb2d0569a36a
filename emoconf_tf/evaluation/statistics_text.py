"""report.md's sections on the bootstrap statistics of `evaluation.statistics`, as text from their computed
tables: the ranking of every method (`ranking_lines`, with the paired comparison, what validation chose and a
recommendation generated from the numbers, `recommendation_paragraph`) and the operating point on new data
(`operating_point_lines`). `report_tables.compute_report_tables` computes the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emoconf_tf.evaluation.markdown_table import markdown_table
from emoconf_tf.evaluation.protocol_tables import CHOSEN_MODE_METHODS, VALIDATION_CHOICE
from emoconf_tf.evaluation.tables import (
    TRAINING_ORDER,
    method_display_name,
    mode_display_name,
    ordered,
    rejection_label,
)
from emoconf_tf.thresholds import THRESHOLD_SOURCES


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
        (f"With the {training} training set, the largest {label} F1 gain comes from "
         f"{_ranked_name(best_gain['method'], best_gain['rejection_mode'])} "
         f"({_interval(best_gain['f1_gain'], best_gain['f1_gain_low'], best_gain['f1_gain_high'])} %, 95 % bootstrap "
         f"interval over {over}), and the lowest AURC (best ranking of errors last, whatever the rejection mode) "
         f"from {method_display_name(best_aurc['method'])} ({best_aurc['aurc']:.3f}).")
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


_FIGURE_NAMES = {"f1_gain": "F1 gain (points)", "uar_gain": "UAR gain (points)", "aurc": "AURC",
                 "aurc_balanced": "balanced AURC", "auroc": "AUROC"}


def ranking_lines(table: pd.DataFrame, comparison: pd.DataFrame | None = None,
                  choices: pd.DataFrame | None = None, counts: pd.DataFrame | None = None, *,
                  rejection: float = 0.2) -> list[str]:
    """Markdown: "Which confidence to trust: every method ranked", from computed tables.

    Args:
        table: the ranking (`statistics.ranking`) at `rejection`.
        comparison: the paired comparison of `recommended` with the top-two margin's global rows
            (`statistics.paired_comparison`), or None: no "Paired comparison" subsection.
        choices, counts: the protocol's choices and their `report_tables.choice_counts`, or None: no "What
            validation chose" subsection.
        rejection: the level of the gains, a fraction (0.2 -> t20).

    Returns:
        The section's lines: the ranking table, the paired comparison, validation's choices and a recommendation
        per training (`recommendation_paragraph`).
    """
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
        markdown_table(ranking_display(table, rejection), index=False),
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
                  ("Recommended in the mode validation chose for each run; the top-two margin with the paper's "
                   "global threshold."), "", markdown_table(shown, index=False), ""]
    if choices is not None and counts is not None:
        lines += ["### What validation chose", "", _choices_sentence(choices), "",
                  markdown_table(counts, index=False), ""]
    lines += ["### Recommendation", ""]
    lines += [p + "\n" for t in ordered(table["training"].unique(), TRAINING_ORDER)
              if (p := recommendation_paragraph(table, comparison, t, rejection))]
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


def operating_point_lines(table: pd.DataFrame, rejection: float = 0.2, *, synthetic: bool = False) -> list[str]:
    """Markdown: "Operating point on new data", from a computed `statistics.operating_point` table (every threshold
    source): per training, method and rejection mode, the coverage error of each source with its 95 % bootstrap
    interval over runs, and the F1 and UAR gains at `rejection` (a fraction, the table's) with each source's
    thresholds. `synthetic` adds a sentence saying the data is generated."""
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
        (f"{spread}. {method_display_name('recommended')} is one row, in the mode validation chose for each run. "
         f"F1 and UAR gains at {label} are relative to t0, as in the gains tables above, with each source's "
         "thresholds."),
        "",
    ]
    if synthetic:
        lines += [("These numbers come from SYNTHETIC data: they test the pipeline, not how thresholds hold on "
                   "real speech."), ""]
    for training in ordered(table["training"].unique(), TRAINING_ORDER):
        part = table[table["training"] == training]
        means = ", ".join(f"{part[f'coverage_error_{s}'].mean():.3f} with {s} thresholds" for s in sources)
        lines += [(f"With the {training} training set, the coverage error averaged over every method and mode "
                   f"is {means}."), ""]
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
    lines += [markdown_table(shown, index=False), ""]
    return lines
