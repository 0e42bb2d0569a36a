"""`emoconf reproduce`: the protocol on a features table or a dataset built with `emoconf build`."""

from __future__ import annotations

import argparse
from pathlib import Path

from emoconf_tf.cli.options import DATA_DIR_DEFAULT, EPILOG
from emoconf_tf.cli.protocol_options import (
    DEFAULTS, add_protocol_options, check_arguments, config_for_corpus, protocol_config, seed_range, training_names,
)
from emoconf_tf.cli.protocol_run import run_and_report
from emoconf_tf.cli.training_options import add_training_options


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    reproduce = parsers.add_parser(
        "reproduce",
        help="the protocol on your features table (CSV or Parquet) or a dataset built with `emoconf build`",
        description="Runs the paper's protocol on a features table: columns id, label, arousal, valence, dominance, "
        "optional speaker, group, split, and numeric features. Writes results.csv, per_class.csv, runs.csv, report.md "
        "and curves.png; a rerun with the same --out skips finished folds/seeds.",
        epilog=EPILOG,
    )
    corpus_source = reproduce.add_mutually_exclusive_group(required=True)
    corpus_source.add_argument("--table", help="features table (.csv, .csv.gz or .parquet)")
    corpus_source.add_argument(
        "--tfds", metavar="NAME/CONFIG",
        help="a dataset prepared with `emoconf build`, e.g. iemocap/egemaps_v02 or msp_podcast/compare_2016; its "
        "AVD scale comes with it (--scale overrides it). MSP-Podcast runs on its own splits (test1 = test); "
        "IEMOCAP, split by session, always leave-one-session-out (--cv group)")
    reproduce.add_argument("--data-dir", default=None,
                           help=f"with --tfds: TFDS data directory ({DATA_DIR_DEFAULT})")
    reproduce.add_argument(
        "--out", default=None,
        help="output directory (default: emoconf_<table name>, or emoconf_<name>_<config> with --tfds)")
    add_protocol_options(reproduce, table=True)
    add_training_options(reproduce)
    reproduce.set_defaults(run=run)


def run(args) -> int:
    check_arguments(args)  # first: a wrong value fails before anything heavy is imported
    from emoconf_tf.cli.corpora import load_table
    from emoconf_tf.evaluation.workers import units_in_this_process
    from emoconf_tf.folds import cv_for_dataset
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug, load=units_in_this_process(args.jobs, args.backend, args.scheduler))
    corpus = load_table(args)
    cv = args.cv
    if args.tfds:
        cv, note = cv_for_dataset(corpus, cv, args.tfds)
        if note:
            print(note)
    trainings = training_names(args.trainings) if args.trainings else DEFAULTS.trainings
    config = protocol_config(args, cv=cv, seeds=seed_range(args.seeds), trainings=trainings)
    config = config_for_corpus(args, config, corpus)
    out = Path(args.out or f"emoconf_{corpus.name}")
    return run_and_report(corpus, config, out, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler)
