"""The paper's protocol: raw vs filtered training, EmoConfidNet vs the baseline, thresholds on
validation, metrics on test, for every fold and seed.

`run_unit` trains and evaluates one (fold, seed, training) unit; `run_protocol` runs them all,
keeps each finished unit in `out_dir/parts/` (a rerun skips it) and writes the output tables.

A unit reads its training, validation and test rows from the corpus's feature matrix by index
(`emoconf_tf.row_batches`), never copying them: the protocol's peak memory is the matrix plus
what TensorFlow needs, not several copies of it.

Units are independent: `run_protocol(..., jobs=N)` trains N at a time, each in a worker process (joblib's loky
backend) running TensorFlow on one thread, reading the matrix from one memory-mapped copy on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from emoconf_tf import __version__
from emoconf_tf.atomic import atomic_path, write_json
from emoconf_tf.confidence import predicted_class
from emoconf_tf.confidence_methods import (
    ALL_METHODS, METHODS, NO_AVD_REASON, PAPER_METHODS, SCORED_PARTS, ScoringContext, avd_methods,
)
from emoconf_tf.evaluation.ensemble import DEFAULT_MEMBERS
from emoconf_tf.evaluation.recommended import CRITERIA, DEFAULT_CRITERION
from emoconf_tf.evaluation.selective import balanced_aurc, selective_summary
from emoconf_tf.evaluation.tables import (  # the tables' columns, under the names this module has always exported
    CHOICE_COLUMNS, COVERAGE_ERROR_COLUMNS, PER_CLASS_COLUMNS, RESULTS_COLUMNS as RESULT_COLUMNS,
    RUNS_COLUMNS as RUN_COLUMNS, SELECTIVE_COLUMNS, ReportTables,
)
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.filtering import PAPER_RULES, TRAININGS, ConflictRule, filter_counts, rule_masks
from emoconf_tf.folds import Fold, fold_assignment, make_folds
from emoconf_tf.metrics import coverage_error, selective_scores
from emoconf_tf.targets import class_centroids, manhattan_distances, softmax_of_negative
from emoconf_tf.row_batches import CHUNK_ROWS, row_chunks
from emoconf_tf.adaptive import online_accept
from emoconf_tf.thresholds import (
    PAPER_REJECTIONS, REJECTION_MODES, check_rejection_mode, check_threshold_sources, class_thresholds_table,
)
from emoconf_tf.settings import WORKER_MEMORY_GROWTH, TrainingConfig

OUTPUT_FORMAT = 3  # bump when parts/ or the tables change incompatibly
FILTER_COUNT_COLUMNS = ("fold", "seed", "rule", "removed")


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """What the protocol runs.

    Args:
        cv: `"split"` (the table's split column) or `"group"` (leave-one-group-out folds; by speaker when the table
            has no groups).
        folds: with `cv="group"`, the groups (or speakers) gathered into this many folds (`folds.fold_groups`);
            None (default): one fold per group.
        seeds: the seeds; every fold runs once per seed.
        trainings: subset of `("raw", "filtered")`.
        rejections: rejection rates (fractions), default 0, 0.1, ..., 0.5.
        rejection_modes: how thresholds are set, a subset of `("global", "per_class")` (`thresholds.py`); every
            method is reported in each, except `recommended`, which is reported once, in the mode validation chose.
        filter_midpoint: separates low from high AVD; None = middle of the corpus scale.
            On a corpus without AVD ratings, `run_protocol` leaves out the `filtered` training and the methods trained
            on AVD (`config_for_corpus`).
        filter_rules: the conflict rules; default the paper's.
        filter_inclusive: compare with the midpoint inclusively (`<=` / `>=`: a value at the midpoint is both low
            and high) instead of strictly (default False: it is neither); see `emoconf_tf.filtering`.
        training: `TrainingConfig` for every network.
        methods: confidence methods to evaluate (`confidence_methods.METHODS`; `PAPER_METHODS` is the paper's pair).
            `emoconfidnet` and `top2_margin` are always computed.
        mc_dropout_passes: stochastic passes T for `mc_dropout`.
        taus: target temperatures tried for `emoconfidnet_tau` besides 1 (chosen on validation AURC).
        recommend_by: the validation criterion that picks `recommended`'s score and mode (`recommended.CRITERIA`).
        ensemble_members: classifiers averaged by `macro_gain_ensemble`, the protocol's own included (`ensemble.py`);
            trained only when that method is asked for.
        threshold_sources: whose confidences the thresholds are set on (`thresholds.THRESHOLD_SOURCES`), each
            reported in every mode: `"validation"` (the paper's, always included: every figure of the report's
            main view uses it), `"batch"` (the test fold's own unlabelled confidences, as if it were one batch of
            new data) and `"online"` (adaptive conformal inference through the test rows in order, `adaptive.py`).
    """

    cv: str = "split"
    folds: int | None = None
    seeds: tuple[int, ...] = (0,)
    trainings: tuple[str, ...] = TRAININGS
    rejections: tuple[float, ...] = PAPER_REJECTIONS
    rejection_modes: tuple[str, ...] = REJECTION_MODES
    filter_midpoint: float | None = None
    filter_rules: tuple[ConflictRule, ...] = PAPER_RULES
    filter_inclusive: bool = False
    training: TrainingConfig = TrainingConfig()
    methods: tuple[str, ...] = ALL_METHODS
    mc_dropout_passes: int = 10
    taus: tuple[float, ...] = (0.5, 2.0)
    recommend_by: str = DEFAULT_CRITERION
    ensemble_members: int = DEFAULT_MEMBERS
    threshold_sources: tuple[str, ...] = ("validation", "batch")

    def __post_init__(self):
        unknown_methods = [m for m in self.methods if m not in METHODS]
        if unknown_methods:
            raise EmoconfError(f"methods {unknown_methods}: choose from {', '.join(METHODS)}")
        if self.mc_dropout_passes < 1:
            raise EmoconfError("mc_dropout_passes must be at least 1")
        if self.folds is not None and (self.cv != "group" or self.folds < 3):
            raise EmoconfError(f"folds {self.folds}: needs cv='group' and at least 3 folds")
        if self.ensemble_members < 1:
            raise EmoconfError(f"ensemble_members {self.ensemble_members}: an ensemble needs at least 1 classifier")
        if any(not (t > 0) for t in self.taus):
            raise EmoconfError(f"taus {list(self.taus)}: every temperature must be positive")
        unknown = [t for t in self.trainings if t not in TRAININGS]
        if unknown or not self.trainings:
            raise EmoconfError(f"trainings {list(self.trainings)}: choose from {', '.join(TRAININGS)}")
        if not self.seeds:
            raise EmoconfError("need at least one seed")
        if self.recommend_by not in CRITERIA:
            raise EmoconfError(f"recommend_by {self.recommend_by!r}: choose from {', '.join(CRITERIA)}")
        if not self.rejection_modes:
            raise EmoconfError(f"rejection_modes is empty: give one or both of {', '.join(REJECTION_MODES)}")
        for mode in self.rejection_modes:
            check_rejection_mode(mode, "rejection_modes")
        check_threshold_sources(self.threshold_sources, "threshold_sources")

    def fingerprint(self) -> dict:
        """The settings that determine the results (used to refuse mixing runs in one --out)."""
        data = dataclasses.asdict(self)
        data["training"].pop("verbose", None)
        if not self.filter_inclusive:  # listed only when set: an --out written before the option still resumes
            data.pop("filter_inclusive")
        if self.folds is None:  # listed only when set: an --out written before the option still resumes
            data.pop("folds")
        if "macro_gain_ensemble" not in self.methods:  # no ensemble is trained: the setting changes nothing
            data.pop("ensemble_members")
        data["seeds"] = list(self.seeds)
        return json.loads(json.dumps(data))


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


def config_for_corpus(config: ProtocolConfig, corpus: Corpus) -> tuple[ProtocolConfig, str]:
    """`config` as it can run on `corpus`, and one line saying what was left out ("" when nothing was).

    A corpus with AVD ratings runs `config` unchanged. Without them (`Corpus.has_avd` False; most public corpora
    have categories only), the conflict filter (the `filtered` training) and the methods trained on AVD
    (`confidence_methods.avd_methods()`: EmoConfidNet and its variants) cannot run: they are dropped, and every
    other score runs as asked (`recommended` chooses among them). A config left with no training is refused.

    Raises:
        EmoconfError: `trainings` is `("filtered",)` on a corpus without AVD ratings.
    """
    if corpus.has_avd:
        return config, ""
    trainings = tuple(t for t in config.trainings if t != "filtered")
    if not trainings:
        raise EmoconfError(f"trainings {list(config.trainings)}: the conflict filter needs AVD ratings, which "
                           f"{corpus.name} has none of; train on the raw training set")
    needing = avd_methods()
    dropped_methods = [m for m in (*PAPER_METHODS, *config.methods) if m in needing]
    dropped = (["the conflict filter (filtered training)"] if trainings != config.trainings else []) + [
        METHODS[m].display_name for m in dict.fromkeys(dropped_methods)]
    adapted = dataclasses.replace(config, trainings=trainings,
                                  methods=tuple(m for m in config.methods if m not in needing))
    note = (f"{corpus.name} has no AVD ratings: left out {', '.join(dropped)} ({NO_AVD_REASON}); every other score "
            "runs") if dropped else ""
    return adapted, note


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
            "rows; drop them with --classes or check the table"
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


@dataclasses.dataclass
class ProtocolOutputs(ReportTables):
    """The protocol's tables, a `ReportTables` (see `RESULT_COLUMNS`, `PER_CLASS_COLUMNS`, `RUN_COLUMNS`,
    `SELECTIVE_COLUMNS`, `CHOICE_COLUMNS`; `predictions` holds every test prediction with each method's
    confidence) and filter counts.

    `filter_counts` (`FILTER_COUNT_COLUMNS`): the rows each conflict rule removed from each fold's training set,
    one row per (fold, rule), from the first seed's filtered unit of the fold. The filter does not depend on the
    seed, so a sum over seeds would count every row once per seed; folds are kept apart since a row is in the
    training set of several folds under `cv="group"`. Empty when no unit trained on the filtered set.
    """

    skipped_units: int = 0


def run_protocol(
    corpus: Corpus,
    config: ProtocolConfig,
    out_dir: str | Path | None = None,
    *,
    on_unit: Callable[[dict, bool], None] | None = None,
    progress: bool = True,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
) -> ProtocolOutputs:
    """Runs every (fold, seed, training) unit; with `out_dir`, keeps finished units and resumes.

    Args:
        corpus: the corpus (with a split column, or groups for `cv="group"`).
        config: `ProtocolConfig`.
        out_dir: where `parts/` (finished units) and `protocol.json` live; a rerun with the same settings
            skips finished units. None keeps everything in memory.
        on_unit: called with each unit's `run` row and whether it was resumed (for one-line summaries).
        progress: show a tqdm bar over units.
        jobs: units trained at once. 1 (default): one after the other, in this process. N >= 2: in N worker
            processes (joblib, loky backend), each running TensorFlow on one intra-op and one inter-op thread and
            reading the feature matrix from one memory-mapped copy (written beside `parts/`, or to the temporary
            directory without `out_dir`, and deleted at the end); -1: one worker per CPU core. A worker is replaced
            by a fresh process once it has grown `WORKER_MEMORY_GROWTH` beyond its size after its first unit
            (TensorFlow keeps some memory of every network it trained), and this process, which only dispatches
            units and writes what comes back, does not load TensorFlow. Finished units are
            kept as they arrive, and the tables are in the same (fold, seed, training) order whatever `jobs` is.
            An execution setting, not part of `config`: a run may resume with another `jobs`.
        backend: where the units run. "loky" (default): worker processes on this machine, as `jobs` says.
            "dask": the worker processes of a `dask.distributed` cluster, through joblib's dask backend (same
            seeds per unit, so the same tables as the serial run). The corpus is sent once to every worker
            (`scatter`), not with each unit, and the workers send back each unit's tables; `out_dir` stays on this
            machine, where the parts are written as units arrive, so resuming works as with loky. Each worker must
            run one thread (`dask worker ADDRESS --nthreads 1`): a unit sets TensorFlow's and Keras's process-wide
            seeds, which two units in one process would disturb. Needs `pip install "emoconf-tf[dask]"`.
        scheduler: with `backend="dask"`, the address of a running scheduler (`tcp://host:8786`, as printed by
            `dask scheduler`); units run one per worker thread of that cluster, so `jobs` stays 1 (the default).
            Workers must have emoconf-tf installed. None: a `distributed.LocalCluster` of `jobs` (2 or more, or -1)
            worker processes of one thread each is started on this machine and closed at the end.

    Raises:
        EmoconfError: for `jobs` 0 or below -1, an unknown `backend`, `scheduler` without `backend="dask"`,
            `backend="dask"` without `distributed` installed, `jobs` 1 without a scheduler or other than 1 with one,
            a malformed scheduler address, a scheduler that does not answer within 5 s, has no worker after 10 s,
            fewer than 2 workers or a worker of several threads, a fold whose training set lacks a class, or an
            `out_dir` holding a run with other settings.
    """
    from tqdm.auto import tqdm

    workers = _worker_count(jobs, backend, scheduler)
    adapted, note = config_for_corpus(config, corpus)
    if adapted != config:  # not when the caller adapted it already (and said so)
        warnings.warn(note, stacklevel=2)
    config = adapted
    folds = make_folds(corpus, config.cv, config.folds)
    for fold in folds:  # fail before any training (and before writing anything), not after hours of it
        for training in config.trainings:
            check_training_rows(corpus, fold, training, config)
    parts_dir = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        parts_dir = out_dir / "parts"
        _check_same_settings(out_dir, corpus, config)
        _remove_stale_temporaries(out_dir, parts_dir)
        with atomic_path(out_dir / "folds.csv") as tmp:  # which utterance is in which part of each fold
            fold_assignment(corpus, folds).to_csv(tmp, index=False)
    units = [(fold, seed, training) for fold in folds for seed in config.seeds for training in config.trainings]
    if workers > 1 or backend == "dask":
        bar = tqdm(total=len(units), desc=f"{corpus.name}: folds x seeds x trainings", unit="run",
                   disable=not progress)
        with bar:
            done, skipped = _run_units_in_workers(corpus, config, units, parts_dir, workers, bar, on_unit,
                                                  backend=backend, scheduler=scheduler)
        return _protocol_outputs(done, config, skipped)
    done: list[UnitResult] = []
    skipped = 0
    bar = tqdm(units, desc=f"{corpus.name}: folds x seeds x trainings", unit="run", disable=not progress)
    for fold, seed, training in bar:
        part = _part_path(parts_dir, fold, seed, training)
        if part is not None and part.exists():
            unit = _read_part(part)
            skipped += 1
            resumed = True
        else:
            unit = run_unit(corpus, fold, seed, training, config)
            if part is not None:
                _write_part(part, unit)
            resumed = False
        unit.models.clear()
        unit.scores.clear()
        done.append(unit)
        if on_unit is not None:
            on_unit(_unit_summary(unit), resumed)
    return _protocol_outputs(done, config, skipped)


def _protocol_outputs(done: list[UnitResult], config: ProtocolConfig, skipped: int) -> ProtocolOutputs:
    """The tables of the finished units `done`, in their order (the canonical (fold, seed, training) order)."""
    counts = [{"fold": unit.run["fold"], "seed": unit.run["seed"], "rule": rule, "removed": int(n)}
              for unit in done if unit.run["training"] == "filtered" and unit.run["seed"] == config.seeds[0]
              for rule, n in unit.filter_counts.items()]
    return ProtocolOutputs(
        results=pd.DataFrame([r for u in done for r in u.results], columns=list(RESULT_COLUMNS)),
        per_class=pd.DataFrame([r for u in done for r in u.per_class], columns=list(PER_CLASS_COLUMNS)),
        runs=pd.DataFrame([u.run for u in done], columns=list(RUN_COLUMNS)),
        selective=pd.DataFrame([r for u in done for r in u.selective], columns=list(SELECTIVE_COLUMNS)),
        choices=pd.DataFrame([r for u in done for r in u.choices], columns=list(CHOICE_COLUMNS)),
        predictions=pd.concat([u.predictions for u in done], ignore_index=True),
        filter_counts=pd.DataFrame(counts, columns=list(FILTER_COUNT_COLUMNS)),
        skipped_units=skipped,
    )


def _part_path(parts_dir: Path | None, fold: Fold, seed: int, training: str) -> Path | None:
    """The finished-unit file of a unit, None without `out_dir`."""
    return parts_dir / f"fold{fold.index}_seed{seed}_{training}.json" if parts_dir else None


def _write_part(part: Path, unit: UnitResult) -> None:
    # predictions first: the JSON, written last, marks the unit finished
    with atomic_path(part.with_suffix(".predictions.csv")) as tmp:
        unit.predictions.to_csv(tmp, index=False, float_format="%.7g")
    write_json(part, {"results": unit.results, "per_class": unit.per_class, "run": unit.run,
                      "filter_counts": unit.filter_counts, "selective": unit.selective,
                      "choices": unit.choices})


def _worker_count(jobs: int, backend: str = "loky", scheduler: str | None = None) -> int:
    """`jobs` as a number of processes: -1 is joblib's CPU count (which respects CPU affinity and cgroup quotas).

    Checks `backend` and `scheduler` with it, before anything is written: with a dask `scheduler` the cluster's
    workers decide (`jobs` stays 1); without one, `jobs` is the size of the LocalCluster, at least 2, since joblib
    runs the units in this process when its backend has a single worker.
    """
    if backend not in ("loky", "dask"):
        raise EmoconfError(f"backend {backend!r}: choose 'loky' (worker processes on this machine) or 'dask' (the "
                           "workers of a dask.distributed cluster)")
    if jobs == 0 or jobs < -1:
        raise EmoconfError(f"jobs {jobs!r}: give 1 or more worker processes, or -1 for one per CPU core")
    if scheduler is not None and backend != "dask":
        raise EmoconfError(f"scheduler {scheduler!r}: a scheduler address is for backend 'dask', not {backend!r}")
    if backend == "dask":
        try:
            import distributed  # noqa: F401 (an optional dependency: checked before anything is written)
        except ImportError:
            raise EmoconfError('backend \'dask\' needs dask.distributed, which is not installed: '
                               'pip install "emoconf-tf[dask]"') from None
        if scheduler is not None and jobs != 1:
            raise EmoconfError(f"jobs {jobs!r}: with a dask scheduler, its cluster's worker threads decide how many "
                               "units run at once; leave jobs at 1")
    workers = jobs
    if jobs == -1:
        import joblib

        workers = joblib.cpu_count()
    if backend == "dask" and scheduler is None and workers < 2:
        raise EmoconfError(f"jobs {jobs!r}: backend 'dask' without a scheduler starts a LocalCluster of `jobs` "
                           "worker processes; give 2 or more, or the address of a running scheduler")
    return workers


def _run_units_in_workers(corpus: Corpus, config: ProtocolConfig, units: list[tuple[Fold, int, str]],
                          parts_dir: Path | None, workers: int, bar,
                          on_unit: Callable[[dict, bool], None] | None, *, backend: str = "loky",
                          scheduler: str | None = None) -> tuple[list[UnitResult], int]:
    """`run_protocol`'s units in `workers` (>= 2) loky processes, or (`backend="dask"`) on the workers of the dask
    cluster at `scheduler` (None: a LocalCluster of `workers` processes); returns the units in `units`' order and the
    number resumed from `parts_dir`.

    This process reads the finished parts, writes each new unit's part as it arrives (in the order units finish),
    advances `bar` and calls `on_unit`, whichever the backend. A KeyboardInterrupt (or any error) leaves the loop,
    and joblib then kills the loky workers (a LocalCluster is closed; a remote cluster finishes the units it has
    started, and their results are dropped); the parts already written stay.
    """
    from joblib import Parallel, delayed, parallel_config

    finished: dict[int, UnitResult] = {}
    pending = []
    for index, (fold, seed, training) in enumerate(units):
        part = _part_path(parts_dir, fold, seed, training)
        if part is not None and part.exists():
            finished[index] = _read_part(part)
            bar.update()
            if on_unit is not None:
                on_unit(_unit_summary(finished[index]), True)
        else:
            pending.append(index)
    skipped = len(finished)
    if pending:
        with contextlib.ExitStack() as stack:
            if backend == "dask":
                client = stack.enter_context(_dask_client(scheduler, workers))
                # A memory-mapped file would not exist on another machine, and a corpus in every task would be sent
                # once per unit: joblib's `scatter` sends it once to every worker, and each task that names this
                # very object gets a reference to the workers' copy instead.
                shared = corpus
                if isinstance(corpus.features, np.memmap):  # sent as the array it maps, read once here
                    shared = dataclasses.replace(corpus, features=np.asarray(corpus.features))
                stack.enter_context(parallel_config(backend="dask", client=client, scatter=[shared]))
                n_jobs = -1  # joblib's dask backend uses every worker thread of the cluster, whatever n_jobs is
                run_in_worker = _run_unit_on_dask_worker
            else:
                run_in_worker = _run_unit_in_worker
                shared = stack.enter_context(_memory_mapped_features(corpus, parts_dir.parent if parts_dir else None))
                # at least 2: joblib runs n_jobs=1 in this process, whose TensorFlow may already use every core
                n_jobs = max(2, min(workers, len(pending)))
                # inner_max_num_threads: OpenMP / BLAS in the workers on one thread too
                stack.enter_context(parallel_config(backend="loky", inner_max_num_threads=1))
            tasks = (delayed(run_in_worker)(index, shared, *units[index], config) for index in pending)
            outputs = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1)(tasks)
            # Closing it early (an error, Ctrl-C) makes joblib kill the loky workers (dask: the client closes, and the
            # scheduler drops the units not yet started); that it cancelled units is no news.
            with warnings.catch_warnings(), contextlib.closing(outputs):
                warnings.filterwarnings("ignore", message=".*still being processed by the workers have been "
                                        "cancelled", category=UserWarning)
                # loky's words when it replaces a worker that grew (recycle_worker_when_grown): expected here
                warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the "
                                        "executor", category=UserWarning)
                for index, unit in outputs:
                    fold, seed, training = units[index]
                    part = _part_path(parts_dir, fold, seed, training)
                    if part is not None:
                        _write_part(part, unit)
                    finished[index] = unit
                    bar.update()
                    if on_unit is not None:
                        on_unit(_unit_summary(unit), False)
    return [finished[index] for index in range(len(units))], skipped


def recycle_worker_when_grown(limit_bytes: int = WORKER_MEMORY_GROWTH) -> None:
    """In a loky worker process: have loky replace this process once its RSS has grown `limit_bytes` beyond its
    size after its first task (checked after each task, at most once a second, with psutil).

    This is loky's own memory-leak guard (`joblib.externals.loky.process_executor`: the worker leaves cleanly and
    the executor starts another; the tasks and their results are not disturbed), whose bound, 300 MB, is a
    module constant read by the worker loop of this very process: lowering it here touches this worker only.
    """
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = int(limit_bytes)


def _run_unit_in_worker(index: int, corpus: Corpus, fold: Fold, seed: int, training: str,
                        config: ProtocolConfig) -> tuple[int, UnitResult]:
    """`run_unit` in a worker process, on one TensorFlow thread; returns `(index, unit)` without models or scores
    (they stay in the worker: Keras models would be pickled back for nothing). The worker is replaced once it has
    grown `WORKER_MEMORY_GROWTH` (`recycle_worker_when_grown`)."""
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(debug=os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0")
    import tensorflow as tf

    recycle_worker_when_grown()
    # Before TensorFlow's first op in this process (setting the same value again is allowed later); several workers
    # share the cores, and TensorFlow's default is a pool of every core's threads in each.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    unit = run_unit(corpus, fold, seed, training, config)
    unit.models.clear()
    unit.scores.clear()
    return index, unit


@contextlib.contextmanager
def _memory_mapped_features(corpus: Corpus, directory: Path | None):
    """`corpus` with its feature matrix read from a memory-mapped `.npy` file in `directory` (None: the temporary
    directory), which joblib passes to the loky workers by file name, not by copying the matrix into each task (the
    dask workers, which may be on other machines, get the corpus by joblib's `scatter` instead). The file is named
    like `atomic_path`'s temporaries (`.features.<random>.tmp`), so a killed run's copy is deleted by the next run
    with the same `out_dir`; it is deleted on exit."""
    if isinstance(corpus.features, np.memmap):
        yield corpus
        return
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".features.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            np.save(file, corpus.features, allow_pickle=False)
        yield dataclasses.replace(corpus, features=np.load(name, mmap_mode="r"))
    finally:
        os.unlink(name)


@contextlib.contextmanager
def _dask_client(scheduler: str | None, workers: int, *, timeout_seconds: float = 5.0):
    """A `distributed.Client` of the cluster at `scheduler` (`tcp://host:port`), or of a `LocalCluster` of `workers`
    processes of one thread each, started here; closed on exit (the LocalCluster too).

    A scheduler's cluster is checked before any unit is sent: it answers within `timeout_seconds`, a worker joins
    within twice that, every worker runs one thread (a unit sets TensorFlow's and Keras's process-wide seeds, which
    two units in one process would disturb) and there are 2 or more (with one, joblib would run the units here).

    Raises:
        EmoconfError: the scheduler does not answer or its cluster fails a check; the message says what to start.
    """
    import asyncio
    import concurrent.futures
    import logging

    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            nanny_log = logging.getLogger("distributed.nanny")
            stack.callback(nanny_log.setLevel, nanny_log.level)
            # processes of one thread: one unit's TensorFlow and seeds per process. The dashboard (served if bokeh is
            # installed) on a free port: the scheduler's HTTP server would otherwise take 8787, which may be taken
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0"))
            # On close, a worker that imported TensorFlow outlives distributed's 4 s grace and its nanny kills it,
            # as wanted here, with a WARNING line per worker: noise at the end of every run
            stack.callback(nanny_log.setLevel, logging.ERROR)
            yield stack.enter_context(Client(cluster, set_as_default=False))
            return
        from distributed.comm import connect

        async def handshake():
            comm = await connect(scheduler, timeout=timeout_seconds)
            await comm.close()

        # A handshake first: a Client that failed to connect hangs for twice the timeout when it is collected, and
        # prints a traceback. In a thread of its own: its own event loop, even under a notebook's running one.
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
                thread.submit(asyncio.run, handshake()).result()
        except (ValueError, TypeError) as error:
            raise EmoconfError(f"scheduler {scheduler!r}: not a scheduler address ({error}); give the one "
                               "`dask scheduler` prints, e.g. tcp://10.0.0.5:8786") from None
        except OSError as error:  # "Timed out trying to connect to tcp://... after 5 s"
            raise EmoconfError(f"scheduler {scheduler!r}: no dask scheduler answered ({error}); start one with "
                               "`dask scheduler` and give the address it prints, e.g. tcp://10.0.0.5:8786") from None
        client = stack.enter_context(Client(scheduler, timeout=timeout_seconds, set_as_default=False))
        how = f"with `dask worker {scheduler} --nthreads 1` (`--nworkers N` for N on one machine)"
        try:
            client.wait_for_workers(1, timeout=2 * timeout_seconds)
        except TimeoutError:
            raise EmoconfError(f"scheduler {scheduler!r}: no worker joined within {2 * timeout_seconds:g} s; start "
                               f"2 or more {how}") from None
        threads = client.nthreads()
        several = {worker: n for worker, n in threads.items() if n > 1}
        if several:
            worker, n = next(iter(several.items()))
            raise EmoconfError(f"scheduler {scheduler!r}: worker {worker} runs {n} threads, and two units in one "
                               f"process would disturb each other's seeds; start the workers {how}")
        if sum(threads.values()) < 2:
            raise EmoconfError(f"scheduler {scheduler!r}: its cluster has 1 worker, and joblib would run the units "
                               f"in this process; start 2 or more {how}")
        yield client


def _run_unit_on_dask_worker(index: int, corpus: Corpus, fold: Fold, seed: int, training: str,
                             config: ProtocolConfig) -> tuple[int, UnitResult]:
    """`_run_unit_in_worker` on a dask worker, with Python's `random` to itself (`_python_random_of_this_thread`)."""
    with _python_random_of_this_thread():
        return _run_unit_in_worker(index, corpus, fold, seed, training, config)


@contextlib.contextmanager
def _python_random_of_this_thread():
    """Python's module-level `random` functions draw, while inside, from the shared generator in this thread only,
    and from a generator of their own in every other thread.

    Keras draws the seeds of layers built without one (`random.randint` in `keras.random.make_default_seed`) from
    the generator `keras.utils.set_random_seed` seeds. A dask worker's event loop draws from it too, at times that
    depend on the messages it sends (`random.sample` in `dask.sizeof`, sizing each outgoing message), so without
    this a unit's networks would differ from run to run. A loky worker has no other thread: nothing to do there.
    """
    import random
    import threading

    owner = threading.get_ident()
    shared, others = random.random.__self__, random.Random()
    originals = {name: function for name, function in vars(random).items()
                 if getattr(function, "__self__", None) is shared}

    def per_thread(name: str, function: Callable) -> Callable:
        other = getattr(others, name)
        return lambda *args, **kwargs: (function if threading.get_ident() == owner else other)(*args, **kwargs)

    for name, function in originals.items():
        setattr(random, name, per_thread(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(random, name, function)


def write_tables(outputs: ProtocolOutputs, out_dir: str | Path) -> None:
    """Writes `results.csv`, `per_class.csv`, `runs.csv`, `selective.csv`, `choices.csv` and `predictions.csv`
    atomically."""
    out_dir = Path(out_dir)
    for name in ("results", "per_class", "runs", "selective", "choices", "predictions"):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            getattr(outputs, name).to_csv(tmp, index=False, float_format="%.6f" if name != "predictions" else "%.7g")


def _unit_summary(unit: UnitResult) -> dict:
    summary = dict(unit.run)
    for row in unit.results:
        if row["rejection"] in (0.0, 0.2) and row["rejection_mode"] == "global" \
                and row["threshold_source"] == "validation":
            summary[f"{row['method']}@{row['rejection']:.1f}"] = row["f1"]
    return summary


def _read_part(path: Path) -> UnitResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        predictions = pd.read_csv(path.with_suffix(".predictions.csv"))
        return UnitResult(data["results"], data["per_class"], data["run"], data.get("filter_counts", {}),
                          selective=data["selective"], choices=data["choices"], predictions=predictions)
    except (json.JSONDecodeError, KeyError, OSError, pd.errors.ParserError) as error:
        raise EmoconfError(f"{path}: unreadable finished-unit file ({error}); delete it to rerun that unit") from None


def _remove_stale_temporaries(*directories: Path) -> None:
    """Deletes temporary files an interrupted run left (`atomic_path` names them `.<name>.<random>.tmp`)."""
    for directory in directories:
        if directory.is_dir():
            for stale in directory.glob(".*.tmp"):
                if stale.is_file():
                    stale.unlink()


def _check_same_settings(out_dir: Path, corpus: Corpus, config: ProtocolConfig) -> None:
    settings = {
        "corpus": corpus.name,
        "n_rows": len(corpus),
        "num_features": corpus.num_features,
        "class_names": list(corpus.class_names),
        "scale": list(corpus.scale) if corpus.scale is not None else None,
        "protocol": config.fingerprint(),
    }
    path = out_dir / "protocol.json"
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EmoconfError(f"{path}: unreadable ({error}); delete {out_dir} or use another --out") from None
        if previous.get("format") != OUTPUT_FORMAT:
            raise EmoconfError(
                f"{out_dir}: written by emoconf-tf {previous.get('version', '?')} (output format "
                f"{previous.get('format', '?')}); this is emoconf-tf {__version__} (format {OUTPUT_FORMAT}), whose "
                "finished parts are not compatible; use another --out"
            )
        previous_settings = {k: previous.get(k) for k in settings}
        if previous_settings != json.loads(json.dumps(settings)):
            raise EmoconfError(
                f"{out_dir}: holds a run with other settings (see {path}); use another --out or delete it"
            )
        return
    write_json(path, dict(settings, version=__version__, format=OUTPUT_FORMAT))
