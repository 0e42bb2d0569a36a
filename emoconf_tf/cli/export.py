"""`emoconf export`: a run directory as the next version of a TF Serving SavedModel."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from emoconf_tf.scores import servable_methods
from emoconf_tf.serving.export import SIGNATURE_NAMES  # TensorFlow-free until an export runs
from emoconf_tf.serving.warmup import DEFAULT_REJECTION, WARMUP_SIGNATURES
from emoconf_tf.settings import REJECTION_MODES


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    export = parsers.add_parser(
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
        help=f"confidence score to serve, one of {', '.join(servable_methods())}, if the run computed it (default: the "
        "run's --score, recommended unless trained otherwise; emoconfidnet for runs trained before scores could be "
        "served); emoconfidnet exports the paper's model alone")
    export.add_argument(
        "--default-rejection", type=float, default=DEFAULT_REJECTION,
        help="rejection rate (fraction in [0, 1)) of serving_default's accept output (default: %(default)s, the "
        "paper's t20%%)")
    export.add_argument(
        "--rejection-mode", default=None, metavar="{" + ",".join(REJECTION_MODES) + "}",
        help="accept = confidence >= one global threshold (global, the paper's) or >= the threshold of the "
        "predicted class (per_class) (default: the mode the run was trained with or validation chose, run.json)")
    export.add_argument(
        "--warmup", default=",".join(WARMUP_SIGNATURES), metavar="SIGNATURES",
        help="signatures the TF Serving warm-up file sends a request to; a server started with --enable_batching "
        "refuses the scalar rejection of threshold and batch_threshold and then does not load the version, so for "
        "one give serving_default,predict,confidence (default: all five)")
    export.add_argument(
        "--no-fold", action="store_true",
        help="serve the Keras graph as it is instead of the folded network (standardisation and batch norms merged "
        "into the dense kernels; same outputs to 1e-5, faster); see docs/performance.md")
    export.set_defaults(run=run)


def run(args) -> int:
    from emoconf_tf.scores import check_servable
    from emoconf_tf.serving.export import check_rejection, check_warmup_signatures, export_run
    from emoconf_tf.serving.rundir import recorded_has_avd
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly
    from emoconf_tf.thresholds import check_rejection_mode

    check_rejection(args.default_rejection, "default_rejection")  # before TensorFlow loads
    if args.score is not None:
        # A run without AVD ratings has no EmoConfidNet head: --score emoconfidnet is refused, naming the run.
        has_avd = recorded_has_avd(args.run_dir)
        check_servable(args.score, "--score" if has_avd else f"{args.run_dir}: --score", has_avd=has_avd)
    if args.rejection_mode is not None:
        check_rejection_mode(args.rejection_mode)
    warmup = check_warmup_signatures(args.warmup)
    import_tensorflow_quietly(args.debug)
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
