"""The settings of the library, in one module that imports neither TensorFlow nor Keras (nor pandas): the config
dataclasses (`TrainingConfig` for every network, `ProtocolConfig` for the protocol) and the choices and defaults
they are made of, which the command line reads (its flags' defaults, `choices=` and checks) before anything loads
TensorFlow. A process that only dispatches the protocol's units to worker processes (`run_protocol(..., jobs=N)`)
never loads it.

Where a choice belongs to one concept, that module defines it and this one re-exports it (the conflict rules and
trainings of `filtering`, the rejection modes and threshold sources of `thresholds`).
"""

from __future__ import annotations

import dataclasses
import json

from emoconf_tf.errors import EmoconfError
from emoconf_tf.filtering import PAPER_RULES, TRAININGS, ConflictRule
from emoconf_tf.thresholds import (
    PAPER_REJECTIONS, REJECTION_MODES, THRESHOLD_SOURCES, check_rejection_mode, check_threshold_sources,
)

__all__ = [
    "ALL_METHODS", "CRITERIA", "CV_MODES", "DEFAULT_CRITERION", "DEFAULT_MC_DROPOUT_PASSES", "DEFAULT_MEMBERS",
    "DEFAULT_REJECTION_MODES", "DEFAULT_SERVED_SCORE", "DEFAULT_TAUS", "DEFAULT_THRESHOLD_SOURCES", "PAPER_METHODS",
    "PAPER_REJECTIONS", "PAPER_RULES", "REJECTION_MODES", "THRESHOLD_SOURCES", "TRAININGS", "WORKER_MEMORY_GROWTH",
    "ConflictRule", "ProtocolConfig", "TrainingConfig",
]

CV_MODES = ("split", "group")
"""How the protocol makes folds: the table's `split` column, or leave-one-group-out (`folds.make_folds`)."""

PAPER_METHODS = ("emoconfidnet", "top2_margin")
"""The paper's pair: EmoConfidNet and its baseline, the top-two margin. Always computed (EmoConfidNet when the
corpus has AVD ratings)."""
ALL_METHODS = ("emoconfidnet", "top2_margin", "msp", "entropy", "mc_dropout", "tcp", "emoconfidnet_tau",
               "macro_gain", "macro_gain_ensemble", "recommended")
"""Every built-in confidence score, by its `method` name in the outputs, in the order they run (the score
registry registers exactly these, in this order, and checks it on import)."""
DEFAULT_SERVED_SCORE = "recommended"
"""What `emoconf train` / `export` serve unless `--score` says otherwise."""

DEFAULT_MC_DROPOUT_PASSES = 10
"""Stochastic forward passes T of the `mc_dropout` score."""
DEFAULT_TAUS = (0.5, 2.0)
"""Target temperatures tried for `emoconfidnet_tau` besides 1."""
DEFAULT_MEMBERS = 3
"""Classifiers averaged by `macro_gain_ensemble`, the protocol's own included."""
CRITERIA = ("f1_uar_area", "f1_area", "uar_area", "aurc")
"""The validation criteria `recommended` may choose its score and mode by (`recommend_by`)."""
DEFAULT_CRITERION = "f1_uar_area"
"""`recommended`'s default criterion: the mean of the F1 and UAR areas over rejection 0-50 %."""
DEFAULT_REJECTION_MODES = REJECTION_MODES
"""The rejection modes the protocol reports by default: all of them."""
DEFAULT_THRESHOLD_SOURCES = ("validation", "batch")
"""Whose confidences the protocol sets thresholds on by default."""

@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Settings shared by the classifier and the EmoConfidNet head (paper, Section 4.3).

    Args:
        units: hidden width, default 256.
        dropout_rate: default 0.5.
        learning_rate: Adam learning rate, default 1e-4.
        batch_size: default 128 (the paper does not give one).
        max_epochs: upper bound on epochs, default 200; early stopping normally ends sooner.
        patience: early-stopping patience on validation loss, default 10; best weights are restored.
        reshuffle_each_epoch: draw a new (seeded) order of the training rows in every epoch. False repeats
            Keras 3's behaviour with `keras.utils.set_random_seed`: one order, drawn once, in every epoch.
        verbose: Keras `fit` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        clip_inputs: clip each feature to its training range in the classifier (`models.ClipToRange`), default
            True: a value far outside it (heavy-tailed functionals on an unseen speaker) no longer reaches the
            network as is. False gives the paper's network exactly.
    """

    units: int = 256
    dropout_rate: float = 0.5
    learning_rate: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10
    reshuffle_each_epoch: bool = True
    verbose: int = 0
    clip_inputs: bool = True


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
        methods: confidence methods to evaluate, names of the score registry (`ALL_METHODS` are the built-in ones;
            `PAPER_METHODS` is the paper's pair). `emoconfidnet` and `top2_margin` are always computed. The names
            are checked against the registry, where scores may be added, when the protocol starts
            (`config_for_corpus`), not here.
        mc_dropout_passes: stochastic passes T for `mc_dropout`.
        taus: target temperatures tried for `emoconfidnet_tau` besides 1 (chosen on validation AURC).
        recommend_by: the validation criterion that picks `recommended`'s score and mode (`CRITERIA`).
        ensemble_members: classifiers averaged by `macro_gain_ensemble`, the protocol's own included
            (`scores/ensemble.py`); trained only when that method is asked for.
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
    rejection_modes: tuple[str, ...] = DEFAULT_REJECTION_MODES
    filter_midpoint: float | None = None
    filter_rules: tuple[ConflictRule, ...] = PAPER_RULES
    filter_inclusive: bool = False
    training: TrainingConfig = TrainingConfig()
    methods: tuple[str, ...] = ALL_METHODS
    mc_dropout_passes: int = DEFAULT_MC_DROPOUT_PASSES
    taus: tuple[float, ...] = DEFAULT_TAUS
    recommend_by: str = DEFAULT_CRITERION
    ensemble_members: int = DEFAULT_MEMBERS
    threshold_sources: tuple[str, ...] = DEFAULT_THRESHOLD_SOURCES

    def __post_init__(self):
        if self.mc_dropout_passes < 1:
            raise EmoconfError(f"mc_dropout_passes {self.mc_dropout_passes}: must be at least 1",
                               argument="mc_dropout_passes")
        if self.folds is not None and (self.cv != "group" or self.folds < 3):
            raise EmoconfError(f"folds {self.folds}: needs cv='group' and at least 3 folds", argument="folds")
        if self.ensemble_members < 1:
            raise EmoconfError(f"ensemble_members {self.ensemble_members}: an ensemble needs at least 1 classifier",
                               argument="ensemble_members")
        if any(not (t > 0) for t in self.taus):
            raise EmoconfError(f"taus {list(self.taus)}: every temperature must be positive", argument="taus")
        unknown = [t for t in self.trainings if t not in TRAININGS]
        if unknown or not self.trainings:
            raise EmoconfError(f"trainings {list(self.trainings)}: choose from {', '.join(TRAININGS)}",
                               argument="trainings")
        if not self.seeds:
            raise EmoconfError("seeds is empty: need at least one seed", argument="seeds")
        if self.recommend_by not in CRITERIA:
            raise EmoconfError(f"recommend_by {self.recommend_by!r}: choose from {', '.join(CRITERIA)}",
                               argument="recommend_by")
        if not self.rejection_modes:
            raise EmoconfError(f"rejection_modes is empty: give one or both of {', '.join(REJECTION_MODES)}",
                               argument="rejection_modes")
        for mode in self.rejection_modes:
            check_rejection_mode(mode, "rejection_modes")
        check_threshold_sources(self.threshold_sources, "threshold_sources")

    def fingerprint(self) -> dict:
        """The settings that determine the results (used to refuse mixing runs in one output directory)."""
        data = dataclasses.asdict(self)
        data["training"].pop("verbose", None)
        if not self.filter_inclusive:  # listed only when set: a run written before the option still resumes
            data.pop("filter_inclusive")
        if self.folds is None:  # listed only when set: an output directory written before the option still resumes
            data.pop("folds")
        if "macro_gain_ensemble" not in self.methods:  # no ensemble is trained: the setting changes nothing
            data.pop("ensemble_members")
        data["seeds"] = list(self.seeds)
        return json.loads(json.dumps(data))


WORKER_MEMORY_GROWTH = 160 * 2**20
"""Bytes a loky worker's RSS may grow beyond its size after its first unit before loky replaces it by a fresh
process. Each unit trains about seven networks, and TensorFlow keeps about 12 MB of every one after it is freed
(85 MB a unit on IEMOCAP-47), so a worker that lived through a 3-seed protocol would end over a gigabyte larger;
a fresh worker costs a few seconds (TensorFlow's start and first traces), once every two or three units."""
