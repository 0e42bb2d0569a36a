"""`emoconf`: a thin command line over the library (argument parsing, progress, printing).

Errors a user can fix are printed in one line and exit with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

from emoconf_tf import __version__
# The names the protocol accepts come from TensorFlow-free modules, so arguments are checked before TensorFlow loads.
from emoconf_tf.confidence_methods import ALL_METHODS, DEFAULT_SERVED_SCORE, PAPER_METHODS, servable_methods
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.ensemble import DEFAULT_MEMBERS
from emoconf_tf.feature_sets import FEATURE_SET_NAMES, FeatureSet
from emoconf_tf.serving.export import SIGNATURE_NAMES  # TensorFlow-free until an export runs
from emoconf_tf.settings import WORKER_MEMORY_GROWTH, TrainingConfig
from emoconf_tf.filtering import TRAININGS

SERVABLE = servable_methods()
FOLDS_HELP = ("with --cv group: gather the groups (or speakers) into K folds of near-equal size, deterministically "
        "(leave-speakers-out on a corpus without sessions); the assignment is written to folds.csv (default: one fold "
        "per group)")
EPILOG = "Docs: README.md in the repository. Every command writes its outputs atomically (temporary name, then rename)."
# --data-dir of build, export-table and reproduce --tfds; resolved by `_tfds_data_dir`, with TFDS's own rule.
DATA_DIR_DEFAULT = "default: TFDS's default data directory, $TFDS_DATA_DIR if set, else ~/tensorflow_datasets"


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (paper defaults)")
    defaults = TrainingConfig()
    group.add_argument(
        "--max-epochs", type=int, default=defaults.max_epochs,
        help=f"upper bound on epochs; early stopping (patience {defaults.patience}) usually ends sooner "
        "(default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size,
                       help="mini-batch size (default: %(default)s)")
    group.add_argument(
        "--patience", type=int, default=defaults.patience,
        help="early-stopping patience on validation loss (default: %(default)s)")
    group.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                       help="Adam learning rate (default: %(default)s)")
    group.add_argument(
        "--keras-verbose", type=int, choices=(0, 1, 2), default=defaults.verbose,
        help="Keras fit verbosity: 0 silent (the fast epoch loop), 1 progress bars, 2 a line per epoch (both in "
        "Keras's model.fit, the same weights; default: %(default)s)")
    group.add_argument(
        "--no-reshuffle", action="store_true",
        help="feed the training rows in one seeded order, the same in every epoch (what Keras 3 does once a global "
        "seed is set); default: a new seeded order each epoch")
    group.add_argument(
        "--no-input-clipping", action="store_true",
        help="feed features to the classifier as they are (the paper's network); default: each feature is clipped to "
        "the range it had on the training rows, so that a heavy-tailed value on an unseen speaker (eGeMAPS's "
        "*_stddevNorm, say) cannot drive the network where training never went")


def _add_protocol_options(parser: argparse.ArgumentParser, *, table: bool, methods_default: str = "all") -> None:
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
            "--cv", choices=("split", "group"), default="split",
            help="folds from the 'split' column, or leave-one-group-out by 'group' (by 'speaker' when the table has "
            "no groups): test = group k, validation = the next group, training = the rest (default: split)")
        parser.add_argument("--folds", type=int, default=None, metavar="K", help=FOLDS_HELP)
    parser.add_argument("--seeds", type=int, default=1, help="repeat every fold with seeds 0..N-1 (default: 1)")
    parser.add_argument(
        "--trainings", default=None,
        help="which trainings to run: raw, filtered or both (default: raw,filtered; raw on a corpus without AVD "
        "ratings, where the conflict filter cannot run)")
    parser.add_argument(
        "--filter-midpoint", type=float, default=None,
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
        help="confidence scores to compare: 'all', 'paper' (emoconfidnet,top2_margin) or a comma list of "
        f"{', '.join(ALL_METHODS)} (default: {methods_default}; on a corpus without AVD ratings, every score but "
        "emoconfidnet and emoconfidnet_tau, which are trained on AVD)")
    parser.set_defaults(methods_default=methods_default)
    parser.add_argument("--mc-passes", type=int, default=10, help="stochastic passes T for mc_dropout (default: 10)")
    parser.add_argument(
        "--ensemble-members", type=int, default=DEFAULT_MEMBERS,
        help="classifiers whose mean softmax macro_gain_ensemble (recommended's default) uses, the protocol's own "
        "included; each extra one is one more classifier training per run (default: %(default)s)")
    parser.add_argument(
        "--rejection-modes", default="global,per_class",
        help="how thresholds are set, one or both of: global (the paper's: one threshold from all validation "
        "confidences) and per_class (the paper's rule within each predicted class, so each class loses about the same "
        "fraction); every method is reported in each (default: %(default)s)")
    parser.add_argument(
        "--threshold-source", default="validation,batch",
        help="whose confidences set the thresholds, a comma list that includes validation: validation (the paper's: "
        "the validation confidences), batch (the test fold's own unlabelled confidences, as one batch of new data), "
        "online (the validation thresholds at a rate adaptive conformal inference moves through the test rows in "
        "order); each is reported beside validation in results.csv and report.md (default: %(default)s)")
    parser.add_argument(
        "--recommend-by", default="f1_uar_area", choices=("f1_uar_area", "f1_area", "uar_area", "aurc"),
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
        "on a seeded synthetic corpus, prints the relative gains at t20 and writes report.md (F1 and UAR against "
        "the rejection threshold, the paper's Fig. 2). All outputs are labelled synthetic.",
        epilog=EPILOG,
    )
    demo.add_argument(
        "--out", default="emoconf_demo_synthetic",
        help="output directory (default: emoconf_demo_synthetic)")
    demo.add_argument(
        "--size", type=int, default=None,
        help="number of synthetic utterances (default: the generator's default)")
    demo.add_argument(
        "--num-features", type=int, default=6373,
        help="synthetic feature dimension (default: 6373, as ComParE-2016)")
    demo.add_argument("--corpus-seed", type=int, default=0, help="seed of the synthetic corpus (default: 0)")
    demo.add_argument(
        "--cv", choices=("split", "group"), default="split",
        help="split column or leave-one-session-out folds (default: split)")
    # the demo keeps to the paper's pair so that it stays quick; --methods all adds four more heads' worth of
    # training per unit
    _add_protocol_options(demo, table=False, methods_default="paper")
    _add_training_options(demo)

    reproduce = commands.add_parser(
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
    _add_protocol_options(reproduce, table=True)
    _add_training_options(reproduce)

    train = commands.add_parser(
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
        "--cv", choices=("split", "group"), default="split",
        help="where the validation/test rows come from: the split column, or leave-one-group-out by 'group' (by "
        "'speaker' when the table has no groups) (default: split)")
    train.add_argument("--folds", type=int, default=None, metavar="K", help=FOLDS_HELP)
    train.add_argument("--fold", type=int, default=0, help="which fold with --cv group (default: 0)")
    train.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    train.add_argument(
        "--training", choices=("raw", "filtered"), default=None,
        help="train on the raw or the conflict-filtered training set (default: filtered; raw on a corpus without AVD "
        "ratings)")
    train.add_argument("--size", type=int, default=None, help="with --synthetic: number of utterances")
    train.add_argument(
        "--num-features", type=int, default=6373,
        help="with --synthetic: feature dimension (default: 6373)")
    train.add_argument(
        "--filter-midpoint", type=float, default=None,
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
        help=f"confidence score the export serves, one of {', '.join(SERVABLE)}: recommended = the score and "
        "rejection mode validation chooses (macro_gain_ensemble per class unless another is clearly better); "
        "emoconfidnet = the paper's model alone (default: %(default)s)")
    train.add_argument(
        "--ensemble-members", type=int, default=DEFAULT_MEMBERS,
        help="classifiers in the ensemble of macro_gain_ensemble (and recommended), the run's own included "
        "(default: %(default)s)")
    train.add_argument(
        "--rejection-mode", default=None, metavar="{global,per_class}",
        help="how an export of the run sets rejection thresholds, recorded in run.json (`emoconf export "
        "--rejection-mode` overrides it): global, one threshold from all validation confidences (the paper's), or "
        "per_class, one per predicted class from the validation predictions of that class (default: the mode "
        "validation chooses for --score recommended, else global)")
    _add_training_options(train)

    build = commands.add_parser(
        "build", help="build a TFDS dataset (openSMILE features + labels) from your corpus copy or audio folder",
        description="Builds the msp_podcast, iemocap, ser_features or audio_folder TFDS dataset from a manual "
        "directory, extracting openSMILE functionals in parallel (resumable: extracted files are cached), and "
        "optionally writes it as a features table for `emoconf reproduce`. audio_folder reads any folder of audio "
        "files: a metadata.csv (file_name,label[,speaker,split,group,arousal,valence,dominance,scale]) or one "
        "folder per class (<label>/*.wav or <split>/<label>/*.wav). Nothing is downloaded.",
        epilog="See tfds_builders/README.md for what goes in each manual directory.",
    )
    build.add_argument(
        "name", choices=("msp_podcast", "iemocap", "ser_features", "audio_folder"), help="dataset to build")
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
        "iemocap also *_hap_only, which keeps hap only (the others merge excited into happy) (default: compare_2016)")
    build.add_argument(
        "--workers", type=int, default=None,
        help=f"parallel openSMILE workers (default: the CPU count, os.cpu_count(), {_cpu_count()} here)")
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

    export_table = commands.add_parser(
        "export-table", help="write a dataset built with `emoconf build` as a features table",
        description="Writes a prepared msp_podcast, iemocap, ser_features or audio_folder dataset as a features table "
        "(id, label, arousal, valence, dominance unless the dataset has no AVD ratings, speaker, group, split when "
        "the dataset has train/validation/test splits, then one column per openSMILE feature) that `emoconf "
        "reproduce --table` reads. Written atomically.",
        epilog="See tfds_builders/README.md.",
    )
    export_table.add_argument("name", help="dataset, optionally with its config: iemocap or iemocap/egemaps_v02")
    export_table.add_argument(
        "--config", default=None,
        help="config when NAME has none (default: the dataset's default, compare_2016)")
    export_table.add_argument("--data-dir", default=None, help=f"TFDS data directory ({DATA_DIR_DEFAULT})")
    export_table.add_argument("--out", required=True, help="table to write (.parquet, .csv or .csv.gz)")

    export = commands.add_parser(
        "export", help="export a run directory as a TF Serving SavedModel (savedmodels/NAME/<version>)",
        description="Turns a run directory from `emoconf train` into the next integer version of a SavedModel with "
        "the signatures serving_default (serialized tf.Example), predict, confidence and threshold, the assets "
        "labels.txt, feature_names.txt and model_card.md, and TF Serving's warm-up requests "
        "(assets.extra/tf_serving_warmup_requests). Written under a temporary name and renamed; an existing "
        "version is never replaced.",
        epilog="Serving: savedmodels/README.md (tensorflow_model_server, REST and gRPC examples).",
    )
    export.add_argument("run_dir", help="run directory written by `emoconf train`")
    export.add_argument(
        "--out", default=None,
        help="model base path that holds the versions (default: savedmodels/<run directory name>)")
    export.add_argument(
        "--score", default=None, metavar="NAME",
        help=f"confidence score to serve, one of {', '.join(SERVABLE)}, if the run computed it (default: the run's "
        "--score, recommended unless trained otherwise; emoconfidnet for runs trained before scores could be "
        "served); emoconfidnet exports the paper's model alone")
    export.add_argument(
        "--default-rejection", type=float, default=0.2,
        help="rejection rate (fraction in [0, 1)) of serving_default's accept output (default: 0.2, the paper's t20%%)")
    export.add_argument(
        "--rejection-mode", default=None, metavar="{global,per_class}",
        help="accept = confidence >= one global threshold (global, the paper's) or >= the threshold of the "
        "predicted class (per_class) (default: the mode the run was trained with or validation chose, run.json)")
    export.add_argument(
        "--warmup", default=",".join(SIGNATURE_NAMES), metavar="SIGNATURES",
        help="signatures the TF Serving warm-up file sends a request to; a server started with --enable_batching "
        "refuses the scalar rejection of threshold and batch_threshold and then does not load the version, so for "
        "one give serving_default,predict,confidence (default: all five)")
    export.add_argument(
        "--no-fold", action="store_true",
        help="serve the Keras graph as it is instead of the folded network (standardisation and batch norms merged "
        "into the dense kernels; same outputs to 1e-5, faster); see docs/performance.md")

    inspect = commands.add_parser(
        "inspect", help="print an exported model's signatures and model card",
        description="Prints the signatures (inputs and outputs with dtypes and shapes, as TF Serving sees them) and "
        "the model card of a SavedModel: the latest version of a model base path, or a given version directory.",
        epilog="Serving: savedmodels/README.md.",
    )
    inspect.add_argument("path", help="model base path (savedmodels/NAME) or a version directory (savedmodels/NAME/3)")

    predict = commands.add_parser(
        "predict", help="class, confidence and accept/reject of an exported model on wav files or features tables",
        description="Runs an exported SavedModel in-process on each INPUT: an audio file (.wav, .flac, .ogg; its "
        "openSMILE features are extracted with the feature set the model records) or a features table (.csv, "
        ".csv.gz, .parquet; the model's feature columns are taken by name, other columns ignored). Prints one line "
        "per utterance: id, class, confidence, accept (and, for a model exported with --rejection-mode per_class, "
        "the threshold of the predicted class). Without --rejection, the serving_default signature answers "
        "at the export's default operating point; with it, the threshold signature.",
        epilog="Serving: savedmodels/README.md.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files and/or features tables")
    predict.add_argument("--model", required=True, help="model base path (savedmodels/NAME) or a version directory")
    predict.add_argument(
        "--version", type=int, default=None,
        help="model version to use (default: the highest, as TF Serving)")
    predict.add_argument(
        "--rejection", type=float, default=None,
        help="rejection rate, a fraction in [0, 1): accept = confidence >= its validation threshold (default: the "
        "export's default, usually 0.2)")
    predict.add_argument(
        "--per-batch", action="store_true",
        help="with --rejection: set the threshold on the inputs' own confidences instead of validation's (the "
        "batch_threshold signature: reject the fraction --rejection of these inputs, globally or per predicted "
        "class), so the rate holds on a new session without labels; give the whole session or day at once")
    predict.add_argument(
        "--json", action="store_true",
        help="print a JSON list of objects (id, source, class, confidence, accept, rejection, threshold: the one "
        "applied to that prediction, rejection_mode, probabilities)")
    predict.add_argument(
        "--workers", type=int, default=1,
        help="audio files whose features are extracted at once (default: 1)")

    bench = commands.add_parser(
        "bench", help="performance figures on this machine, each against a reference measured in the same run",
        description="Measures Keras training against a matmul roofline and scikit-learn, the exported serving_default "
        "signature (batch-1 latency, batch-256 throughput), openSMILE extraction with 1 and 2 workers, and the paper's "
        "protocol on an MSP-Podcast-sized synthetic corpus (34,000 / 7,000 / 10,000 utterances, 6,373 features; its "
        "run time on 2 cores is in docs/performance.md; --quick runs a tenth of it), and the protocol with every "
        "confidence score on an IEMOCAP-development-sized one (protocol_small: 7,000 utterances, 47 features, 5 group "
        "folds) run serially and with --jobs worker processes, one after the other. Prints one table, each figure "
        "beside its target, and "
        "writes the figures as JSON.",
        epilog="See docs/performance.md.",
    )
    bench.add_argument("--quick", action="store_true", help="a tenth of the protocol and fewer repeats (a few minutes)")
    bench.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # seconds; for the test suite
    bench.add_argument(
        "--json", default="emoconf_bench.json", metavar="PATH",
        help="where to write the figures (default: emoconf_bench.json)")
    bench.add_argument(
        "--max-epochs", type=int, default=None,
        help="upper bound on the epochs of protocol and protocol_small; early stopping (patience 10) usually ends "
        "sooner (default: 200)")
    bench.add_argument(
        "--parts", default="training,serving,extraction,protocol",
        help="which parts to run, of training,serving,extraction,protocol,protocol_small (default: all but "
        "protocol_small, which runs every confidence score twice and takes longer than the rest together)")
    bench.add_argument(
        "--jobs", type=int, default=2, metavar="N",
        help="worker processes of protocol_small's second run, timed against its serial first run (default: 2; "
        "-1: one per CPU core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return {"demo": _demo, "reproduce": _reproduce, "train": _train, "build": _build, "export-table": _export_table,
                "export": _export, "inspect": _inspect, "predict": _predict, "bench": _bench}[args.command](args)
    except EmoconfError as error:
        if args.debug:
            raise
        print(f"emoconf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emoconf ... | head` closed the pipe: not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"emoconf {args.command}: interrupted; finished parts are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


def _quiet_tensorflow(debug: bool = False, *, load: bool = True) -> None:
    """`import_tensorflow_quietly`; with `load` False (the units train in worker processes, which load it
    themselves), only its settings: this process then holds no TensorFlow runtime."""
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(debug, load=load)


def _units_here(args) -> bool:
    """Whether the protocol's units train in this process (`--jobs 1`, loky), not in workers."""
    return args.jobs == 1 and args.backend == "loky"


def _cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


def _tfds_data_dir(data_dir: str | None) -> str:
    """`--data-dir`, or TFDS's default data directory when it was not given ($TFDS_DATA_DIR, else
    ~/tensorflow_datasets: what `tfds build` and `tfds.load` use)."""
    if data_dir is not None:
        return data_dir
    # Imported here, not when the parser is built: tensorflow_datasets takes most of a second to import.
    from tensorflow_datasets.core import constants

    return constants.get_default_data_dir()


def _check_arguments(args) -> None:
    """Checks every argument of demo, reproduce or train that can be checked without data, before TensorFlow
    loads or a corpus is generated or read: a wrong value fails within a second, in one line naming it."""
    if hasattr(args, "seeds"):
        _seeds(args.seeds)
    if getattr(args, "trainings", None) is not None:
        _training_names(args.trainings)
    if getattr(args, "methods", None) is not None:
        _method_names(args.methods)
    if getattr(args, "score", None) is not None:
        from emoconf_tf.confidence_methods import check_servable

        check_servable(args.score)
    if hasattr(args, "rejection_modes"):
        _rejection_modes(args.rejection_modes)
    if hasattr(args, "threshold_source"):
        _threshold_sources(args.threshold_source)
    if getattr(args, "rejection_mode", None) is not None:
        from emoconf_tf.thresholds import check_rejection_mode

        check_rejection_mode(args.rejection_mode, "--rejection-mode")
    for name in ("mc_passes", "ensemble_members", "num_features", "size"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            raise EmoconfError(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "folds", None) is not None:
        if args.folds < 3:
            raise EmoconfError(f"--folds {args.folds}: need at least 3 (a test, a validation and a training fold)")
        if args.cv != "group":
            raise EmoconfError(f"--folds {args.folds}: folds are made from groups or speakers; add --cv group")
    for name in ("corpus_seed", "seed", "fold"):
        if getattr(args, name, None) is not None and getattr(args, name) < 0:
            raise EmoconfError(f"--{name.replace('_', '-')} must be 0 or more")
    if getattr(args, "jobs", None) is not None and (args.jobs == 0 or args.jobs < -1):
        raise EmoconfError(f"--jobs {args.jobs}: give 1 or more worker processes, or -1 for one per CPU core")
    if getattr(args, "scheduler", None) is not None and args.backend != "dask":
        raise EmoconfError(f"--scheduler {args.scheduler}: a scheduler is for --backend dask; add it")
    if getattr(args, "backend", None) == "dask":
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise EmoconfError('--backend dask needs dask.distributed, which is not installed: '
                               'pip install "emoconf-tf[dask]"')
        if args.scheduler is not None and args.jobs != 1:
            raise EmoconfError(f"--jobs {args.jobs}: with --scheduler, the cluster's workers decide how many units "
                               "run at once; leave --jobs out")
        if args.scheduler is None and args.jobs == 1:
            raise EmoconfError("--jobs 1: --backend dask without --scheduler starts a local cluster of --jobs "
                               "workers; give --jobs 2 or more (-1: one per CPU core), or --scheduler ADDRESS")
    _check_training_options(args)
    if args.filter_rules:
        _filter_rules(args.filter_rules)
    if args.filter_midpoint is not None and not math.isfinite(args.filter_midpoint):
        raise EmoconfError(f"--filter-midpoint {args.filter_midpoint}: expected a finite number on the AVD scale")
    if getattr(args, "classes", None) is not None:
        names = [name.strip() for name in args.classes.split(",")]
        if not all(names) or len(set(names)) != len(names):
            raise EmoconfError(f"--classes {args.classes}: class names must be unique and non-empty")
    if getattr(args, "scale", None) is not None or getattr(args, "table", None) is not None:
        from emoconf_tf.corpus import check_table_path, parse_scale  # pandas, not TensorFlow

        if args.scale is not None:
            parse_scale(args.scale)
        if args.table is not None:
            check_table_path(args.table)


def _check_training_options(args) -> None:
    for name in ("max_epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            raise EmoconfError(f"--{name.replace('_', '-')} must be at least 1")
    if not (args.learning_rate > 0 and math.isfinite(args.learning_rate)):
        raise EmoconfError(f"--learning-rate {args.learning_rate}: must be a positive number, e.g. 1e-4")


def _training_config(args):
    _check_training_options(args)
    return TrainingConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, patience=args.patience,
        learning_rate=args.learning_rate, verbose=args.keras_verbose,
        reshuffle_each_epoch=not getattr(args, "no_reshuffle", False),
        clip_inputs=not getattr(args, "no_input_clipping", False),
    )


def _protocol_config(args, *, cv: str, seeds: tuple[int, ...], trainings: tuple[str, ...]):
    from emoconf_tf.filtering import PAPER_RULES
    from emoconf_tf.evaluation.protocol import ProtocolConfig

    return ProtocolConfig(
        cv=cv, seeds=seeds, trainings=trainings, filter_midpoint=args.filter_midpoint,
        filter_rules=_filter_rules(args.filter_rules) if args.filter_rules else PAPER_RULES,
        filter_inclusive=getattr(args, "filter_inclusive", False),
        training=_training_config(args),
        methods=_method_names(getattr(args, "methods", None) or getattr(args, "methods_default", "paper")),
        mc_dropout_passes=getattr(args, "mc_passes", 10),
        ensemble_members=getattr(args, "ensemble_members", DEFAULT_MEMBERS),
        rejection_modes=_rejection_modes(getattr(args, "rejection_modes", "global,per_class")),
        # `emoconf train` has no --threshold-source: its run directory's results.csv keeps validation rows only
        threshold_sources=_threshold_sources(getattr(args, "threshold_source", "validation")),
        recommend_by=getattr(args, "recommend_by", "f1_uar_area"),
        folds=getattr(args, "folds", None),
    )


DEFAULT_TRAININGS = "raw,filtered"


def _config_for_corpus(args, config, corpus):
    """`protocol.config_for_corpus` for the CLI: on a corpus without AVD ratings, refuses what was asked for by name
    and needs AVD (the filtered training, the filter's options, emoconfidnet and emoconfidnet_tau, --score
    emoconfidnet), and prints the one line saying what the defaults left out."""
    from emoconf_tf.confidence_methods import METHODS, NO_AVD_REASON
    from emoconf_tf.evaluation.protocol import config_for_corpus

    if corpus.has_avd:
        return config
    asked = list(_comma_list(getattr(args, "trainings", None) or "")) + [getattr(args, "training", None)]
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
        needing = [m for m in _method_names(methods) if METHODS[m].needs_avd]
        if needing:
            raise EmoconfError(f"--methods {methods}: {', '.join(needing)} not available: {NO_AVD_REASON}; "
                               "leave them out or use --methods all")
    config, note = config_for_corpus(config, corpus)
    if note:
        print(note)
    return config


def _seeds(n: int) -> tuple[int, ...]:
    if n < 1:
        raise EmoconfError("--seeds must be at least 1")
    return tuple(range(n))


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _training_names(text: str) -> tuple[str, ...]:
    names = _comma_list(text)
    if not names or any(name not in TRAININGS for name in names):
        raise EmoconfError(f"--trainings {text!r}: choose raw, filtered or raw,filtered")
    return names


def _method_names(text: str) -> tuple[str, ...]:
    names = {"all": ALL_METHODS, "paper": PAPER_METHODS}.get(text) or _comma_list(text)
    unknown = [name for name in names if name not in ALL_METHODS]
    if unknown or not names:
        raise EmoconfError(f"--methods {text!r}: give all, paper or a comma list of {', '.join(ALL_METHODS)}")
    return tuple(names)


def _rejection_modes(text: str) -> tuple[str, ...]:
    from emoconf_tf.thresholds import check_rejection_mode

    modes = _comma_list(text)
    for mode in modes or (text,):  # an empty list is refused as the text given
        check_rejection_mode(mode, "--rejection-modes")
    return modes


def _threshold_sources(text: str) -> tuple[str, ...]:
    from emoconf_tf.thresholds import check_threshold_sources

    return check_threshold_sources(_comma_list(text), "--threshold-source")


def _filter_rules(text: str):
    from emoconf_tf.filtering import parse_rules

    try:
        return parse_rules(text)
    except EmoconfError as error:  # a rule's own message names the rule, not the option
        message = str(error)
        raise EmoconfError(message if message.startswith("--filter-rules") else f"--filter-rules: {message}") from None


def _load_table(args):
    from emoconf_tf.corpus import format_scale, read_features_table

    classes = [c for c in args.classes.split(",")] if args.classes else None
    tfds_name = getattr(args, "tfds", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if tfds_name:
            from tfds_builders.build import load_corpus

            data_dir = _tfds_data_dir(args.data_dir)
            source = f"{tfds_name} in {data_dir}"
            corpus, dropped = load_corpus(tfds_name, data_dir, classes=classes, scale=args.scale)
        else:
            source = args.table
            corpus, dropped = read_features_table(args.table, classes=classes, scale=args.scale)
    for warning in caught:
        if issubclass(warning.category, UserWarning):  # ours (AVD outside the scale, ...), not libraries' deprecations
            print(f"warning: {warning.message}", file=sys.stderr)
    given = "--scale" if args.scale is not None else "recorded"
    avd = (f"AVD scale {format_scale(corpus.scale).replace(',', '-')} ({given})" if corpus.has_avd
           else "no AVD ratings")
    print(f"{source}: {len(corpus)} utterances, {corpus.num_features} features, classes "
          f"{', '.join(corpus.class_names)}; {avd}" + ("; SYNTHETIC data" if corpus.synthetic else ""))
    if corpus.merged_labels:
        print("merged categories (as the dataset was built): "
              + ", ".join(f"{category} counted as {name}" for category, name in corpus.merged_labels))
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


def _run_and_report(corpus, config, out: Path, *, jobs: int = 1, backend: str = "loky",
                    scheduler: str | None = None) -> int:
    from tqdm.auto import tqdm

    from emoconf_tf.evaluation import markdown, protocol
    from emoconf_tf.atomic import write_json

    start = time.perf_counter()

    def one_line(summary: dict, resumed: bool) -> None:
        prefix = "resumed" if resumed else "done"
        scores = "  ".join(f"{k.replace('@0.0', ' t0').replace('@0.2', ' t20')} F1 {v:.3f}"
                           for k, v in summary.items() if "@" in k)
        tqdm.write(
            f"{prefix}: fold {summary['fold']} seed {summary['seed']} {summary['training']:>8}: "
            f"train {summary['n_train']} (filtered out {summary['n_filtered_out']}), "
            f"epochs {summary['classifier_epochs']}/{summary['confidence_epochs']}  {scores}"
        )

    outputs = protocol.run_protocol(corpus, config, out, on_unit=one_line, jobs=jobs, backend=backend,
                                    scheduler=scheduler)
    if outputs.skipped_units:
        print(f"{out}: reused {outputs.skipped_units} finished fold/seed/training unit(s) from an earlier run")
    protocol.write_tables(outputs, out)
    markdown.write_report(out, outputs, markdown.ReportOptions.for_corpus(corpus, settings=config.fingerprint()))
    elapsed = time.perf_counter() - start
    write_json(out / "manifest.json", {
        "version": __version__, "corpus": corpus.name, "synthetic": corpus.synthetic,
        "scale": list(corpus.scale) if corpus.scale is not None else None, "has_avd": corpus.has_avd,
        "merged_labels": dict(corpus.merged_labels),
        "files": ["results.csv", "per_class.csv", "runs.csv", "selective.csv", "choices.csv", "predictions.csv",
                  "folds.csv", "report.md", "curves.png"] + (["risk_coverage.png"] if (out / "risk_coverage.png").exists() else []),
        "seconds": round(elapsed, 1), "jobs": jobs, "backend": backend,
    })
    print()
    print("\n".join(markdown.summary_lines(outputs.results)))
    print(f"\nwrote {out}/results.csv, per_class.csv, runs.csv, report.md, curves.png in {elapsed:.0f} s")
    return 0


def _demo(args) -> int:
    _check_arguments(args)
    _quiet_tensorflow(args.debug, load=_units_here(args))
    config = _protocol_config(args, cv=args.cv, seeds=_seeds(args.seeds),
                              trainings=_training_names(args.trainings or DEFAULT_TRAININGS))
    corpus = _synthetic_corpus(args)
    return _run_and_report(corpus, config, Path(args.out), jobs=args.jobs, backend=args.backend,
                           scheduler=args.scheduler)


def _reproduce(args) -> int:
    _check_arguments(args)
    _quiet_tensorflow(args.debug, load=_units_here(args))
    corpus = _load_table(args)
    cv = args.cv
    if args.tfds and cv == "split" and not (corpus.split != "").all():
        # IEMOCAP's splits are its sessions (in corpus.group): there is no train/validation/test to use.
        cv = "group"
        print(f"folds: leave one session out ({', '.join(sorted(set(corpus.group)))}); {args.tfds} has no "
              f"train/validation/test split")
    config = _protocol_config(args, cv=cv, seeds=_seeds(args.seeds),
                              trainings=_training_names(args.trainings or DEFAULT_TRAININGS))
    config = _config_for_corpus(args, config, corpus)
    out = Path(args.out or f"emoconf_{corpus.name}")
    return _run_and_report(corpus, config, out, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler)


def _train(args) -> int:
    _check_arguments(args)
    _quiet_tensorflow(args.debug)
    from emoconf_tf.serving.rundir import run_summary, train_run

    corpus = _synthetic_corpus(args) if args.synthetic else _load_table(args)
    training = args.training or ("filtered" if corpus.has_avd else "raw")
    config = _config_for_corpus(args, _protocol_config(args, cv=args.cv, seeds=(args.seed,), trainings=(training,)),
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


def _build(args) -> int:
    import shlex

    workers = _cpu_count() if args.workers is None else args.workers
    if workers < 1:
        raise EmoconfError("--workers must be at least 1")
    try:
        beam_options = shlex.split(args.beam_options) if args.beam_options is not None else None
    except ValueError as error:  # e.g. an unclosed quote
        raise EmoconfError(f"--beam-options {args.beam_options!r}: {error}") from None
    import opensmile  # noqa: F401  before TensorFlow: see emoconf_tf.extraction on the FFT symbol clash

    _quiet_tensorflow(args.debug)
    from tfds_builders.build import build_dataset, export_features_table

    data_dir = _tfds_data_dir(args.data_dir)
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
    if args.table:
        path = export_features_table(builder, data_dir, args.table)
        print(f"wrote features table {path}")
    return 0


def _export_table(args) -> int:
    _quiet_tensorflow(args.debug)
    from tfds_builders.build import export_features_table

    data_dir = _tfds_data_dir(args.data_dir)
    path = export_features_table(args.name, data_dir, args.out, config=args.config)
    print(f"wrote features table {path} from {args.name} in {data_dir}")
    return 0


def _export(args) -> int:
    from emoconf_tf.confidence_methods import check_servable
    from emoconf_tf.serving.export import check_rejection, check_warmup_signatures, export_run
    from emoconf_tf.serving.rundir import recorded_has_avd
    from emoconf_tf.thresholds import check_rejection_mode

    check_rejection(args.default_rejection, "--default-rejection")  # before TensorFlow loads
    if args.score is not None:
        # A run without AVD ratings has no EmoConfidNet head: --score emoconfidnet is refused, naming the run.
        has_avd = recorded_has_avd(args.run_dir)
        check_servable(args.score, "--score" if has_avd else f"{args.run_dir}: --score", has_avd=has_avd)
    if args.rejection_mode is not None:
        check_rejection_mode(args.rejection_mode, "--rejection-mode")
    warmup = check_warmup_signatures(args.warmup)
    _quiet_tensorflow(args.debug)
    out = Path(args.out or f"savedmodels/{Path(args.run_dir).resolve().name}")
    start = time.perf_counter()
    result = export_run(args.run_dir, out, default_rejection=args.default_rejection, fold=not args.no_fold,
                        rejection_mode=args.rejection_mode, score=args.score, warmup_signatures=warmup)
    print(f"exported {args.run_dir} as {result.path} (version {result.version}) in {time.perf_counter() - start:.0f} s")
    if result.rejection_mode == "per_class":
        class_names = (result.path / "assets" / "labels.txt").read_text(encoding="utf-8").splitlines()
        operating_point = "per-class thresholds " + ", ".join(
            f"{name} {value:.6f}" for name, value in zip(class_names, result.default_class_thresholds))
    else:
        operating_point = f"threshold {result.default_threshold:.6f}"
    print(f"confidence: {result.score}")
    if not result.has_avd:
        from emoconf_tf.corpus import NO_AVD_RATINGS

        print(f"AVD: {NO_AVD_RATINGS}; no emoconfidnet_confidence output")
    print(f"signatures: {', '.join(SIGNATURE_NAMES)}; serving_default accepts at rejection "
          f"{result.default_rejection:g} ({operating_point}); rejection mode {result.rejection_mode}")
    print(f"serve: tensorflow_model_server --model_base_path={out.resolve()} --model_name=emoconf --rest_api_port=8501")
    return 0


def _inspect(args) -> int:
    _quiet_tensorflow(args.debug)
    from emoconf_tf.serving.inspect import describe

    print(describe(args.path), end="")
    return 0


def _predict(args) -> int:
    import json

    from emoconf_tf.serving.export import check_rejection
    from emoconf_tf.serving.prediction import AUDIO_SUFFIXES, predict, preload_opensmile

    if args.workers < 1:
        raise EmoconfError("--workers must be at least 1")
    if args.rejection is not None:
        check_rejection(args.rejection, "--rejection")
    if args.per_batch and args.rejection is None:
        raise EmoconfError("--per-batch needs --rejection: the fraction of these inputs to reject, e.g. 0.2")
    if any(str(path).lower().endswith(AUDIO_SUFFIXES) for path in args.inputs):
        preload_opensmile()  # before TensorFlow: loaded after it, openSMILE crashes (see its docstring)
    _quiet_tensorflow(args.debug)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predict(args.model, args.inputs, version=args.version, rejection=args.rejection,
                         num_workers=args.workers, progress=sys.stderr.isatty(), per_batch=args.per_batch)
    for warning in caught:
        if issubclass(warning.category, UserWarning):  # e.g. a stereo file downmixed
            print(f"warning: {warning.message}", file=sys.stderr)
    kept = sum(p.accept for p in result.predictions)
    per_class = result.rejection_mode == "per_class"
    operating_point = ("per-class thresholds " + ", ".join(f"{name} {value:.6f}"
                                                           for name, value in result.class_thresholds.items())
                       if per_class else f"threshold {result.threshold:.6f}")
    source = "these inputs' own confidences" if args.per_batch else "validation"
    print(f"model {result.model_dir} ({result.feature_set} features), confidence {result.score}, {result.signature}: "
          f"rejection {result.rejection:g} -> {operating_point} (from {source}); accepted {kept} of "
          f"{len(result.predictions)}; rejection mode {result.rejection_mode}"
          + ("" if result.has_avd else "; no AVD ratings (no EmoConfidNet)"), file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_records(), indent=2))
        return 0
    # The threshold column only in per-class mode: in global mode every row has the one threshold above.
    header = ("id", "class", "confidence", *(("threshold",) if per_class else ()), "accept")
    rows = [(p.id, p.class_name, f"{p.confidence:.6f}", *((f"{p.threshold:.6f}",) if per_class else ()),
             "yes" if p.accept else "no") for p in result.predictions]
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())
    return 0


def _bench(args) -> int:
    from emoconf_tf.benchmarks.harness import PARTS

    parts = _comma_list(args.parts)
    if not parts or any(part not in PARTS for part in parts):
        raise EmoconfError(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    if args.max_epochs is not None and args.max_epochs < 1:
        raise EmoconfError("--max-epochs must be at least 1")
    if args.jobs != -1 and args.jobs < 2:
        raise EmoconfError(f"--jobs {args.jobs}: protocol_small compares a serial run with one of 2 or more worker "
                           "processes; give 2 or more, or -1 for one per CPU core")
    _quiet_tensorflow(args.debug)
    from emoconf_tf.atomic import write_json
    from emoconf_tf.benchmarks.harness import bench_table, run_bench

    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    start = time.perf_counter()
    results = run_bench(size, max_epochs=args.max_epochs, parts=parts, jobs=args.jobs,
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    print(bench_table(results))
    write_json(args.json, results)
    print(f"\nwrote {args.json} ({size} size) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
