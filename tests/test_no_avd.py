"""A corpus without AVD ratings (categories only, like most public corpora): read, run and reported without the
conflict filter and EmoConfidNet, every other score as with AVD.

The corpus is the synthetic one (240 rows, 12 features, five sessions) with its AVD columns dropped; every network
trains 2 epochs. The classifier does not depend on AVD, so the scores computed from it alone must be the very numbers
of the same corpus with AVD.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError, read_features_table
from emoconf_tf.cli import main
from emoconf_tf.corpus import NO_AVD_RATINGS, corpus_frame, write_features_table
from emoconf_tf.evaluation.protocol import config_for_corpus, run_protocol
from emoconf_tf.evaluation.unit import training_rows
from emoconf_tf.settings import ProtocolConfig
from emoconf_tf.folds import make_folds
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.training import TrainingConfig

CONFIG = ProtocolConfig(cv="group", folds=3, methods=("emoconfidnet", "top2_margin", "msp", "emoconfidnet_tau",
                                                     "recommended"),
                        training=TrainingConfig(max_epochs=2, batch_size=64), taus=(2.0,))
TINY = ["--max-epochs", "2", "--batch-size", "64", "--cv", "group", "--folds", "3"]


@pytest.fixture(scope="module")
def rated():
    return make_synthetic_corpus(n_utterances=240, num_features=12)


@pytest.fixture(scope="module")
def table(rated, tmp_path_factory):
    """The synthetic corpus as a features table without the AVD columns and without a scale."""
    path = tmp_path_factory.mktemp("table") / "categories_only.csv"
    corpus_frame(rated).drop(columns=["arousal", "valence", "dominance", "scale"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def unrated(table):
    corpus, _ = read_features_table(table)
    return corpus


def test_a_table_without_avd_columns_is_a_corpus_without_avd(unrated, rated):
    assert unrated.has_avd is False and unrated.scale is None
    assert unrated.avd.shape == (240, 3) and np.isnan(unrated.avd).all()
    np.testing.assert_array_equal(unrated.features, rated.features)
    np.testing.assert_array_equal(unrated.labels, rated.labels)
    assert rated.has_avd is True


def test_empty_avd_columns_are_no_avd_and_a_round_trip_keeps_none(tmp_path, rated):
    frame = corpus_frame(rated).drop(columns=["scale"])
    frame[["arousal", "valence", "dominance"]] = np.nan
    frame.to_csv(tmp_path / "empty.csv", index=False)
    corpus, _ = read_features_table(tmp_path / "empty.csv")
    assert corpus.has_avd is False
    written = pd.read_csv(write_features_table(corpus, tmp_path / "again.csv"))
    assert not {"arousal", "valence", "dominance", "scale"} & set(written.columns)
    again, _ = read_features_table(tmp_path / "again.csv")
    assert again.has_avd is False and again.ids.tolist() == corpus.ids.tolist()


def test_one_or_two_avd_columns_are_refused_naming_the_missing_ones(tmp_path, rated):
    corpus_frame(rated).drop(columns=["valence", "dominance"]).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(EmoconfError, match=r"t.csv: has column\(s\) arousal but not valence, dominance; give all "
                                           r"three AVD columns \(arousal, valence, dominance\) or none"):
        read_features_table(tmp_path / "t.csv")


def test_avd_partly_empty_is_refused_naming_the_rows(tmp_path, rated):
    frame = corpus_frame(rated)
    frame.loc[[3, 7], "valence"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(EmoconfError, match=r"column 'valence' is missing or not numeric in row id\(s\) "
                                           rf"{frame['id'][3]}, {frame['id'][7]}"):
        read_features_table(tmp_path / "t.csv")


def test_config_for_corpus_leaves_out_the_filter_and_the_avd_scores(unrated, rated):
    assert config_for_corpus(CONFIG, rated) == (CONFIG, "")
    adapted, note = config_for_corpus(CONFIG, unrated)
    assert adapted.trainings == ("raw",)
    assert adapted.methods == ("top2_margin", "msp", "recommended")
    assert note == ("categories_only has no AVD ratings: left out the conflict filter (filtered training), "
                    "EmoConfidNet, EmoConfidNet (tuned tau) (the corpus has no AVD ratings, which its targets are "
                    "computed from); every other score runs")
    # asked for raw and the margin only: EmoConfidNet (always computed with AVD) is still said to be left out
    _, note = config_for_corpus(dataclasses.replace(CONFIG, trainings=("raw",), methods=("top2_margin",)), unrated)
    assert "left out EmoConfidNet (" in note and "filter" not in note
    with pytest.raises(EmoconfError, match=r"trainings \['filtered'\]: the conflict filter needs AVD ratings"):
        config_for_corpus(dataclasses.replace(CONFIG, trainings=("filtered",)), unrated)
    fold = make_folds(unrated, "group", 3)[0]
    with pytest.raises(EmoconfError, match="filtered training: the conflict filter needs AVD ratings"):
        training_rows(unrated, fold, "filtered", CONFIG)


@pytest.fixture(scope="module")
def runs(rated, unrated):
    """The protocol on the corpus with and without AVD (one warning says what was left out); no tau heads."""
    config = dataclasses.replace(CONFIG, methods=("emoconfidnet", "top2_margin", "msp", "recommended"))
    with_avd = run_protocol(rated, config, None, progress=False)
    with pytest.warns(UserWarning, match="categories_only has no AVD ratings: left out"):
        without = run_protocol(unrated, config, None, progress=False)
    return with_avd, without


def test_without_avd_the_classifier_scores_are_those_of_the_corpus_with_avd(runs):
    with_avd, without = runs
    assert set(without.results["training"]) == {"raw"}
    assert set(without.results["method"]) == {"top2_margin", "msp", "recommended"}
    assert (without.runs["confidence_epochs"] == 0).all() and (without.runs["n_filtered_out"] == 0).all()
    assert without.filter_counts.empty
    for method in ("top2_margin", "msp"):
        def rows(outputs):
            frame = outputs.results
            return frame[(frame["training"] == "raw") & (frame["method"] == method)].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows(without), rows(with_avd))
    same = with_avd.predictions[with_avd.predictions["training"] == "raw"].reset_index(drop=True)
    for column in ("id", "predicted", "top2_margin", "msp"):
        np.testing.assert_array_equal(without.predictions[column], same[column])
    assert "emoconfidnet" not in without.predictions


def test_recommended_chooses_among_the_scores_that_ran(runs):
    _, without = runs
    chosen = without.choices[without.choices["method"] == "recommended"]["choice"]
    assert len(chosen) == 3 and not chosen.str.contains("emoconfidnet").any()


def test_reproduce_on_a_table_without_avd(table, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reproduce", "--table", str(table), "--methods", "all", "--mc-passes", "2",
                 "--ensemble-members", "2", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "240 utterances, 12 features, classes angry, disgusted, happy, neutral, sad; no AVD ratings" in printed
    assert "categories_only has no AVD ratings: left out the conflict filter (filtered training), EmoConfidNet, " \
           "EmoConfidNet (tuned tau)" in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {"top2_margin", "msp", "entropy", "mc_dropout", "tcp", "macro_gain",
                                      "macro_gain_ensemble", "recommended"}
    report = (out / "report.md").read_text()
    assert f"- AVD: {NO_AVD_RATINGS}" in report
    assert f"## Conflict filter (training set; the rules of the paper's Table 1)\n\nNot applied: {NO_AVD_RATINGS}." \
        in report
    assert "- training sets: raw\n" in report
    assert "- `seeds`: [0]" in report and "filter_" not in report  # the filter's settings play no part


@pytest.mark.parametrize("argv, message", [
    (["--trainings", "filtered"], "--trainings filtered: the conflict filter needs AVD ratings, which "
                                  "categories_only has none of; use --trainings raw"),
    (["--trainings", "raw,filtered"], "--trainings filtered: the conflict filter needs AVD ratings"),
    (["--methods", "paper"], "--methods paper: emoconfidnet not available: the corpus has no AVD ratings, which its "
                             "targets are computed from; leave them out or use --methods all"),
    (["--methods", "msp,emoconfidnet_tau"], "--methods msp,emoconfidnet_tau: emoconfidnet_tau not available"),
    (["--filter-midpoint", "4"], "--filter-midpoint: categories_only has no AVD ratings to filter on"),
    (["--filter-inclusive"], "--filter-inclusive: categories_only has no AVD ratings to filter on"),
])
def test_asking_for_what_needs_avd_is_refused_in_one_line(table, tmp_path, capsys, argv, message):
    code = main(["reproduce", "--table", str(table), "--out", str(tmp_path / "out"), *argv, *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_train_asking_for_filtered_or_emoconfidnet_is_refused(table, tmp_path, capsys):
    base = ["train", "--table", str(table), "--out", str(tmp_path / "run"), *TINY]
    assert main([*base, "--training", "filtered"]) == 2
    assert "--training filtered: the conflict filter needs AVD ratings" in capsys.readouterr().err
    assert main([*base, "--score", "emoconfidnet"]) == 2
    assert "--score emoconfidnet: not available: the corpus has no AVD ratings" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
