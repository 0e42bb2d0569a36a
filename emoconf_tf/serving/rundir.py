"""A trained run on disk: one classifier + EmoConfidNet (the classifier alone for a corpus without AVD ratings) and
what export needs to set thresholds.

Layout of `RUN_DIR` (written under a temporary name and renamed, `manifest.json` last)::

    classifier.keras       the emotion classifier (standardisation inside)
    emoconfidnet.keras     classifier + EmoConfidNet head, outputs `probabilities` and `p_hat` (only with AVD
                           ratings: the head's targets come from them; absent when run.json's has_avd is false)
    ensemble_member_J.keras
                           the extra classifiers of `macro_gain_ensemble` (J = 1, 2, ...; when the score needs them)
    validation.csv         id, label, predicted, confidence (the served score), baseline_confidence (top-two
                           margin), then one column per score computed (emoconfidnet, top2_margin, msp, ...)
    test.csv               the same for the test split
    results.csv            the protocol's rows for this run (thresholds from validation, applied to test)
    feature_names.txt      one feature column name per line, in input order
    run.json               corpus, synthetic (from the corpus's metadata), classes, merged categories
                           (`merged_labels`, e.g. {"excited": "happy"} for IEMOCAP's default configs),
                           AVD scale (null for a corpus without AVD ratings that records none), has_avd
                           (false: a corpus with categories only, so no EmoConfidNet and no conflict filter;
                           absent = true, older runs), filter, seed, settings, epochs, package version,
                           feature_set (the openSMILE set of the features, "synthetic", or null when not given),
                           rejection_mode ("global" or "per_class": the export's default; absent = global),
                           score (the served score: name, components, rejection mode, macro-gain statistics,
                           ensemble size, and what validation chose it on; absent = emoconfidnet, older runs),
                           ensemble_members (the member files)
    manifest.json          file list with sizes and SHA-256, written last
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from emoconf_tf import __version__
from emoconf_tf.atomic import atomic_path, write_json
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.folds import make_folds
from emoconf_tf.evaluation.tables import RESULTS_COLUMNS as RESULT_COLUMNS
from emoconf_tf.scores import check_servable, macro_gain_statistics, servable_methods
from emoconf_tf.serving.run_files import (
    MANIFEST, RUN_FORMAT, check_class_names, checked_has_avd, ensemble_member_files, load_keras_file,
    read_feature_names, read_manifest, read_run_csv, read_run_json, write_manifest,
)
from emoconf_tf.settings import DEFAULT_SERVED_SCORE

if TYPE_CHECKING:
    from emoconf_tf.evaluation.protocol import ProtocolConfig

# run.json's `score` for a run trained before the served score could be chosen: EmoConfidNet's p_hat[c].
LEGACY_SCORE_RECORD = {"name": "emoconfidnet", "components": [["emoconfidnet", 1.0]], "ensemble_members": 1,
                       "macro_gain_statistics": None, "chosen_on": {}}
# The columns `load_run`'s callers read (export, model card); later columns are optional.
VALIDATION_COLUMNS = ("id", "label", "predicted", "confidence")
RESULTS_REQUIRED_COLUMNS = ("method", "rejection_mode", "rejection", "threshold", "coverage", "f1", "uar")


@dataclasses.dataclass
class Run:
    """A loaded run directory (`emoconfidnet` None for a run without AVD ratings: `has_avd` False)."""

    path: Path
    info: dict
    classifier: object
    emoconfidnet: object | None
    validation: pd.DataFrame
    results: pd.DataFrame | None
    feature_names: list[str]
    members: list = dataclasses.field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def has_avd(self) -> bool:
        """run.json's `has_avd`: False for a run trained on a corpus without AVD ratings (no EmoConfidNet head, no
        conflict filter); True when the key is absent (runs trained before it existed all had AVD ratings)."""
        return self.info.get("has_avd", True) is not False

    @property
    def network(self):
        """The Keras model an export serves around: `emoconfidnet` (`features` -> `{"probabilities", "p_hat"}`), or
        for a run without AVD ratings the `classifier` alone (`features` -> `probabilities`)."""
        return self.emoconfidnet if self.emoconfidnet is not None else self.classifier

    @property
    def rejection_mode(self) -> str:
        """run.json's `rejection_mode` (`"global"` or `"per_class"`); `"global"` for a run trained before it existed."""
        return self.info.get("rejection_mode", "global")

    @property
    def score(self) -> dict:
        """run.json's `score` (the served score's record) with run.json's `rejection_mode`; for a run trained before
        scores could be served, EmoConfidNet's."""
        return {**(self.info.get("score") or LEGACY_SCORE_RECORD), "rejection_mode": self.rejection_mode}

    def score_column(self, method: str) -> str | None:
        """validation.csv's column holding `method`'s scores, or None when the run did not compute it (older runs
        have EmoConfidNet's in `confidence` and the top-two margin's in `baseline_confidence` only)."""
        if method in self.validation:
            return method
        legacy = {"emoconfidnet": "confidence", "top2_margin": "baseline_confidence"}
        if "score" not in self.info and method in legacy and legacy[method] in self.validation:
            return legacy[method]
        return None

    def validation_confidence(self, column: str = "confidence") -> np.ndarray:
        """validation.csv's `confidence` column (the served score), or another `column`, float64 `[n]`, checked
        (present, non-empty, finite)."""
        path = self.path / "validation.csv"
        if column not in self.validation:
            raise EmoconfError(f"{path}: no '{column}' column; rerun `emoconf train`")
        scores = self.validation[column].to_numpy(dtype=np.float64)
        if scores.size == 0:
            raise EmoconfError(f"{path}: no rows, so no rejection thresholds; the validation split is empty")
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise EmoconfError(f"{path}: '{column}' is not a finite number in row {bad + 2} "
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
    rejection_mode: str | None = None,
    score: str = DEFAULT_SERVED_SCORE,
) -> Path:
    """Trains one classifier + EmoConfidNet on one fold, and what the served `score` needs, and writes the run
    directory. On a corpus without AVD ratings (`corpus.has_avd` False) there is no EmoConfidNet head to train:
    the run has the classifier alone (no emoconfidnet.keras; run.json's `has_avd` false) and every score that does
    not need AVD.

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
            can override it): `"global"` (the paper's: one threshold from all validation confidences) or
            `"per_class"` (one per predicted class; `emoconf_tf.thresholds.class_thresholds`). Default None:
            for `recommended`, the mode validation chooses among `config.rejection_modes`; else global.
            Given with `recommended`, validation chooses the score within that mode.
        score: the confidence score an export serves (`scores.servable_methods(has_avd=...)`; default
            `recommended`; `emoconfidnet` is refused on a corpus without AVD ratings). The run computes it and
            every cheap servable score on validation and test (columns of validation.csv / test.csv; `confidence` =
            `score`), trains the ensemble members when `score` is `macro_gain_ensemble` or `recommended`, and for
            `recommended` makes the choice on validation by the same rule as `emoconf reproduce` (`scores/recommended.py`).

    Returns:
        The run directory path.
    """
    from emoconf_tf.thresholds import check_rejection_mode

    score = check_servable(score, "score", has_avd=corpus.has_avd)
    if rejection_mode is not None:
        rejection_mode = check_rejection_mode(rejection_mode, "rejection_mode")
    config = dataclasses.replace(
        config, methods=run_methods(score, has_avd=corpus.has_avd),
        rejection_modes=(rejection_mode,) if rejection_mode is not None else config.rejection_modes)
    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).exists():
        raise EmoconfError(f"out_dir {out_dir}: already holds a finished run; choose another or delete it",
                           argument="out_dir")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise EmoconfError(f"out_dir {out_dir}: exists and is not a finished run directory; choose another",
                           argument="out_dir")
    folds = make_folds(corpus, config.cv, config.folds)
    if not 0 <= fold_index < len(folds):
        raise EmoconfError(f"fold_index {fold_index}: the corpus has {len(folds)} fold(s) with cv {config.cv!r}",
                           argument="fold_index")
    fold = folds[fold_index]
    feature_set = _check_feature_set(feature_set, corpus)
    from emoconf_tf.evaluation.unit import run_unit  # TensorFlow: not for this module's readers before training

    unit = run_unit(corpus, fold, seed, training, config)
    val_out, val_scores = unit.scores["validation"]
    test_out, test_scores, _ = unit.scores["test"]
    recommendation = unit.models.get("recommendation")
    if score == "recommended":
        rejection_mode = recommendation.rejection_mode
    elif rejection_mode is None:
        rejection_mode = "global"
    members = list(unit.models.get("ensemble_members", []))
    member_files = [f"ensemble_member_{j}.keras" for j in range(1, len(members) + 1)]
    statistics = macro_gain_statistics(corpus.labels[fold.validation],
                                       val_out["probabilities"].argmax(axis=1), corpus.num_classes)

    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        unit.models["classifier"].save(tmp / "classifier.keras")
        if "emoconfidnet" in unit.models:  # not on a corpus without AVD ratings: no targets for the head
            unit.models["emoconfidnet"].save(tmp / "emoconfidnet.keras")
        for member, name in zip(members, member_files):
            member.save(tmp / name)
        names = np.asarray(corpus.class_names, dtype=object)
        for part, rows, out, scores in (
            ("validation", fold.validation, val_out, val_scores),
            ("test", fold.test, test_out, test_scores),
        ):
            frame = pd.DataFrame({
                "id": corpus.ids[rows],
                "label": names[corpus.labels[rows]],
                "predicted": names[out["probabilities"].argmax(axis=1)],
                "confidence": scores[score],
                "baseline_confidence": scores["top2_margin"],
                **{method: scores[method] for method in config.methods if method in scores},
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
            "scale": list(corpus.scale) if corpus.scale is not None else None,
            "has_avd": corpus.has_avd,
            "merged_labels": dict(corpus.merged_labels),
            "num_features": corpus.num_features,
            "feature_set": feature_set,
            "rejection_mode": rejection_mode,
            "score": _score_record(score, recommendation, statistics, len(members) + 1),
            "ensemble_members": member_files,
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
        write_manifest(tmp)
    return out_dir


def run_summary(path: str | Path) -> str:
    """Two lines on a finished run: the served score, its rejection mode and what validation chose it on, and its
    test F1 / UAR at 20 % rejection beside the paper's baseline's (thresholds from validation)."""
    path = Path(path)
    info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    record = info.get("score") or LEGACY_SCORE_RECORD
    mode = info.get("rejection_mode", "global")
    chosen = record.get("chosen_on") or {}
    served = record["name"] if record["name"] != "recommended" else f"recommended ({chosen.get('choice', '?')})"
    how = (f"chosen on validation by {chosen['criterion']} = {chosen['validation_value']:.4f}" if chosen
           else "asked for by --score")
    lines = [f"served confidence: {served}, {mode} thresholds; {how}"]
    results = pd.read_csv(path / "results.csv")
    if "threshold_source" in results:
        results = results[results["threshold_source"] == "validation"]
    at20 = results[np.isclose(results["rejection"], 0.2)]

    def figures(method, rejection_mode):
        row = at20[(at20["method"] == method) & (at20["rejection_mode"] == rejection_mode)]
        return (f"{method} ({rejection_mode}) F1 {row['f1'].iloc[0]:.3f} UAR {row['uar'].iloc[0]:.3f}"
                if len(row) else None)

    shown = [f for f in (figures(record["name"], mode), figures("top2_margin", "global")) if f]
    if shown:
        lines.append(f"test at 20 % rejection (fold {info.get('fold', '?')}: {info.get('fold_name', '?')}): "
                     + "; ".join(shown))
    return "\n".join(lines)


def recorded_has_avd(path: str | Path) -> bool:
    """run.json's `has_avd` of the run directory `path`, read without loading the run (for checks before TensorFlow
    loads); True when absent or unreadable (`load_run` then names what is wrong)."""
    try:
        info = json.loads((Path(path) / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    return not (isinstance(info, dict) and info.get("has_avd") is False)


def run_methods(score: str, *, has_avd: bool = True) -> tuple[str, ...]:
    """The methods a run for served `score` computes: the cheap servable scores always (so an export can serve any
    of them), the ensemble when `score` needs it, and `recommended` (which chooses among all of them) when asked.
    With `has_avd` False (a corpus without AVD ratings), none that needs AVD (`ConfidenceMethod.needs_avd`)."""
    cheap = tuple(m for m in servable_methods(has_avd=has_avd) if m not in ("macro_gain_ensemble", "recommended"))
    if score == "recommended":
        return (*cheap, "macro_gain_ensemble", "recommended")
    return (*cheap, "macro_gain_ensemble") if score == "macro_gain_ensemble" else cheap


def _score_record(score: str, recommendation, statistics, members: int) -> dict:
    """run.json's `score`: what an export serves by default and what validation chose it on (its rejection mode is
    run.json's `rejection_mode`)."""
    record = {"name": score, "components": [[score, 1.0]],
              "macro_gain_statistics": statistics.to_dict(), "ensemble_members": members, "chosen_on": {}}
    if score == "recommended":
        record["components"] = [[m, float(w)] for m, w in recommendation.components]
        record["chosen_on"] = {
            "choice": recommendation.name, "rejection_mode": recommendation.rejection_mode,
            "criterion": recommendation.criterion, "validation_value": float(recommendation.validation_value),
            "switch_rate": (None if np.isnan(recommendation.switch_rate) else float(recommendation.switch_rate)),
        }
    return record


def load_run(path: str | Path, *, compile: bool = False) -> Run:
    """Loads a run directory written by `train_run`, refusing unfinished, incompatible or damaged ones.

    Every part is checked before it is used, the text parts first (quick), then the Keras archives:
    `classifier.keras`, `emoconfidnet.keras` (unless run.json's `has_avd` is false: a run without AVD ratings has
    none, and `Run.emoconfidnet` is None) and the `ensemble_members` run.json lists (absent in older runs; loaded
    into `Run.members`, in that order). A Keras archive must have the size and SHA-256 that
    `manifest.json` records. The text parts (run.json, validation.csv, results.csv, feature_names.txt) may
    differ from the manifest, since they can be edited by hand, as long as they parse, have their columns
    and do not look truncated (a CSV or .txt part that differs from the manifest and does not end in a
    line break).

    Args:
        path: the run directory.
        compile: compile the Keras models (default False: inference and export need no optimizer).

    Returns:
        The `Run`.

    Raises:
        EmoconfError: one line naming the file, what is wrong with it (missing, truncated, not a Keras
            archive, not valid JSON, missing column X, ...) and what to do.
    """
    import emoconf_tf.losses  # noqa: F401  registers PairwiseConfidenceLoss for deserialisation
    import emoconf_tf.models  # noqa: F401  registers InferenceOnly (the frozen classifier inside emoconfidnet)

    path = Path(path)
    if not path.is_dir():
        raise EmoconfError(f"{path}: no such run directory; create one with `emoconf train --out {path}`")
    if not (path / MANIFEST).exists():
        raise EmoconfError(
            f"{path}: no {MANIFEST}, so the run is unfinished or not a run directory; rerun `emoconf train`"
        )
    recorded = read_manifest(path / MANIFEST)
    info = read_run_json(path / "run.json", recorded=recorded.get("run.json"))
    if info.get("format") != RUN_FORMAT:
        raise EmoconfError(
            f"{path}: run format {info.get('format')!r} written by emoconf-tf {info.get('version', '?')}; this is "
            f"emoconf-tf {__version__} (format {RUN_FORMAT}); retrain the run with this version"
        )
    check_class_names(path / "run.json", info)
    has_avd = checked_has_avd(path / "run.json", info)
    member_files = ensemble_member_files(path / "run.json", info)
    validation = read_run_csv(path / "validation.csv", VALIDATION_COLUMNS, recorded=recorded.get("validation.csv"),
                              what="the validation split's predictions and confidences")
    results_path = path / "results.csv"
    # Listed in the manifest = written by train_run, so a missing one was deleted; runs without one have no figures.
    results = (read_run_csv(results_path, RESULTS_REQUIRED_COLUMNS, recorded=recorded.get("results.csv"),
                            what="the protocol's results of the run")
               if results_path.exists() or "results.csv" in recorded else None)
    feature_names = read_feature_names(path / "feature_names.txt", info, recorded=recorded.get("feature_names.txt"))
    classifier = load_keras_file(path / "classifier.keras", "the classifier",
                                 recorded=recorded.get("classifier.keras"), compile=compile)
    emoconfidnet = (load_keras_file(path / "emoconfidnet.keras", "the classifier with its EmoConfidNet head",
                                    recorded=recorded.get("emoconfidnet.keras"), compile=compile)
                    if has_avd else None)
    members = [load_keras_file(path / name, f"ensemble member {j} of run.json's ensemble_members",
                               recorded=recorded.get(name), compile=compile)
               for j, name in enumerate(member_files, start=1)]
    return Run(
        path=path,
        info=info,
        classifier=classifier,
        emoconfidnet=emoconfidnet,
        validation=validation,
        results=results,
        feature_names=feature_names,
        members=members,
    )


def _check_feature_set(feature_set: str | None, corpus: Corpus) -> str | None:
    """The `feature_set` value for run.json: checked against the corpus's feature dimension."""
    if corpus.synthetic:
        if feature_set not in (None, "none", "synthetic"):
            raise EmoconfError(f"feature_set {feature_set}: the synthetic corpus has synthetic features",
                               argument="feature_set")
        return "synthetic"
    if feature_set is None or feature_set == "none":
        return None
    from emoconf_tf.feature_sets import feature_set_from_name

    member = feature_set_from_name(feature_set)
    expected = member.dimension
    if corpus.num_features != expected:
        raise EmoconfError(
            f"feature_set {member.value}: {member.value} has {expected} features but the table has "
            f"{corpus.num_features}; give the set the table was extracted with, or none", argument="feature_set"
        )
    return member.value

