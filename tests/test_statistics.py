import numpy as np
import pandas as pd
import pytest

from emoconf_tf.metrics import selective_scores
from emoconf_tf.statistics import bootstrap_mean_ci, macro_f1_uar, paired_comparison, per_run_figures, ranking


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


def test_counting_f1_matches_selective_scores():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    y_pred[:100] = y_true[:100]
    s = selective_scores(y_true, y_pred, np.ones(300), 0.0, 4)
    assert macro_f1_uar(y_true, y_pred, 4) == pytest.approx((s.f1, s.uar))


def _tables(n_runs=3):
    results, selective = [], []
    for fold in range(n_runs):
        for method, gain in (("recommended", 0.10), ("top2_margin", 0.05)):
            results.append(dict(fold=fold, seed=0, training="filtered", method=method, rejection=0.0, threshold=0.0,
                                f1=0.5, uar=0.4))
            results.append(dict(fold=fold, seed=0, training="filtered", method=method, rejection=0.2, threshold=0.3,
                                f1=0.5 * (1 + gain + 0.01 * fold), uar=0.4 * (1 + gain)))
            selective.append(dict(fold=fold, seed=0, training="filtered", method=method,
                                  aurc=0.2 if method == "recommended" else 0.25, eaurc=0.1, auroc=0.7, fpr95=0.8))
    return pd.DataFrame(results), pd.DataFrame(selective)


def test_per_run_gain_by_hand():
    results, selective = _tables()
    figures = per_run_figures(results, selective)
    # fold 1 recommended: f1 0.5 -> 0.5 * 1.11 = 0.555 -> +11 %
    row = figures[(figures.fold == 1) & (figures.method == "recommended")].iloc[0]
    assert row.f1_gain == pytest.approx(11.0) and row.uar_gain == pytest.approx(10.0)


def test_ranking_orders_by_gain_and_gives_intervals():
    results, selective = _tables()
    table = ranking(results, selective, None, num_classes=5)
    assert list(table.method) == ["recommended", "top2_margin"]
    # recommended gains 10, 11, 12 % -> mean 11
    assert table.f1_gain.iloc[0] == pytest.approx(11.0)
    assert 10.0 - 1e-9 <= table.f1_gain_low.iloc[0] < 11.0 < table.f1_gain_high.iloc[0] <= 12.0 + 1e-9
    assert (table.ci_over == "runs").all()


def test_paired_comparison_by_run():
    results, selective = _tables()
    comparison = paired_comparison(results, selective, None, num_classes=5).set_index("figure")
    # every run: recommended gains 5 points more in F1, AURC 0.05 lower
    assert comparison.loc["f1_gain", "mean_difference"] == pytest.approx(5.0)
    assert comparison.loc["aurc", "mean_difference"] == pytest.approx(-0.05)
    assert comparison.loc["aurc", "a_better"] == 1.0 and comparison.loc["f1_gain", "a_better"] == 1.0
