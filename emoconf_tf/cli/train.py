"""`emoconf train`: one classifier, its EmoConfidNet head and what the served score needs, saved as a run
directory for `emoconf export`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from emoconf_tf.cli.options import EPILOG, FOLDS_HELP
from emoconf_tf.cli.protocol_options import DEFAULTS, check_arguments, config_for_corpus, protocol_config
from emoconf_tf.cli.training_options import add_training_options
from emoconf_tf.feature_sets import FEATURE_SET_NAMES, FeatureSet
from emoconf_tf.filtering import default_training
from emoconf_tf.scores import servable_methods
from emoconf_tf.settings import CV_MODES, DEFAULT_MEMBERS, DEFAULT_SERVED_SCORE, REJECTION_MODES, TRAININGS


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    train = parsers.add_parser(
        "train", help="train one classifier + EmoConfidNet (+ what the served score needs) and save a run directory",
        description="Trains one classifier and its EmoConfidNet head on one fold, and what the served confidence score "
        "needs (--score; by default `recommended`: two more classifiers for the ensemble, and the choice of score and "
        "rejection mode on validation by the same rule as `emoconf reproduce`), and saves them as .keras files with "
        "the validation confidences that set rejection thresholds. `emoconf export` turns the run into a SavedModel.",
        epilog=EPILOG,
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="features table (.csv, .csv.gz or .parquet)")
    source.add_argument("--synthetic", action="store_true", help="use the built-in SYNTHETIC corpus")
    train.add_argument("--out", default=None, help="run directory to create (default: runs/<corpus name>)")
    train.add_argument(
        "--scale", default=None,
        help="AVD scale LO,HI of --table: 1,7 for MSP-Podcast, 1,5 for IEMOCAP (default: the scale the table "
        "records; a table without one is refused)")
    train.add_argument("--classes", default=None, help="comma-separated category names to keep (default: all)")
    train.add_argument(
        "--cv", choices=CV_MODES, default=DEFAULTS.cv,
        help="where the validation/test rows come from: the split column, or leave-one-group-out by 'group' (by "
        "'speaker' when the table has no groups) (default: %(default)s)")
    train.add_argument("--folds", type=int, default=DEFAULTS.folds, metavar="K", help=FOLDS_HELP)
    train.add_argument("--fold", type=int, default=0, help="which fold with --cv group (default: %(default)s)")
    train.add_argument("--seed", type=int, default=DEFAULTS.seeds[0], help="seed (default: %(default)s)")
    train.add_argument(
        "--training", choices=TRAININGS, default=None,
        help=f"train on the raw or the conflict-filtered training set (default: {default_training(True)}; "
        f"{default_training(False)} on a corpus without AVD ratings)")
    train.add_argument("--size", type=int, default=None, help="with --synthetic: number of utterances")
    train.add_argument(
        "--num-features", type=int, default=FeatureSet.COMPARE_2016.dimension,
        help="with --synthetic: feature dimension (default: %(default)s)")
    train.add_argument(
        "--filter-midpoint", type=float, default=DEFAULTS.filter_midpoint,
        help="AVD midpoint for the filter (default: middle of the scale)")
    train.add_argument("--filter-rules", default=None, help="conflict rules (default: the paper's)")
    train.add_argument(
        "--filter-inclusive", action="store_true",
        help="low <= midpoint and high >= midpoint in the conflict filter (default: strictly below / above)")
    train.add_argument(
        "--feature-set", choices=(*FEATURE_SET_NAMES, "none"), default=None,
        help="openSMILE set the table's features were extracted with, recorded in run.json so that an exported model "
        "can predict from audio (`emoconf predict x.wav`); must match the table's dimension (default: none for "
        "--table, synthetic for --synthetic)")
    train.add_argument(
        "--score", default=DEFAULT_SERVED_SCORE, metavar="NAME",
        help=f"confidence score the export serves, one of {', '.join(servable_methods())}: recommended = the score and "
        "rejection mode validation chooses (macro_gain_ensemble per class unless another is clearly better); "
        "emoconfidnet = the paper's model alone (default: %(default)s)")
    train.add_argument(
        "--ensemble-members", type=int, default=DEFAULT_MEMBERS,
        help="classifiers in the ensemble of macro_gain_ensemble (and recommended), the run's own included "
        "(default: %(default)s)")
    train.add_argument(
        "--rejection-mode", default=None, metavar="{" + ",".join(REJECTION_MODES) + "}",
        help="how an export of the run sets rejection thresholds, recorded in run.json (`emoconf export "
        "--rejection-mode` overrides it): global, one threshold from all validation confidences (the paper's), or "
        "per_class, one per predicted class from the validation predictions of that class (default: the mode "
        "validation chooses for --score recommended, else global)")
    add_training_options(train)
    train.set_defaults(run=run)


def run(args) -> int:
    check_arguments(args)  # first: a wrong value fails before anything heavy is imported
    from emoconf_tf.cli.corpora import load_table, synthetic_corpus
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug)
    from emoconf_tf.serving.rundir import run_summary, train_run

    corpus = synthetic_corpus(args) if args.synthetic else load_table(args)
    training = args.training or default_training(corpus.has_avd)
    config = config_for_corpus(args, protocol_config(args, cv=args.cv, seeds=(args.seed,), trainings=(training,)),
                               corpus)
    out = Path(args.out or f"runs/{corpus.name}")
    start = time.perf_counter()
    train_run(corpus, out, config, seed=args.seed, training=training, fold_index=args.fold,
              feature_set=args.feature_set, rejection_mode=args.rejection_mode, score=args.score)
    head = "emoconfidnet.keras, " if corpus.has_avd else ""
    print(f"wrote run directory {out} in {time.perf_counter() - start:.0f} s "
          f"(classifier.keras, {head}validation.csv, test.csv, results.csv, run.json, manifest.json)")
    print(run_summary(out))
    return 0
