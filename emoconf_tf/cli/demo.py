"""`emoconf demo`: the protocol on the built-in synthetic corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from emoconf_tf.cli.options import EPILOG
from emoconf_tf.cli.protocol_options import (
    DEFAULTS, add_protocol_options, check_arguments, protocol_config, seed_range, training_names,
)
from emoconf_tf.cli.protocol_run import run_and_report
from emoconf_tf.cli.training_options import add_training_options
from emoconf_tf.feature_sets import FeatureSet
from emoconf_tf.settings import CV_MODES


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    demo = parsers.add_parser(
        "demo", help="the protocol on the built-in SYNTHETIC corpus (no download)",
        description="Runs the paper's protocol (raw and filtered training; EmoConfidNet vs the top-2 margin baseline) "
        "on a seeded synthetic corpus, prints the relative gains at t20 and writes report.md (F1 and UAR against "
        "the rejection threshold, the paper's Fig. 2). All outputs are labelled synthetic.",
        epilog=EPILOG,
    )
    demo.add_argument(
        "--out", default="emoconf_demo_synthetic",
        help="output directory (default: %(default)s)")
    demo.add_argument(
        "--size", type=int, default=None,
        help="number of synthetic utterances (default: the generator's default)")
    demo.add_argument(
        "--num-features", type=int, default=FeatureSet.COMPARE_2016.dimension,
        help="synthetic feature dimension (default: %(default)s, as ComParE-2016)")
    demo.add_argument("--corpus-seed", type=int, default=0, help="seed of the synthetic corpus (default: %(default)s)")
    demo.add_argument(
        "--cv", choices=CV_MODES, default=DEFAULTS.cv,
        help="split column or leave-one-session-out folds (default: %(default)s)")
    # the demo keeps to the paper's pair so that it stays quick; --methods all adds four more heads' worth of
    # training per unit
    add_protocol_options(demo, table=False, methods_default="paper")
    add_training_options(demo)
    demo.set_defaults(run=run)


def run(args) -> int:
    check_arguments(args)  # first: a wrong value fails before anything heavy is imported
    from emoconf_tf.cli.corpora import synthetic_corpus
    from emoconf_tf.evaluation.workers import units_in_this_process
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug, load=units_in_this_process(args.jobs, args.backend, args.scheduler))
    trainings = training_names(args.trainings) if args.trainings else DEFAULTS.trainings
    config = protocol_config(args, cv=args.cv, seeds=seed_range(args.seeds), trainings=trainings)
    corpus = synthetic_corpus(args)
    return run_and_report(corpus, config, Path(args.out), jobs=args.jobs, backend=args.backend,
                          scheduler=args.scheduler)
