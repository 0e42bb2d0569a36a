"""SavedModel export of a run directory for TF Serving: prediction, confidence and threshold signatures.

`export_run("runs/msp", "savedmodels/emoconf")` writes `savedmodels/emoconf/<version>/`::

    saved_model.pb, variables/     the classifier + EmoConfidNet head (standardisation inside: send raw features)
    assets/labels.txt              class names, one a line, in class-id order
    assets/feature_names.txt       the D feature names, in input order
    assets/feature_set.txt         where the features come from: compare_2016 or egemaps_v02 (openSMILE,
                                   so `emoconf predict` can extract them from audio), synthetic, or unknown
    assets/model_card.md           corpus (SYNTHETIC when it is), features, classes, AVD scale, filter,
                                   the run's validation/test figures at each rejection rate, date, version

Versions are integers (the layout TF Serving polls); an export takes the number after the highest
one present and never replaces a version. The SavedModel is written under a dot-prefixed temporary
folder inside the model base path (TF Serving ignores names that are not integers) and renamed in
one step, so a serving process never sees a half-written model.

Signatures (D = feature dimension, K = classes, N = batch):

    serving_default  examples string [N] (serialized tf.Example, float_list feature "features" of length D)
                     -> class_ids int64 [N], classes string [N], probabilities float32 [N, K],
                        confidence float32 [N], accept bool [N] (at the default rejection rate)
    predict          features float32 [N, D] -> class_ids, classes, probabilities
    confidence       features float32 [N, D] -> class_ids, confidence, baseline_confidence (top-two margin)
    threshold        features float32 [N, D], rejection float32 [] in [0, 1)
                     -> threshold float32 [], confidence float32 [N], accept bool [N]

`confidence` is EmoConfidNet's `p_hat[c]` of the predicted class `c` (paper, Section 3); thresholds
are those of `emoconf_tf.thresholds.rejection_threshold` on the run's validation confidences, which
the model stores sorted, so any rejection rate works without the validation data (paper, Section 5.1).

By default the signatures run the folded network of `emoconf_tf.folding` (standardisation and batch
norms merged into the dense kernels, dropout removed): the same outputs up to float32 rounding (checked
against the Keras model to 1e-5 before publishing), about 12 % faster at batch 1;
`fold=False` (`emoconf export --no-fold`) serves the Keras graph itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emoconf_tf import __version__
from emoconf_tf.confidence import emoconfidnet_confidence, predicted_class, top2_margin
from emoconf_tf.errors import EmoconfError
from emoconf_tf.thresholds import rejection_threshold

DEFAULT_REJECTION = 0.2
SIGNATURE_NAMES = ("serving_default", "predict", "confidence", "threshold")
EXAMPLE_FEATURE_KEY = "features"
FEATURE_SET_ASSET = "feature_set.txt"
ASSET_FILES = ("labels.txt", "feature_names.txt", FEATURE_SET_ASSET, "model_card.md")
# What feature_set.txt holds when run.json records no openSMILE set (a table trained without --feature-set).
UNKNOWN_FEATURE_SET = "unknown"
# A float32 rejection rate carries about 7 significant digits; it is read as the nearest 7-decimal
# number (float32(0.35) = 0.34999999 -> 0.35) before the threshold formula, as a client means it.
REJECTION_DECIMALS = 7
_KNOWN_FEATURE_SETS = {6373: "ComParE 2016 functionals", 88: "eGeMAPSv02 functionals"}
_FEATURE_SET_TITLES = {"compare_2016": "ComParE 2016 functionals", "egemaps_v02": "eGeMAPSv02 functionals"}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went.

    Attributes:
        path: the version directory, `<model base path>/<version>`.
        version: the integer version.
        default_rejection: the rejection rate of `serving_default`'s `accept`.
        default_threshold: its validation threshold.
    """

    path: Path
    version: int
    default_rejection: float
    default_threshold: float


def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    default_rejection: float = DEFAULT_REJECTION,
    verify: bool = True,
    fold: bool = True,
) -> ExportResult:
    """Exports a run directory (from `emoconf train`) as the next version of a TF Serving model.

    Args:
        run_dir: the run directory (`emoconf_tf.rundir.train_run`).
        out_dir: the model base path, e.g. `savedmodels/emoconf`; created when missing.
        default_rejection: float in [0, 1), default 0.2 (the paper's t20%): the operating point of
            `serving_default`'s `accept` output.
        verify: reload the written SavedModel and check it against the Keras model before
            publishing it (default True).
        fold: serve the folded network (`emoconf_tf.folding`; default True) or the Keras graph (False).

    Returns:
        `ExportResult` with the version directory and number.

    Raises:
        EmoconfError: an unusable run directory, `out_dir`, or rejection rate. Nothing is left behind.
    """
    from emoconf_tf.rundir import load_run

    default_rejection = check_rejection(default_rejection, "--default-rejection")
    out_dir = Path(out_dir)
    _check_base_path(out_dir)
    run = load_run(run_dir)
    validation_confidence = _validation_confidence(run)
    default_threshold = rejection_threshold(validation_confidence, default_rejection)
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
        (staging / "model_card.md").write_text(
            model_card(run, default_rejection=default_rejection, default_threshold=default_threshold),
            encoding="utf-8",
        )
        model_dir = work / "saved_model"
        module = EmoconfServingModule(
            run.emoconfidnet, run.class_names, validation_confidence,
            default_rejection=default_rejection, default_threshold=default_threshold,
            asset_paths={name: staging / name for name in ASSET_FILES}, fold=fold,
        )
        module.save(model_dir)
        if verify:
            _verify(model_dir, run.emoconfidnet, num_features)
        version = _publish(model_dir, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for directory in created:  # a failed first export leaves no empty folders
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    return ExportResult(out_dir / str(version), version, default_rejection, default_threshold)


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


def recorded_feature_set(info: dict) -> str:
    """What `feature_set.txt` records for a run's `run.json` contents: `"compare_2016"`, `"egemaps_v02"`,
    `"synthetic"` or `"unknown"` (no openSMILE set recorded, e.g. a run trained before the field existed)."""
    if info.get("synthetic"):
        return "synthetic"
    value = info.get("feature_set")
    return value if value in _FEATURE_SET_TITLES else UNKNOWN_FEATURE_SET


def model_versions(out_dir: str | os.PathLike) -> list[int]:
    """The integer version directories in a model base path, ascending (empty when there are none)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(int(p.name) for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit())


class EmoconfServingModule:
    """The serving graph around a trained `emoconfidnet` Keras model (built by `export_run`).

    A `tf.Module` holds the model's variables, the sorted validation confidences and the assets;
    each signature is a `tf.function` with a fixed input signature (see the module docstring).

    Args:
        emoconfidnet: the Keras model from `features` `[None, D]` to `probabilities` and `p_hat` `[None, K]`.
        class_names: the K class names in id order.
        validation_confidence: float `[n]`, EmoConfidNet confidences of the validation split.
        default_rejection: the rate of `serving_default`'s `accept`.
        default_threshold: `rejection_threshold(validation_confidence, default_rejection)`.
        asset_paths: file name -> path of files to include in `assets/`.
        fold: run the folded network (`emoconf_tf.folding.FoldedInference`, default) instead of the
            Keras graph.
    """

    def __init__(self, emoconfidnet, class_names, validation_confidence, *, default_rejection: float,
                 default_threshold: float, asset_paths: dict[str, Path] | None = None, fold: bool = True):
        import tensorflow as tf

        from emoconf_tf.folding import FoldedInference, fold_emoconfidnet

        self.module = module = tf.Module(name="emoconf")
        num_features = int(emoconfidnet.input_shape[-1])
        num_classes = int(emoconfidnet.output["probabilities"].shape[-1])
        if len(class_names) != num_classes:
            raise EmoconfError(f"{len(class_names)} class names for a model with {num_classes} outputs")
        self.num_features, self.num_classes = num_features, num_classes
        scores = np.sort(np.asarray(validation_confidence, dtype=np.float64).ravel())[::-1]
        module.validation_confidence = tf.Variable(scores, trainable=False, name="validation_confidence_desc")
        module.default_rejection = tf.Variable(float(default_rejection), dtype=tf.float64, trainable=False,
                                               name="default_rejection")
        module.default_threshold = tf.Variable(float(default_threshold), dtype=tf.float64, trainable=False,
                                               name="default_threshold")
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

        if fold:
            module.inference = inference = FoldedInference(fold_emoconfidnet(emoconfidnet))
        else:
            def inference(features):
                outputs = emoconfidnet(features, training=False)
                return outputs["probabilities"], outputs["p_hat"]

        def forward(features, check=True):
            probabilities, p_hat = inference(checked(features) if check else features)
            probabilities, p_hat = tf.cast(probabilities, tf.float32), tf.cast(p_hat, tf.float32)
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
            confidence = tf.gather(p_hat, class_ids, axis=1, batch_dims=1)
            return probabilities, class_ids, confidence

        def accept_at(confidence, threshold):
            # In float32, as thresholds.accept does for float32 confidences (NumPy casts the Python-float
            # threshold down). validation.csv keeps 8 significant digits, which may land a hair above the
            # float32 score it came from; in float32 the two are equal again and that sample is kept.
            return confidence >= tf.cast(threshold, tf.float32)

        def threshold_for(rejection):
            check = tf.debugging.Assert(
                tf.logical_and(rejection >= 0.0, rejection < 1.0),
                ["rejection rate outside [0, 1) (a fraction: 0.2 rejects 20%):", rejection],
            )
            with tf.control_dependencies([check]):
                scale = 10.0 ** REJECTION_DECIMALS
                rate = tf.round(tf.cast(rejection, tf.float64) * scale) / scale
            scores = module.validation_confidence
            n = tf.cast(tf.size(scores), tf.float64)
            # ceil(n (1 - r)) with round(., 9) first, exactly as rejection_threshold.
            position = tf.math.ceil(tf.round(n * (1.0 - rate) * 1e9) / 1e9)
            index = tf.maximum(tf.cast(position, tf.int32), 1) - 1
            return tf.where(tf.equal(rate, 0.0), tf.constant(0.0, tf.float64), tf.gather(scores, index))

        features_spec = tf.TensorSpec([None, num_features], tf.float32, name="features")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serving_default(examples):
            parsed = tf.io.parse_example(
                examples, {EXAMPLE_FEATURE_KEY: tf.io.FixedLenFeature([num_features], tf.float32)})
            # parse_example already refuses a float_list of another length, naming the key.
            probabilities, class_ids, confidence = forward(parsed[EXAMPLE_FEATURE_KEY], check=False)
            return {
                "class_ids": class_ids,
                "classes": tf.gather(class_table, class_ids),
                "probabilities": probabilities,
                "confidence": confidence,
                "accept": accept_at(confidence, module.default_threshold),
            }

        @tf.function(input_signature=[features_spec])
        def predict(features):
            probabilities, class_ids, _ = forward(features)
            return {"class_ids": class_ids, "classes": tf.gather(class_table, class_ids),
                    "probabilities": probabilities}

        @tf.function(input_signature=[features_spec])
        def confidence(features):
            probabilities, class_ids, confidence_ = forward(features)
            top2 = tf.math.top_k(probabilities, k=2).values
            return {"class_ids": class_ids, "confidence": confidence_,
                    "baseline_confidence": top2[:, 0] - top2[:, 1]}

        @tf.function(input_signature=[features_spec, tf.TensorSpec([], tf.float32, name="rejection")])
        def threshold(features, rejection):
            threshold64 = threshold_for(rejection)
            _, _, confidence_ = forward(features)
            return {"threshold": tf.cast(threshold64, tf.float32), "confidence": confidence_,
                    "accept": accept_at(confidence_, threshold64)}

        module.serving_default, module.predict = serving_default, predict
        module.confidence, module.threshold = confidence, threshold
        self.signatures = {"serving_default": serving_default, "predict": predict,
                           "confidence": confidence, "threshold": threshold}
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


def model_card(run, *, default_rejection: float, default_threshold: float, date: str | None = None) -> str:
    """The Markdown model card of an export (`assets/model_card.md`)."""
    info = run.info
    synthetic = bool(info.get("synthetic"))
    num_features = len(run.feature_names)
    recorded = recorded_feature_set(info)
    if recorded in _FEATURE_SET_TITLES:
        feature_set = (f"openSMILE {_FEATURE_SET_TITLES[recorded]} (`{FEATURE_SET_ASSET}`: {recorded}; "
                       "`emoconf predict` extracts them from audio)")
    elif synthetic:
        feature_set = f"synthetic features (`{FEATURE_SET_ASSET}`: synthetic; predict from a features table)"
    else:
        feature_set = _KNOWN_FEATURE_SETS.get(num_features, "custom table (see feature_names.txt)")
        if num_features in _KNOWN_FEATURE_SETS:
            feature_set += " (inferred from the dimension)"
        feature_set += (f"; the run records no feature set (`{FEATURE_SET_ASSET}`: {UNKNOWN_FEATURE_SET}), "
                        "so predict from a features table")
    scale = info.get("scale", ["?", "?"])
    counts = info.get("filter_counts") or {}
    removed = sum(counts.values())
    run_info = info.get("run", {})
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = []
    if synthetic:
        lines += [
            "# EmoConfidNet model card — SYNTHETIC",
            "",
            "> **SYNTHETIC DATA.** This model was trained on the built-in synthetic corpus (generated "
            "numbers, not real speech). Its figures below say nothing about emotion recognition; use it "
            "only to try the serving set-up.",
        ]
    else:
        lines += ["# EmoConfidNet model card"]
    lines += [
        "",
        "Confidence-aware speech emotion recognition: an emotion classifier and its EmoConfidNet "
        "confidence head, exported by `emoconf export`.",
        "",
        "| | |",
        "|---|---|",
        f"| corpus | {info.get('corpus', '?')}{' (**SYNTHETIC**)' if synthetic else ''} |",
        f"| features | {num_features} per utterance, {feature_set}; raw values in the order of "
        "`feature_names.txt` (standardisation is inside the model) |",
        f"| classes | {', '.join(run.class_names)} (`labels.txt`, in class-id order) |",
        f"| AVD scale | {_number(scale[0])} to {_number(scale[1])} |",
        f"| conflict filter | {'on' if info.get('filter') else 'off'} (training set: {info.get('training', '?')}"
        f"{f', {removed} utterances removed' if info.get('filter') else ''}) |",
        f"| data | train {run_info.get('n_train', '?')}, validation {run_info.get('n_validation', '?')}, "
        f"test {run_info.get('n_test', '?')} utterances; fold {info.get('fold_name', '?')} "
        f"{info.get('fold', '?')}, seed {info.get('seed', '?')} |",
        f"| epochs | classifier {run_info.get('classifier_epochs', '?')}, EmoConfidNet "
        f"{run_info.get('confidence_epochs', '?')} |",
        f"| default operating point | rejection {default_rejection:g} -> threshold {default_threshold:.6f} "
        "(`serving_default`'s `accept`) |",
        f"| exported | {date}, emoconf-tf {__version__} (run trained with emoconf-tf {info.get('version', '?')}) |",
        "",
        "## Signatures",
        "",
        "- `serving_default`: `examples` (serialized `tf.Example`, float_list `features`) -> `class_ids`, "
        "`classes`, `probabilities`, `confidence`, `accept`",
        "- `predict`: `features` -> `class_ids`, `classes`, `probabilities`",
        "- `confidence`: `features` -> `class_ids`, `confidence` (EmoConfidNet), `baseline_confidence` "
        "(top-two softmax margin)",
        "- `threshold`: `features`, `rejection` -> `threshold`, `confidence`, `accept`",
        "",
        "## Figures at each rejection rate",
        "",
    ]
    lines += _figures(run)
    lines += [
        "",
        "Thresholds are set on the validation split (its confidences sorted in descending order, "
        "t_r = the ceil(n(1 - r))-th, t_0 = 0) and applied to the test split; F1 = 2PR/(P+R) of macro "
        "precision and recall, UAR = macro recall (paper, Section 5.1).",
    ]
    return "\n".join(lines) + "\n"


def _figures(run) -> list[str]:
    from emoconf_tf.metrics import selective_scores

    if run.results is None or run.results.empty:
        return ["The run has no results.csv: no figures."]
    index = {name: i for i, name in enumerate(run.class_names)}
    validation = run.validation
    y_true = validation["label"].map(index)
    y_pred = validation["predicted"].map(index)
    known = bool(y_true.notna().all() and y_pred.notna().all())
    columns = {"emoconfidnet": "confidence", "top2_margin": "baseline_confidence"}
    rows = [
        "| method | rejection | threshold | validation coverage | validation F1 | validation UAR "
        "| test coverage | test F1 | test UAR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in run.results.itertuples(index=False):
        column = columns.get(row.method)
        if known and column in validation:
            scores = selective_scores(y_true.to_numpy(int), y_pred.to_numpy(int), validation[column].to_numpy(),
                                      row.threshold, len(run.class_names))
            val = f"{scores.coverage:.3f} | {scores.f1:.3f} | {scores.uar:.3f}"
        else:
            val = "- | - | -"
        rows.append(f"| {row.method} | {row.rejection:.2f} | {row.threshold:.6f} | {val} "
                    f"| {row.coverage:.3f} | {row.f1:.3f} | {row.uar:.3f} |")
    return rows


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


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


def _validation_confidence(run) -> np.ndarray:
    path = run.path / "validation.csv"
    if "confidence" not in run.validation:
        raise EmoconfError(f"{path}: no 'confidence' column; rerun `emoconf train`")
    scores = run.validation["confidence"].to_numpy(dtype=np.float64)
    if scores.size == 0:
        raise EmoconfError(f"{path}: no rows, so no rejection thresholds; the validation split is empty")
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise EmoconfError(f"{path}: 'confidence' is not a finite number in row {bad + 2} (id {run.validation['id'].iloc[bad]})")
    return scores


def _check_features(run) -> int:
    num_features = int(run.emoconfidnet.input_shape[-1])
    if len(run.feature_names) != num_features:
        raise EmoconfError(
            f"{run.path / 'feature_names.txt'}: {len(run.feature_names)} names for a model with {num_features} inputs"
        )
    return num_features


def _verify(model_dir: Path, emoconfidnet, num_features: int) -> None:
    """Reloads the SavedModel and compares `predict`/`confidence` with the Keras model on random inputs."""
    import tensorflow as tf

    normalization = emoconfidnet.get_layer("standardize")
    mean = np.asarray(normalization.mean, dtype=np.float32).reshape(-1)
    std = np.sqrt(np.asarray(normalization.variance, dtype=np.float32).reshape(-1))
    features = (mean + std * np.random.default_rng(0).standard_normal((8, num_features))).astype(np.float32)
    expected = emoconfidnet(features, training=False)
    probabilities, p_hat = np.asarray(expected["probabilities"]), np.asarray(expected["p_hat"])
    loaded = tf.saved_model.load(str(model_dir))
    got = loaded.signatures["confidence"](features=tf.constant(features))
    if not (np.array_equal(got["class_ids"].numpy(), predicted_class(probabilities))
            and np.allclose(got["confidence"].numpy(), emoconfidnet_confidence(probabilities, p_hat), atol=1e-5)
            and np.allclose(got["baseline_confidence"].numpy(), top2_margin(probabilities), atol=1e-5)):
        raise EmoconfError(f"{model_dir}: the SavedModel's outputs differ from the Keras model's by more than 1e-5; "
                           "not published (try --no-fold)")


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
