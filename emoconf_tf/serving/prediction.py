"""Predictions of an exported SavedModel on audio files and features tables: class, confidence, accept.

`emoconf export` writes `savedmodels/NAME/<version>/` (see `emoconf_tf.serving.export`); this module runs such an
export in-process, the way TF Serving would, on features tables and audio files (read by
`emoconf_tf.serving.prediction_inputs`: a table's feature columns by name, audio through openSMILE).

Without a rejection rate, the `serving_default` signature answers (its `accept` is at the export's default
operating point); with one, the `threshold` signature gives the confidence and `accept` at that rate and
`predict` the class. Only `class_ids`, `classes`, `probabilities`, `confidence`, `accept` and the thresholds are
read, so an export of a run without AVD ratings (no EmoConfidNet head, no `emoconfidnet_confidence` output)
predicts alike. The export's rejection mode (`global`: one threshold; `per_class`: one per predicted
class) decides which threshold each prediction is held to; every `Prediction` carries the one applied.

Example:

```python
from emoconf_tf.serving.prediction import predict

result = predict("savedmodels/emoconf", ["features.csv", "utterance.wav"], rejection=0.3)
for row in result.predictions:
    verdict = "accept" if row.accept else f"reject (< {row.threshold:.3f})"
    print(row.id, row.class_name, f"{row.confidence:.3f}", verdict)
```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.examples import serialize_examples
from emoconf_tf.serving.export import check_rejection
from emoconf_tf.serving.model_assets import ModelAssets, read_model_assets  # noqa: F401 (imported from here)
from emoconf_tf.serving.model_dir import check_model_dir, reexport
from emoconf_tf.serving.prediction_inputs import (  # noqa: F401 (AUDIO_SUFFIXES, preload_opensmile: imported from here)
    AUDIO_SUFFIXES,
    audio_features,
    input_kind,
    preload_opensmile,
    table_features,
)
from emoconf_tf.serving.versions import version_dir

# Rows per signature call: bounds memory for large tables (1,024 x 6,373 float32 = 26 MB).
BATCH_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The model's answer for one utterance.

    Attributes:
        id: the table's `id` (or `<table>:<row>`), or the audio file's path as given.
        source: the input (table or audio file) the row came from.
        class_name: the predicted class (argmax of `probabilities`).
        confidence: the export's served confidence in it (`PredictionResult.score`; EmoConfidNet's `p_hat[class]`
            for `--score emoconfidnet` and older exports); higher = more confident.
        accept: `confidence >= threshold`: keep the prediction (True) or hand the utterance to a person.
        probabilities: class name -> softmax probability, in class-id order.
        threshold: the validation threshold applied to this prediction: the global one, or in per-class
            mode that of its predicted class.
    """

    id: str
    source: str
    class_name: str
    confidence: float
    accept: bool
    probabilities: dict[str, float]
    threshold: float


@dataclasses.dataclass(frozen=True)
class PredictionResult:
    """Predictions for every input row, in input order, and the operating point that decided `accept`.

    Attributes:
        predictions: one `Prediction` per table row or audio file.
        model_dir: the SavedModel version directory that answered.
        feature_set: the model's `feature_set.txt` (`compare_2016`, `egemaps_v02`, `synthetic`, `unknown`).
        rejection: the rejection rate, a fraction in [0, 1).
        threshold: its global validation threshold `t_r` on the confidence (what every prediction is held to
            in global mode).
        signature: `"serving_default"` (the export's default rate) or `"threshold"` (a given rate).
        rejection_mode: the export's `"global"` or `"per_class"`.
        class_thresholds: class name -> the threshold for predictions of that class at `rejection`, in class-id
            order (`threshold` for every class in global mode).
        score: what `confidence` is (the export's served score, e.g. `recommended (macro_gain_ensemble)`).
        has_avd: False for an export of a run without AVD ratings (`ModelAssets.has_avd`).
    """

    predictions: list[Prediction]
    model_dir: Path
    feature_set: str
    rejection: float
    threshold: float
    signature: str
    rejection_mode: str
    class_thresholds: dict[str, float]
    score: str = "emoconfidnet"
    has_avd: bool = True

    def to_records(self) -> list[dict]:
        """The predictions as JSON-ready dicts: id, source, class, confidence, accept, rejection,
        threshold (the one applied to that prediction), rejection_mode, probabilities."""
        return [
            {"id": p.id, "source": p.source, "class": p.class_name, "confidence": p.confidence,
             "score": self.score, "accept": p.accept, "rejection": self.rejection, "threshold": p.threshold,
             "threshold_source": "batch" if self.signature == "batch_threshold" else "validation",
             "rejection_mode": self.rejection_mode, "probabilities": p.probabilities}
            for p in self.predictions
        ]


class ExportedModel:
    """A SavedModel written by `emoconf export`, loaded in-process with `tf.saved_model.load`.

    Args:
        model: a model base path or a version directory (see `version_dir`).
        version: the version; default None, the highest.

    Attributes:
        assets: its `ModelAssets`.
        default_rejection, default_threshold: the operating point of `serving_default`'s `accept` (the global
            threshold `t_r`).
        rejection_mode: `"global"` or `"per_class"`.
        default_class_thresholds: float64 `[K]`, the threshold of each predicted class at `default_rejection`
            (`default_threshold` K times in global mode).
    """

    def __init__(self, model: str | os.PathLike, version: int | None = None):
        import tensorflow as tf

        self.assets = read_model_assets(check_model_dir(version_dir(model, version)))
        self.path = self.assets.path
        try:
            self._loaded = tf.saved_model.load(str(self.path))
            self.default_rejection = float(self._loaded.default_rejection.numpy())
            self.default_threshold = float(self._loaded.default_threshold.numpy())
            self.rejection_mode = self._loaded.rejection_mode.numpy().decode()
            self.default_class_thresholds = np.asarray(self._loaded.default_class_thresholds.numpy(),
                                                       dtype=np.float64)
        # What a damage check_model_dir cannot see would raise: OSError, OpError, IndexError (variables), ValueError
        # (no meta graph), AttributeError (a SavedModel without the export's operating point).
        except (tf.errors.OpError, OSError, ValueError, IndexError, AttributeError) as error:
            message = " ".join(str(error).split())[:200]
            raise EmoconfError(f"{self.path}: TensorFlow cannot load it as an `emoconf export` model "
                               f"({type(error).__name__}: {message}); {reexport(self.path)}") from error

    def predict(self, features: np.ndarray, rejection: float | None = None, *,
                per_batch: bool = False) -> dict[str, np.ndarray]:
        """Runs `serving_default` (rejection None) or `predict` + `threshold` on raw features.

        Args:
            features: float32 `[N, D]` raw features in the order of `feature_names.txt`.
            rejection: a fraction in [0, 1), or None (default) for the export's default rate.
            per_batch: with `rejection`, set the thresholds on these N rows' own confidences (the rule of the
                `batch_threshold` signature, `thresholds.class_thresholds` on the batch, over all N rows however
                many signature calls they take) instead of the validation confidences.

        Returns:
            `class_ids` int64 `[N]`, `probabilities` float32 `[N, K]`, `confidence` float32 `[N]`,
            `accept` bool `[N]`, `applied_threshold` float64 `[N]` (the threshold that decided each `accept`),
            `class_thresholds` float64 `[K]` (the mode's thresholds at the rate), `threshold` float (the global
            `t_r`, which decided `accept` in global mode).
        """
        import tensorflow as tf

        features = np.asarray(features, dtype=np.float32)
        num_features = len(self.assets.feature_names)
        if features.ndim != 2 or features.shape[1] != num_features:
            raise EmoconfError(f"features: expected shape [N, {num_features}], got {features.shape}")
        if rejection is not None:
            rejection = check_rejection(rejection)
        elif per_batch:
            raise EmoconfError("per_batch needs rejection: the fraction of these rows to reject, e.g. 0.2",
                               argument="per_batch")
        signatures = self._loaded.signatures
        if per_batch:
            return self._predict_per_batch(features, rejection)
        parts = {"class_ids": [], "probabilities": [], "confidence": [], "accept": [], "applied_threshold": []}
        threshold, class_thresholds = self.default_threshold, self.default_class_thresholds
        for start in range(0, len(features), BATCH_SIZE):
            batch = features[start:start + BATCH_SIZE]
            if rejection is None:
                out = {key: value.numpy() for key, value in signatures["serving_default"](
                    examples=tf.constant(serialize_examples(batch))).items()}
            else:
                out = {key: value.numpy() for key, value in signatures["predict"](features=tf.constant(batch)).items()}
                at_rate = {key: value.numpy() for key, value in signatures["threshold"](
                    features=tf.constant(batch), rejection=tf.constant(rejection, tf.float32)).items()}
                out.update(confidence=at_rate["confidence"], accept=at_rate["accept"])
                threshold = float(at_rate["threshold"])
                class_thresholds = at_rate["class_thresholds"]
            out["applied_threshold"] = np.asarray(class_thresholds, dtype=np.float64)[out["class_ids"]]
            for key, values in parts.items():
                values.append(out[key])
        return {key: np.concatenate(values) for key, values in parts.items()} | {
            "threshold": threshold, "class_thresholds": np.asarray(class_thresholds, dtype=np.float64)}


    def _predict_per_batch(self, features: np.ndarray, rejection: float) -> dict[str, np.ndarray]:
        import tensorflow as tf

        from emoconf_tf.thresholds import accept, class_thresholds, rejection_threshold

        parts = {"class_ids": [], "probabilities": [], "confidence": []}
        for start in range(0, len(features), BATCH_SIZE):
            batch = tf.constant(features[start:start + BATCH_SIZE])
            out = self._loaded.signatures["predict"](features=batch)
            parts["class_ids"].append(out["class_ids"].numpy())
            parts["probabilities"].append(out["probabilities"].numpy())
            parts["confidence"].append(self._loaded.signatures["confidence"](features=batch)["confidence"].numpy())
        out = {key: np.concatenate(values) for key, values in parts.items()}
        num_classes = len(self.assets.class_names)
        overall = rejection_threshold(out["confidence"], rejection)
        by_class = class_thresholds(out["confidence"], out["class_ids"], rejection, num_classes, self.rejection_mode)
        # In float32, as the signature compares.
        by_class = by_class.astype(np.float32).astype(np.float64)
        out["accept"] = accept(out["confidence"], by_class, out["class_ids"])
        out["applied_threshold"] = by_class[out["class_ids"]]
        return out | {"threshold": float(np.float32(overall)), "class_thresholds": by_class}


def predict(
    model: str | os.PathLike | ExportedModel,
    inputs: Sequence[str | os.PathLike],
    *,
    version: int | None = None,
    rejection: float | None = None,
    num_workers: int | None = 1,
    progress: bool = False,
    per_batch: bool = False,
) -> PredictionResult:
    """Class, confidence and accept/reject of every row of features tables and every audio file.

    Args:
        model: a model base path (`savedmodels/NAME`), a version directory, or a loaded `ExportedModel`.
        inputs: audio files and features tables, in any mix (see the module docstring).
        version: with a base path, the version to use; default None, the highest.
        rejection: a fraction in [0, 1) (0.2 rejects the least confident 20% of validation utterances);
            default None, the export's default operating point (`serving_default`).
        num_workers: audio files extracted at once (default 1; None = every CPU).
        progress: show openSMILE's progress bar (default False).
        per_batch: with `rejection`, reject that fraction of these inputs by their own confidences (globally or
            per predicted class, as the export's mode), not by validation's: the `batch_threshold` rule, for an
            operating point that holds on a new session. All inputs form one batch.

    Returns:
        `PredictionResult`, predictions in input order (a table's rows in table order).

    Raises:
        EmoconfError: a rejection rate outside [0, 1), an input that is missing or of an unknown kind,
            missing feature columns, audio for a model whose features are not openSMILE's, or a damaged
            model version (its part named; `model_dir.check_model_dir`).
    """
    if rejection is not None:
        rejection = check_rejection(rejection)
    elif per_batch:
        raise EmoconfError("per_batch needs rejection: the fraction of these inputs to reject, e.g. 0.2",
                           argument="per_batch")
    if not inputs:
        raise EmoconfError("no inputs: give audio files or features tables")
    # Checked before TensorFlow loads the model (and before any extraction): a wrong call fails at once.
    kinds = [input_kind(path) for path in inputs]
    assets = (model.assets if isinstance(model, ExportedModel)
              else read_model_assets(check_model_dir(version_dir(model, version))))
    audio = [path for path, kind in zip(inputs, kinds) if kind == "audio"]

    blocks: dict[int, tuple[list[str], np.ndarray]] = {}
    for position, (path, kind) in enumerate(zip(inputs, kinds)):  # tables first: quick to check
        if kind == "table":
            blocks[position] = table_features(path, assets.feature_names)
    if audio:
        ids, features = audio_features(audio, assets, num_workers=num_workers, progress=progress)
        positions = [i for i, kind in enumerate(kinds) if kind == "audio"]
        for position, utterance, row in zip(positions, ids, features):
            blocks[position] = ([utterance], row[None, :])

    ids = [utterance for position in range(len(inputs)) for utterance in blocks[position][0]]
    sources = [os.fspath(inputs[position]) for position in range(len(inputs)) for _ in blocks[position][0]]
    features = np.concatenate([blocks[position][1] for position in range(len(inputs))])

    exported = model if isinstance(model, ExportedModel) else ExportedModel(assets.path)
    out = exported.predict(features, rejection, per_batch=per_batch)
    names = exported.assets.class_names
    predictions = [
        Prediction(
            id=utterance, source=source, class_name=names[class_id], confidence=float(confidence),
            accept=bool(accept), probabilities={name: float(p) for name, p in zip(names, probabilities)},
            threshold=float(threshold),
        )
        for utterance, source, class_id, confidence, accept, probabilities, threshold in zip(
            ids, sources, out["class_ids"], out["confidence"], out["accept"], out["probabilities"],
            out["applied_threshold"])
    ]
    return PredictionResult(
        predictions=predictions, model_dir=exported.path, feature_set=exported.assets.feature_set,
        rejection=exported.default_rejection if rejection is None else rejection, threshold=out["threshold"],
        signature="serving_default" if rejection is None else "batch_threshold" if per_batch else "threshold",
        rejection_mode=exported.rejection_mode,
        class_thresholds={name: float(value) for name, value in zip(names, out["class_thresholds"])},
        score=exported.assets.score_description,
        has_avd=exported.assets.has_avd,
    )
