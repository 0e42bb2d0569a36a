"""A trained run on disk: one classifier + EmoConfidNet and what export needs to set thresholds.

Layout of `RUN_DIR` (written under a temporary name and renamed, `manifest.json` last)::

    classifier.keras       the emotion classifier (standardisation inside)
    emoconfidnet.keras     classifier + EmoConfidNet head, outputs `probabilities` and `p_hat`
    validation.csv         id, label, predicted, confidence, baseline_confidence (validation split)
    test.csv               the same for the test split
    results.csv            the protocol's rows for this run (thresholds from validation, applied to test)
    feature_names.txt      one feature column name per line, in input order
    run.json               corpus, synthetic (from the corpus's metadata), classes, merged categories
                           (`merged_labels`, e.g. {"excited": "happy"} for IEMOCAP's default configs),
                           AVD scale, filter, seed, settings, epochs, package version,
                           feature_set (the openSMILE set of the features, "synthetic", or null when not given),
                           rejection_mode ("global" or "per_class": the export's default; absent = global)
    manifest.json          file list with sizes and SHA-256, written last
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from emoconf_tf import __version__
from emoconf_tf.atomic import atomic_path, write_json
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.folds import make_folds
from emoconf_tf.evaluation.protocol import RESULT_COLUMNS, ProtocolConfig, run_unit

RUN_FORMAT = 1
MANIFEST = "manifest.json"


@dataclasses.dataclass
class Run:
    """A loaded run directory."""

    path: Path
    info: dict
    classifier: object
    emoconfidnet: object
    validation: pd.DataFrame
    results: pd.DataFrame | None
    feature_names: list[str]

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def rejection_mode(self) -> str:
        """run.json's `rejection_mode` (`"global"` or `"per_class"`); `"global"` for a run trained before it existed."""
        return self.info.get("rejection_mode", "global")

    def validation_confidence(self) -> np.ndarray:
        """validation.csv's `confidence` column, float64 `[n]`, checked (present, non-empty, finite)."""
        path = self.path / "validation.csv"
        if "confidence" not in self.validation:
            raise EmoconfError(f"{path}: no 'confidence' column; rerun `emoconf train`")
        scores = self.validation["confidence"].to_numpy(dtype=np.float64)
        if scores.size == 0:
            raise EmoconfError(f"{path}: no rows, so no rejection thresholds; the validation split is empty")
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise EmoconfError(f"{path}: 'confidence' is not a finite number in row {bad + 2} "
                               f"(id {self.validation['id'].iloc[bad]})")
        return scores

    def validation_predicted(self) -> np.ndarray:
        """The validation rows' predicted class ids, int64 `[n]`, from validation.csv's `predicted` names."""
        path = self.path / "validation.csv"
        if "predicted" not in self.validation:
            raise EmoconfError(f"{path}: no 'predicted' column; rerun `emoconf train`")
        index = {name: i for i, name in enumerate(self.class_names)}
        names = self.validation["predicted"].astype(str)
        ids = names.map(index)
        if ids.isna().any():
            bad = int(np.flatnonzero(ids.isna().to_numpy())[0])
            raise EmoconfError(
                f"{path}: 'predicted' is {names.iloc[bad]!r} in row {bad + 2} "
                f"(id {self.validation['id'].iloc[bad]}), "
                f"not one of the run's classes ({', '.join(self.class_names)}; run.json)"
            )
        return ids.to_numpy(dtype=np.int64)


def train_run(
    corpus: Corpus,
    out_dir: str | Path,
    config: ProtocolConfig,
    *,
    seed: int = 0,
    training: str = "filtered",
    fold_index: int = 0,
    feature_set: str | None = None,
    rejection_mode: str = "global",
) -> Path:
    """Trains one classifier + EmoConfidNet on one fold and writes the run directory.

    Args:
        corpus: the corpus.
        out_dir: the run directory to create (it must not hold a finished run).
        config: `ProtocolConfig` (its `cv`, filter and training settings are used).
        seed: the seed.
        training: `"raw"` or `"filtered"`.
        fold_index: which fold of `config.cv` to train on.
        feature_set: where the features come from, recorded in `run.json` so that an export can
            extract them from audio: `"compare_2016"` or `"egemaps_v02"` (openSMILE; D must match),
            `"synthetic"` (the synthetic corpus), or None (default: unknown, e.g. a custom table).
            A synthetic corpus is recorded as `"synthetic"` whatever is given.
        rejection_mode: how an export of the run sets its rejection thresholds by default (`emoconf export`
            can override it): `"global"` (default, the paper's: one threshold from all validation
            confidences) or `"per_class"` (one per predicted class; `emoconf_tf.thresholds.class_thresholds`).

    Returns:
        The run directory path.
    """
    from emoconf_tf.thresholds import check_rejection_mode

    rejection_mode = check_rejection_mode(rejection_mode, "rejection_mode")
    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).exists():
        raise EmoconfError(f"{out_dir}: already holds a finished run; choose another --out or delete it")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise EmoconfError(f"{out_dir}: exists and is not a finished run directory; choose another --out")
    folds = make_folds(corpus, config.cv)
    if not 0 <= fold_index < len(folds):
        raise EmoconfError(f"--fold {fold_index}: the corpus has {len(folds)} fold(s) with --cv {config.cv}")
    fold = folds[fold_index]
    feature_set = _check_feature_set(feature_set, corpus)
    unit = run_unit(corpus, fold, seed, training, config)
    val_out, val_scores = unit.scores["validation"]
    test_out, test_scores, _ = unit.scores["test"]

    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        unit.models["classifier"].save(tmp / "classifier.keras")
        unit.models["emoconfidnet"].save(tmp / "emoconfidnet.keras")
        names = np.asarray(corpus.class_names, dtype=object)
        for part, rows, out, scores in (
            ("validation", fold.validation, val_out, val_scores),
            ("test", fold.test, test_out, test_scores),
        ):
            frame = pd.DataFrame({
                "id": corpus.ids[rows],
                "label": names[corpus.labels[rows]],
                "predicted": names[out["probabilities"].argmax(axis=1)],
                "confidence": scores["emoconfidnet"],
                "baseline_confidence": scores["top2_margin"],
            })
            frame.to_csv(tmp / f"{part}.csv", index=False, float_format="%.9g")  # float32 round-trips exactly
        pd.DataFrame(unit.results, columns=list(RESULT_COLUMNS)).to_csv(
            tmp / "results.csv", index=False, float_format="%.6f")
        (tmp / "feature_names.txt").write_text("\n".join(corpus.feature_names) + "\n", encoding="utf-8")
        info = {
            "format": RUN_FORMAT,
            "version": __version__,
            "corpus": corpus.name,
            "synthetic": corpus.synthetic,
            "class_names": list(corpus.class_names),
            "scale": list(corpus.scale),
            "merged_labels": dict(corpus.merged_labels),
            "num_features": corpus.num_features,
            "feature_set": feature_set,
            "rejection_mode": rejection_mode,
            "training": training,
            "filter": training == "filtered",
            "filter_counts": unit.filter_counts,
            "seed": seed,
            "fold": fold.index,
            "fold_name": fold.name,
            "run": unit.run,
            "protocol": config.fingerprint(),
        }
        write_json(tmp / "run.json", info)
        _write_manifest(tmp)
    return out_dir


def load_run(path: str | Path, *, compile: bool = False) -> Run:
    """Loads a run directory written by `train_run`, refusing unfinished or incompatible ones."""
    import keras

    import emoconf_tf.losses  # noqa: F401  registers PairwiseConfidenceLoss for deserialisation
    import emoconf_tf.models  # noqa: F401  registers InferenceOnly (the frozen classifier inside emoconfidnet)

    path = Path(path)
    if not path.is_dir():
        raise EmoconfError(f"{path}: no such run directory; create one with `emoconf train --out {path}`")
    if not (path / MANIFEST).exists():
        raise EmoconfError(
            f"{path}: no {MANIFEST}, so the run is unfinished or not a run directory; rerun `emoconf train`"
        )
    info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    if info.get("format") != RUN_FORMAT:
        raise EmoconfError(
            f"{path}: run format {info.get('format')!r} written by emoconf-tf {info.get('version', '?')}; this is "
            f"emoconf-tf {__version__} (format {RUN_FORMAT}); retrain the run with this version"
        )
    classifier = keras.saving.load_model(path / "classifier.keras", compile=compile, safe_mode=True)
    emoconfidnet = keras.saving.load_model(path / "emoconfidnet.keras", compile=compile, safe_mode=True)
    results_path = path / "results.csv"
    return Run(
        path=path,
        info=info,
        classifier=classifier,
        emoconfidnet=emoconfidnet,
        validation=pd.read_csv(path / "validation.csv"),
        results=pd.read_csv(results_path) if results_path.exists() else None,
        feature_names=(path / "feature_names.txt").read_text(encoding="utf-8").splitlines(),
    )


def _check_feature_set(feature_set: str | None, corpus: Corpus) -> str | None:
    """The `feature_set` value for run.json: checked against the corpus's feature dimension."""
    if corpus.synthetic:
        if feature_set not in (None, "none", "synthetic"):
            raise EmoconfError(f"--feature-set {feature_set}: the synthetic corpus has synthetic features")
        return "synthetic"
    if feature_set is None or feature_set == "none":
        return None
    from emoconf_tf.feature_sets import feature_set_from_name

    member = feature_set_from_name(feature_set)
    expected = member.dimension
    if corpus.num_features != expected:
        raise EmoconfError(
            f"--feature-set {member.value}: {member.value} has {expected} features but the table has "
            f"{corpus.num_features}; give the set the table was extracted with, or none"
        )
    return member.value


def _write_manifest(directory: Path) -> None:
    files = {}
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        files[str(file.relative_to(directory))] = {"bytes": file.stat().st_size, "sha256": digest}
    write_json(directory / MANIFEST, {"version": __version__, "format": RUN_FORMAT, "files": files})

