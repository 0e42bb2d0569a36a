"""Predictions of an exported SavedModel on audio files and features tables: class, confidence, accept.

`emoconf export` writes `savedmodels/NAME/<version>/` (see `emoconf_tf.serving.export`); this module runs such an
export in-process, the way TF Serving would, on

- **features tables** (`.csv`, `.csv.gz`, `.parquet`): the model's feature columns are taken by name, in
  the order of its `assets/feature_names.txt` (other columns, such as `label` or AVD, are ignored); the
  row id is the `id` column, or `<table>:<row>` (1-based data row) when there is none;
- **audio files** (`.wav`, `.flac`, `.ogg`): their openSMILE functionals are extracted with the feature set
  the model records in `assets/feature_set.txt` (`compare_2016` or `egemaps_v02`); the id is the path as
  given. A model trained on synthetic features, or on a table whose feature set was not given
  (`emoconf train --feature-set`), cannot predict from audio.

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
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FEATURE_SET_NAMES
from emoconf_tf.serving.export import check_rejection, serialize_examples
from emoconf_tf.serving.model_card import FEATURE_SET_ASSET, UNKNOWN_FEATURE_SET
from emoconf_tf.serving.served_score import SCORE_ASSET
from emoconf_tf.serving.model_dir import check_model_dir, reexport
from emoconf_tf.serving.versions import version_dir

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# What an export written before score.json existed serves: EmoConfidNet's p_hat[c].
LEGACY_SCORE = {"score": "emoconfidnet", "served": "emoconfidnet", "components": [["emoconfidnet", 1.0]],
                "chosen_on": {}, "legacy": True}
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
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


@dataclasses.dataclass(frozen=True)
class ModelAssets:
    """What an export says about its inputs and outputs (read from `assets/`, without TensorFlow).

    Attributes:
        path: the SavedModel version directory.
        class_names: `labels.txt`, in class-id order.
        feature_names: `feature_names.txt`, the D inputs in order.
        feature_set: `feature_set.txt`; `"unknown"` for an export that has none.
        score: `score.json` (the served score: `score`, `served`, `components`, `rejection_mode`, `chosen_on`,
            ...); for an export written before scores could be chosen, EmoConfidNet's (`legacy` True).
    """

    path: Path
    class_names: list[str]
    feature_names: list[str]
    feature_set: str
    score: dict = dataclasses.field(default_factory=lambda: dict(LEGACY_SCORE))

    @property
    def score_description(self) -> str:
        """What `confidence` is, e.g. `recommended (macro_gain_ensemble)`."""
        return str(self.score.get("served") or self.score.get("score") or "emoconfidnet")

    @property
    def has_avd(self) -> bool:
        """False for an export of a run without AVD ratings (`score.json`'s `has_avd`; no EmoConfidNet head, no
        `emoconfidnet_confidence` output); True when absent (exports with AVD ratings, older exports)."""
        return self.score.get("has_avd") is not False

    @property
    def feature_set_description(self) -> str:
        """`feature_set` for messages: `"unknown"` says what it means."""
        if self.feature_set == UNKNOWN_FEATURE_SET:
            return "unknown (a features table trained without --feature-set)"
        return self.feature_set


def read_model_assets(directory: str | os.PathLike) -> ModelAssets:
    """Reads `labels.txt`, `feature_names.txt` and `feature_set.txt` of a SavedModel version directory."""
    directory = Path(directory)
    assets = directory / "assets"

    def lines(name: str) -> list[str]:
        path = assets / name
        if not path.is_file():
            raise EmoconfError(f"{path}: missing; the model was not written by `emoconf export`")
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]

    feature_set_path = assets / FEATURE_SET_ASSET
    # Exports written before feature_set.txt existed record no feature set.
    feature_set = (feature_set_path.read_text(encoding="utf-8").strip() if feature_set_path.is_file()
                   else UNKNOWN_FEATURE_SET)
    score_path = assets / SCORE_ASSET
    score = dict(LEGACY_SCORE)
    if score_path.is_file():
        try:
            score = json.loads(score_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EmoconfError(f"{score_path}: not valid JSON ({error}); re-export the run with `emoconf export`"
                               ) from None
    return ModelAssets(directory, lines("labels.txt"), lines("feature_names.txt"), feature_set or UNKNOWN_FEATURE_SET,
                       score)


def input_kind(path: str | os.PathLike) -> str:
    """`"audio"` or `"table"` by the file's suffix; `EmoconfError` for anything else or a missing file."""
    name = os.fspath(path).lower()
    if name.endswith(AUDIO_SUFFIXES):
        kind = "audio"
    elif name.endswith(TABLE_SUFFIXES):
        kind = "table"
    else:
        raise EmoconfError(
            f"{path}: not an audio file ({', '.join(AUDIO_SUFFIXES)}) or a features table "
            f"({', '.join(TABLE_SUFFIXES)})"
        )
    if not os.path.isfile(path):
        raise EmoconfError(f"{path}: no such {'audio file' if kind == 'audio' else 'features table'}")
    return kind


def table_features(path: str | os.PathLike, feature_names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The model's feature columns of a features table, by name.

    Args:
        path: `.csv`, `.csv.gz` or `.parquet` with a column per name in `feature_names` (others ignored)
            and optionally `id`.
        feature_names: the D column names the model takes, in input order.

    Returns:
        `(ids, features)`: N row ids (the `id` column, else `<path>:<row>` 1-based) and float32 `[N, D]`.

    Raises:
        EmoconfError: the file is unreadable or empty, a column is missing (they are named), or a value
            is not a finite number (the row id is named).
    """
    # The features-table reader's checks, with its messages (corpus.py owns the format).
    from emoconf_tf.corpus import feature_matrix, read_table_frame

    path = Path(path)
    frame = read_table_frame(path)
    if len(frame) == 0:
        raise EmoconfError(f"{path}: the table has no rows")
    ids = (frame["id"].astype(str).to_numpy() if "id" in frame.columns
           else np.array([f"{path}:{row}" for row in range(1, len(frame) + 1)]))
    _check_columns(path, frame.columns, feature_names)
    return [str(i) for i in ids], feature_matrix(path, frame, list(feature_names), ids)


def audio_features(
    paths: Sequence[str | os.PathLike],
    assets: ModelAssets,
    *,
    num_workers: int | None = 1,
    progress: bool = False,
) -> tuple[list[str], np.ndarray]:
    """openSMILE functionals of audio files, in the model's feature order.

    Args:
        paths: the audio files.
        assets: the model's `ModelAssets`; its `feature_set` must be an openSMILE set.
        num_workers: files extracted at once (default 1; None = every CPU).
        progress: show a progress bar (default False).

    Returns:
        `(ids, features)`: the paths as given and float32 `[N, D]`.
    """
    _check_audio_possible(paths[0], assets)
    frame = extract_features_safely(paths, assets.feature_set, num_workers=num_workers, progress=progress)
    _check_columns(f"openSMILE {assets.feature_set}", frame.columns, assets.feature_names)
    features = frame[list(assets.feature_names)].to_numpy(dtype=np.float32)
    return [os.fspath(p) for p in paths], np.ascontiguousarray(features)


def preload_opensmile() -> None:
    """Loads openSMILE's C library now, so that it comes before TensorFlow's (call it before importing TensorFlow).

    `libSMILEapi.so` and `libtensorflow_framework.so.2` both define Ooura's FFT functions (`rdft`, `cdft`,
    `bitrv2`, ...). When TensorFlow is loaded first, openSMILE's calls reach TensorFlow's copies and corrupt
    the heap: `malloc(): invalid size` or a segmentation fault some files later (openSMILE 2.6, TensorFlow
    2.21). Loaded first, openSMILE keeps its own.
    """
    import opensmile  # noqa: F401  (opensmile.core.lib loads libSMILEapi.so on import)


def extract_features_safely(
    wav_paths: Sequence[str | os.PathLike],
    feature_set: str,
    *,
    num_workers: int | None = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """`emoconf_tf.extraction.extract_features`, in a child process when TensorFlow was loaded before openSMILE.

    In-process when openSMILE's library can still be loaded first (TensorFlow not imported yet) or already
    was (see `preload_opensmile`); otherwise in a fresh `spawn`ed process that never imports TensorFlow,
    which costs a few seconds of start-up but cannot crash this one.

    Args:
        wav_paths: the audio files.
        feature_set: `"compare_2016"` or `"egemaps_v02"`.
        num_workers: files extracted at once (default 1; None = every CPU).
        progress: show a progress bar (default False).

    Returns:
        The float32 DataFrame of `extract_features`, indexed by the paths as given.
    """
    from emoconf_tf.extraction import extract_features

    paths = [os.fspath(path) for path in wav_paths]
    order = {name: index for index, name in enumerate(sys.modules)}  # sys.modules keeps import order
    if "tensorflow" not in order or order.get("opensmile.core.lib", len(order)) < order["tensorflow"]:
        preload_opensmile()
        return extract_features(paths, feature_set, num_workers=num_workers, progress=progress)
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(extract_features, paths, feature_set, num_workers=num_workers,
                           progress=progress).result()


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
            rejection = check_rejection(rejection, "--rejection")
        elif per_batch:
            raise EmoconfError("per-batch thresholds need a rejection rate, e.g. 0.2")
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
        rejection = check_rejection(rejection, "--rejection")
    elif per_batch:
        raise EmoconfError("--per-batch needs --rejection: the fraction of these inputs to reject, e.g. 0.2")
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


def _check_audio_possible(path, assets: ModelAssets) -> None:
    if assets.feature_set not in FEATURE_SET_NAMES:
        raise EmoconfError(
            f"{path}: the model {assets.path} was trained on {assets.feature_set_description} features, so it cannot "
            f"extract them from audio; give a features table (CSV or Parquet) with the columns of "
            f"{assets.path / 'assets' / 'feature_names.txt'}"
        )


def _check_columns(where, columns, feature_names: Sequence[str]) -> None:
    present = set(map(str, columns))
    missing = [name for name in feature_names if name not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise EmoconfError(
            f"{where}: missing {len(missing)} of the model's {len(feature_names)} feature columns: {shown} "
            f"(columns are matched by name to the model's feature_names.txt)"
        )
