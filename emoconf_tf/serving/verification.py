"""The check before an export is published: the written SavedModel, reloaded, must answer as the Keras models and
the library's NumPy scores and thresholds do.

`export_run(..., verify=True)` (the default) calls `verify_saved_model` on the SavedModel in its temporary folder;
a model that fails is not published. The folded networks (`emoconf_tf.serving.folded_network`) give the Keras
models' outputs up to float32 rounding, hence the 1e-5 on scores; thresholds and `accept` must be equal in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.scores import emoconfidnet_confidence, mean_softmax, predicted_class, top2_margin
from emoconf_tf.serving.examples import serialize_examples
from emoconf_tf.serving.served_score import ServedScore, reference_confidence
from emoconf_tf.serving.serving_module import DEFAULT_REJECTION
from emoconf_tf.thresholds import PAPER_REJECTIONS, accept, class_thresholds


def verify_saved_model(model_dir: Path, emoconfidnet, num_features: int, *,
                       validation_confidence: np.ndarray | None = None, validation_predicted: np.ndarray | None = None,
                       rejection_mode: str = "global", default_rejection: float = DEFAULT_REJECTION,
                       served: ServedScore | None = None, members: Sequence = ()) -> None:
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
                           "not published (try fold=False: `emoconf export --no-fold`)")
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
