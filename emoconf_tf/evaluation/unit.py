"""One unit of the protocol: a (fold, seed, training) triple. `run_unit` trains the classifier and EmoConfidNet's
head on the fold's training rows (`train_networks`), runs every confidence score (`score_methods`) and evaluates
them on its test rows (`evaluation_rows`).

A unit reads its training, validation and test rows from the corpus's feature matrix by index
(`emoconf_tf.row_batches`), never copying them: the protocol's peak memory is the matrix plus
what TensorFlow needs, not several copies of it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from emoconf_tf.adaptive import online_accept
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.tables import COVERAGE_ERROR_COLUMNS
from emoconf_tf.filtering import filter_counts, rule_masks
from emoconf_tf.folds import Fold
from emoconf_tf.metrics import coverage_error, selective_scores
from emoconf_tf.row_batches import CHUNK_ROWS, row_chunks
from emoconf_tf.scores import METHODS, SCORED_PARTS, ScoringContext, predicted_class
from emoconf_tf.selective import balanced_aurc, selective_summary
from emoconf_tf.settings import PAPER_METHODS, ProtocolConfig
from emoconf_tf.targets import class_centroids, manhattan_distances, softmax_of_negative
from emoconf_tf.thresholds import class_thresholds_table


@dataclasses.dataclass
class UnitResult:
    """One (fold, seed, training) unit's rows, plus the trained models and scores for callers that keep them."""

    results: list[dict]
    per_class: list[dict]
    run: dict
    filter_counts: dict[str, int]
    selective: list[dict] = dataclasses.field(default_factory=list)
    choices: list[dict] = dataclasses.field(default_factory=list)
    predictions: pd.DataFrame | None = None
    models: dict = dataclasses.field(default_factory=dict, repr=False)
    scores: dict = dataclasses.field(default_factory=dict, repr=False)


def training_rows(
    corpus: Corpus, fold: Fold, training: str, config: ProtocolConfig
) -> tuple[np.ndarray, dict[str, int]]:
    """Training row indices of `fold` after the (optional) conflict filter, and rows removed per rule."""
    if training == "raw":
        return fold.train, {}
    if not corpus.has_avd:
        raise EmoconfError(f"{training} training: the conflict filter needs AVD ratings, which {corpus.name} has "
                           "none of (`config_for_corpus` leaves it out)")
    avd = corpus.avd[fold.train]
    names = np.asarray(corpus.class_names, dtype=object)[corpus.labels[fold.train]].astype(str)
    masks = rule_masks(
        names, avd[:, 0], avd[:, 1], scale=corpus.scale, midpoint=config.filter_midpoint,
        rules=config.filter_rules, inclusive=config.filter_inclusive,
    )
    drop = np.zeros(len(fold.train), dtype=bool)
    for mask in masks.values():
        drop |= mask
    return fold.train[~drop], filter_counts(masks)


def check_training_rows(
    corpus: Corpus, fold: Fold, training: str, config: ProtocolConfig
) -> tuple[np.ndarray, dict[str, int]]:
    """`training_rows`, refusing a training set in which a class has no rows (no centroid, no softmax unit to learn)."""
    rows, counts = training_rows(corpus, fold, training, config)
    present = np.bincount(corpus.labels[rows], minlength=corpus.num_classes) > 0
    missing = [c for c, ok in zip(corpus.class_names, present) if not ok]
    if missing:
        raise EmoconfError(
            f"fold {fold.index} ({fold.name}), {training} training: class(es) {', '.join(missing)} have no training "
            "rows; leave them out of the classes read (`classes`, `--classes`) or check the table"
        )
    return rows, counts


def run_unit(corpus: Corpus, fold: Fold, seed: int, training: str, config: ProtocolConfig) -> UnitResult:
    """Trains the classifier and EmoConfidNet on one fold's training rows and evaluates every score on its test rows.

    TensorFlow is loaded here, by the first unit a process runs (a process that only dispatches units to workers
    never loads it)."""
    from emoconf_tf.models import masked_feature_count

    train_rows, counts = check_training_rows(corpus, fold, training, config)
    context, models, epochs = train_networks(corpus, fold, train_rows, seed, config)
    choices, modes = score_methods(context)
    key = {"fold": fold.index, "seed": seed, "training": training}
    results, per_class, selective = evaluation_rows(context, modes, corpus.class_names, config.rejections, key)
    rows, labels, scores, predicted = context.rows, context.labels, context.scores, context.predicted
    predictions = pd.DataFrame({
        **key, "id": corpus.ids[rows["test"]], "label": labels["test"], "predicted": predicted["test"],
        **scores["test"],
    })
    run = dict(key, n_train=len(rows["train"]), n_validation=len(rows["validation"]), n_test=len(rows["test"]),
               n_filtered_out=len(fold.train) - len(rows["train"]),
               n_masked_features=masked_feature_count(models["classifier"]), **epochs)
    outputs = {part: {"probabilities": context.probabilities[part], "p_hat": context.p_hat.get(part)}
               for part in SCORED_PARTS}
    return UnitResult(
        results, per_class, run, counts,
        selective=selective,
        choices=[dict(key, **c) for c in choices],
        predictions=predictions,
        models={**models, **context.artifacts},
        scores={"validation": (outputs["validation"], scores["validation"]),
                "test": (outputs["test"], scores["test"], predicted["test"])},
    )


def train_networks(corpus: Corpus, fold: Fold, train_rows: np.ndarray, seed: int,
                   config: ProtocolConfig) -> tuple[ScoringContext, dict, dict[str, int]]:
    """The paper's two networks for one unit: the classifier, then EmoConfidNet's head on its frozen embedding.

    Returns the `ScoringContext` the confidence methods score from (no scores yet), the models
    (`{"classifier", "emoconfidnet"}`) and the epochs each network trained (`classifier_epochs`,
    `confidence_epochs`). On a corpus without AVD ratings there are no targets for the head: the classifier alone
    (`{"classifier"}`, `confidence_epochs` 0, empty `p_hat` and `distances`).
    """
    from emoconf_tf.models import build_emoconfidnet, penultimate_model
    from emoconf_tf.training import embed, fit_classifier, fit_confidence_head

    # Row indices of each part; features are read through them (the labels and AVD are small enough to copy).
    rows = {"train": train_rows, "validation": fold.validation, "test": fold.test}
    labels = {part: corpus.labels[r] for part, r in rows.items()}
    avd = {part: corpus.avd[r] for part, r in rows.items()}
    features, cfg = corpus.features, config.training
    classifier, classifier_epochs = fit_classifier(
        features, labels["train"], features, labels["validation"], corpus.num_classes, cfg, seed=seed,
        train_rows=rows["train"], validation_rows=rows["validation"],
    )
    extractor = penultimate_model(classifier)
    embedded = {part: embed(extractor, features, rows=r) for part, r in rows.items()}
    models, distances, confidence_epochs = {"classifier": classifier}, {}, 0
    if corpus.has_avd:
        centroids = class_centroids(labels["train"], avd["train"], corpus.class_names)
        distances = {part: manhattan_distances(avd[part], centroids) for part in ("train", "validation")}
        head, confidence_epochs = fit_confidence_head(
            embedded["train"], softmax_of_negative(distances["train"]), embedded["validation"],
            softmax_of_negative(distances["validation"]), cfg, seed=seed,
        )
        models["emoconfidnet"] = build_emoconfidnet(classifier, head, learning_rate=cfg.learning_rate)
        outputs = {part: predict(models["emoconfidnet"], features, rows=rows[part]) for part in SCORED_PARTS}
    else:
        outputs = {part: {"probabilities": embed(classifier, features, rows=rows[part])} for part in SCORED_PARTS}
    context = ScoringContext(
        probabilities={part: out["probabilities"] for part, out in outputs.items()},
        p_hat={part: out["p_hat"] for part, out in outputs.items() if "p_hat" in out},
        predicted={part: predicted_class(out["probabilities"]) for part, out in outputs.items()},
        labels=labels, embedded=embedded, distances=distances, rows=rows, features=features,
        classifier=classifier, config=config, seed=seed, num_classes=corpus.num_classes,
        methods=tuple(config.methods), has_avd=corpus.has_avd,
    )
    return context, models, {"classifier_epochs": classifier_epochs, "confidence_epochs": confidence_epochs}


def score_methods(context: ScoringContext) -> tuple[list[dict], dict[str, tuple[str, ...]]]:
    """Runs every asked-for method's scorer (the paper's pair always, EmoConfidNet when the corpus has AVD ratings),
    in registry order, into `context.scores`.

    Returns the choices.csv rows (without the unit key) and the rejection modes each method is reported in.
    """
    choices, modes = [], {}
    for name, method in METHODS.items():
        if (name not in context.methods and name not in PAPER_METHODS) or (method.needs_avd and not context.has_avd):
            continue
        scored = method.scorer(context)
        context.scores["validation"][name], context.scores["test"][name] = scored.validation, scored.test
        modes[name] = scored.rejection_modes or tuple(context.config.rejection_modes)
        if scored.choice is not None:
            choices.append({"method": name, **scored.choice})
    return choices, modes


def evaluation_rows(context: ScoringContext, modes: dict[str, tuple[str, ...]], class_names: Sequence[str],
                    rejections: Sequence[float], key: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """results.csv, per_class.csv and selective.csv rows of one unit: every method, mode, threshold source and
    rejection on test.

    The thresholds of each source (`context.config.threshold_sources`; `thresholds.THRESHOLD_SOURCES`):
    `validation`, from each method's validation scores (`thresholds.class_thresholds_table`); `batch`, from its
    test scores and predicted classes, the test fold taken as one unlabelled batch; `online`, the validation
    thresholds at the rate adaptive conformal inference moves through the test rows in order
    (`adaptive.online_accept`: they change from row to row, so the tables' `threshold` is NaN). The metrics come
    from the test predictions kept (`metrics.selective_scores`). selective.csv's `coverage_error_<source>_<mode>`
    is `metrics.coverage_error` of a method's rows in that source and mode, NaN for those not computed.
    """
    labels, predicted, scores = context.labels, context.predicted, context.scores
    k = context.num_classes
    sources = context.config.threshold_sources
    correct = predicted["test"] == labels["test"]
    results, per_class, selective = [], [], []
    for method, test_confidence in scores["test"].items():
        errors = dict.fromkeys(COVERAGE_ERROR_COLUMNS, float("nan"))
        for mode in modes[method]:
            for source in sources:
                kept = {}
                if source == "online":
                    table = np.full((len(rejections), k), np.nan)
                    kept = {r: online_accept(test_confidence, predicted["test"], scores["validation"][method],
                                             predicted["validation"], r, k, mode) for r in rejections}
                elif source == "batch":
                    table = class_thresholds_table(test_confidence, predicted["test"], k, rejections, mode)
                else:
                    table = class_thresholds_table(scores["validation"][method], predicted["validation"], k,
                                                   rejections, mode)
                coverages = []
                for rejection, thresholds in zip(rejections, table):
                    if rejection in kept:  # online: the kept mask as the confidence, which threshold 1 keeps
                        s = selective_scores(labels["test"], predicted["test"], kept[rejection].astype(np.float64),
                                             1.0, k)
                    else:
                        s = selective_scores(labels["test"], predicted["test"], test_confidence, thresholds, k)
                    coverages.append(s.coverage)
                    row = dict(key, method=method, rejection_mode=mode, threshold_source=source,
                               rejection=float(rejection))
                    # results.csv: the one global threshold; per-class thresholds are in per_class.csv
                    results.append(dict(row, threshold=float(thresholds[0]) if mode == "global" else float("nan"),
                                        coverage=s.coverage, f1=s.f1, uar=s.uar, n_test=s.n_test, removed=s.removed,
                                        removed_correct=s.removed_correct))
                    for c, name in enumerate(class_names):
                        per_class.append(dict(row, **{"class": name}, threshold=float(thresholds[c]),
                                              precision=float(s.precision[c]), recall=float(s.recall[c]),
                                              f1=float(s.class_f1[c])))
                errors[f"coverage_error_{source}_{mode}"] = coverage_error(rejections, coverages)
        summary = selective_summary(correct, test_confidence)
        selective.append(dict(key, method=method, **dataclasses.asdict(summary),
                              aurc_balanced=balanced_aurc(labels["test"], predicted["test"], test_confidence),
                              **errors))
    return results, per_class, selective


def predict(emoconfidnet, features: np.ndarray, batch_size: int = CHUNK_ROWS, *,
            rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Runs the combined model in inference mode: `{"probabilities": [N, K], "p_hat": [N, K]}`.

    Calls the model directly on large batches rather than `model.predict`, which would trace a new
    `tf.function` for every freshly trained model. With `rows` (int `[n]`), runs it on `features[rows]`
    (outputs `[n, K]`), gathering `batch_size` rows at a time; a row's outputs do not depend on `batch_size`.
    """
    parts: dict[str, list[np.ndarray]] = {"probabilities": [], "p_hat": []}
    for chunk in row_chunks(features, rows, batch_size):
        out = emoconfidnet(chunk, training=False)
        for name in parts:
            parts[name].append(np.asarray(out[name]))
    return {name: (np.concatenate(chunks) if chunks
                   else np.zeros((0, emoconfidnet.output["p_hat"].shape[-1]), np.float32))
            for name, chunks in parts.items()}
