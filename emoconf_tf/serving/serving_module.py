"""The serving graph of an export: a `tf.Module` whose five signatures serve the run's classifier, the served
confidence score and its rejection thresholds (`EmoconfServingModule`, built and saved by
`emoconf_tf.serving.export.export_run`).

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
against the Keras models and the library's scores to 1e-5 before publishing, `emoconf_tf.serving.verification`),
and faster at batch 1 (docs/performance.md); `fold=False` (`emoconf export --no-fold`) serves the Keras graphs
themselves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.examples import EXAMPLE_FEATURE_KEY
from emoconf_tf.serving.served_score import ServedScore
from emoconf_tf.thresholds import check_rejection_mode, class_thresholds

# The rejection rate of `serving_default`'s `accept` unless the export is given another: the paper's t20%.
DEFAULT_REJECTION = 0.2
SIGNATURE_NAMES = ("serving_default", "predict", "confidence", "threshold", "batch_threshold")
# The signatures whose every input has a batch dimension: what a TF Serving server with --enable_batching can run.
BATCHABLE_SIGNATURES = ("serving_default", "predict", "confidence")
# A float32 rejection rate carries about 7 significant digits; it is read as the nearest 7-decimal
# number (float32(0.35) = 0.34999999 -> 0.35) before the threshold formula, as a client means it.
REJECTION_DECIMALS = 7


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
