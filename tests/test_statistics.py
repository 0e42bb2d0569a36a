import math

import numpy as np
import pandas as pd
import pytest

from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.statistics import (
    VALIDATION_CHOICE, bootstrap_mean_ci, paired_comparison, per_run_figures, ranking, utterance_bootstrap,
)


def test_bootstrap_interval_covers_the_mean_of_a_known_distribution():
    # 200 draws from N(5, 1): the 95 % interval of the mean is about 5 +- 1.96/sqrt(200) = +- 0.139
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(40):
        mean, low, high = bootstrap_mean_ci(rng.normal(5.0, 1.0, 200), n_boot=500, seed=trial)
        covered += low <= 5.0 <= high
        assert high - low == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.25)
    assert covered >= 34  # ~95 % of 40


def test_bootstrap_of_one_value_is_that_value():
    assert bootstrap_mean_ci([0.3]) == (0.3, 0.3, 0.3)


def _result_row(fold, method, mode, rejection, f1, uar, threshold=0.3):
    return dict(fold=fold, seed=0, training="filtered", method=method, rejection_mode=mode, rejection=rejection,
                threshold=(0.0 if rejection == 0 else threshold) if mode == "global" else math.nan, coverage=1.0,
                f1=f1, uar=uar, n_test=100, removed=0, removed_correct=0)


def _tables(n_runs=3, *, top2_per_class_gain=None, recommended_modes=None):
    """`n_runs` runs of recommended (F1 gain 10 % + 1 % per fold) and top2_margin (5 % + 1 % per fold, global).

    With `top2_per_class_gain`, top2_margin also has per_class rows with that gain (+ 1 % per fold);
    `recommended_modes[fold]` is the mode recommended chose in that run (default global).
    """
    results, selective = [], []
    for fold in range(n_runs):
        rows = [("recommended", (recommended_modes or ["global"] * n_runs)[fold], 0.10),
                ("top2_margin", "global", 0.05)]
        if top2_per_class_gain is not None:
            rows.append(("top2_margin", "per_class", top2_per_class_gain))
        for method, mode, gain in rows:
            results.append(_result_row(fold, method, mode, 0.0, 0.5, 0.4))
            results.append(_result_row(fold, method, mode, 0.2, 0.5 * (1 + gain + 0.01 * fold), 0.4 * (1 + gain)))
        for method in ("recommended", "top2_margin"):
            selective.append(dict(fold=fold, seed=0, training="filtered", method=method,
                                  aurc=0.2 if method == "recommended" else 0.25, eaurc=0.1, auroc=0.7, fpr95=0.8,
                                  aurc_balanced=0.3 if method == "recommended" else 0.32))
    return pd.DataFrame(results), pd.DataFrame(selective)


def test_per_run_gain_by_hand():
    results, selective = _tables()
    figures = per_run_figures(results, selective)
    # fold 1 recommended: f1 0.5 -> 0.5 * 1.11 = 0.555 -> +11 %
    row = figures[(figures.fold == 1) & (figures.method == "recommended")].iloc[0]
    assert row.f1_gain == pytest.approx(11.0) and row.uar_gain == pytest.approx(10.0)
    assert (row.f1_t0, row.uar_t0, row.aurc_balanced) == pytest.approx((0.5, 0.4, 0.3))


def test_per_run_figures_keyed_by_method_and_mode():
    results, selective = _tables(top2_per_class_gain=0.08)
    figures = per_run_figures(results, selective).set_index(["fold", "method", "rejection_mode"])
    # fold 0 top2_margin: global 5 %, per class 8 %; AURC (mode-independent) 0.25 in both
    assert figures.loc[(0, "top2_margin", "global"), "f1_gain"] == pytest.approx(5.0)
    assert figures.loc[(0, "top2_margin", "per_class"), "f1_gain"] == pytest.approx(8.0)
    assert figures.loc[(0, "top2_margin", "per_class"), "aurc"] == pytest.approx(0.25)


def test_ranking_orders_by_gain_and_gives_intervals():
    results, selective = _tables()
    table = ranking(results, selective, None, num_classes=5)
    assert list(table.method) == ["recommended", "top2_margin"]
    # recommended gains 10, 11, 12 % -> mean 11
    assert table.f1_gain.iloc[0] == pytest.approx(11.0)
    assert 10.0 - 1e-9 <= table.f1_gain_low.iloc[0] < 11.0 < table.f1_gain_high.iloc[0] <= 12.0 + 1e-9
    assert (table.ci_over == "runs").all()
    assert table.f1_t0.iloc[0] == pytest.approx(0.5) and table.uar_t0.iloc[0] == pytest.approx(0.4)
    assert table.aurc_balanced.iloc[0] == pytest.approx(0.3)


def test_ranking_has_one_row_per_method_and_mode_and_one_for_recommended():
    results, selective = _tables(top2_per_class_gain=0.08, recommended_modes=["global", "per_class", "per_class"])
    table = ranking(results, selective, None, num_classes=5)
    assert sorted(zip(table.method, table.rejection_mode)) == [
        ("recommended", VALIDATION_CHOICE), ("top2_margin", "global"), ("top2_margin", "per_class"),
    ]
    rows = table.set_index(["method", "rejection_mode"])
    assert rows.loc[("recommended", VALIDATION_CHOICE), "chosen_modes"] == "global ×1, per_class ×2"
    assert rows.loc[("recommended", VALIDATION_CHOICE), "n_runs"] == 3
    # top2_margin: global 5, 6, 7 % -> 6; per class 8, 9, 10 % -> 9
    assert rows.loc[("top2_margin", "global"), "f1_gain"] == pytest.approx(6.0)
    assert rows.loc[("top2_margin", "per_class"), "f1_gain"] == pytest.approx(9.0)


def test_paired_comparison_by_run():
    results, selective = _tables()
    comparison = paired_comparison(results, selective, None, num_classes=5).set_index("figure")
    # every run: recommended gains 5 points more in F1, AURC 0.05 lower, balanced AURC 0.3 - 0.32 = -0.02
    assert comparison.loc["f1_gain", "mean_difference"] == pytest.approx(5.0)
    assert comparison.loc["aurc", "mean_difference"] == pytest.approx(-0.05)
    assert comparison.loc["aurc_balanced", "mean_difference"] == pytest.approx(-0.02)
    assert comparison.loc["aurc", "a_better"] == 1.0 and comparison.loc["f1_gain", "a_better"] == 1.0


def test_paired_comparison_uses_the_top2_margin_global_rows():
    results, selective = _tables(top2_per_class_gain=0.08, recommended_modes=["global", "per_class", "per_class"])
    comparison = paired_comparison(results, selective, None, num_classes=5).set_index("figure")
    # run k: recommended (10 + k) % minus top2_margin global (5 + k) % = 5 points (per class would be 10 - 8 = 2)
    assert comparison.loc["f1_gain", "mean_difference"] == pytest.approx(5.0)
    per_class = paired_comparison(results, selective, None, num_classes=5, b_mode="per_class").set_index("figure")
    assert per_class.loc["f1_gain", "mean_difference"] == pytest.approx(2.0)


def test_paired_comparison_refuses_a_method_with_two_modes_per_run():
    results, selective = _tables(top2_per_class_gain=0.08)
    with pytest.raises(EmoconfError, match="several rejection modes per run .*b_mode"):
        paired_comparison(results, selective, None, num_classes=5, b_mode=None)


# One run, two classes (a = 0, b = 1), five test utterances of method `m`:
#   label      0    1    1    0    1
#   predicted  0    0    1    1    1
#   confidence 0.9  0.6  0.4  0.2  0.35
# Per-class thresholds at t20: a 0.5, b 0.15. Every class-a prediction has confidence >= 0.5 and every class-b
# prediction >= 0.15, so per-class rejection keeps every utterance of every resample: gain exactly 0 %. The
# global threshold 0.3 drops the 0.2 one, and so would b's rows read as a's (0.5 for class b): not 0 % then.
_TINY = pd.DataFrame({"fold": 0, "seed": 0, "training": "filtered", "id": range(5), "label": [0, 1, 1, 0, 1],
                      "predicted": [0, 0, 1, 1, 1], "m": [0.9, 0.6, 0.4, 0.2, 0.35]})


def _tiny_tables():
    results = [_result_row(0, "m", mode, rejection, 0.5, 0.5, threshold=0.3)
               for mode in ("global", "per_class") for rejection in (0.0, 0.2)]
    # class b listed first: thresholds are matched by class name, not by row order
    per_class = [dict(fold=0, seed=0, training="filtered", method="m", rejection_mode=mode, rejection=rejection,
                      **{"class": name}, threshold=threshold, precision=0.5, recall=0.5, f1=0.5)
                 for mode, rejection, thresholds in (("global", 0.0, (0.0, 0.0)), ("global", 0.2, (0.3, 0.3)),
                                                     ("per_class", 0.0, (0.0, 0.0)),
                                                     ("per_class", 0.2, (0.15, 0.5)))
                 for name, threshold in zip(("b", "a"), thresholds)]
    return pd.DataFrame(results), pd.DataFrame(per_class)


def test_utterance_bootstrap_applies_per_class_thresholds():
    results, per_class = _tiny_tables()
    boot = utterance_bootstrap(_TINY, results, per_class, num_classes=2, class_names=["a", "b"], n_boot=50)
    by_mode = {mode: part for mode, part in boot.groupby("rejection_mode")}
    assert len(by_mode["per_class"]) == len(by_mode["global"]) == 50
    assert np.allclose(by_mode["per_class"].f1_gain.dropna(), 0.0)
    assert np.allclose(by_mode["per_class"].uar_gain.dropna(), 0.0)
    assert not np.allclose(by_mode["global"].f1_gain.dropna(), 0.0)
    # the confidence's own figures do not depend on the mode
    assert np.allclose(by_mode["per_class"].aurc.to_numpy(), by_mode["global"].aurc.to_numpy())


def test_utterance_bootstrap_with_classes_swapped_is_not_per_class():
    results, per_class = _tiny_tables()
    boot = utterance_bootstrap(_TINY, results, per_class, num_classes=2, class_names=["b", "a"], n_boot=50)
    # b's threshold 0.5 on class-0 predictions and a's 0.15 on class-1 ones: the 0.4 and 0.35 ones are dropped
    assert not np.allclose(boot[boot.rejection_mode == "per_class"].f1_gain.dropna(), 0.0)


def test_single_run_ranking_needs_the_per_class_table_for_per_class_rows():
    results, per_class = _tiny_tables()
    selective = pd.DataFrame([dict(fold=0, seed=0, training="filtered", method="m", aurc=0.2, eaurc=0.1, auroc=0.7,
                                   fpr95=0.8, aurc_balanced=0.3)])
    with pytest.raises(EmoconfError, match="pass the per_class table"):
        ranking(results, selective, _TINY, num_classes=2, n_boot=5)
    table = ranking(results, selective, _TINY, per_class, num_classes=2, class_names=["a", "b"], n_boot=5)
    assert sorted(table.rejection_mode) == ["global", "per_class"] and (table.ci_over == "utterances").all()


def test_missing_mode_column_is_named():
    results, selective = _tables()
    with pytest.raises(EmoconfError, match=r"results is missing column\(s\) rejection_mode"):
        per_run_figures(results.drop(columns=["rejection_mode"]), selective)
    with pytest.raises(EmoconfError, match=r"selective is missing column\(s\) aurc_balanced"):
        per_run_figures(results, selective.drop(columns=["aurc_balanced"]))
