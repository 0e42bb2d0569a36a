"""`emoconf build`: a TFDS dataset (openSMILE features and labels) from a corpus copy or a folder of audio."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from emoconf_tf.cli.options import DATA_DIR_DEFAULT, DATASET_NAMES, one_of, tfds_data_dir
from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FeatureSet


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    build = parsers.add_parser(
        "build", help="build a TFDS dataset (openSMILE features + labels) from your corpus copy or audio folder",
        description=f"Builds the {one_of(DATASET_NAMES)} TFDS dataset from a manual "
        "directory, extracting openSMILE functionals in parallel (resumable: extracted files are cached), and "
        "optionally writes it as a features table for `emoconf reproduce`. audio_folder reads any folder of audio "
        "files: a metadata.csv (file_name,label[,speaker,split,group,arousal,valence,dominance,scale]) or one "
        "folder per class (<label>/*.wav or <split>/<label>/*.wav). Nothing is downloaded.",
        epilog="See tfds_builders/README.md for what goes in each manual directory.",
    )
    build.add_argument("name", choices=DATASET_NAMES, help="dataset to build")
    build.add_argument(
        "--manual-dir", required=True,
        help="your copy of the corpus (MSP-Podcast release dir, IEMOCAP_full_release's parent, a features table for "
        "ser_features, or for audio_folder the folder holding metadata.csv or the class folders)")
    build.add_argument(
        "--data-dir", default=None,
        help=f"TFDS data directory, where the dataset and the openSMILE cache are written ({DATA_DIR_DEFAULT})")
    build.add_argument(
        "--config", default=FeatureSet.COMPARE_2016.value,
        help="feature set: compare_2016 (6,373, the paper's) or egemaps_v02 (88, a light option, not the paper's); "
        "iemocap also *_hap_only, which keeps hap only (the others merge excited into happy) (default: %(default)s)")
    build.add_argument(
        "--workers", type=int, default=None,
        help=f"parallel openSMILE workers (default: the CPU count, os.cpu_count(), {cpu_count()} here)")
    build.add_argument(
        "--table", default=None,
        help="also write the dataset as a features table (.csv, .csv.gz or .parquet)")
    build.add_argument(
        "--overwrite", action="store_true",
        help="rebuild an existing dataset (the feature cache is kept)")
    build.add_argument(
        "--skip-failed", action="store_true",
        help="leave out utterances whose audio cannot be processed (empty, corrupt, too short) and list them in the "
        "dataset's metadata; without it, every file is tried and the build then fails naming them")
    build.add_argument(
        "--beam-runner", default=None, metavar="RUNNER",
        help="extract with Apache Beam on this runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner) instead "
        "of local threads; needs apache-beam")
    build.add_argument(
        "--beam-options", default=None, metavar="FLAGS",
        help="Beam pipeline flags in one quoted string, given with '=' since they start with '--': "
        "--beam-options=\"--direct_num_workers=2 --direct_running_mode=multi_processing\", or Dataflow's --project, "
        "--region, --temp_location; implies the Beam path")
    build.set_defaults(run=run)


def cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


def run(args) -> int:
    import shlex

    workers = cpu_count() if args.workers is None else args.workers
    if workers < 1:
        raise EmoconfError("--workers must be at least 1")
    try:
        beam_options = shlex.split(args.beam_options) if args.beam_options is not None else None
    except ValueError as error:  # e.g. an unclosed quote
        raise EmoconfError(f"--beam-options {args.beam_options!r}: {error}") from None
    import opensmile  # noqa: F401  before TensorFlow: see emoconf_tf.extraction on the FFT symbol clash

    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug)
    from tfds_builders.build import build_dataset, export_features_table

    data_dir = tfds_data_dir(args.data_dir)
    # audio-format warnings (stereo, not 16 kHz) are printed as one line each, also when the build fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            builder = build_dataset(args.name, args.manual_dir, data_dir, config=args.config,
                                    num_workers=workers, overwrite=args.overwrite, skip_failed=args.skip_failed,
                                    beam_runner=args.beam_runner, beam_options=beam_options)
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
                print(f"warning: {message}", file=sys.stderr)
    splits = ", ".join(f"{name} {info.num_examples}" for name, info in sorted(builder.info.splits.items()))
    print(f"built {builder.info.full_name} in {data_dir}: {splits}")
    _print_metadata(args, builder)
    if args.table:
        path = export_features_table(builder, data_dir, args.table)
        print(f"wrote features table {path}")
    return 0


def _print_metadata(args, builder) -> None:
    """What the build selected, merged, skipped and left out, a line each, from the dataset's metadata."""
    metadata = builder.info.metadata or {}
    if metadata.get("class_selection_counts") and args.name == "msp_podcast":
        from tfds_builders.msp_podcast.msp_podcast_dataset_builder import class_selection_summary

        print(class_selection_summary(metadata["class_selection_counts"]))
    if metadata.get("merged_labels"):
        print("merged categories: " + ", ".join(f"{k} counted as {v}" for k, v in metadata["merged_labels"].items()))
    skipped = metadata.get("skipped_classes")
    if skipped:
        print("skipped categories: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    if metadata.get("has_avd") is False:
        print("no arousal/valence/dominance ratings: the dataset has NaN AVD (has_avd false in metadata.json) and a "
              "features table has no AVD columns")
    skipped_other = {k: v for k, v in (metadata.get("skipped_other") or {}).items() if k != "failed extraction"}
    if skipped_other:
        print("skipped utterances: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped_other.items())))
    failed = list(metadata.get("failed_files") or [])
    if failed:
        print(f"left out {len(failed)} utterance(s) whose audio failed (--skip-failed; listed in "
              f"{builder.data_dir}/metadata.json):")
        for record in failed[:5]:
            print(f"  {record['reason']}")
        if len(failed) > 5:
            print(f"  ... and {len(failed) - 5} more")
