"""SavedModel export of a run directory for TF Serving: the served confidence score, five signatures.

`export_run("runs/msp", "savedmodels/emoconf")` writes `savedmodels/emoconf/<version>/`::

    saved_model.pb, variables/     the classifier + EmoConfidNet head (the head only with AVD ratings: a run
                                   without them serves the classifier alone), and the other ensemble classifiers
                                   when the served score uses them (standardisation inside: send raw features)
    assets/labels.txt              class names, one a line, in class-id order
    assets/feature_names.txt       the D feature names, in input order
    assets/feature_set.txt         where the features come from: compare_2016 or egemaps_v02 (openSMILE,
                                   so `emoconf predict` can extract them from audio), synthetic, or unknown
    assets/score.json              the served score (`ServedScore.to_json`: name, what it resolved to, components,
                                   rejection mode, ensemble members, macro-gain statistics, how validation chose it,
                                   has_avd: false for a run without AVD ratings)
    assets/model_card.md           corpus (SYNTHETIC when it is), features, classes, AVD scale (or "no AVD
                                   ratings"), filter, served
                                   score, the run's validation/test figures at each rejection rate, date, version
    assets.extra/tf_serving_warmup_requests
                                   TF Serving's warm-up requests: a TFRecord file of five `PredictionLog`s, one
                                   request per signature (`warmup_records`)

Versions are integers (the layout TF Serving polls); an export takes the number after the highest
one present and never replaces a version. The SavedModel is written under a dot-prefixed temporary
folder inside the model base path (TF Serving ignores names that are not integers) and renamed in
one step, so a serving process never sees a half-written model.

Served score (`score`, `emoconf train/export --score`; `emoconf_tf.serving.served_score`): `confidence` is the
run's score by default, `recommended`: the score (or blend) and rejection mode `emoconf train` chose on
validation by the rule of `emoconf reproduce` (`macro_gain_ensemble` with per-class thresholds unless another
candidate is clearly better), the ensemble members folded into the graph and the validation statistics and blend
references stored as constants. Any servable score the run computed can be asked for
(`confidence_methods.servable_methods()`); `score="emoconfidnet"` exports exactly the paper's model (EmoConfidNet's
`p_hat[c]` of the predicted class `c`, paper Section 3). Runs and exports from before scores could be chosen read
as EmoConfidNet. Whatever the score, `class_ids`, `classes` and `probabilities` are the classifier's, and the
paper's two scores are returned beside `confidence` as `emoconfidnet_confidence` and `baseline_confidence` (the
top-two margin).

A run trained on a corpus without AVD ratings (run.json's `has_avd` false) has no EmoConfidNet head: its export is
built around the classifier alone (folded as the ensemble members are), serves any score that does not need AVD
(`servable_methods(has_avd=False)`; `score="emoconfidnet"` is refused), and its `confidence`, `threshold` and
`batch_threshold` signatures have no `emoconfidnet_confidence` output (absent, not faked).

Signatures (D = feature dimension, K = classes, N = batch):

    serving_default  examples string [N] (serialized tf.Example, float_list feature "features" of length D)
                     -> class_ids int64 [N], classes string [N], probabilities float32 [N, K],
                        confidence float32 [N], accept bool [N] (at the default rejection rate)
    predict          features float32 [N, D] -> class_ids, classes, probabilities
    confidence       features float32 [N, D] -> class_ids, confidence (the served score),
                        emoconfidnet_confidence (only with AVD ratings), baseline_confidence float32 [N]
    threshold        features float32 [N, D], rejection float32 [] in [0, 1)
                     -> threshold float32 [] (the global t_r), class_thresholds float32 [K],
                        applied_threshold float32 [N], confidence float32 [N], accept bool [N],
                        emoconfidnet_confidence, baseline_confidence float32 [N]
    batch_threshold  the inputs and outputs of `threshold`, the thresholds set on the request's own confidences

`threshold`'s thresholds are those of `emoconf_tf.thresholds.class_thresholds` on the run's validation values of
the served score and their predicted classes, which the model stores (sorted by confidence), so any rejection rate
works without the validation data (paper, Section 5.1). `batch_threshold` applies the same rule to the N
confidences of the request and their predicted classes, as if the batch were the validation set: it rejects the
fraction `rejection` of the batch (`floor(N r)` rows in global mode, ties kept; `floor(n_c r)` of the `n_c` rows of
each predicted class in per-class mode, a class absent from the batch taking the batch's global threshold), an
operating point that holds on a new session without labels when the whole session is sent at once. A batch of
one row is always accepted (its threshold is its own confidence); a stream of single requests carries
`emoconf_tf.adaptive.AdaptiveRejection` from one `threshold` request to the next instead.

Rejection mode (`emoconf train/export --rejection-mode`, `thresholds.REJECTION_MODES`), stored in the
variable `rejection_mode` and stated in the model card:

- `global` (the paper's): one threshold `t_r` from all validation confidences; `accept = confidence >= t_r`.
- `per_class`: one threshold per predicted class `c`, the same rule on the validation confidences of the
  predictions of class `c` (a class never predicted on validation takes `t_r`);
  `accept = confidence >= class_thresholds[predicted class]`.

The `threshold` and `batch_threshold` signatures have the same outputs in both modes, so a client need not know
the mode: `threshold` stays the scalar global `t_r` (a scalar output also keeps the request format columnar),
`class_thresholds` holds the K thresholds of the mode (`t_r` K times in global mode), and `applied_threshold` the
one that decided each row's `accept` (`class_thresholds[class_ids]`).

By default the signatures run the folded networks of `emoconf_tf.serving.folded_network` (standardisation and
batch norms merged into the dense kernels, dropout removed): the same outputs up to float32 rounding (checked
against the Keras models and the library's scores to 1e-5 before publishing), and faster at batch 1
(docs/performance.md); `fold=False` (`emoconf export --no-fold`) serves the Keras graphs themselves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from emoconf_tf.confidence import emoconfidnet_confidence, predicted_class, top2_margin
from emoconf_tf.confidence_methods import check_servable
from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.model_card import FEATURE_SET_ASSET, model_card, recorded_feature_set
from emoconf_tf.serving.served_score import SCORE_ASSET, ServedScore, reference_confidence, served_score_for_run
from emoconf_tf.serving.versions import model_versions
from emoconf_tf.thresholds import (
    PAPER_REJECTIONS, accept, check_rejection_mode, class_thresholds, rejection_threshold,
)

DEFAULT_REJECTION = 0.2
SIGNATURE_NAMES = ("serving_default", "predict", "confidence", "threshold", "batch_threshold")
# TF Serving replays this file when it loads a version, before it reports the version AVAILABLE.
WARMUP_REQUESTS = Path("assets.extra") / "tf_serving_warmup_requests"
WARMUP_SIGNATURES = SIGNATURE_NAMES
# The signatures whose every input has a batch dimension: what a TF Serving server with --enable_batching can run.
BATCHABLE_SIGNATURES = ("serving_default", "predict", "confidence")
EXAMPLE_FEATURE_KEY = "features"
ASSET_FILES = ("labels.txt", "feature_names.txt", FEATURE_SET_ASSET, SCORE_ASSET, "model_card.md")
# A float32 rejection rate carries about 7 significant digits; it is read as the nearest 7-decimal
# number (float32(0.35) = 0.34999999 -> 0.35) before the threshold formula, as a client means it.
REJECTION_DECIMALS = 7


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went.

    Attributes:
        path: the version directory, `<model base path>/<version>`.
        version: the integer version.
        default_rejection: the rejection rate of `serving_default`'s `accept`.
        default_threshold: its global validation threshold `t_r`.
        rejection_mode: `"global"` or `"per_class"`: how `accept` thresholds are set.
        default_class_thresholds: K floats, the threshold of each predicted class at `default_rejection`
            in `rejection_mode` (`default_threshold` K times in global mode).
        score: what `confidence` serves (`ServedScore.description`, e.g. `recommended (macro_gain_ensemble)`).
        has_avd: False for a run without AVD ratings: no EmoConfidNet head, no `emoconfidnet_confidence` output.
    """

    path: Path
    version: int
    default_rejection: float
    default_threshold: float
    rejection_mode: str = "global"
    default_class_thresholds: tuple[float, ...] = ()
    score: str = "emoconfidnet"
    has_avd: bool = True


def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    default_rejection: float = DEFAULT_REJECTION,
    verify: bool = True,
    fold: bool = True,
    rejection_mode: str | None = None,
    score: str | None = None,
    warmup_signatures: Sequence[str] = WARMUP_SIGNATURES,
) -> ExportResult:
    """Exports a run directory (from `emoconf train`) as the next version of a TF Serving model.

    Args:
        run_dir: the run directory (`emoconf_tf.serving.rundir.train_run`).
        out_dir: the model base path, e.g. `savedmodels/emoconf`; created when missing.
        default_rejection: float in [0, 1), default 0.2 (the paper's t20%): the operating point of
            `serving_default`'s `accept` output.
        verify: reload the written SavedModel and check it against the Keras model before
            publishing it (default True).
        fold: serve the folded network (`emoconf_tf.serving.folded_network`; default True) or the Keras graph (False).
        rejection_mode: `"global"` (one threshold) or `"per_class"` (one per predicted class); default
            None, the mode the run was trained with (`run.json`'s `rejection_mode`; global when absent), or for
            another `score` than the run's, the mode validation chose (`recommended`) or global.
        score: the confidence score served as `confidence` (`confidence_methods.servable_methods()`); default
            None, the run's (`run.json`'s `score`: `recommended` unless trained with `--score`; EmoConfidNet for
            runs trained before scores could be served). `emoconfidnet` exports the paper's model alone (refused
            for a run without AVD ratings, which has no EmoConfidNet head).
        warmup_signatures: the signatures the TF Serving warm-up file has a request for (default all five). A
            server with `--enable_batching` refuses the scalar `rejection` of `threshold` and `batch_threshold`,
            and does not load a version whose warm-up fails: give `BATCHABLE_SIGNATURES` for such a server.

    Returns:
        `ExportResult` with the version directory and number.

    Raises:
        EmoconfError: an unusable run directory, `out_dir`, rejection rate or mode. Nothing is left behind.
    """
    from emoconf_tf.serving.rundir import load_run

    default_rejection = check_rejection(default_rejection, "--default-rejection")
    if rejection_mode is not None:
        rejection_mode = check_rejection_mode(rejection_mode, "--rejection-mode")
    if score is not None:
        check_servable(score)
    warmup_signatures = check_warmup_signatures(warmup_signatures)
    out_dir = Path(out_dir)
    _check_base_path(out_dir)
    run = load_run(run_dir)
    served, validation_confidence, validation_predicted = served_score_for_run(run, score, rejection_mode)
    rejection_mode = served.rejection_mode
    members = run.members if served.uses_ensemble else []  # load_run loaded and checked them
    default_threshold = rejection_threshold(validation_confidence, default_rejection)
    default_class_thresholds = class_thresholds(validation_confidence, validation_predicted, default_rejection,
                                                len(run.class_names), rejection_mode)
    num_features = _check_features(run)

    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", suffix=".tmp", dir=out_dir))
    try:
        staging = work / "assets"
        staging.mkdir()
        (staging / "labels.txt").write_text("\n".join(run.class_names) + "\n", encoding="utf-8")
        (staging / "feature_names.txt").write_text("\n".join(run.feature_names) + "\n", encoding="utf-8")
        (staging / FEATURE_SET_ASSET).write_text(recorded_feature_set(run.info) + "\n", encoding="utf-8")
        (staging / SCORE_ASSET).write_text(json.dumps(served.to_json(), indent=2) + "\n", encoding="utf-8")
        (staging / "model_card.md").write_text(
            model_card(run, default_rejection=default_rejection, default_threshold=default_threshold,
                       rejection_mode=rejection_mode, default_class_thresholds=default_class_thresholds,
                       served=served, validation_confidence=validation_confidence),
            encoding="utf-8",
        )
        model_dir = work / "saved_model"
        module = EmoconfServingModule(
            run.network, run.class_names, validation_confidence,
            default_rejection=default_rejection, default_threshold=default_threshold,
            asset_paths={name: staging / name for name in ASSET_FILES}, fold=fold,
            validation_predicted=validation_predicted, rejection_mode=rejection_mode, served=served,
            members=members,
        )
        module.save(model_dir)
        write_warmup_requests(model_dir, warmup_features(run.network), rejection=default_rejection,
                              signatures=warmup_signatures)
        if verify:
            _verify(model_dir, run.network, num_features, validation_confidence=validation_confidence,
                    validation_predicted=validation_predicted, rejection_mode=rejection_mode,
                    default_rejection=default_rejection, served=served, members=members)
        version = _publish(model_dir, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for directory in created:  # a failed first export leaves no empty folders
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    return ExportResult(out_dir / str(version), version, default_rejection, default_threshold, rejection_mode,
                        tuple(float(value) for value in default_class_thresholds), served.description, run.has_avd)


def serialize_examples(features: np.ndarray) -> list[bytes]:
    """Serialized `tf.Example`s for `serving_default`: one per row, float_list feature `features`.

    Args:
        features: float `[N, D]` raw features in the order of `feature_names.txt`.

    Returns:
        N serialized `tf.Example` protos (bytes).
    """
    import tensorflow as tf

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise EmoconfError(f"features: expected a [N, D] array, got shape {features.shape}")
    return [
        tf.train.Example(features=tf.train.Features(feature={
            EXAMPLE_FEATURE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=row))})).SerializeToString()
        for row in features
    ]


def warmup_features(emoconfidnet) -> np.ndarray:
    """The row the warm-up requests send: float32 `[1, D]`, the training mean of each feature (the
    `standardize` layer's, found in the EmoConfidNet model or in the classifier alone), an ordinary utterance for
    the model rather than zeros far from every real one."""
    from emoconf_tf.models import find_layer

    mean = np.asarray(find_layer(emoconfidnet, "standardize").mean, dtype=np.float32)
    return mean.reshape(1, -1)


def check_warmup_signatures(signatures: Sequence[str] | str, option: str = "--warmup") -> tuple[str, ...]:
    """The signature names (a sequence or a comma list), checked: known, not repeated, at least one."""
    names = tuple(n.strip() for n in signatures.split(",")) if isinstance(signatures, str) else tuple(signatures)
    unknown = [n for n in names if n not in SIGNATURE_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        raise EmoconfError(f"{option} {','.join(names)!r}: give distinct signatures among {', '.join(SIGNATURE_NAMES)} "
                           f"(with --enable_batching: {','.join(BATCHABLE_SIGNATURES)})")
    return names


def warmup_records(features: np.ndarray, rejection: float = DEFAULT_REJECTION,
                   signatures: Sequence[str] = WARMUP_SIGNATURES) -> list[bytes]:
    """TF Serving's warm-up requests, one for each of `signatures` (default every signature, `WARMUP_SIGNATURES`):
    serialized `PredictionLog`s.

    TF Serving runs the requests of `assets.extra/tf_serving_warmup_requests` (a TFRecord file of
    `tensorflow.serving.PredictionLog`) when it loads a version, before the version is AVAILABLE, so that
    TensorFlow's lazy initialisation is not paid by the first client; a request that fails stops the
    version from loading. The model name of each request is left empty (the server does not read it).

    The protos are written field by field in the protobuf wire format (each field: its number and wire
    type, the length, the bytes): `tensorflow-serving-api`, which defines them, requires a TensorFlow at
    least as new as itself and is not a dependency of this package. `tests/test_export.py` parses the
    records with `tensorflow_serving.apis` and checks them against the protos built there.

    Args:
        features: float `[N, D]` raw features in the order of `feature_names.txt`; each request carries
            these N rows.
        rejection: the rejection rate the `threshold` and `batch_threshold` requests send (default 0.2).
        signatures: the signatures to write a request for, in this order.

    Returns:
        One serialized `PredictionLog` per signature, with a `predict_log.request` each: for `serving_default`,
        input `examples` string `[N]` (`serialize_examples(features)`); for `predict` and `confidence`, input
        `features` float32 `[N, D]`; for `threshold` and `batch_threshold`, `features` and `rejection` float32 `[]`.
    """
    import tensorflow as tf

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] < 1:
        raise EmoconfError(f"warm-up features: expected a [N, D] array with N >= 1, got shape {features.shape}")
    rows = {EXAMPLE_FEATURE_KEY: tf.make_tensor_proto(features, dtype=tf.float32)}
    at_rate = dict(rows, rejection=tf.make_tensor_proto(np.float32(rejection), dtype=tf.float32))
    inputs = {
        "serving_default": {"examples": tf.make_tensor_proto(serialize_examples(features), dtype=tf.string)},
        "predict": rows, "confidence": rows, "threshold": at_rate, "batch_threshold": at_rate,
    }
    return [_prediction_log(name, inputs[name]) for name in check_warmup_signatures(signatures)]


def write_warmup_requests(model_dir: str | os.PathLike, features: np.ndarray,
                          rejection: float = DEFAULT_REJECTION, signatures: Sequence[str] = WARMUP_SIGNATURES) -> Path:
    """Writes `warmup_records(features, rejection, signatures)` as `model_dir/assets.extra/tf_serving_warmup_requests` (a
    TFRecord file) and returns its path."""
    import tensorflow as tf

    path = Path(model_dir) / WARMUP_REQUESTS
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(features, rejection, signatures):
            writer.write(record)
    return path


def _prediction_log(signature_name: str, inputs: dict) -> bytes:
    """`PredictionLog{predict_log: PredictLog{request: PredictRequest}}` in the protobuf wire format.

    Field numbers of tensorflow_serving/apis: PredictionLog.predict_log = 6; PredictLog.request = 1;
    PredictRequest.model_spec = 1, .inputs = 2 (a map: each entry a message with key = 1, value = 2);
    ModelSpec.signature_name = 3. `inputs` maps input names to `TensorProto`s, written in sorted order.
    """
    model_spec = _message_field(3, signature_name.encode("utf-8"))
    request = _message_field(1, model_spec) + b"".join(
        _message_field(2, _message_field(1, key.encode("utf-8")) + _message_field(2, tensor.SerializeToString()))
        for key, tensor in sorted(inputs.items())
    )
    return _message_field(6, _message_field(1, request))


def _message_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2: strings, bytes, messages): key, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    """A non-negative int as a protobuf base-128 varint: 7 bits a byte, low bits first, high bit = more."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class EmoconfServingModule:
    """The serving graph around a trained `emoconfidnet` Keras model (built by `export_run`).

    A `tf.Module` holds the model's variables, the validation confidences sorted in descending order with
    their predicted classes, the rejection mode and the assets; each signature is a `tf.function` with a
    fixed input signature (see the module docstring).

    Args:
        emoconfidnet: the Keras model from `features` `[None, D]` to `probabilities` and `p_hat` `[None, K]`, or
            for a run without AVD ratings the classifier alone (`features` -> `probabilities`; the signatures then
            have no `emoconfidnet_confidence` output).
        class_names: the K class names in id order.
        validation_confidence: float `[n]`, EmoConfidNet confidences of the validation split.
        default_rejection: the rate of `serving_default`'s `accept`.
        default_threshold: `rejection_threshold(validation_confidence, default_rejection)`, the global `t_r`.
        asset_paths: file name -> path of files to include in `assets/`.
        fold: run the folded network (`emoconf_tf.serving.folded_network.FoldedInference`, default) instead of the
            Keras graph.
        validation_predicted: int `[n]` in [0, K), the predicted class of each validation confidence;
            needed in `"per_class"` mode (default None: stored as -1, "not recorded", global mode only).
        rejection_mode: `"global"` (default, the paper's) or `"per_class"`
            (`emoconf_tf.thresholds.class_thresholds`).
    """

    def __init__(self, emoconfidnet, class_names, validation_confidence, *, default_rejection: float,
                 default_threshold: float, asset_paths: dict[str, Path] | None = None, fold: bool = True,
                 validation_predicted: np.ndarray | None = None, rejection_mode: str = "global",
                 served: ServedScore | None = None, members: Sequence = ()):
        import tensorflow as tf

        from emoconf_tf.serving.served_score import class_count, score_graph

        self.module = module = tf.Module(name="emoconf")
        num_features = int(emoconfidnet.input_shape[-1])
        num_classes = class_count(emoconfidnet)
        if len(class_names) != num_classes:
            raise EmoconfError(f"{len(class_names)} class names for a model with {num_classes} outputs")
        self.num_features, self.num_classes = num_features, num_classes
        rejection_mode = check_rejection_mode(rejection_mode)
        if served is None:
            served = ServedScore("emoconfidnet", (("emoconfidnet", 1.0),), rejection_mode)
        elif served.rejection_mode != rejection_mode:
            raise EmoconfError(f"served score's rejection mode {served.rejection_mode} differs from {rejection_mode}")
        self.served = served
        per_class = rejection_mode == "per_class"
        confidence64 = np.asarray(validation_confidence, dtype=np.float64).ravel()
        predicted = _checked_predicted(validation_predicted, confidence64.size, num_classes, rejection_mode)
        order = np.argsort(confidence64, kind="stable")[::-1]  # descending; ties in any order give the same values
        scores = np.sort(confidence64)[::-1]
        if per_class:
            default_class_thresholds = class_thresholds(confidence64, predicted, default_rejection, num_classes,
                                                        rejection_mode)
        else:
            default_class_thresholds = np.full(num_classes, float(default_threshold))
        module.validation_confidence = tf.Variable(scores, trainable=False, name="validation_confidence_desc")
        module.validation_predicted = tf.Variable(predicted[order], trainable=False, name="validation_predicted_desc")
        module.rejection_mode = tf.Variable(rejection_mode, dtype=tf.string, trainable=False, name="rejection_mode")
        module.score = tf.Variable(served.description, dtype=tf.string, trainable=False, name="score")
        module.default_rejection = tf.Variable(float(default_rejection), dtype=tf.float64, trainable=False,
                                               name="default_rejection")
        module.default_threshold = tf.Variable(float(default_threshold), dtype=tf.float64, trainable=False,
                                               name="default_threshold")
        module.default_class_thresholds = tf.Variable(default_class_thresholds, dtype=tf.float64, trainable=False,
                                                      name="default_class_thresholds")
        module.assets = {name: tf.saved_model.Asset(str(path)) for name, path in (asset_paths or {}).items()}
        class_table = tf.constant(list(class_names), dtype=tf.string)

        def checked(features):
            message = (f"features: expected float32 [batch, {num_features}] raw (unstandardised) values in the "
                       f"order of feature_names.txt; got shape")
            check = tf.debugging.Assert(
                tf.logical_and(tf.equal(tf.rank(features), 2), tf.equal(tf.shape(features)[-1], num_features)),
                [message, tf.shape(features)],
            )
            with tf.control_dependencies([check]):
                return tf.identity(features)

        # The classifier, EmoConfidNet's head, the ensemble members (when the score needs them) and the score.
        module.scores = score_module = score_graph(served, emoconfidnet, members, fold=fold)

        def forward(features, check=True):
            return score_module(checked(features) if check else features)

        def accept_at(confidence, threshold):
            # In float32, as thresholds.accept does for float32 confidences (NumPy casts the Python-float
            # threshold down). validation.csv keeps 8 significant digits, which may land a hair above the
            # float32 score it came from; in float32 the two are equal again and that sample is kept.
            return confidence >= tf.cast(threshold, tf.float32)

        def paper_position(count, rate):
            # ceil(n (1 - r)) with round(., 9) first, at least 1, exactly as rejection_threshold; 1-based.
            # The ceiling is taken in integers: in a saved graph, Grappler turns `x / 1e9` into `x * 1e-9`,
            # and 6e10 * 1e-9 = 60.00000000000001 would round up to 61 (one past the last score at r = 0).
            billionths = tf.cast(tf.round(count * (1.0 - rate) * 1e9), tf.int64)
            position = tf.math.floordiv(billionths + 999_999_999, 1_000_000_000)
            return tf.maximum(tf.cast(position, tf.int32), 1)

        def checked_rate(rejection):
            check = tf.debugging.Assert(
                tf.logical_and(rejection >= 0.0, rejection < 1.0),
                ["rejection rate outside [0, 1) (a fraction: 0.2 rejects 20%):", rejection],
            )
            with tf.control_dependencies([check]):
                scale = 10.0 ** REJECTION_DECIMALS
                return tf.round(tf.cast(rejection, tf.float64) * scale) / scale

        def thresholds_for(rate, scores, predicted_desc):
            """The global t_r float64 [] and the mode's thresholds float64 [K] (class_thresholds) of confidences
            `scores` float64 [n] in descending order with their predicted classes `predicted_desc` int64 [n]."""
            # A 0 after the last score: the position is <= n for n >= 1, so it is read only for an empty batch.
            padded = tf.concat([scores, tf.zeros([1], tf.float64)], axis=0)
            index = paper_position(tf.cast(tf.size(scores), tf.float64), rate) - 1
            overall = tf.where(tf.equal(rate, 0.0), tf.constant(0.0, tf.float64), tf.gather(padded, index))
            if not per_class:
                return overall, tf.fill([num_classes], overall)
            # Class c's confidences in descending order are the scores of class c in the (descending) stored
            # order, so rank[i, c] counts the scores of class c down to row i: its 1-based position among them.
            member = tf.one_hot(predicted_desc, num_classes, dtype=tf.int32)  # [n, K]
            rank = tf.cumsum(member, axis=0)
            count = tf.reduce_sum(member, axis=0)  # [K]
            position = paper_position(tf.cast(count, tf.float64), rate)  # [K], <= count where count > 0
            hit = tf.logical_and(tf.equal(member, 1), tf.equal(rank, position[tf.newaxis, :]))  # one row per class
            mine = tf.gather(padded, tf.argmax(tf.cast(hit, tf.int32), axis=0, output_type=tf.int32))
            # A class absent from the scores takes the global threshold; t_0 = 0 for every class.
            return overall, tf.where(tf.logical_and(count > 0, rate > 0.0), mine, overall)

        def thresholded(out, overall, by_class):
            applied = overall if not per_class else tf.gather(by_class, out["class_ids"])
            confidence_ = out["confidence"]
            return {"threshold": tf.cast(overall, tf.float32), "class_thresholds": tf.cast(by_class, tf.float32),
                    "applied_threshold": tf.cast(tf.broadcast_to(applied, tf.shape(confidence_)), tf.float32),
                    "confidence": confidence_, "accept": accept_at(confidence_, applied),
                    **paper_scores(out)}

        def paper_scores(out):
            # emoconfidnet_confidence only when the model has EmoConfidNet's head (a run with AVD ratings).
            return {key: out[key] for key in ("emoconfidnet_confidence", "baseline_confidence") if key in out}

        features_spec = tf.TensorSpec([None, num_features], tf.float32, name="features")
        rejection_spec = tf.TensorSpec([], tf.float32, name="rejection")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serving_default(examples):
            parsed = tf.io.parse_example(
                examples, {EXAMPLE_FEATURE_KEY: tf.io.FixedLenFeature([num_features], tf.float32)})
            # parse_example already refuses a float_list of another length, naming the key.
            out = forward(parsed[EXAMPLE_FEATURE_KEY], check=False)
            class_ids, confidence_ = out["class_ids"], out["confidence"]
            if per_class:
                accepted = accept_at(confidence_, tf.gather(module.default_class_thresholds, class_ids))
            else:
                accepted = accept_at(confidence_, module.default_threshold)
            return {
                "class_ids": class_ids,
                "classes": tf.gather(class_table, class_ids),
                "probabilities": out["probabilities"],
                "confidence": confidence_,
                "accept": accepted,
            }

        @tf.function(input_signature=[features_spec])
        def predict(features):
            out = forward(features)
            return {"class_ids": out["class_ids"], "classes": tf.gather(class_table, out["class_ids"]),
                    "probabilities": out["probabilities"]}

        @tf.function(input_signature=[features_spec])
        def confidence(features):
            out = forward(features)
            return {"class_ids": out["class_ids"], "confidence": out["confidence"], **paper_scores(out)}

        @tf.function(input_signature=[features_spec, rejection_spec])
        def threshold(features, rejection):
            overall, by_class = thresholds_for(checked_rate(rejection), module.validation_confidence,
                                               module.validation_predicted)
            return thresholded(forward(features), overall, by_class)

        @tf.function(input_signature=[features_spec, rejection_spec])
        def batch_threshold(features, rejection):
            rate = checked_rate(rejection)
            out = forward(features)
            batch_scores = tf.cast(out["confidence"], tf.float64)
            order = tf.argsort(batch_scores, direction="DESCENDING", stable=True)
            overall, by_class = thresholds_for(rate, tf.gather(batch_scores, order),
                                               tf.gather(out["class_ids"], order))
            return thresholded(out, overall, by_class)

        module.serving_default, module.predict = serving_default, predict
        module.confidence, module.threshold, module.batch_threshold = confidence, threshold, batch_threshold
        self.signatures = {"serving_default": serving_default, "predict": predict, "confidence": confidence,
                           "threshold": threshold, "batch_threshold": batch_threshold}
        # Track the tf.Variables the signatures read, as keras.export.ExportArchive does on the TensorFlow
        # backend; the Keras model itself stays out of the object graph. Not the Keras wrappers
        # (`emoconfidnet.variables`): each is saved as a copy that the graph never reads, so a TF1-style
        # loader (TF Serving, `saved_model_cli run`) restores the copies and every signature fails with
        # "Could not find variable block1_dense/kernel" (tf.saved_model.load hides this).
        captured = {}
        for function in self.signatures.values():
            for variable in function.get_concrete_function().variables:
                captured.setdefault(id(variable), variable)
        module.model_variables = list(captured.values())

    def save(self, path: str | os.PathLike) -> None:
        """Writes the SavedModel (with the `serve` tag TF Serving loads) to `path`."""
        import tensorflow as tf

        tf.saved_model.save(self.module, str(path), signatures=self.signatures)


def check_rejection(rejection: float, name: str = "rejection") -> float:
    """`rejection` as a float in [0, 1), or `EmoconfError` naming it as `name` (e.g. `"--rejection"`)."""
    try:
        value = float(rejection)
    except (TypeError, ValueError):
        raise EmoconfError(f"{name} {rejection!r}: expected a fraction in [0, 1), e.g. 0.2") from None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise EmoconfError(f"{name} {rejection!r} is outside [0, 1); give a fraction, e.g. 0.2 for 20%")
    return value


def _check_base_path(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EmoconfError(f"{out_dir}: is a file; --out is the model base path, a directory such as savedmodels/NAME")
    if (out_dir / "saved_model.pb").exists():
        raise EmoconfError(
            f"{out_dir}: holds a SavedModel itself; --out is the model base path that holds the version "
            f"directories (here {out_dir.parent})"
        )


def _checked_predicted(validation_predicted, size: int, num_classes: int, rejection_mode: str) -> np.ndarray:
    """int64 `[n]` predicted classes for the module; -1 ("not recorded") when None, in global mode only."""
    if validation_predicted is None:
        if rejection_mode == "per_class":
            raise EmoconfError("per_class rejection needs the predicted class of each validation confidence "
                               "(validation_predicted)")
        return np.full(size, -1, dtype=np.int64)
    predicted = np.asarray(validation_predicted).ravel()
    if predicted.size != size:
        raise EmoconfError(f"{predicted.size} validation predicted classes for {size} validation confidences")
    if predicted.size and (not np.issubdtype(predicted.dtype, np.integer) or predicted.min() < 0
                           or predicted.max() >= num_classes):
        raise EmoconfError(f"validation predicted classes: expected class ids in [0, {num_classes})")
    return predicted.astype(np.int64)


def _check_features(run) -> int:
    num_features = int(run.network.input_shape[-1])
    if len(run.feature_names) != num_features:
        raise EmoconfError(
            f"{run.path / 'feature_names.txt'}: {len(run.feature_names)} names for a model with {num_features} inputs"
        )
    return num_features


def _verify(model_dir: Path, emoconfidnet, num_features: int, *, validation_confidence: np.ndarray | None = None,
            validation_predicted: np.ndarray | None = None, rejection_mode: str = "global",
            default_rejection: float = DEFAULT_REJECTION, served: ServedScore | None = None,
            members: Sequence = ()) -> None:
    """Reloads the SavedModel and compares it with the Keras models and NumPy on random inputs.

    `confidence`'s classes and its three scores must equal the library's on the Keras models' outputs
    (`served_score.reference_confidence`, EmoConfidNet's and the top-two margin; to 1e-5). `emoconfidnet` may be
    the classifier alone (a run without AVD ratings: no `p_hat`), whose export must have no
    `emoconfidnet_confidence` output. Given the validation
    confidences float `[n]` and predicted classes int `[n]`, the `threshold` signature's `class_thresholds` at each
    paper rate and at `default_rejection` must equal `thresholds.class_thresholds(..., rejection_mode)` in float32,
    `batch_threshold`'s the same on the batch's own confidences, and every `accept` (theirs and
    `serving_default`'s) must equal `thresholds.accept(confidence, those thresholds, predicted class)`.
    """
    import tensorflow as tf

    from emoconf_tf.models import find_layer
    from emoconf_tf.serving.served_score import has_head

    served = served or ServedScore("emoconfidnet", (("emoconfidnet", 1.0),), rejection_mode)
    normalization = find_layer(emoconfidnet, "standardize")
    mean = np.asarray(normalization.mean, dtype=np.float32).reshape(-1)
    std = np.sqrt(np.asarray(normalization.variance, dtype=np.float32).reshape(-1))
    std = np.where(np.isfinite(std), std, 1.0)  # a masked feature (constant in training): any value will do
    features = (mean + std * np.random.default_rng(0).standard_normal((8, num_features))).astype(np.float32)
    expected = emoconfidnet(features, training=False)
    if has_head(emoconfidnet):
        probabilities, p_hat = np.asarray(expected["probabilities"]), np.asarray(expected["p_hat"])
    else:  # the classifier alone: no EmoConfidNet head without AVD ratings
        probabilities, p_hat = np.asarray(expected), None
    ensemble = None
    if served.uses_ensemble:
        from emoconf_tf.evaluation.ensemble import mean_softmax

        ensemble = mean_softmax([probabilities, *(member(features, training=False) for member in members)])
    loaded = tf.saved_model.load(str(model_dir))
    got = loaded.signatures["confidence"](features=tf.constant(features))
    if not (np.array_equal(got["class_ids"].numpy(), predicted_class(probabilities))
            and np.allclose(got["confidence"].numpy(), reference_confidence(served, probabilities, p_hat, ensemble),
                            atol=1e-5, rtol=0)
            and (np.allclose(got["emoconfidnet_confidence"].numpy(), emoconfidnet_confidence(probabilities, p_hat),
                             atol=1e-5, rtol=0) if p_hat is not None else "emoconfidnet_confidence" not in got)
            and np.allclose(got["baseline_confidence"].numpy(), top2_margin(probabilities), atol=1e-5, rtol=0)):
        raise EmoconfError(f"{model_dir}: the SavedModel's outputs differ from the Keras model's by more than 1e-5; "
                           "not published (try --no-fold)")
    if validation_confidence is None:
        return
    class_ids, num_classes = got["class_ids"].numpy(), probabilities.shape[-1]
    confidence = got["confidence"].numpy()

    def expected_thresholds(rejection, scores=validation_confidence, predicted=validation_predicted):
        # In float32, as the graph compares (a threshold read from validation.csv's decimals lands a hair
        # off the float32 score it came from; in float32 the two are equal again).
        return class_thresholds(scores, predicted, rejection, num_classes, rejection_mode).astype(np.float32)

    for rejection in sorted({*PAPER_REJECTIONS, default_rejection}):
        for signature, thresholds in (("threshold", expected_thresholds(rejection)),
                                      ("batch_threshold", expected_thresholds(rejection, confidence, class_ids))):
            at_rate = loaded.signatures[signature](features=tf.constant(features),
                                                   rejection=tf.constant(rejection, tf.float32))
            if not (np.array_equal(at_rate["class_thresholds"].numpy(), thresholds)
                    and np.array_equal(at_rate["accept"].numpy(), accept(at_rate["confidence"].numpy(), thresholds,
                                                                            class_ids))):
                raise EmoconfError(f"{model_dir}: the SavedModel's {signature} ({rejection_mode}) thresholds or "
                                   f"accept decisions at rejection {rejection:g} differ from emoconf_tf.thresholds; "
                                   "not published")
    served_default = loaded.signatures["serving_default"](examples=tf.constant(serialize_examples(features)))
    if not np.array_equal(served_default["accept"].numpy(), accept(served_default["confidence"].numpy(),
                                                                   expected_thresholds(default_rejection), class_ids)):
        raise EmoconfError(f"{model_dir}: serving_default's accept at rejection {default_rejection:g} differs from "
                           f"emoconf_tf.thresholds.accept in {rejection_mode} mode; not published")


def _publish(model_dir: Path, out_dir: Path) -> int:
    """Renames the finished SavedModel to the next free version; never replaces a version."""
    while True:
        versions = model_versions(out_dir)
        version = versions[-1] + 1 if versions else 1
        target = out_dir / str(version)
        if target.exists():  # a non-directory named like a version
            raise EmoconfError(f"{target}: exists and is not a version directory; move it away")
        try:
            os.rename(model_dir, target)
        except OSError:
            if target.exists():  # another export took this number first
                continue
            raise
        return version
