"""`emoconf predict`: class, confidence and accept/reject of an exported model on audio files or features tables."""

from __future__ import annotations

import argparse
import sys
import warnings

from emoconf_tf.errors import EmoconfError


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    predict = parsers.add_parser(
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
        help="audio files whose features are extracted at once (default: %(default)s)")
    predict.set_defaults(run=run)


def run(args) -> int:
    from emoconf_tf.serving.export import check_rejection
    from emoconf_tf.serving.prediction import AUDIO_SUFFIXES, predict, preload_opensmile
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    if args.workers < 1:
        raise EmoconfError("--workers must be at least 1")
    if args.rejection is not None:
        check_rejection(args.rejection)
    if args.per_batch and args.rejection is None:
        raise EmoconfError("--per-batch needs --rejection: the fraction of these inputs to reject, e.g. 0.2")
    if any(str(path).lower().endswith(AUDIO_SUFFIXES) for path in args.inputs):
        preload_opensmile()  # before TensorFlow: loaded after it, openSMILE crashes (see its docstring)
    import_tensorflow_quietly(args.debug)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predict(args.model, args.inputs, version=args.version, rejection=args.rejection,
                         num_workers=args.workers, progress=sys.stderr.isatty(), per_batch=args.per_batch)
    for warning in caught:
        if issubclass(warning.category, UserWarning):  # e.g. a stereo file downmixed
            print(f"warning: {warning.message}", file=sys.stderr)
    _print_result(args, result)
    return 0


def _print_result(args, result) -> None:
    """The operating point on stderr, then the predictions on stdout: a JSON list, or a table with the threshold
    column in per-class mode only (in global mode every row has the one threshold of the first line)."""
    import json

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
        return
    header = ("id", "class", "confidence", *(("threshold",) if per_class else ()), "accept")
    rows = [(p.id, p.class_name, f"{p.confidence:.6f}", *((f"{p.threshold:.6f}",) if per_class else ()),
             "yes" if p.accept else "no") for p in result.predictions]
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())
