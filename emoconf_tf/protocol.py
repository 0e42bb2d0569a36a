"""The paper's protocol: raw vs filtered training, EmoConfidNet vs the baseline, thresholds on
validation, metrics on test, for every fold and seed.

`run_unit` trains and evaluates one (fold, seed, training) unit; `run_protocol` runs them all,
keeps each finished unit in `out_dir/parts/` (a rerun skips it) and writes the output tables.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from emoconf_tf import __version__
from emoconf_tf.atomic import atomic_path, write_json
from emoconf_tf.confidence import confidence_scores, predicted_class
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.filtering import PAPER_RULES, ConflictRule, filter_counts, rule_masks
from emoconf_tf.folds import Fold, make_folds
from emoconf_tf.metrics import selective_scores
from emoconf_tf.targets import confidence_targets
from emoconf_tf.thresholds import PAPER_REJECTIONS, rejection_thresholds
from emoconf_tf.training import TrainingConfig, fit_classifier, fit_emoconfidnet

TRAININGS = ("raw", "filtered")
RESULT_COLUMNS = (
    "fold", "seed", "training", "method", "rejection", "threshold", "coverage", "f1", "uar",
    "n_test", "removed", "removed_correct",
)
PER_CLASS_COLUMNS = ("fold", "seed", "training", "method", "rejection", "class", "precision", "recall", "f1")
RUN_COLUMNS = (
    "fold", "seed", "training", "n_train", "n_validation", "n_test", "n_filtered_out",
    "classifier_epochs", "confidence_epochs",
)


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """What the protocol runs.

    Args:
        cv: `"split"` (the table's split column) or `"group"` (leave-one-group-out folds).
        seeds: the seeds; every fold runs once per seed.
        trainings: subset of `("raw", "filtered")`.
        rejections: rejection rates (fractions), default 0, 0.1, ..., 0.5.
        filter_midpoint: separates low from high AVD; None = middle of the corpus scale.
        filter_rules: the conflict rules; default the paper's.
        training: `TrainingConfig` for both networks.
    """

    cv: str = "split"
    seeds: tuple[int, ...] = (0,)
    trainings: tuple[str, ...] = TRAININGS
    rejections: tuple[float, ...] = PAPER_REJECTIONS
    filter_midpoint: float | None = None
    filter_rules: tuple[ConflictRule, ...] = PAPER_RULES
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self):
        unknown = [t for t in self.trainings if t not in TRAININGS]
        if unknown or not self.trainings:
            raise EmoconfError(f"trainings {list(self.trainings)}: choose from {', '.join(TRAININGS)}")
        if not self.seeds:
            raise EmoconfError("need at least one seed")

    def fingerprint(self) -> dict:
        """The settings that determine the results (used to refuse mixing runs in one --out)."""
        data = dataclasses.asdict(self)
        data["training"].pop("verbose", None)
        data["seeds"] = list(self.seeds)
        return json.loads(json.dumps(data))


@dataclasses.dataclass
class UnitResult:
    """One (fold, seed, training) unit's rows, plus the trained models and scores for callers that keep them."""

    results: list[dict]
    per_class: list[dict]
    run: dict
    filter_counts: dict[str, int]
    models: dict = dataclasses.field(default_factory=dict, repr=False)
    scores: dict = dataclasses.field(default_factory=dict, repr=False)


def training_rows(corpus: Corpus, fold: Fold, training: str, config: ProtocolConfig) -> tuple[np.ndarray, dict[str, int]]:
    """Training row indices of `fold` after the (optional) conflict filter, and rows removed per rule."""
    if training == "raw":
        return fold.train, {}
    train = corpus.subset(fold.train)
    names = np.asarray(corpus.class_names, dtype=object)[train.labels].astype(str)
    masks = rule_masks(
        names, train.avd[:, 0], train.avd[:, 1], scale=corpus.scale, midpoint=config.filter_midpoint,
        rules=config.filter_rules,
    )
    drop = np.zeros(len(train), dtype=bool)
    for mask in masks.values():
        drop |= mask
    return fold.train[~drop], filter_counts(masks)


def run_unit(corpus: Corpus, fold: Fold, seed: int, training: str, config: ProtocolConfig) -> UnitResult:
    """Trains the classifier and EmoConfidNet on one fold's training rows and evaluates on its test rows."""
    train_rows, counts = training_rows(corpus, fold, training, config)
    train, validation, test = corpus.subset(train_rows), corpus.subset(fold.validation), corpus.subset(fold.test)
    missing = [c for k, c in enumerate(corpus.class_names) if not (train.labels == k).any()]
    if missing:
        raise EmoconfError(
            f"fold {fold.index} ({fold.name}), {training} training: class(es) {', '.join(missing)} have no training "
            "rows; drop them with --classes or check the table"
        )
    k = corpus.num_classes
    classifier, classifier_epochs = fit_classifier(
        train.features, train.labels, validation.features, validation.labels, k, config.training, seed=seed
    )
    targets_train = confidence_targets(train.labels, train.avd, train.avd, corpus.class_names)
    targets_val = confidence_targets(train.labels, train.avd, validation.avd, corpus.class_names)
    emoconfidnet, confidence_epochs = fit_emoconfidnet(
        classifier, train.features, targets_train, validation.features, targets_val, config.training, seed=seed
    )
    val_out = predict(emoconfidnet, validation.features)
    test_out = predict(emoconfidnet, test.features)
    val_scores = confidence_scores(val_out["probabilities"], val_out["p_hat"])
    test_scores = confidence_scores(test_out["probabilities"], test_out["p_hat"])
    y_pred = predicted_class(test_out["probabilities"])

    key = {"fold": fold.index, "seed": seed, "training": training}
    results, per_class = [], []
    for method, test_confidence in test_scores.items():
        thresholds = rejection_thresholds(val_scores[method], config.rejections)
        for rejection, threshold in zip(config.rejections, thresholds):
            s = selective_scores(test.labels, y_pred, test_confidence, threshold, k)
            row = dict(key, method=method, rejection=float(rejection), threshold=float(threshold))
            results.append(dict(row, coverage=s.coverage, f1=s.f1, uar=s.uar, n_test=s.n_test, removed=s.removed,
                                removed_correct=s.removed_correct))
            row.pop("threshold")
            for c, name in enumerate(corpus.class_names):
                per_class.append(dict(row, **{"class": name}, precision=float(s.precision[c]),
                                      recall=float(s.recall[c]), f1=float(s.class_f1[c])))
    run = dict(key, n_train=len(train), n_validation=len(validation), n_test=len(test),
               n_filtered_out=len(fold.train) - len(train), classifier_epochs=classifier_epochs,
               confidence_epochs=confidence_epochs)
    return UnitResult(
        results, per_class, run, counts,
        models={"classifier": classifier, "emoconfidnet": emoconfidnet},
        scores={"validation": (val_out, val_scores), "test": (test_out, test_scores, y_pred)},
    )


def predict(emoconfidnet, features: np.ndarray, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Runs the combined model in inference mode: `{"probabilities": [N, K], "p_hat": [N, K]}`.

    Calls the model directly on large batches rather than `model.predict`, which would trace a new
    `tf.function` for every freshly trained model.
    """
    parts: dict[str, list[np.ndarray]] = {"probabilities": [], "p_hat": []}
    for start in range(0, len(features), batch_size):
        out = emoconfidnet(features[start:start + batch_size], training=False)
        for name in parts:
            parts[name].append(np.asarray(out[name]))
    return {name: np.concatenate(chunks) if chunks else np.zeros((0, emoconfidnet.output["p_hat"].shape[-1]), np.float32)
            for name, chunks in parts.items()}


@dataclasses.dataclass
class ProtocolOutputs:
    """The protocol's tables (see `RESULT_COLUMNS`, `PER_CLASS_COLUMNS`, `RUN_COLUMNS`) and filter counts."""

    results: pd.DataFrame
    per_class: pd.DataFrame
    runs: pd.DataFrame
    filter_counts: dict[str, int]
    skipped_units: int


def run_protocol(
    corpus: Corpus,
    config: ProtocolConfig,
    out_dir: str | Path | None = None,
    *,
    on_unit: Callable[[dict, bool], None] | None = None,
    progress: bool = True,
) -> ProtocolOutputs:
    """Runs every (fold, seed, training) unit; with `out_dir`, keeps finished units and resumes.

    Args:
        corpus: the corpus (with a split column, or groups for `cv="group"`).
        config: `ProtocolConfig`.
        out_dir: where `parts/` (one JSON per finished unit) and `protocol.json` live; a rerun with the
            same settings skips finished units. None keeps everything in memory.
        on_unit: called with each unit's `run` row and whether it was resumed (for one-line summaries).
        progress: show a tqdm bar over units.
    """
    from tqdm.auto import tqdm

    folds = make_folds(corpus, config.cv)
    parts_dir = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        parts_dir = out_dir / "parts"
        _check_same_settings(out_dir, corpus, config)
    units = [(fold, seed, training) for fold in folds for seed in config.seeds for training in config.trainings]
    done: list[UnitResult] = []
    skipped = 0
    bar = tqdm(units, desc=f"{corpus.name}: folds x seeds x trainings", unit="run", disable=not progress)
    for fold, seed, training in bar:
        part = parts_dir / f"fold{fold.index}_seed{seed}_{training}.json" if parts_dir else None
        if part is not None and part.exists():
            unit = _read_part(part)
            skipped += 1
            resumed = True
        else:
            unit = run_unit(corpus, fold, seed, training, config)
            if part is not None:
                write_json(part, {"results": unit.results, "per_class": unit.per_class, "run": unit.run,
                                  "filter_counts": unit.filter_counts})
            resumed = False
        unit.models.clear()
        unit.scores.clear()
        done.append(unit)
        if on_unit is not None:
            on_unit(_unit_summary(unit), resumed)
    counts: dict[str, int] = {}
    for unit in done:
        for name, n in unit.filter_counts.items():
            counts[name] = counts.get(name, 0) + n
    return ProtocolOutputs(
        results=pd.DataFrame([r for u in done for r in u.results], columns=list(RESULT_COLUMNS)),
        per_class=pd.DataFrame([r for u in done for r in u.per_class], columns=list(PER_CLASS_COLUMNS)),
        runs=pd.DataFrame([u.run for u in done], columns=list(RUN_COLUMNS)),
        filter_counts=counts,
        skipped_units=skipped,
    )


def write_tables(outputs: ProtocolOutputs, out_dir: str | Path) -> None:
    """Writes `results.csv`, `per_class.csv` and `runs.csv` atomically."""
    out_dir = Path(out_dir)
    for name, frame in (("results", outputs.results), ("per_class", outputs.per_class), ("runs", outputs.runs)):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6f")


def _unit_summary(unit: UnitResult) -> dict:
    summary = dict(unit.run)
    for row in unit.results:
        if row["rejection"] in (0.0, 0.2):
            summary[f"{row['method']}@{row['rejection']:.1f}"] = row["f1"]
    return summary


def _read_part(path: Path) -> UnitResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return UnitResult(data["results"], data["per_class"], data["run"], data.get("filter_counts", {}))
    except (json.JSONDecodeError, KeyError) as error:
        raise EmoconfError(f"{path}: unreadable finished-unit file ({error}); delete it to rerun that unit") from None


def _check_same_settings(out_dir: Path, corpus: Corpus, config: ProtocolConfig) -> None:
    settings = {
        "corpus": corpus.name,
        "n_rows": len(corpus),
        "num_features": corpus.num_features,
        "class_names": list(corpus.class_names),
        "scale": list(corpus.scale),
        "protocol": config.fingerprint(),
    }
    path = out_dir / "protocol.json"
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        previous_settings = {k: previous.get(k) for k in settings}
        if previous_settings != json.loads(json.dumps(settings)):
            raise EmoconfError(
                f"{out_dir}: holds a run with other settings (see {path}); use another --out or delete it"
            )
        return
    write_json(path, dict(settings, version=__version__))
