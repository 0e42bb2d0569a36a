"""End-to-end protocol on a small synthetic corpus (a few hundred rows, 48 features)."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.evaluation.protocol import (
    CHOICE_COLUMNS, FILTER_COUNT_COLUMNS, PER_CLASS_COLUMNS, RESULT_COLUMNS, RUN_COLUMNS, SELECTIVE_COLUMNS,
    run_protocol, write_tables,
)
from emoconf_tf.evaluation.unit import training_rows
from emoconf_tf.settings import ALL_METHODS, PAPER_METHODS, ProtocolConfig
from emoconf_tf.folds import make_folds
from emoconf_tf.filtering import ConflictRule, conflict_mask
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.training import TrainingConfig

FAST = TrainingConfig(max_epochs=3, batch_size=64)


@pytest.fixture(scope="module")
def corpus():
    return make_synthetic_corpus(n_utterances=500, num_features=48, seed=3)


# The runs below are shared by the tests that only read them: each trains networks, which costs seconds per unit.

@pytest.fixture(scope="module")
def end_to_end(corpus, tmp_path_factory):
    """`(outputs, out_dir)` of the default protocol (raw and filtered, every method), its tables written."""
    out_dir = tmp_path_factory.mktemp("end_to_end")
    outputs = run_protocol(corpus, ProtocolConfig(training=FAST), out_dir, progress=False)
    write_tables(outputs, out_dir)
    return outputs, out_dir


@pytest.fixture(scope="module")
def raw_only(corpus):
    """The outputs of the protocol on the raw training set alone, every method (MC dropout included)."""
    return run_protocol(corpus, ProtocolConfig(training=FAST, trainings=("raw",)), progress=False)


@pytest.fixture(scope="module")
def three_sessions(corpus):
    """The corpus in three sessions: three folds under `cv="group"` (five would only take longer)."""
    sessions = np.array([f"session{i % 3 + 1}" for i in range(len(corpus))], dtype=object)
    return dataclasses.replace(corpus, group=sessions)


@pytest.fixture(scope="module")
def group_folds_two_seeds(three_sessions):
    """The protocol with group folds and two seeds on the filtered training set (one epoch, the paper's methods)."""
    config = ProtocolConfig(cv="group", seeds=(0, 1), trainings=("filtered",), methods=PAPER_METHODS,
                            training=TrainingConfig(max_epochs=1, batch_size=64))
    return config, run_protocol(three_sessions, config, progress=False)


def test_filtered_training_drops_exactly_the_conflicting_training_rows(corpus):
    (fold,) = make_folds(corpus, "split")
    rows, counts = training_rows(corpus, fold, "filtered", ProtocolConfig())
    train = corpus.subset(fold.train)
    names = np.asarray(corpus.class_names)[train.labels]
    expected = fold.train[~conflict_mask(names, train.avd[:, 0], train.avd[:, 1], scale=(1, 7))]
    np.testing.assert_array_equal(rows, expected)
    assert sum(counts.values()) == len(fold.train) - len(rows) > 0
    raw_rows, raw_counts = training_rows(corpus, fold, "raw", ProtocolConfig())
    np.testing.assert_array_equal(raw_rows, fold.train)
    assert raw_counts == {}


def test_protocol_end_to_end_writes_consistent_tables(end_to_end):
    _, out_dir = end_to_end
    results = pd.read_csv(out_dir / "results.csv")
    assert tuple(results.columns) == RESULT_COLUMNS
    assert tuple(pd.read_csv(out_dir / "per_class.csv").columns) == PER_CLASS_COLUMNS
    runs = pd.read_csv(out_dir / "runs.csv")
    assert tuple(runs.columns) == RUN_COLUMNS and len(runs) == 2
    # 2 trainings x (9 methods x 2 rejection modes + recommended in the one mode validation chose) x 2 threshold
    # sources (validation, batch: the default) x 6 levels
    assert len(results) == 2 * ((len(ALL_METHODS) - 1) * 2 + 1) * 2 * 6
    assert list(results.threshold_source.unique()) == ["validation", "batch"]
    assert set(results.method) == set(ALL_METHODS) and set(results.training) == {"raw", "filtered"}
    assert set(results.rejection_mode) <= {"global", "per_class"}
    assert results[results.method == "recommended"].groupby("training").rejection_mode.nunique().eq(1).all()
    choices = pd.read_csv(out_dir / "choices.csv")
    chosen = choices[choices.method == "recommended"].set_index("training").rejection_mode
    for training, group in results[results.method == "recommended"].groupby("training"):
        assert (group.rejection_mode == chosen[training]).all()
    per_class = pd.read_csv(out_dir / "per_class.csv")
    # per_class.csv's thresholds: one value per class in global mode, equal to results.csv's threshold
    glob = per_class[per_class.rejection_mode == "global"].groupby(
        ["training", "method", "threshold_source", "rejection"]).threshold
    assert glob.nunique().eq(1).all()
    assert results[results.rejection_mode == "per_class"].threshold.isna().all()
    selective = pd.read_csv(out_dir / "selective.csv")
    assert tuple(selective.columns) == SELECTIVE_COLUMNS and len(selective) == 2 * len(ALL_METHODS)
    assert selective.aurc.between(0, 1).all() and (selective.eaurc >= -1e-12).all()
    assert selective.aurc_balanced.between(0, 1).all()
    assert set(choices.method) == {"emoconfidnet_tau", "recommended"}
    predictions = pd.read_csv(out_dir / "predictions.csv")
    assert len(predictions) == 2 * runs.n_test.iloc[0] and set(ALL_METHODS) <= set(predictions.columns)
    t0 = results[results.rejection == 0]
    assert (t0.removed == 0).all() and (t0.coverage == 1).all()
    assert (t0[t0.rejection_mode == "global"].threshold == 0).all()
    assert (per_class[per_class.rejection == 0].threshold == 0).all()
    # at t0 both methods see the same predictions
    for _, group in t0.groupby("training"):
        assert group.f1.nunique() == 1
    for _, group in per_class.groupby(["training", "method", "rejection_mode", "threshold_source", "class"]):
        assert np.all(np.diff(group.sort_values("rejection").threshold) >= 0)
    for _, group in results.groupby(["training", "method", "rejection_mode", "threshold_source"]):
        group = group.sort_values("rejection")
        assert np.all(np.diff(group.removed) >= 0)
        assert (group.removed_correct <= group.removed).all()
        np.testing.assert_allclose(group.coverage, 1 - group.removed / group.n_test, rtol=1e-5)
    assert (runs.loc[runs.training == "filtered", "n_filtered_out"] > 0).all()
    assert (runs.loc[runs.training == "raw", "n_filtered_out"] == 0).all()


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory):
    """`(config, outputs, out_dir)` of a finished run with an out dir: filtered training, the paper's methods."""
    out_dir = tmp_path_factory.mktemp("finished")
    config = ProtocolConfig(training=FAST, trainings=("filtered",), methods=PAPER_METHODS)
    return config, run_protocol(corpus, config, out_dir, progress=False), out_dir


def test_rerun_skips_finished_units_and_gives_the_same_tables(corpus, finished_run):
    config, first, out_dir = finished_run
    parts = sorted(p.name for p in (out_dir / "parts").iterdir())
    assert parts == ["fold0_seed0_filtered.json", "fold0_seed0_filtered.predictions.csv"]
    second = run_protocol(corpus, config, out_dir, progress=False)
    assert second.skipped_units == 1
    pd.testing.assert_frame_equal(first.results, second.results)
    pd.testing.assert_frame_equal(first.predictions, second.predictions, check_dtype=False, atol=1e-6)


def test_the_output_lists_which_utterance_is_in_which_part_of_each_fold(corpus, finished_run):
    _, _, out_dir = finished_run
    folds = pd.read_csv(out_dir / "folds.csv")
    assert list(folds.columns) == ["id", "fold", "fold_name", "part"] and len(folds) == len(corpus)
    (fold,) = make_folds(corpus, "split")
    assert (folds["part"] == "test").sum() == len(fold.test) and set(folds["fold_name"]) == {"split"}


def test_the_fingerprint_lists_folds_only_when_set():
    assert "folds" not in ProtocolConfig(cv="group").fingerprint()  # an --out from before the option resumes
    assert ProtocolConfig(cv="group", folds=5).fingerprint()["folds"] == 5


def test_same_seed_gives_identical_results(end_to_end, raw_only):
    # Every method, MC dropout included. Seeded per unit: the raw unit run alone gives the raw rows of the run
    # with both training sets.
    outputs, _ = end_to_end
    expected = outputs.results[outputs.results.training == "raw"].reset_index(drop=True)
    pd.testing.assert_frame_equal(raw_only.results, expected)


def test_out_dir_with_other_settings_is_refused(corpus, finished_run):
    config, _, out_dir = finished_run
    with pytest.raises(EmoconfError, match="other settings"):
        run_protocol(corpus, dataclasses.replace(config, seeds=(1,)), out_dir, progress=False)
    assert json.loads((out_dir / "protocol.json").read_text())["protocol"]["seeds"] == [0]


def test_group_folds_with_two_seeds_run_every_unit(three_sessions, group_folds_two_seeds):
    _, outputs = group_folds_two_seeds
    assert sorted(set(zip(outputs.runs.fold, outputs.runs.seed))) == [(f, s) for f in range(3) for s in (0, 1)]
    assert len(outputs.runs) == 3 * 2
    assert outputs.runs.n_test.sum() == 2 * len(three_sessions)  # every row tested once per seed


def test_filter_counts_are_per_fold_for_one_seed(group_folds_two_seeds):
    config, outputs = group_folds_two_seeds
    counts = outputs.filter_counts
    assert tuple(counts.columns) == FILTER_COUNT_COLUMNS
    assert set(counts.seed) == {0}  # the filter does not depend on the seed: one seed's counts, not their sum
    assert sorted(set(counts.fold)) == [0, 1, 2] and len(counts) == 3 * len(config.filter_rules)
    runs = outputs.runs.set_index(["fold", "seed"]).n_filtered_out
    for fold, group in counts.groupby("fold"):
        # Each fold's rule counts add up to what that fold's unit removed, with either seed (once, not twice).
        assert group.removed.sum() == runs[(fold, 0)] == runs[(fold, 1)] > 0
        assert list(group.rule) == [rule.name for rule in config.filter_rules]


def test_inclusive_filter_option_removes_the_rows_at_the_midpoint(corpus):
    (fold,) = make_folds(corpus, "split")
    strict, _ = training_rows(corpus, fold, "filtered", ProtocolConfig())
    inclusive, _ = training_rows(corpus, fold, "filtered", ProtocolConfig(filter_inclusive=True))
    train = corpus.subset(fold.train)
    names = np.asarray(corpus.class_names)[train.labels]
    expected = fold.train[~conflict_mask(names, train.avd[:, 0], train.avd[:, 1], scale=(1, 7), inclusive=True)]
    np.testing.assert_array_equal(inclusive, expected)
    # Annotator means of five integer ratings land on 4.0 often enough: inclusive drops a strict superset.
    assert set(inclusive) < set(strict)
    assert "filter_inclusive" not in ProtocolConfig().fingerprint()  # default runs keep their fingerprint
    assert ProtocolConfig(filter_inclusive=True).fingerprint()["filter_inclusive"] is True


def test_a_class_with_no_training_rows_after_filtering_is_named(corpus):
    # with the midpoint far below the scale every sad row has "high arousal" and is filtered out
    strict = (ConflictRule("sad", ("high_arousal",)),)
    with pytest.raises(EmoconfError, match="sad have no training rows"):
        run_protocol(corpus, ProtocolConfig(training=FAST, trainings=("filtered",), filter_rules=strict,
                                            filter_midpoint=-100.0), progress=False)


def test_recommended_choice_ignores_test_labels(corpus, raw_only):
    # flipping test labels changes test metrics but not what validation chose
    from emoconf_tf.evaluation.unit import run_unit

    (fold,) = make_folds(corpus, "split")
    flipped = dataclasses.replace(corpus, labels=corpus.labels.copy())
    flipped.labels[fold.test] = (flipped.labels[fold.test] + 1) % corpus.num_classes
    b = run_unit(flipped, fold, 0, "raw", ProtocolConfig(training=FAST, trainings=("raw",)))
    assert len(raw_only.choices) > 0
    pd.testing.assert_frame_equal(raw_only.choices, pd.DataFrame(b.choices, columns=list(CHOICE_COLUMNS)))
    assert list(raw_only.results.f1) != [r["f1"] for r in b.results]


def test_mc_dropout_differs_from_the_deterministic_pass_and_is_seeded(corpus):
    from emoconf_tf.scores.mc_dropout import mc_dropout_probabilities
    from emoconf_tf.training import fit_classifier

    (fold,) = make_folds(corpus, "split")
    x, y = corpus.features[fold.train], corpus.labels[fold.train]
    classifier, _ = fit_classifier(x, y, x, y, corpus.num_classes, FAST, seed=0)
    deterministic = np.asarray(classifier(x[:50], training=False))
    a = mc_dropout_probabilities(classifier, x[:50], passes=4, seed=7)
    b = mc_dropout_probabilities(classifier, x[:50], passes=4, seed=7)
    c = mc_dropout_probabilities(classifier, x[:50], passes=4, seed=8)
    assert a.shape == (4, 50, corpus.num_classes)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], deterministic) and not np.allclose(a[0], a[1]) and not np.allclose(a, c)
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-5)


def test_feature_moments_of_selected_rows_by_hand():
    from emoconf_tf.training import feature_moments

    features = np.array([[1.0, 10.0], [3.0, 10.0], [100.0, -5.0], [5.0, 4.0]], dtype=np.float32)
    mean, variance = feature_moments(features, rows=np.array([0, 1, 3]), chunk_rows=2)
    # rows 0, 1, 3; column 0: 1, 3, 5 -> mean 3, variance ((1-3)^2 + 0 + (5-3)^2) / 3 = 8/3
    # column 1: 10, 10, 4 -> mean 8, variance (4 + 4 + 16) / 3 = 8
    np.testing.assert_array_equal(mean, np.float32([3.0, 8.0]))
    np.testing.assert_array_equal(variance, np.float32([8.0 / 3.0, 8.0]))
    assert mean.dtype == variance.dtype == np.float32


@pytest.mark.parametrize("chunk_rows", [1, 7, 4096])
def test_feature_moments_in_chunks_equal_numpy_in_float64(chunk_rows):
    from emoconf_tf.training import feature_moments

    rng = np.random.default_rng(1)
    # large offsets and scales, where float32 accumulation would lose digits
    features = (rng.normal(size=(300, 6)) * [1e-3, 1.0, 1e3, 1e3, 5.0, 1.0] + [0.0, 1e4, -2e5, 7.0, 0.0, 3.0])
    features = features.astype(np.float32)
    rows = rng.permutation(300)[:211]
    mean, variance = feature_moments(features, rows, chunk_rows=chunk_rows)
    expected_mean = features[rows].mean(axis=0, dtype=np.float64).astype(np.float32)
    expected_variance = features[rows].var(axis=0, dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(variance, expected_variance)
    whole_mean, whole_variance = feature_moments(features, chunk_rows=chunk_rows)
    np.testing.assert_array_equal(whole_mean, features.mean(axis=0, dtype=np.float64).astype(np.float32))
    np.testing.assert_array_equal(whole_variance, features.var(axis=0, dtype=np.float64).astype(np.float32))


def test_a_unit_reads_the_feature_rows_without_copying_them(corpus):
    # NumPy reports its arrays to tracemalloc (TensorFlow's own buffers are not seen). Copying a unit's training,
    # validation and test rows alone would take as much as the feature matrix; a float64 copy for the
    # standardisation statistics, 1.3 times more.
    import tracemalloc

    from emoconf_tf.evaluation.unit import run_unit

    config = ProtocolConfig(training=TrainingConfig(max_epochs=1), trainings=("raw",), methods=PAPER_METHODS)
    run_unit(corpus, make_folds(corpus, "split")[0], 0, "raw", config)  # Keras's one-time set-up, not counted
    wide = make_synthetic_corpus(n_utterances=8000, num_features=2000, seed=3)  # 64 MB of features
    (fold,) = make_folds(wide, "split")
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        run_unit(wide, fold, 0, "raw", config)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * wide.features.nbytes  # about 0.45 of it: embeddings, chunks of rows, Keras's objects


def _hand_context(sources=("validation", "batch", "online")):
    """One method's scores on 4 validation and 5 test rows, K = 2 (no network: the scores are given)."""
    from emoconf_tf.scores import ScoringContext

    predicted = {"validation": np.array([0, 0, 1, 1]), "test": np.array([0, 1, 0, 1, 1])}
    context = ScoringContext(
        probabilities={}, p_hat={}, predicted=predicted,
        labels={"validation": np.array([0, 1, 1, 1]), "test": np.array([0, 1, 1, 1, 0])},
        embedded={}, distances={}, rows={}, features=None, classifier=None,
        config=ProtocolConfig(methods=PAPER_METHODS, threshold_sources=sources), seed=0, num_classes=2,
        methods=PAPER_METHODS,
    )
    context.scores["validation"]["emoconfidnet"] = np.array([0.9, 0.8, 0.7, 0.6])
    context.scores["test"]["emoconfidnet"] = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    return context


def test_batch_rows_take_their_thresholds_from_the_test_scores():
    from emoconf_tf.evaluation.unit import evaluation_rows
    from emoconf_tf.thresholds import class_thresholds

    context = _hand_context()
    results, per_class, selective = evaluation_rows(
        context, {"emoconfidnet": ("global", "per_class")}, ["a", "b"], (0.0, 0.2, 0.5), {"fold": 0})
    results, per_class = pd.DataFrame(results), pd.DataFrame(per_class)
    batch = results[results.threshold_source == "batch"].set_index(["rejection_mode", "rejection"])
    test, predicted = context.scores["test"]["emoconfidnet"], context.predicted["test"]
    # global: test scores 0.5 0.4 0.3 0.2 0.1; r = 0.2: ceil(5 * 0.8) = 4th = 0.2 (keeps 4/5); r = 0.5: 3rd = 0.3
    assert batch.loc[("global", 0.2), "threshold"] == pytest.approx(0.2) == class_thresholds(
        test, predicted, 0.2, 2)[0]
    assert batch.loc[("global", 0.5), "threshold"] == pytest.approx(0.3)
    assert batch.loc[("global", 0.2), "coverage"] == pytest.approx(0.8)
    assert batch.loc[("global", 0.5), "coverage"] == pytest.approx(0.6)
    # per class, r = 0.5: class a (0.5 0.3) 1st = 0.5, class b (0.4 0.2 0.1) ceil(1.5) = 2nd = 0.2: keeps 0.5, 0.4, 0.2
    mine = per_class[(per_class.threshold_source == "batch") & (per_class.rejection_mode == "per_class")
                     & (per_class.rejection == 0.5)]
    np.testing.assert_allclose(mine.threshold, [0.5, 0.2])
    np.testing.assert_allclose(mine.threshold, class_thresholds(test, predicted, 0.5, 2, "per_class"))
    assert batch.loc[("per_class", 0.5), "coverage"] == pytest.approx(0.6)
    # validation, global: 0.9 0.8 0.7 0.6; r = 0.2: 4th = 0.6 and r = 0.5: 2nd = 0.8, above every test score
    validation = results[results.threshold_source == "validation"].set_index(["rejection_mode", "rejection"])
    assert validation.loc[("global", 0.2), "threshold"] == pytest.approx(0.6)
    assert validation.loc[("global", 0.2), "coverage"] == validation.loc[("global", 0.5), "coverage"] == 0.0
    # online: thresholds change per row (NaN); at t0 every source keeps everything
    online = results[results.threshold_source == "online"]
    assert online.threshold.isna().all() and len(online) == 6
    assert (results[results.rejection == 0].coverage == 1).all()
    # coverage errors, mean over r > 0 of |coverage - (1 - r)|:
    (row,) = selective
    assert row["coverage_error_batch_global"] == pytest.approx(0.05)  # (|0.8 - 0.8| + |0.6 - 0.5|) / 2
    assert row["coverage_error_validation_global"] == pytest.approx(0.65)  # (|0 - 0.8| + |0 - 0.5|) / 2
    # batch per class, r = 0.2: class a ceil(1.6) = 2nd = 0.3, class b ceil(2.4) = 3rd = 0.1: keeps all 5
    assert row["coverage_error_batch_per_class"] == pytest.approx(0.15)  # (|1 - 0.8| + |0.6 - 0.5|) / 2
    assert set(row) >= set(SELECTIVE_COLUMNS) - {"fold", "seed", "training"}


def test_sources_not_asked_for_have_no_rows_and_nan_coverage_errors():
    from emoconf_tf.evaluation.unit import evaluation_rows

    results, _, selective = evaluation_rows(_hand_context(("validation",)), {"emoconfidnet": ("global",)},
                                            ["a", "b"], (0.0, 0.2), {"fold": 0})
    assert {r["threshold_source"] for r in results} == {"validation"} and len(results) == 2
    errors = {k: v for k, v in selective[0].items() if k.startswith("coverage_error_")}
    assert errors["coverage_error_validation_global"] == pytest.approx(0.8)  # |0 - 0.8|
    assert all(np.isnan(v) for k, v in errors.items() if k != "coverage_error_validation_global")


def test_selective_coverage_errors_are_those_of_the_results_rows(end_to_end):
    from emoconf_tf.evaluation.tables import coverage_errors

    outputs, _ = end_to_end
    expected = coverage_errors(outputs.results)
    selective = outputs.selective.set_index(["fold", "seed", "training", "method"])
    for row in expected.itertuples(index=False):
        column = f"coverage_error_{row.threshold_source}_{row.rejection_mode}"
        assert selective.loc[(row.fold, row.seed, row.training, row.method), column] == pytest.approx(
            row.coverage_error)
    assert selective.filter(like="coverage_error_online").isna().all(axis=None)  # not asked for
    # the batch is its own reference: each rate keeps 1 - r of the test fold, up to ties and rounding (1 / n_test)
    n_test = outputs.runs.n_test.min()
    batch = selective.coverage_error_batch_global.drop("recommended", level="method")  # in the mode it chose
    assert batch.notna().all() and (batch <= 1.0 / n_test + 1e-9).all()


@pytest.mark.parametrize("sources, message", [
    (("batch",), "threshold_sources batch: must include validation"),
    (("validation", "weekly"), "threshold_sources 'weekly': choose validation"),
])
def test_protocol_config_refuses_threshold_sources_without_validation_or_unknown(sources, message):
    with pytest.raises(EmoconfError, match=message):
        ProtocolConfig(threshold_sources=sources)


def test_fingerprint_lists_the_threshold_sources():
    assert ProtocolConfig().fingerprint()["threshold_sources"] == ["validation", "batch"]
    assert ProtocolConfig(threshold_sources=("validation", "online")).fingerprint()["threshold_sources"] == [
        "validation", "online"]


def test_an_out_dir_of_output_format_2_is_refused(corpus, tmp_path):
    # written before the threshold_source column: its finished parts lack the batch rows
    (tmp_path / "protocol.json").write_text(json.dumps({"version": "0.1.0", "format": 2}))
    with pytest.raises(EmoconfError, match=r"\(output format 2\); .* \(format 3\), whose finished parts are not "
                                           "compatible; use another `out_dir`"):
        run_protocol(corpus, ProtocolConfig(training=FAST), tmp_path, progress=False)


def test_a_feature_constant_in_training_is_masked_and_counted(corpus):
    # Column 5 is 0 on every training row and 1000 on the test rows (a session-specific functional): masked, it has
    # no influence, so the unit's results are those of the same corpus with the column 0 everywhere.
    (fold,) = make_folds(corpus, "split")
    shifted_features = corpus.features.copy()
    shifted_features[:, 5] = 0.0
    constant = dataclasses.replace(corpus, features=shifted_features.copy())
    shifted_features[fold.test, 5] = 1000.0
    shifted = dataclasses.replace(corpus, features=shifted_features)
    config = ProtocolConfig(trainings=("raw",), methods=PAPER_METHODS, training=FAST,
                            threshold_sources=("validation",))
    first, second = (run_protocol(c, config, progress=False) for c in (constant, shifted))
    assert list(first.runs.n_masked_features) == [1] and list(second.runs.n_masked_features) == [1]
    pd.testing.assert_frame_equal(first.results, second.results)
