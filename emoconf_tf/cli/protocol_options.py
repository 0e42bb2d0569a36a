"""The protocol's options (`ProtocolConfig`'s fields and the `--jobs` that run it), shared by `demo`, `reproduce` and,
in part, `train`: adding them to a parser, checking them before TensorFlow loads or a corpus is read, and the
`ProtocolConfig` they make. Defaults and choices come from `emoconf_tf.settings`; the checks the library makes
(`ProtocolConfig`, `thresholds`, `filtering`, `folds`, `corpus`, the score registry, `evaluation.workers`) are
called here, and `main` prints their errors with the flag in place of the argument's Python name."""

from __future__ import annotations

import argparse
import math

from emoconf_tf.cli.options import FOLDS_HELP, comma_list
from emoconf_tf.cli.training_options import check_training_options, training_config
from emoconf_tf.errors import EmoconfError
from emoconf_tf.scores import avd_methods
from emoconf_tf.settings import (
    ALL_METHODS, CRITERIA, CV_MODES, DEFAULT_CRITERION, DEFAULT_MC_DROPOUT_PASSES, DEFAULT_MEMBERS,
    DEFAULT_REJECTION_MODES, DEFAULT_THRESHOLD_SOURCES, PAPER_METHODS, TRAININGS, WORKER_MEMORY_GROWTH, ProtocolConfig,
)

DEFAULTS = ProtocolConfig()


def add_protocol_options(parser: argparse.ArgumentParser, *, table: bool, methods_default: str = "all") -> None:
    if table:
        parser.add_argument(
            "--scale", default=None,
            help="AVD scale LO,HI: 1,7 for MSP-Podcast, 1,5 for IEMOCAP; overrides the scale the table or dataset "
            "records (default: the recorded one; a table without one is refused)")
        parser.add_argument(
            "--classes", default=None,
            help="comma-separated category names to keep, in label-id order; rows with other labels are dropped and "
            "counted (default: every label in the table)")
        parser.add_argument(
            "--cv", choices=CV_MODES, default=DEFAULTS.cv,
            help="folds from the 'split' column, or leave-one-group-out by 'group' (by 'speaker' when the table has "
            "no groups): test = group k, validation = the next group, training = the rest (default: %(default)s)")
        parser.add_argument("--folds", type=int, default=DEFAULTS.folds, metavar="K", help=FOLDS_HELP)
    parser.add_argument("--seeds", type=int, default=len(DEFAULTS.seeds),
                        help="repeat every fold with seeds 0..N-1 (default: %(default)s)")
    parser.add_argument(
        "--trainings", default=None,
        help=f"which trainings to run: raw, filtered or both (default: {','.join(DEFAULTS.trainings)}; raw on a "
        "corpus without AVD ratings, where the conflict filter cannot run)")
    parser.add_argument(
        "--filter-midpoint", type=float, default=DEFAULTS.filter_midpoint,
        help="AVD value separating low from high for the conflict filter (default: middle of the scale)")
    parser.add_argument(
        "--filter-rules", default=None,
        help="conflict rules, e.g. 'happy=low_arousal|low_valence;sad=high_valence' (default: the paper's Table 1)")
    parser.add_argument(
        "--filter-inclusive", action="store_true",
        help="compare AVD with the filter's midpoint inclusively: low <= midpoint, high >= midpoint, so a value at "
        "the midpoint counts as both (default: strictly below / above; a value at the midpoint is neither)")
    parser.add_argument(
        "--methods", default=None,
        help=f"confidence scores to compare: 'all', 'paper' ({','.join(PAPER_METHODS)}) or a comma list of "
        f"{', '.join(ALL_METHODS)} (default: {methods_default}; on a corpus without AVD ratings, every score but "
        f"{' and '.join(avd_methods())}, which are trained on AVD)")
    parser.set_defaults(methods_default=methods_default)
    parser.add_argument("--mc-passes", type=int, default=DEFAULT_MC_DROPOUT_PASSES,
                        help="stochastic passes T for mc_dropout (default: %(default)s)")
    parser.add_argument(
        "--ensemble-members", type=int, default=DEFAULT_MEMBERS,
        help="classifiers whose mean softmax macro_gain_ensemble (recommended's default) uses, the protocol's own "
        "included; each extra one is one more classifier training per run (default: %(default)s)")
    parser.add_argument(
        "--rejection-modes", default=",".join(DEFAULT_REJECTION_MODES),
        help="how thresholds are set, one or both of: global (the paper's: one threshold from all validation "
        "confidences) and per_class (the paper's rule within each predicted class, so each class loses about the same "
        "fraction); every method is reported in each (default: %(default)s)")
    parser.add_argument(
        "--threshold-source", default=",".join(DEFAULT_THRESHOLD_SOURCES),
        help="whose confidences set the thresholds, a comma list that includes validation: validation (the paper's: "
        "the validation confidences), batch (the test fold's own unlabelled confidences, as one batch of new data), "
        "online (the validation thresholds at a rate adaptive conformal inference moves through the test rows in "
        "order); each is reported beside validation in results.csv and report.md (default: %(default)s)")
    parser.add_argument(
        "--recommend-by", default=DEFAULT_CRITERION, choices=CRITERIA,
        help="validation criterion that picks the recommended score and rejection mode: the area under the macro-F1 "
        "and UAR curves over coverage 1 to 0.5 (cross-fitted on validation), one of them, or the accuracy AURC "
        "(default: %(default)s)")
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="train N fold/seed/training units at once, each in its own process running TensorFlow on one thread "
        f"(a process is replaced once it has grown {WORKER_MEMORY_GROWTH // 2**20} MiB, and this one then loads no "
        "TensorFlow); "
        "-1: one per CPU core. Not a setting of the results: a run may resume with another N (default: 1, one "
        "unit after the other in this process, TensorFlow on every core). With --backend dask: the size of the "
        "local cluster (2 or more); with --scheduler, leave it out: the cluster's workers decide")
    parser.add_argument(
        "--backend", choices=("loky", "dask"), default="loky",
        help="where the --jobs processes run: loky (worker processes on this machine) or dask (the workers of a "
        "dask.distributed cluster: --scheduler's, or a local cluster of --jobs workers; needs pip install "
        "\"emoconf-tf[dask]\"). The same seeds per unit, so the same results.csv; parts/ and the tables are written "
        "here, and a run resumes with either backend (default: %(default)s)")
    parser.add_argument(
        "--scheduler", default=None, metavar="ADDRESS",
        help="with --backend dask: the address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 (what "
        "`dask scheduler` prints); start its workers with `dask worker ADDRESS --nthreads 1` on machines with "
        "emoconf-tf installed. Units then run one per worker (default: start a local cluster of --jobs workers)")


def check_arguments(args) -> None:
    """Checks every argument of demo, reproduce or train that can be checked without data, before TensorFlow
    loads or a corpus is generated or read: a wrong value fails within a second, in one line naming it."""
    from emoconf_tf.thresholds import check_rejection_mode

    if hasattr(args, "seeds"):
        seed_range(args.seeds)
    if getattr(args, "trainings", None) is not None:
        training_names(args.trainings)
    if getattr(args, "methods", None) is not None:
        method_names(args.methods)
    if getattr(args, "score", None) is not None:
        from emoconf_tf.scores import check_servable

        check_servable(args.score)
    if hasattr(args, "rejection_modes"):
        rejection_modes(args.rejection_modes)
    if hasattr(args, "threshold_source"):
        threshold_sources(args.threshold_source)
    if getattr(args, "rejection_mode", None) is not None:
        check_rejection_mode(args.rejection_mode)
    for name in ("mc_passes", "ensemble_members", "num_features", "size"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            raise EmoconfError(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "folds", None) is not None:
        from emoconf_tf.folds import check_fold_count  # pandas, not TensorFlow

        check_fold_count(args.folds)
        if args.cv != "group":
            raise EmoconfError(f"--folds {args.folds}: folds are made from groups or speakers; add --cv group")
    for name in ("corpus_seed", "seed", "fold"):
        if getattr(args, name, None) is not None and getattr(args, name) < 0:
            raise EmoconfError(f"--{name.replace('_', '-')} must be 0 or more")
    if hasattr(args, "jobs"):
        from emoconf_tf.evaluation.workers import worker_count  # pandas, not TensorFlow

        worker_count(args.jobs, args.backend, args.scheduler)
    check_training_options(args)
    if args.filter_rules:
        from emoconf_tf.filtering import parse_rules

        parse_rules(args.filter_rules)
    if args.filter_midpoint is not None and not math.isfinite(args.filter_midpoint):
        raise EmoconfError(f"--filter-midpoint {args.filter_midpoint}: expected a finite number on the AVD scale")
    if getattr(args, "classes", None) is not None or getattr(args, "scale", None) is not None \
            or getattr(args, "table", None) is not None:
        from emoconf_tf.corpus import check_class_names, check_table_path, parse_scale  # pandas, not TensorFlow

        if getattr(args, "classes", None) is not None:
            check_class_names(args.classes.split(","))
        if getattr(args, "scale", None) is not None:
            parse_scale(args.scale)
        if getattr(args, "table", None) is not None:
            check_table_path(args.table)


def protocol_config(args, *, cv: str, seeds: tuple[int, ...], trainings: tuple[str, ...]) -> ProtocolConfig:
    """The `ProtocolConfig` of the parsed `args`; an option the command lacks keeps `ProtocolConfig`'s default,
    except the methods (`emoconf train`: the paper's pair) and the threshold sources (validation only)."""
    from emoconf_tf.filtering import parse_rules

    options = {field: getattr(args, dest) for field, dest in (
        ("mc_dropout_passes", "mc_passes"), ("ensemble_members", "ensemble_members"), ("recommend_by", "recommend_by"),
        ("folds", "folds")) if hasattr(args, dest)}
    if hasattr(args, "rejection_modes"):
        options["rejection_modes"] = rejection_modes(args.rejection_modes)
    return ProtocolConfig(
        cv=cv, seeds=seeds, trainings=trainings, filter_midpoint=args.filter_midpoint,
        filter_rules=parse_rules(args.filter_rules) if args.filter_rules else DEFAULTS.filter_rules,
        filter_inclusive=getattr(args, "filter_inclusive", False),
        training=training_config(args),
        methods=method_names(getattr(args, "methods", None) or getattr(args, "methods_default", "paper")),
        # `emoconf train` has no --threshold-source: its run directory's results.csv keeps validation rows only
        threshold_sources=threshold_sources(getattr(args, "threshold_source", "validation")),
        **options,
    )


def config_for_corpus(args, config: ProtocolConfig, corpus) -> ProtocolConfig:
    """`protocol.config_for_corpus` for the CLI: on a corpus without AVD ratings, refuses what was asked for by name
    and needs AVD (the filtered training, the filter's options, emoconfidnet and emoconfidnet_tau, --score
    emoconfidnet), and prints the one line saying what the defaults left out. (The words are the CLI's: they
    name what was typed, `--methods paper` say, which a `ProtocolConfig` cannot tell from its defaults.)"""
    from emoconf_tf.evaluation.protocol import config_for_corpus
    from emoconf_tf.scores import NO_AVD_REASON

    if corpus.has_avd:
        return config
    asked = list(comma_list(getattr(args, "trainings", None) or "")) + [getattr(args, "training", None)]
    if "filtered" in asked:
        option = "--trainings" if getattr(args, "trainings", None) else "--training"
        raise EmoconfError(f"{option} filtered: the conflict filter needs AVD ratings, which {corpus.name} has none "
                           f"of; use {option} raw")
    for option, given in (("--filter-midpoint", args.filter_midpoint is not None),
                          ("--filter-rules", bool(args.filter_rules)),
                          ("--filter-inclusive", getattr(args, "filter_inclusive", False))):
        if given:
            raise EmoconfError(f"{option}: {corpus.name} has no AVD ratings to filter on; leave the option out")
    methods = getattr(args, "methods", None)
    if methods is not None and methods != "all":
        needing = [m for m in method_names(methods) if m in avd_methods()]
        if needing:
            raise EmoconfError(f"--methods {methods}: {', '.join(needing)} not available: {NO_AVD_REASON}; "
                               "leave them out or use --methods all")
    config, note = config_for_corpus(config, corpus)
    if note:
        print(note)
    return config


def seed_range(n: int) -> tuple[int, ...]:
    """`--seeds N` as the seeds `(0, ..., N - 1)`."""
    if n < 1:
        raise EmoconfError("--seeds must be at least 1")
    return tuple(range(n))


def training_names(text: str) -> tuple[str, ...]:
    names = comma_list(text)
    if not names or any(name not in TRAININGS for name in names):
        raise EmoconfError(f"--trainings {text!r}: choose {', '.join(TRAININGS)} or {','.join(TRAININGS)}")
    return names


def method_names(text: str) -> tuple[str, ...]:
    """`--methods`: `all`, `paper` or a comma list of names of the score registry (`scores.check_methods`)."""
    from emoconf_tf.scores import check_methods

    names = {"all": ALL_METHODS, "paper": PAPER_METHODS}.get(text) or comma_list(text)
    try:
        return check_methods(names or (text,))
    except EmoconfError:  # worded for the option, whose keywords the registry does not know
        raise EmoconfError(f"--methods {text!r}: give all, paper or a comma list of {', '.join(ALL_METHODS)}") \
            from None


def rejection_modes(text: str) -> tuple[str, ...]:
    from emoconf_tf.thresholds import check_rejection_mode

    modes = comma_list(text)
    for mode in modes or (text,):  # an empty list is refused as the text given
        check_rejection_mode(mode, "rejection_modes")
    return modes


def threshold_sources(text: str) -> tuple[str, ...]:
    from emoconf_tf.thresholds import check_threshold_sources

    return check_threshold_sources(comma_list(text))
