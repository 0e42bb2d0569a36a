"""`emoconf`: a thin command line over the library (argument parsing, progress, printing).

Errors a user can fix are printed in one line and exit with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from emoconf_tf import __version__
from emoconf_tf.errors import EmoconfError

EPILOG = "Docs: README.md in the repository. Every command writes its outputs atomically (temporary name, then rename)."


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (paper defaults)")
    group.add_argument("--max-epochs", type=int, default=200, help="upper bound on epochs; early stopping (patience 10) usually ends sooner (default: 200)")
    group.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
    group.add_argument("--patience", type=int, default=10, help="early-stopping patience on validation loss (default: 10)")
    group.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    group.add_argument("--keras-verbose", type=int, choices=(0, 1, 2), default=0, help="Keras fit verbosity: 0 silent, 1 progress bars, 2 a line per epoch (default: 0)")


def _add_protocol_options(parser: argparse.ArgumentParser, *, table: bool) -> None:
    if table:
        parser.add_argument("--scale", default="1,7", help="AVD scale LO,HI of the table: 1,7 for MSP-Podcast, 1,5 for IEMOCAP (default: 1,7)")
        parser.add_argument("--classes", default=None, help="comma-separated category names to keep, in label-id order; rows with other labels are dropped and counted (default: every label in the table)")
        parser.add_argument("--cv", choices=("split", "group"), default="split", help="folds from the 'split' column, or leave-one-group-out by 'group': test = group k, validation = the next group, training = the rest (default: split)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat every fold with seeds 0..N-1 (default: 1)")
    parser.add_argument("--trainings", default="raw,filtered", help="which trainings to run: raw, filtered or both (default: raw,filtered)")
    parser.add_argument("--filter-midpoint", type=float, default=None, help="AVD value separating low from high for the conflict filter (default: middle of the scale)")
    parser.add_argument("--filter-rules", default=None, help="conflict rules, e.g. 'happy=low_arousal|low_valence;sad=high_valence' (default: the paper's Table 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoconf",
        description="Confidence-aware speech emotion recognition: EmoConfidNet and the paper's rejection protocol.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"emoconf-tf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="the protocol on the built-in SYNTHETIC corpus (no download)",
        description="Runs the paper's protocol (raw and filtered training; EmoConfidNet vs the top-2 margin baseline) "
        "on a seeded synthetic corpus and prints Table 1. All outputs are labelled synthetic.",
        epilog=EPILOG,
    )
    demo.add_argument("--out", default="emoconf_demo_synthetic", help="output directory (default: emoconf_demo_synthetic)")
    demo.add_argument("--size", type=int, default=None, help="number of synthetic utterances (default: the generator's default)")
    demo.add_argument("--num-features", type=int, default=6373, help="synthetic feature dimension (default: 6373, as ComParE-2016)")
    demo.add_argument("--corpus-seed", type=int, default=0, help="seed of the synthetic corpus (default: 0)")
    demo.add_argument("--cv", choices=("split", "group"), default="split", help="split column or leave-one-session-out folds (default: split)")
    _add_protocol_options(demo, table=False)
    _add_training_options(demo)

    reproduce = commands.add_parser(
        "reproduce", help="the protocol on your features table (CSV or Parquet)",
        description="Runs the paper's protocol on a features table: columns id, label, arousal, valence, dominance, "
        "optional speaker, group, split, and numeric features. Writes results.csv, per_class.csv, runs.csv, report.md "
        "and curves.png; a rerun with the same --out skips finished folds/seeds.",
        epilog=EPILOG,
    )
    reproduce.add_argument("--table", required=True, help="features table (.csv, .csv.gz or .parquet)")
    reproduce.add_argument("--out", default=None, help="output directory (default: emoconf_<table name>)")
    _add_protocol_options(reproduce, table=True)
    _add_training_options(reproduce)

    train = commands.add_parser(
        "train", help="train one classifier + EmoConfidNet and save a run directory (for export)",
        description="Trains one classifier and its EmoConfidNet head on one fold and saves them as .keras files, "
        "with the validation confidences that set rejection thresholds.",
        epilog=EPILOG,
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="features table (.csv, .csv.gz or .parquet)")
    source.add_argument("--synthetic", action="store_true", help="use the built-in SYNTHETIC corpus")
    train.add_argument("--out", default=None, help="run directory to create (default: runs/<corpus name>)")
    train.add_argument("--scale", default="1,7", help="AVD scale LO,HI (default: 1,7)")
    train.add_argument("--classes", default=None, help="comma-separated category names to keep (default: all)")
    train.add_argument("--cv", choices=("split", "group"), default="split", help="where the validation/test rows come from (default: split)")
    train.add_argument("--fold", type=int, default=0, help="which fold with --cv group (default: 0)")
    train.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    train.add_argument("--training", choices=("raw", "filtered"), default="filtered", help="train on the raw or the conflict-filtered training set (default: filtered)")
    train.add_argument("--size", type=int, default=None, help="with --synthetic: number of utterances")
    train.add_argument("--num-features", type=int, default=6373, help="with --synthetic: feature dimension (default: 6373)")
    train.add_argument("--filter-midpoint", type=float, default=None, help="AVD midpoint for the filter (default: middle of the scale)")
    train.add_argument("--filter-rules", default=None, help="conflict rules (default: the paper's)")
    _add_training_options(train)

    build = commands.add_parser(
        "build", help="build a TFDS dataset (openSMILE features + AVD labels) from your licensed corpus copy",
        description="Builds the msp_podcast, iemocap or ser_features TFDS dataset from a manual directory, extracting "
        "openSMILE functionals in parallel (resumable: extracted files are cached), and optionally writes it as a "
        "features table for `emoconf reproduce`. Nothing is downloaded.",
        epilog="See tfds_builders/README.md for what goes in each manual directory.",
    )
    build.add_argument("name", choices=("msp_podcast", "iemocap", "ser_features"), help="dataset to build")
    build.add_argument("--manual-dir", required=True, help="your copy of the corpus (MSP-Podcast release dir, IEMOCAP_full_release's parent, or a features table for ser_features)")
    build.add_argument("--data-dir", default="tensorflow_datasets", help="TFDS data directory (default: ./tensorflow_datasets)")
    build.add_argument("--config", default="compare_2016", help="feature set: compare_2016 (6,373, the paper's) or egemaps_v02 (88); iemocap also *_hap_only (default: compare_2016)")
    build.add_argument("--workers", type=int, default=2, help="parallel openSMILE workers (default: 2)")
    build.add_argument("--table", default=None, help="also write the dataset as a features table (.csv, .csv.gz or .parquet)")
    build.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset (the feature cache is kept)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return {"demo": _demo, "reproduce": _reproduce, "train": _train, "build": _build}[args.command](args)
    except EmoconfError as error:
        if args.debug:
            raise
        print(f"emoconf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emoconf {args.command}: interrupted; finished parts are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


def _quiet_tensorflow(debug: bool = False) -> None:
    """Imports TensorFlow without its C++ start-up lines (oneDNN, "no CUDA drivers"): noise for a CPU user.

    TensorFlow 2.21 prints them before absl logging is initialised, ignoring TF_CPP_MIN_LOG_LEVEL,
    so the C-level stderr is muted for the import only (never with --debug).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=".*Skipping variable loading for optimizer.*")
    if debug or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    stderr_fd = 2  # the process's C-level stderr, whatever sys.stderr is (pytest, notebooks replace it)
    saved = os.dup(stderr_fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), stderr_fd)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, stderr_fd)
        os.close(saved)


def _training_config(args):
    from emoconf_tf.training import TrainingConfig

    for name in ("max_epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            raise EmoconfError(f"--{name.replace('_', '-')} must be at least 1")
    if not args.learning_rate > 0:
        raise EmoconfError("--learning-rate must be positive")
    return TrainingConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, patience=args.patience,
        learning_rate=args.learning_rate, verbose=args.keras_verbose,
    )


def _protocol_config(args, *, cv: str, seeds: tuple[int, ...], trainings: tuple[str, ...]):
    from emoconf_tf.filtering import PAPER_RULES, parse_rules
    from emoconf_tf.protocol import ProtocolConfig

    return ProtocolConfig(
        cv=cv, seeds=seeds, trainings=trainings, filter_midpoint=args.filter_midpoint,
        filter_rules=parse_rules(args.filter_rules) if args.filter_rules else PAPER_RULES,
        training=_training_config(args),
    )


def _seeds(n: int) -> tuple[int, ...]:
    if n < 1:
        raise EmoconfError("--seeds must be at least 1")
    return tuple(range(n))


def _trainings(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _load_table(args):
    from emoconf_tf.corpus import read_features_table

    classes = [c for c in args.classes.split(",")] if args.classes else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus, dropped = read_features_table(args.table, classes=classes, scale=args.scale)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"{args.table}: {len(corpus)} utterances, {corpus.num_features} features, classes {', '.join(corpus.class_names)}")
    if dropped:
        print("dropped (label not in --classes): " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    return corpus


def _synthetic_corpus(args):
    from emoconf_tf.synthetic import make_synthetic_corpus

    overrides = {"num_features": args.num_features, "seed": getattr(args, "corpus_seed", 0)}
    if args.size is not None:
        overrides["n_utterances"] = args.size
    corpus = make_synthetic_corpus(**overrides)
    print(f"SYNTHETIC corpus: {len(corpus)} utterances, {corpus.num_features} features, classes "
          f"{', '.join(corpus.class_names)} (generated, not real speech)")
    return corpus


def _run_and_report(corpus, config, out: Path) -> int:
    from tqdm.auto import tqdm

    from emoconf_tf import protocol, report
    from emoconf_tf.atomic import write_json

    start = time.perf_counter()

    def one_line(summary: dict, resumed: bool) -> None:
        prefix = "resumed" if resumed else "done"
        scores = "  ".join(f"{k.replace('@0.0', ' t0').replace('@0.2', ' t20')} F1 {v:.3f}" for k, v in summary.items() if "@" in k)
        tqdm.write(
            f"{prefix}: fold {summary['fold']} seed {summary['seed']} {summary['training']:>8}: "
            f"train {summary['n_train']} (filtered out {summary['n_filtered_out']}), "
            f"epochs {summary['classifier_epochs']}/{summary['confidence_epochs']}  {scores}"
        )

    outputs = protocol.run_protocol(corpus, config, out, on_unit=one_line)
    if outputs.skipped_units:
        print(f"{out}: reused {outputs.skipped_units} finished fold/seed/training unit(s) from an earlier run")
    protocol.write_tables(outputs, out)
    report.write_report(
        out, outputs.results, outputs.per_class, outputs.runs,
        corpus_name=corpus.name, synthetic=corpus.synthetic, class_names=list(corpus.class_names),
        filter_counts=outputs.filter_counts, settings=config.fingerprint(),
    )
    elapsed = time.perf_counter() - start
    write_json(out / "manifest.json", {
        "version": __version__, "corpus": corpus.name, "synthetic": corpus.synthetic,
        "files": ["results.csv", "per_class.csv", "runs.csv", "report.md", "curves.png"],
        "seconds": round(elapsed, 1),
    })
    print()
    print("\n".join(report.summary_lines(outputs.results)))
    print(f"\nwrote {out}/results.csv, per_class.csv, runs.csv, report.md, curves.png in {elapsed:.0f} s")
    return 0


def _demo(args) -> int:
    _quiet_tensorflow(args.debug)
    corpus = _synthetic_corpus(args)
    config = _protocol_config(args, cv=args.cv, seeds=_seeds(args.seeds), trainings=_trainings(args.trainings))
    return _run_and_report(corpus, config, Path(args.out))


def _reproduce(args) -> int:
    _quiet_tensorflow(args.debug)
    corpus = _load_table(args)
    config = _protocol_config(args, cv=args.cv, seeds=_seeds(args.seeds), trainings=_trainings(args.trainings))
    out = Path(args.out or f"emoconf_{corpus.name}")
    return _run_and_report(corpus, config, out)


def _train(args) -> int:
    _quiet_tensorflow(args.debug)
    from emoconf_tf.rundir import train_run

    corpus = _synthetic_corpus(args) if args.synthetic else _load_table(args)
    config = _protocol_config(args, cv=args.cv, seeds=(args.seed,), trainings=(args.training,))
    out = Path(args.out or f"runs/{corpus.name}")
    start = time.perf_counter()
    train_run(corpus, out, config, seed=args.seed, training=args.training, fold_index=args.fold)
    print(f"wrote run directory {out} in {time.perf_counter() - start:.0f} s "
          f"(classifier.keras, emoconfidnet.keras, validation.csv, test.csv, results.csv, run.json, manifest.json)")
    return 0


def _build(args) -> int:
    _quiet_tensorflow(args.debug)
    from tfds_builders.build import build_dataset, export_features_table

    if args.workers < 1:
        raise EmoconfError("--workers must be at least 1")
    builder = build_dataset(args.name, args.manual_dir, args.data_dir, config=args.config, num_workers=args.workers,
                            overwrite=args.overwrite)
    splits = ", ".join(f"{name} {info.num_examples}" for name, info in sorted(builder.info.splits.items()))
    print(f"built {builder.info.full_name} in {args.data_dir}: {splits}")
    skipped = builder.info.metadata.get("skipped_classes") if builder.info.metadata else None
    if skipped:
        print("skipped categories: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    if args.table:
        path = export_features_table(builder, args.data_dir, args.table)
        print(f"wrote features table {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
