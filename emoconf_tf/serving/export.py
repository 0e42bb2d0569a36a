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
                                   request per signature (`emoconf_tf.serving.warmup`)

Versions are integers (the layout TF Serving polls); an export takes the number after the highest
one present and never replaces a version. The SavedModel is written under a dot-prefixed temporary
folder inside the model base path (TF Serving ignores names that are not integers) and renamed in
one step, so a serving process never sees a half-written model.

Served score (`score`, `emoconf train/export --score`; `emoconf_tf.serving.served_score`): `confidence` is the
run's score by default, `recommended`: the score (or blend) and rejection mode `emoconf train` chose on
validation by the rule of `emoconf reproduce` (`macro_gain_ensemble` with per-class thresholds unless another
candidate is clearly better), the ensemble members folded into the graph and the validation statistics and blend
references stored as constants. Any servable score the run computed can be asked for
(`scores.servable_methods()`); `score="emoconfidnet"` exports exactly the paper's model (EmoConfidNet's
`p_hat[c]` of the predicted class `c`, paper Section 3). Runs and exports from before scores could be chosen read
as EmoConfidNet. Whatever the score, `class_ids`, `classes` and `probabilities` are the classifier's, and the
paper's two scores are returned beside `confidence` as `emoconfidnet_confidence` and `baseline_confidence` (the
top-two margin).

A run trained on a corpus without AVD ratings (run.json's `has_avd` false) has no EmoConfidNet head: its export is
built around the classifier alone (folded as the ensemble members are), serves any score that does not need AVD
(`servable_methods(has_avd=False)`; `score="emoconfidnet"` is refused), and its `confidence`, `threshold` and
`batch_threshold` signatures have no `emoconfidnet_confidence` output (absent, not faked).

The signatures (`predict`, `confidence`, `threshold`, `batch_threshold`, `serving_default`), their inputs and
outputs and the rejection modes are those of `emoconf_tf.serving.serving_module`; `serialize_examples` builds
`serving_default`'s input (`emoconf_tf.serving.examples`). Before it is published, the SavedModel is reloaded and
checked against the Keras models and the library's scores and thresholds (`emoconf_tf.serving.verification`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from emoconf_tf.errors import EmoconfError
from emoconf_tf.scores import check_servable
from emoconf_tf.serving.examples import serialize_examples  # noqa: F401 (imported from here by callers)
from emoconf_tf.serving.model_card import (
    FEATURE_SET_ASSET,
    model_card,
    recorded_feature_set,
)
from emoconf_tf.serving.served_score import SCORE_ASSET, served_score_for_run
from emoconf_tf.serving.serving_module import (  # noqa: F401 (SIGNATURE_NAMES: imported from here)
    DEFAULT_REJECTION,
    SIGNATURE_NAMES,
    EmoconfServingModule,
)
from emoconf_tf.serving.verification import verify_saved_model
from emoconf_tf.serving.versions import model_versions
from emoconf_tf.serving.warmup import (
    WARMUP_SIGNATURES,
    check_warmup_signatures,
    warmup_features,
    write_warmup_requests,
)
from emoconf_tf.thresholds import (
    check_rejection_mode,
    class_thresholds,
    rejection_threshold,
)

ASSET_FILES = ("labels.txt", "feature_names.txt", FEATURE_SET_ASSET, SCORE_ASSET, "model_card.md")


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
        score: the confidence score served as `confidence` (`scores.servable_methods()`); default
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

    default_rejection = check_rejection(default_rejection, "default_rejection")
    if rejection_mode is not None:
        rejection_mode = check_rejection_mode(rejection_mode, "rejection_mode")
    if score is not None:
        check_servable(score, "score")
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
            verify_saved_model(model_dir, run.network, num_features, validation_confidence=validation_confidence,
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


def check_rejection(rejection: float, name: str = "rejection") -> float:
    """`rejection` as a float in [0, 1), or `EmoconfError` naming it as `name`, the Python argument that held it
    (default `"rejection"`; e.g. `"default_rejection"`), which is also the error's `argument`."""
    try:
        value = float(rejection)
    except (TypeError, ValueError):
        raise EmoconfError(f"{name} {rejection!r}: expected a fraction in [0, 1), e.g. 0.2", argument=name) from None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise EmoconfError(f"{name} {rejection!r} is outside [0, 1); give a fraction, e.g. 0.2 for 20%",
                           argument=name)
    return value


def _check_base_path(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EmoconfError(f"out_dir {out_dir}: is a file, not a model base path (a directory such as "
                           "savedmodels/NAME)", argument="out_dir")
    if (out_dir / "saved_model.pb").exists():
        raise EmoconfError(
            f"out_dir {out_dir}: holds a SavedModel itself; give the model base path that holds the version "
            f"directories (here {out_dir.parent})", argument="out_dir"
        )


def _check_features(run) -> int:
    num_features = int(run.network.input_shape[-1])
    if len(run.feature_names) != num_features:
        raise EmoconfError(
            f"{run.path / 'feature_names.txt'}: {len(run.feature_names)} names for a model with {num_features} inputs"
        )
    return num_features


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
