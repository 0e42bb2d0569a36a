"""Tests for emoconf_tf.report: hand-computed tables, the curves file and report.md."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation import markdown, plots, report_tables, tables
from emoconf_tf.evaluation.markdown_table import markdown_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_TEST = 100  # test predictions per fold

# (training, method, rejection) -> per fold (fold 0, fold 1): (coverage, f1, uar, removed, removed_correct).
# At rejection 0 both methods share the same numbers and remove nothing.
_T0 = {
    "filtered": [(1.0, 0.40, 0.50, 0, 0), (1.0, 0.40, 0.30, 0, 0)],
    "raw": [(1.0, 0.30, 0.30, 0, 0), (1.0, 0.34, 0.34, 0, 0)],
}
_REJECTED = {
    ("filtered", "emoconfidnet", 0.1): [(0.90, 0.42, 0.52, 10, 1), (0.90, 0.41, 0.38, 10, 2)],
    ("filtered", "emoconfidnet", 0.2): [(0.82, 0.46, 0.55, 18, 2), (0.78, 0.42, 0.45, 22, 4)],
    ("filtered", "top2_margin", 0.1): [(0.90, 0.41, 0.41, 10, 4), (0.90, 0.41, 0.41, 10, 5)],
    ("filtered", "top2_margin", 0.2): [(0.80, 0.42, 0.42, 20, 8), (0.80, 0.42, 0.42, 20, 10)],
    ("raw", "emoconfidnet", 0.1): [(0.90, 0.33, 0.33, 10, 3), (0.90, 0.35, 0.35, 10, 3)],
    ("raw", "emoconfidnet", 0.2): [(0.80, 0.36, 0.36, 20, 5), (0.80, 0.36, 0.36, 20, 5)],
    ("raw", "top2_margin", 0.1): [(0.90, 0.31, 0.31, 10, 5), (0.90, 0.35, 0.35, 10, 5)],
    ("raw", "top2_margin", 0.2): [(0.80, 0.32, 0.32, 20, 9), (0.80, 0.36, 0.36, 20, 9)],
}
METHODS = ("emoconfidnet", "top2_margin")
CLASSES = ("angry", "sad")
# Per-class rejection rows: the global numbers with F1 + 0.01 and UAR + 0.02 above t0 (t0 is the same in both modes).
PER_CLASS_F1, PER_CLASS_UAR = 0.01, 0.02


def _results(methods=METHODS, seeds=(0,), modes=("global",)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for training in ("raw", "filtered"):
            for method in methods:
                for mode in modes:
                    for rejection in (0.0, 0.1, 0.2):
                        key = (training, method if method in METHODS else "emoconfidnet", rejection)
                        per_fold = _T0[training] if rejection == 0.0 else _REJECTED[key]
                        shift = (PER_CLASS_F1, PER_CLASS_UAR) if mode == "per_class" and rejection else (0.0, 0.0)
                        for fold, (coverage, f1, uar, removed, removed_correct) in enumerate(per_fold):
                            threshold = 0.0 if rejection == 0.0 else 0.3 + rejection
                            rows.append(dict(
                                fold=fold, seed=seed, training=training, method=method, rejection_mode=mode,
                                rejection=rejection, threshold=threshold if mode == "global" else math.nan,
                                coverage=coverage, f1=f1 + shift[0], uar=uar + shift[1], n_test=N_TEST,
                                removed=removed, removed_correct=removed_correct,
                            ))
    return pd.DataFrame(rows)


# Per-class values: `base + 0.2 * fold`, so the mean over folds 0 and 1 is `base + 0.1`.
# (level, class) -> (precision, recall, f1) base; level "t0" is shared by all methods at rejection 0.
_CLASS_BASE = {
    ("t0", "angry"): (0.10, 0.20, 0.15),
    ("t0", "sad"): (0.30, 0.40, 0.35),
    ("emoconfidnet", "angry"): (0.20, 0.25, 0.22),
    ("emoconfidnet", "sad"): (0.35, 0.50, 0.40),
    ("top2_margin", "angry"): (0.12, 0.22, 0.16),
    ("top2_margin", "sad"): (0.31, 0.41, 0.36),
}


def _per_class(modes=("global",)) -> pd.DataFrame:
    """Per-class rows; per-class mode rows have the global ones' values plus 0.05 (and their own thresholds)."""
    rows = []
    for training in ("raw", "filtered"):
        for method in METHODS:
            for mode in modes:
                for rejection in (0.0, 0.1, 0.2):
                    level = "t0" if rejection == 0.0 else method
                    shift = 0.05 if mode == "per_class" and rejection else 0.0
                    for c, class_name in enumerate(CLASSES):
                        own = 0.1 * c if mode == "per_class" else 0.0  # per-class thresholds differ by class
                        threshold = 0.0 if rejection == 0.0 else 0.3 + rejection + own
                        for fold in (0, 1):
                            precision, recall, f1 = (b + 0.2 * fold + shift for b in _CLASS_BASE[(level, class_name)])
                            rows.append(dict(
                                fold=fold, seed=0, training=training, method=method, rejection_mode=mode,
                                rejection=rejection, **{"class": class_name}, threshold=threshold,
                                precision=precision, recall=recall, f1=f1,
                            ))
    return pd.DataFrame(rows)


def _runs() -> pd.DataFrame:
    return pd.DataFrame([
        dict(fold=fold, seed=0, training=training, n_train=800 - (60 if training == "filtered" else 0),
             n_validation=100, n_test=N_TEST, n_filtered_out=60 if training == "filtered" else 0,
             classifier_epochs=12 + fold, confidence_epochs=8)
        for training in ("raw", "filtered") for fold in (0, 1)
    ])


def _write(tmp_path, *, synthetic, filter_counts=None, modes=("global",)):
    return markdown.write_report(
        tmp_path / "out",
        tables.ReportTables(_results(modes=modes), _per_class(modes), _runs(), filter_counts=filter_counts),
        markdown.ReportOptions("TinyCorpus", synthetic, list(CLASSES), settings={"epochs": 50, "patience": 10}),
    )


# --- fig2_table (the paper's Fig. 2) ----------------------------------------------------------------------------------


def test_fig2_table_rows_are_thresholds_in_order():
    table = tables.fig2_table(_results())
    assert list(table.index) == ["t0", "t10", "t20"]
    assert table.index.name == "threshold"


def test_fig2_table_means_are_hand_averages():
    table = tables.fig2_table(_results())
    # filtered t0 F1: (0.40 + 0.40) / 2 = 0.40; UAR (0.50 + 0.30) / 2 = 0.40
    assert table.loc["t0", "f1 emoconfidnet (filtered)"] == pytest.approx(0.40)
    assert table.loc["t0", "uar top2_margin (filtered)"] == pytest.approx(0.40)
    # filtered EmoConfidNet t20 F1: (0.46 + 0.42) / 2 = 0.44; UAR (0.55 + 0.45) / 2 = 0.50
    assert table.loc["t20", "f1 emoconfidnet (filtered)"] == pytest.approx(0.44)
    assert table.loc["t20", "uar emoconfidnet (filtered)"] == pytest.approx(0.50)
    # raw baseline t20 F1: (0.32 + 0.36) / 2 = 0.34; t10: (0.31 + 0.35) / 2 = 0.33
    assert table.loc["t20", "f1 top2_margin (raw)"] == pytest.approx(0.34)
    assert table.loc["t10", "f1 top2_margin (raw)"] == pytest.approx(0.33)


def test_fig2_table_column_order_metric_method_training():
    columns = list(tables.fig2_table(_results()).columns)
    assert columns[:4] == [
        "f1 emoconfidnet (raw)", "f1 emoconfidnet (filtered)", "f1 top2_margin (raw)", "f1 top2_margin (filtered)",
    ]
    assert columns[4].startswith("uar ")


def test_fig2_table_coverage_metric():
    # filtered EmoConfidNet t20 coverage: (0.82 + 0.78) / 2 = 0.80
    table = tables.fig2_table(_results(), metrics=("coverage",))
    assert table.loc["t20", "coverage emoconfidnet (filtered)"] == pytest.approx(0.80)


def test_rejection_curves_std_over_folds():
    curves = tables.rejection_curves(_results())
    row = curves[(curves.method == "emoconfidnet") & (curves.training == "filtered") & (curves.rejection == 0.2)]
    # F1 0.46, 0.42: sample std = sqrt(((0.02)^2 + (0.02)^2) / 1) = 0.02 * sqrt(2) = 0.028284
    assert row["f1_std"].item() == pytest.approx(0.02 * math.sqrt(2))
    assert row["n_runs"].item() == 2


# --- relative gains ------------------------------------------------------------------------------


def _gain_row(gains, method, training):
    return gains[(gains.method == method) & (gains.training == training)].iloc[0]


def test_relative_gains_by_hand():
    gains = tables.relative_gains(_results(), rejection=0.2)
    ecn = _gain_row(gains, "emoconfidnet", "filtered")
    # F1 0.40 -> 0.44: (0.44 - 0.40) / 0.40 * 100 = +10.0 %; UAR 0.40 -> 0.50: +25.0 %
    assert ecn["f1_t0"] == pytest.approx(0.40) and ecn["f1_t20"] == pytest.approx(0.44)
    assert ecn["f1_gain_pct"] == pytest.approx(10.0)
    assert ecn["uar_gain_pct"] == pytest.approx(25.0)
    assert ecn["coverage_t20"] == pytest.approx(0.80)  # (0.82 + 0.78) / 2
    base = _gain_row(gains, "top2_margin", "filtered")
    # F1 0.40 -> 0.42: +5.0 %; UAR 0.40 -> 0.42: +5.0 %
    assert base["f1_gain_pct"] == pytest.approx(5.0)
    assert base["uar_gain_pct"] == pytest.approx(5.0)
    raw = _gain_row(gains, "top2_margin", "raw")
    # F1 0.32 -> 0.34: 0.02 / 0.32 * 100 = +6.25 %
    assert raw["f1_gain_pct"] == pytest.approx(6.25)


def test_relative_gains_std_columns_with_several_runs():
    gains = tables.relative_gains(_results())
    ecn = _gain_row(gains, "emoconfidnet", "filtered")
    assert ecn["n_runs"] == 2
    # per-run F1 gains: fold 0 (0.46 - 0.40) / 0.40 = +15 %, fold 1 (0.42 - 0.40) / 0.40 = +5 %;
    # sample std = sqrt((5^2 + 5^2) / 1) = 7.0711
    assert ecn["f1_gain_pct_std"] == pytest.approx(5 * math.sqrt(2))
    assert ecn["f1_t20_std"] == pytest.approx(0.02 * math.sqrt(2))


def test_relative_gains_without_std_for_one_run():
    gains = tables.relative_gains(_results().query("fold == 0"))
    assert not any(c.endswith("_std") for c in gains.columns)
    # fold 0 alone: F1 0.40 -> 0.46 = +15.0 %
    assert _gain_row(gains, "emoconfidnet", "filtered")["f1_gain_pct"] == pytest.approx(15.0)


def test_relative_gains_missing_level_names_available_levels():
    with pytest.raises(EmoconfError, match=r"rejection 0\.3; available levels: 0, 0\.1, 0\.2"):
        tables.relative_gains(_results(), rejection=0.3)


def test_rejection_float_noise_matches_level():
    results = _results()
    results.loc[results.rejection == 0.2, "rejection"] = 0.1 + 0.1 + 1e-12
    gains = tables.relative_gains(results, rejection=0.2)
    assert _gain_row(gains, "emoconfidnet", "filtered")["f1_gain_pct"] == pytest.approx(10.0)


# --- table2 and removed --------------------------------------------------------------------------


def test_table2_values_are_fold_means():
    table = tables.table2(_results(), _per_class(), rejection=0.2, training="filtered")
    assert list(table.columns) == ["angry", "sad"]
    assert list(table.index.get_level_values("metric").unique()) == ["precision", "recall", "f1"]
    assert list(table.loc["precision"].index) == ["no_rejection", "emoconfidnet", "top2_margin"]
    # no rejection, angry precision: (0.10 + 0.30) / 2 = 0.20
    assert table.loc[("precision", "no_rejection"), "angry"] == pytest.approx(0.20)
    # EmoConfidNet t20, sad recall: (0.50 + 0.70) / 2 = 0.60
    assert table.loc[("recall", "emoconfidnet"), "sad"] == pytest.approx(0.60)
    # baseline t20, angry F1: (0.16 + 0.36) / 2 = 0.26
    assert table.loc[("f1", "top2_margin"), "angry"] == pytest.approx(0.26)


def test_table2_skips_undefined_precision():
    per_class = _per_class()
    undefined = (per_class.training == "filtered") & (per_class.method == "emoconfidnet") & (
        per_class.rejection == 0.2) & (per_class["class"] == "angry") & (per_class.fold == 1)
    per_class.loc[undefined, "precision"] = np.nan
    table = tables.table2(_results(), per_class)
    assert table.loc[("precision", "emoconfidnet"), "angry"] == pytest.approx(0.20)  # fold 0 only


def test_table2_class_names_set_column_order():
    table = tables.table2(_results(), _per_class(), class_names=["sad", "angry"])
    assert list(table.columns) == ["sad", "angry"]


def test_table2_unknown_class_raises():
    with pytest.raises(EmoconfError, match="angry"):
        tables.table2(_results(), _per_class(), class_names=["sad"])


def test_removed_summary_sums_over_folds():
    summary = tables.removed_summary(_results(), rejection=0.2)
    row = summary[(summary.training == "filtered") & (summary.method == "emoconfidnet")].iloc[0]
    # removed 18 + 22 = 40 (mean 20), correct 2 + 4 = 6 (mean 3); 6 / 40 = 0.15
    assert row["removed_total"] == 40 and row["removed_mean"] == pytest.approx(20.0)
    assert row["removed_correct_total"] == 6 and row["removed_correct_mean"] == pytest.approx(3.0)
    assert row["correct_fraction"] == pytest.approx(0.15)
    assert row["n_test_total"] == 2 * N_TEST
    base = summary[(summary.training == "filtered") & (summary.method == "top2_margin")].iloc[0]
    assert base["removed_total"] == 40 and base["removed_correct_total"] == 18  # 20 + 20, 8 + 10


def test_removed_summary_averages_seeds():
    # two identical seeds: the per-split totals stay 40 / 6, not 80 / 12
    summary = tables.removed_summary(_results(seeds=(0, 1)))
    row = summary[(summary.training == "filtered") & (summary.method == "emoconfidnet")].iloc[0]
    assert (row["removed_total"], row["removed_correct_total"], row["n_seeds"]) == (40, 6, 2)


def test_missing_column_is_named():
    with pytest.raises(EmoconfError, match="missing column\\(s\\) uar"):
        tables.fig2_table(_results().drop(columns=["uar"]))


def test_method_display_names():
    assert tables.method_display_name("emoconfidnet") == "EmoConfidNet"
    assert tables.method_display_name("top2_margin") == "Baseline (top-2 margin)"
    assert tables.method_display_name("entropy") == "Negative entropy"
    assert tables.method_display_name("my_score") == "my_score"  # unknown methods shown as given


def test_markdown_table_formats_floats_and_nan():
    df = pd.DataFrame({"a": [0.12345, np.nan], "b": ["x|y", "z"]}, index=pd.Index(["r1", "r2"], name="row"))
    assert markdown_table(df).splitlines() == [
        "| row | a | b |",
        "| :--- | ---: | :--- |",
        "| r1 | 0.123 | x\\|y |",
        "| r2 | n/a | z |",
    ]


# --- plot and report -----------------------------------------------------------------------------


def test_plot_curves_writes_png_atomically(tmp_path):
    path = plots.plot_curves(_results(), tmp_path / "curves.png", title="TinyCorpus (synthetic data)")
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_report_writes_only_curves_and_report(tmp_path):
    path = _write(tmp_path, synthetic=True)
    assert path == tmp_path / "out" / "report.md"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curves.png", "report.md"]
    assert (tmp_path / "out" / "curves.png").read_bytes().startswith(PNG_SIGNATURE)


def test_report_has_banner_only_when_synthetic(tmp_path):
    synthetic = _write(tmp_path / "s", synthetic=True).read_text()
    real = _write(tmp_path / "r", synthetic=False).read_text()
    assert "SYNTHETIC DATA — not a real corpus" in synthetic
    assert "SYNTHETIC" not in real and "synthetic" not in real
    assert "TinyCorpus" in synthetic and "TinyCorpus" in real


def test_report_has_tables_sentences_and_curves(tmp_path):
    text = _write(tmp_path, synthetic=True, filter_counts={"happy: low arousal or low valence": 37}).read_text()
    # The F1/UAR table is the paper's Fig. 2; the paper's Table 1 is the rule list (the filter section).
    assert "## F1 and UAR against the rejection threshold (the paper's Fig. 2)" in text and "## Table 2" in text
    assert "## Table 1" not in text and "## Conflict filter (training set; the rules of the paper's Table 1)" in text
    assert "| t20 | 0.360 | 0.440 |" in text  # F1 EmoConfidNet raw 0.36, filtered 0.44
    assert "relative gain in F1 for EmoConfidNet is 10.0 % and 25.0 % in UAR" in text
    assert "Baseline (top-2 margin) offers a 5.0 % relative gain in F1 and 5.0 % in UAR" in text
    assert "40 predictions were removed by EmoConfidNet, among which 6 were correct (15.0 %)" in text
    assert "40 predictions were removed by Baseline (top-2 margin), among which 18 were correct (45.0 %)" in text
    assert "| No rejection | 0.200 | 0.400 |" in text  # Table 2 precision: (0.10+0.30)/2, (0.30+0.50)/2
    assert "| happy: low arousal or low valence | 37 |" in text
    assert "folds: 2 (0, 1)" in text and "`patience`: 10" in text
    assert "![curves](curves.png)" in text


def test_filter_counts_table_has_a_column_per_fold_from_one_seed(tmp_path):
    counts = pd.DataFrame({"fold": [0, 0, 1, 1], "seed": [0, 0, 0, 0],
                           "rule": ["happy: low arousal or low valence", "sad: high valence"] * 2,
                           "removed": [37, 5, 30, 8]})
    table = tables.filter_counts_table(counts)
    # all rules: fold 0 37 + 5 = 42, fold 1 30 + 8 = 38
    assert table.to_dict() == {"fold 0": {"happy: low arousal or low valence": 37, "sad: high valence": 5,
                                          "all rules": 42},
                               "fold 1": {"happy: low arousal or low valence": 30, "sad: high valence": 8,
                                          "all rules": 38}}
    text = _write(tmp_path, synthetic=False, filter_counts=counts).read_text()
    assert "| happy: low arousal or low valence | 37 | 30 |" in text and "| all rules | 42 | 38 |" in text
    assert "Training rows each rule removed, per fold, with seed 0 (the filter does not depend on the seed)" in text


def test_filter_counts_of_one_training_set_are_one_column():
    table = tables.filter_counts_table({"happy: low arousal or low valence": 37, "sad: high valence": 5})
    assert table.to_dict() == {"rows removed": {"happy: low arousal or low valence": 37, "sad: high valence": 5,
                                                "all rules": 42}}  # 37 + 5


def test_report_states_merged_categories(tmp_path):
    text = markdown.write_report(
        tmp_path, tables.ReportTables(_results(), _per_class(), _runs()),
        markdown.ReportOptions("iemocap_compare_2016", False, CLASSES, merged_labels=(("excited", "happy"),)),
    ).read_text()
    assert "- merged categories: excited counted as happy (as the dataset was built; IEMOCAP's default" in text
    assert "merged categories" not in _write(tmp_path / "none", synthetic=False).read_text()


def test_report_without_filter_counts_says_so(tmp_path):
    assert "No filter counts were given." in _write(tmp_path, synthetic=False).read_text()


def test_report_title_says_synthetic():
    assert "synthetic" in markdown.report_title("TinyCorpus", synthetic=True)
    assert "synthetic" not in markdown.report_title("TinyCorpus", synthetic=False)


def test_unknown_method_shown_as_given(tmp_path):
    results = _results(methods=("emoconfidnet", "top2_margin", "entropy"))
    assert "f1 entropy (filtered)" in tables.fig2_table(results).columns
    text = markdown.write_report(
        tmp_path, tables.ReportTables(results, _per_class(), _runs()),
        markdown.ReportOptions("TinyCorpus", True, CLASSES),
    ).read_text()
    assert "entropy offers a" in text


def test_summary_lines_show_thresholds_and_gains():
    lines = markdown.summary_lines(_results())
    text = "\n".join(lines)
    assert "0.440 / 0.500" in text  # EmoConfidNet filtered t20: F1 0.44, UAR 0.50
    assert any(line.startswith("t20 emoconfidnet/filtered: F1 +10.0 %, UAR +25.0 %") for line in lines)


def test_report_gains_table_shows_mean_and_std(tmp_path):
    text = _write(tmp_path, synthetic=False).read_text()
    # EmoConfidNet filtered: F1 t20 0.440 ± 0.028 (0.02 * sqrt(2)), gain 10.0 ± 7.1 (5 * sqrt(2))
    assert "| EmoConfidNet | filtered | 2 | 0.400 ± 0.000 | 0.440 ± 0.028 | 10.0 ± 7.1 |" in text


def _ranked_tables(recommended_gain):
    """Three runs, four methods; a method's F1 at t20 = 0.5 * (1 + gain + 0.005 * fold).

    emoconfidnet, top2_margin and msp have global rows (gains 0.02, 0.05, 0.04) and per-class rows (gain + 0.01);
    `recommended` has one mode per run: global in fold 0, per_class in folds 1 and 2.
    """
    results, per_class, selective = [], [], []
    gains = {"emoconfidnet": 0.02, "top2_margin": 0.05, "msp": 0.04, "recommended": recommended_gain}
    for fold in range(3):
        for method, gain in gains.items():
            if method == "recommended":
                modes = {"global": gain} if fold == 0 else {"per_class": gain}
            else:
                modes = {"global": gain, "per_class": gain + 0.01}
            for mode, mode_gain in modes.items():
                for rejection, f1 in ((0.0, 0.5), (0.2, 0.5 * (1 + mode_gain + 0.005 * fold))):
                    threshold = 0.0 if rejection == 0 else 0.3
                    results.append(dict(fold=fold, seed=0, training="filtered", method=method, rejection_mode=mode,
                                        rejection=rejection, threshold=threshold if mode == "global" else math.nan,
                                        coverage=1.0, f1=f1, uar=f1, n_test=100, removed=0, removed_correct=0))
                    per_class.extend(dict(fold=fold, seed=0, training="filtered", method=method, rejection_mode=mode,
                                          rejection=rejection, **{"class": c}, threshold=threshold, precision=0.5,
                                          recall=0.5, f1=0.5) for c in ("a", "b"))
            selective.append(dict(fold=fold, seed=0, training="filtered", method=method,
                                  aurc=0.3 - gain, eaurc=0.1, auroc=0.6 + gain, fpr95=0.8, aurc_balanced=0.35 - gain))
    return pd.DataFrame(results), pd.DataFrame(per_class), pd.DataFrame(selective)


def _ranked_runs(n_folds=3):
    return pd.DataFrame([dict(fold=f, seed=0, training="filtered", n_train=10, n_validation=5, n_test=100,
                              n_filtered_out=1, classifier_epochs=3, confidence_epochs=3) for f in range(n_folds)])


def test_recommendation_is_generated_from_the_numbers():
    from emoconf_tf.evaluation.statistics import paired_comparison, ranking
    from emoconf_tf.evaluation.statistics_text import recommendation_paragraph

    for gain, expected in ((0.10, "reliably better than the top-two margin"),
                           (0.01, "the top-two margin is better here")):
        results, per_class, selective = _ranked_tables(gain)
        table = ranking(results, selective, None, per_class, num_classes=2)
        comparison = paired_comparison(results, selective, None, per_class, num_classes=2)
        text = recommendation_paragraph(table, comparison, "filtered")
        assert expected in text
        # gain 0.01: the best is the top-two margin with per-class thresholds, 5 % + 1 % + 0.5 % = 6.5 %
        best = ("Recommended (mode chosen on validation)" if gain == 0.10
                else "Baseline (top-2 margin), per-class thresholds")
        assert f"the largest t20 F1 gain comes from {best}" in text
        # EmoConfidNet: 2 % + 0.5 % mean fold increment = 2.5 % (global), 3.5 % (per class); the margin 5.5, 6.5 %
        assert "EmoConfidNet gains 2.5 % against 5.5 % for the top-two margin (global threshold" in text
        assert "with per-class thresholds, 3.5 % against 6.5 %" in text
    # the verdict follows the F1 and UAR gains, not the accuracy AURC: a worse AURC does not overturn it
    results, per_class, selective = _ranked_tables(0.10)
    selective.loc[selective.method == "recommended", "aurc"] = 0.9
    comparison = paired_comparison(results, selective, None, per_class, num_classes=2)
    text = recommendation_paragraph(ranking(results, selective, None, per_class, num_classes=2), comparison,
                                    "filtered")
    assert "reliably better than the top-two margin" in text and "(accuracy ranking, for reference)" in text
    assert "UAR gain difference 5.0 [5.0, 5.0] points" in text  # 10 % - 5 % in every run (uar = f1 here)


def test_report_ranks_every_method_and_mode_when_given_selective(tmp_path):
    results, per_class, selective = _ranked_tables(0.10)
    markdown.write_report(tmp_path, tables.ReportTables(results, per_class, _ranked_runs(), selective=selective),
                          markdown.ReportOptions("toy", False, ["a", "b"]))
    text = (tmp_path / "report.md").read_text()
    assert "## Which confidence to trust" in text and "### Recommendation" in text
    assert "| filtered | Max softmax probability | per-class thresholds | 0.500 | 0.500 |" in text
    assert "| filtered | Max softmax probability | global threshold | 0.500 | 0.500 |" in text
    # recommended: one row, global in fold 0, per_class in folds 1 and 2
    assert "| Recommended (mode chosen on validation) | chosen on validation (global ×1, per_class ×2) |" in text
    assert "balanced AURC" in text
    assert "Paired comparison: recommended minus top-two margin (global threshold)" in text


def test_report_single_run_bootstraps_utterances_with_per_class_thresholds(tmp_path):
    results, per_class, selective = (t[t.fold == 0] for t in _ranked_tables(0.10))
    # fold 0: recommended chose global; make it per_class to exercise the per-class thresholds
    for table in (results, per_class):
        table.loc[table.method == "recommended", "rejection_mode"] = "per_class"
    results.loc[results.method == "recommended", "threshold"] = math.nan
    rng = np.random.default_rng(0)
    predictions = pd.DataFrame({"fold": 0, "seed": 0, "training": "filtered", "id": np.arange(40),
                                "label": rng.integers(0, 2, 40), "predicted": rng.integers(0, 2, 40),
                                **{m: rng.random(40) for m in ("emoconfidnet", "top2_margin", "msp", "recommended")}})
    markdown.write_report(
        tmp_path,
        tables.ReportTables(results, per_class, _ranked_runs(1), selective=selective, predictions=predictions),
        markdown.ReportOptions("toy", False, ["a", "b"], n_boot=20))
    text = (tmp_path / "report.md").read_text()
    assert "test utterances of the single run" in text
    assert "chosen on validation (per_class ×1)" in text


def _single_run_with_predictions():
    results, per_class, selective = (t[t.fold == 0] for t in _ranked_tables(0.10))
    rng = np.random.default_rng(0)
    predictions = pd.DataFrame({"fold": 0, "seed": 0, "training": "filtered", "id": np.arange(40),
                                "label": rng.integers(0, 2, 40), "predicted": rng.integers(0, 2, 40),
                                **{m: rng.random(40) for m in ("emoconfidnet", "top2_margin", "msp", "recommended")}})
    return tables.ReportTables(results, per_class, _ranked_runs(1), selective=selective, predictions=predictions)


def test_report_written_from_computed_tables_is_the_report_computed_inside(tmp_path):
    protocol_outputs = _single_run_with_predictions()
    options = markdown.ReportOptions("toy", False, ["a", "b"], n_boot=20)
    computed = report_tables.compute_report_tables(protocol_outputs, class_names=["a", "b"], n_boot=20)
    given = markdown.write_report(tmp_path / "given", None, options, computed=computed)
    inside = markdown.write_report(tmp_path / "inside", protocol_outputs, options)
    assert given.read_text() == inside.read_text()
    pictures = ["curves.png", "curves_per_class.png", "risk_coverage.png"]
    assert sorted(p.name for p in given.parent.iterdir()) == sorted([*pictures, "report.md"])
    for name in pictures:
        assert (given.parent / name).read_bytes() == (inside.parent / name).read_bytes()


def test_computed_tables_hold_the_ranking_only_beyond_the_paper_pair():
    computed = report_tables.compute_report_tables(tables.ReportTables(_results(), _per_class(), _runs()),
                                                   class_names=CLASSES)
    assert computed.ranking is None and computed.risk_coverage is None and computed.operating_point is None
    assert list(computed.table2) == ["filtered", "raw"] and computed.rejection == 0.2
    ranked = report_tables.compute_report_tables(_single_run_with_predictions(), class_names=["a", "b"], n_boot=20)
    assert set(ranked.ranking["method"]) == {"emoconfidnet", "top2_margin", "msp", "recommended"}
    assert ranked.comparison is not None and ranked.risk_coverage is not None


def test_write_report_needs_tables_or_computed_tables(tmp_path):
    with pytest.raises(EmoconfError, match="compute_report_tables"):
        markdown.write_report(tmp_path, None, markdown.ReportOptions("toy", False, ["a", "b"]))


def test_runs_summary_means_by_hand():
    summary = report_tables.runs_summary(_runs())
    assert list(summary.index) == ["raw", "filtered"]
    # filtered: n_train 740 in both folds; classifier epochs (12 + 13) / 2 = 12.5
    assert summary.loc["filtered", "runs"] == 2 and summary.loc["filtered", "n_train"] == pytest.approx(740)
    assert summary.loc["filtered", "classifier_epochs"] == pytest.approx(12.5)


def test_risk_coverage_curves_by_hand():
    predictions = pd.DataFrame({"fold": 0, "seed": 0, "training": ["raw"] * 4, "id": range(4),
                                "label": [0, 1, 1, 0], "predicted": [0, 0, 1, 0],
                                "top2_margin": [0.9, 0.8, 0.2, 0.1], "my_score": [0.1, 0.2, 0.3, 0.4]})
    curves = report_tables.risk_coverage_curves(predictions)
    assert list(curves.columns) == ["training", "method", "coverage", "risk"]
    assert list(dict.fromkeys(curves["method"])) == ["top2_margin", "my_score"]  # registered first, then others
    margin = curves[curves.method == "top2_margin"]
    # most confident first: correct, wrong, correct, correct -> errors 0, 1, 1, 1 among the top 1, 2, 3, 4
    np.testing.assert_allclose(margin["coverage"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(margin["risk"], [0 / 1, 1 / 2, 1 / 3, 1 / 4])


def test_plot_risk_coverage_draws_computed_curves(tmp_path):
    curves = pd.DataFrame({"training": ["raw"] * 2 + ["filtered"] * 2, "method": "msp",
                           "coverage": [0.5, 1.0] * 2, "risk": [0.0, 0.5] * 2})
    path = plots.plot_risk_coverage(curves, tmp_path / "risk_coverage.png", title="toy")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["risk_coverage.png"]


# --- rejection modes -----------------------------------------------------------------------------


def test_paper_tables_use_global_rows_when_both_modes_are_present():
    both = tables.fig2_table(_results(modes=("global", "per_class")))
    pd.testing.assert_frame_equal(both, tables.fig2_table(_results()))
    # filtered EmoConfidNet t20 F1: (0.46 + 0.42) / 2 = 0.44, the global rows
    assert both.loc["t20", "f1 emoconfidnet (filtered)"] == pytest.approx(0.44)


def test_per_class_view_by_hand():
    table = tables.fig2_table(_results(modes=("global", "per_class")), rejection_mode="per_class")
    # filtered EmoConfidNet t20 per class: F1 0.44 + 0.01 = 0.45, UAR 0.50 + 0.02 = 0.52; t0 unchanged 0.40
    assert table.loc["t20", "f1 emoconfidnet (filtered)"] == pytest.approx(0.45)
    assert table.loc["t20", "uar emoconfidnet (filtered)"] == pytest.approx(0.52)
    assert table.loc["t0", "f1 emoconfidnet (filtered)"] == pytest.approx(0.40)
    gains = tables.relative_gains(_results(modes=("global", "per_class")), rejection_mode="per_class")
    # (0.45 - 0.40) / 0.40 = +12.5 %; UAR (0.52 - 0.40) / 0.40 = +30.0 %
    assert _gain_row(gains, "emoconfidnet", "filtered")["f1_gain_pct"] == pytest.approx(12.5)
    assert _gain_row(gains, "emoconfidnet", "filtered")["uar_gain_pct"] == pytest.approx(30.0)


def _with_recommended(results):
    """`recommended` copied from EmoConfidNet's rows: per_class mode in fold 0, global in fold 1."""
    chosen = results[(results.method == "emoconfidnet") & (
        ((results.fold == 0) & (results.rejection_mode == "per_class"))
        | ((results.fold == 1) & (results.rejection_mode == "global")))]
    return pd.concat([results, chosen.assign(method="recommended")], ignore_index=True)


def test_recommended_in_the_paper_view_whatever_mode_it_chose():
    results = _with_recommended(_results(modes=("global", "per_class")))
    table = tables.fig2_table(results)
    # fold 0 per class 0.46 + 0.01 = 0.47, fold 1 global 0.42: (0.47 + 0.42) / 2 = 0.445
    assert table.loc["t20", "f1 recommended (filtered)"] == pytest.approx(0.445)
    assert "f1 recommended (filtered)" not in tables.fig2_table(results, rejection_mode="per_class").columns


def test_mixed_modes_are_refused_when_no_mode_is_selected():
    with pytest.raises(EmoconfError, match=r"more than one row .*\(rejection modes global, per_class\)"):
        tables.fig2_table(_results(modes=("global", "per_class")), rejection_mode=None)


def test_missing_rejection_mode_column_is_named():
    with pytest.raises(EmoconfError, match=r"missing column\(s\) rejection_mode"):
        tables.fig2_table(_results().drop(columns=["rejection_mode"]))
    with pytest.raises(EmoconfError, match=r"per_class is missing column\(s\) threshold"):
        tables.table2(_results(), _per_class().drop(columns=["threshold"]))


def test_report_has_per_class_section_with_per_class_rows(tmp_path):
    text = _write(tmp_path, synthetic=True, modes=("global", "per_class")).read_text()
    paper, per_class_part = text.split("## Per-class rejection")
    # the paper's view keeps the global numbers: EmoConfidNet t20 F1 raw 0.36, filtered 0.44
    assert "| t20 | 0.360 | 0.440 |" in paper
    # per class: raw (0.36 + 0.01), filtered (0.44 + 0.01); gains +12.5 % F1, +30.0 % UAR (filtered EmoConfidNet)
    assert "| t20 | 0.370 | 0.450 |" in per_class_part
    assert "relative gain in F1 for EmoConfidNet is 12.5 % and 30.0 % in UAR" in per_class_part
    assert "![curves, per-class thresholds](curves_per_class.png)" in per_class_part
    assert (tmp_path / "out" / "curves_per_class.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "- rejection modes: global threshold, per-class thresholds" in paper


def test_report_has_no_per_class_section_without_per_class_rows(tmp_path):
    text = _write(tmp_path, synthetic=True).read_text()
    assert "Per-class rejection" not in text and "curves_per_class" not in text
    assert not (tmp_path / "out" / "curves_per_class.png").exists()


def test_per_class_curves_title_says_synthetic():
    title = markdown.report_title("TinyCorpus", synthetic=True, rejection_mode="per_class")
    assert "synthetic" in title and "per-class thresholds" in title
    assert "synthetic" not in markdown.report_title("TinyCorpus", synthetic=False, rejection_mode="per_class")


def test_choices_grouped_by_mode():
    choices = pd.DataFrame([
        dict(fold=f, seed=0, training="filtered", method="recommended", choice="msp", rejection_mode=mode,
             criterion="f1_uar_area", validation_value=0.5)
        for f, mode in enumerate(("global", "per_class", "per_class"))
    ] + [dict(fold=0, seed=0, training="filtered", method="emoconfidnet_tau", choice="tau=2", rejection_mode=np.nan,
              criterion="aurc", validation_value=0.2)])
    counts = report_tables.choice_counts(choices)
    assert counts[["method", "rejection_mode", "runs"]].values.tolist() == [
        ["emoconfidnet_tau", "—", 1], ["recommended", "per_class", 2], ["recommended", "global", 1],
    ]


# --- threshold sources: the operating point on new data -----------------------------------------------------------

BATCH_SHIFT = 0.03  # the batch rows' F1 and UAR above the validation rows' at every rejection > 0


def _with_sources(results: pd.DataFrame) -> pd.DataFrame:
    """`results` as validation rows, plus batch rows: coverage exactly 1 - r and F1, UAR + `BATCH_SHIFT` for r > 0."""
    batch = results.assign(threshold_source="batch", coverage=1 - results.rejection)
    above = batch.rejection > 0
    batch.loc[above, "f1"] += BATCH_SHIFT
    batch.loc[above, "uar"] += BATCH_SHIFT
    return pd.concat([results.assign(threshold_source="validation"), batch], ignore_index=True)


def test_coverage_errors_by_hand():
    errors = tables.coverage_errors(_with_sources(_results())).set_index(
        ["training", "method", "threshold_source", "fold"]).coverage_error
    # filtered EmoConfidNet, validation: fold 0 coverage 0.90 at r = 0.1, 0.82 at r = 0.2:
    # (|0.90 - 0.9| + |0.82 - 0.8|) / 2 = 0.01; fold 1: (|0.90 - 0.9| + |0.78 - 0.8|) / 2 = 0.01
    assert errors[("filtered", "emoconfidnet", "validation", 0)] == pytest.approx(0.01)
    assert errors[("filtered", "emoconfidnet", "validation", 1)] == pytest.approx(0.01)
    # the top-two margin keeps exactly 0.9 and 0.8; batch rows keep exactly 1 - r by construction
    assert errors[("filtered", "top2_margin", "validation", 0)] == pytest.approx(0.0)
    assert errors.xs("batch", level="threshold_source").abs().max() == pytest.approx(0.0)
    # a table without threshold_source (output format 2) holds validation rows
    assert set(tables.coverage_errors(_results()).threshold_source) == {"validation"}


def test_figures_are_computed_from_validation_rows_only():
    both = _with_sources(_results(modes=("global", "per_class")))
    validation = _results(modes=("global", "per_class"))
    pd.testing.assert_frame_equal(tables.fig2_table(both), tables.fig2_table(validation))
    pd.testing.assert_frame_equal(tables.relative_gains(both, rejection_mode="per_class"),
                                  tables.relative_gains(validation, rejection_mode="per_class"))
    # the batch rows on request: filtered EmoConfidNet t20 F1 (0.46 + 0.42) / 2 + 0.03 = 0.47, gain 0.07 / 0.40
    gains = tables.relative_gains(both, threshold_source="batch")
    assert _gain_row(gains, "emoconfidnet", "filtered")["f1_gain_pct"] == pytest.approx(17.5)
    assert len(tables.rejection_view(both, "global", threshold_source="batch")) == len(_results())


def test_operating_point_by_hand():
    from emoconf_tf.evaluation.statistics import operating_point

    table = operating_point(_with_sources(_results()), n_boot=50).set_index(["training", "method"])
    row = table.loc[("filtered", "emoconfidnet")]
    assert row.rejection_mode == "global" and row.n_runs == 2
    # coverage error 0.01 in both folds (test_coverage_errors_by_hand): mean 0.01, interval [0.01, 0.01]
    assert (row.coverage_error_validation, row.coverage_error_validation_low,
            row.coverage_error_validation_high) == pytest.approx((0.01, 0.01, 0.01))
    assert row.coverage_error_batch == pytest.approx(0.0)
    # gains at t20 vs t0 0.40 (F1) and (0.50 + 0.30) / 2 = 0.40 (UAR): validation F1 0.44 -> +10 %, batch 0.47 ->
    # +17.5 %; UAR validation (0.55 + 0.45) / 2 = 0.50 -> +25 %, batch 0.53 -> +32.5 %
    assert (row.f1_gain_validation, row.f1_gain_batch) == pytest.approx((10.0, 17.5))
    assert (row.uar_gain_validation, row.uar_gain_batch) == pytest.approx((25.0, 32.5))
    assert "coverage_error_online" not in table.columns  # not run


def test_report_has_the_operating_point_section_after_the_others(tmp_path):
    validation_only = _write(tmp_path / "before", synthetic=True).read_text()
    assert "Operating point on new data" not in validation_only
    path = markdown.write_report(
        tmp_path / "after",
        tables.ReportTables(_with_sources(_results()), _per_class(), _runs()),
        markdown.ReportOptions("TinyCorpus", True, list(CLASSES), settings={"epochs": 50, "patience": 10}),
    )
    text = path.read_text()
    # every earlier section is unchanged: computed from the validation rows only
    head, section = text.split("\n## Operating point on new data\n")
    assert head == validation_only
    assert "**batch**: the same rule applied to the test fold's own unlabelled confidences" in section
    assert "a session or a day of calls" in section and "were not run" in section  # online not asked for
    assert "SYNTHETIC data" in section
    assert "| filtered | EmoConfidNet | global threshold | 0.010 [0.010, 0.010] | 0.000 [0.000, 0.000] | 10.0 | 17.5 " \
           "| 25.0 | 32.5 |" in section
    assert "coverage error, validation | coverage error, batch | F1 gain % at t20, validation" in section


def test_operating_point_has_one_recommended_row_in_the_modes_validation_chose():
    from emoconf_tf.evaluation.statistics import operating_point

    results = _with_sources(_with_recommended(_results(modes=("global", "per_class"))))
    table = operating_point(results, n_boot=50)
    row = table[(table.method == "recommended") & (table.training == "filtered")].iloc[0]
    assert row.rejection_mode == tables.VALIDATION_CHOICE and len(table[table.method == "recommended"]) == 2
    # t20 F1: fold 0 per class 0.46 + 0.01 = 0.47, fold 1 global 0.42 -> 0.445, +11.25 % over 0.40; batch 0.475
    assert (row.f1_gain_validation, row.f1_gain_batch) == pytest.approx((11.25, 18.75))
    assert row.coverage_error_validation == pytest.approx(0.01)  # 0.90 and 0.82 / 0.78 in either mode
