"""The registry of confidence methods: one entry per score the protocol evaluates.

A method is a name (the `method` column of every output table), a display name and a colour for the
report, and a *scorer*: a function that takes one unit's `ScoringContext` (the trained networks' outputs on
validation and test, the labels, and the scores computed so far) and returns the method's validation and
test scores. `ALL_METHODS`, the report's names and colours, and the CLI's `--methods` all derive from here,
so a new score is one small function:

    @register_method("my_score", display_name="My score", color="tab:pink")
    def _my_score(context):
        return Scored(*(my_function(context.probabilities[part]) for part in SCORED_PARTS))

Methods run in registration order (`recommended`, which chooses among the others, runs last). This module
imports no TensorFlow: the scorers that train or run networks import what they need when called, so the CLI
can check `--methods` before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from emoconf_tf.confidence import (
    emoconfidnet_confidence, macro_gain, max_probability, negative_entropy, top2_margin,
)

SCORED_PARTS = ("validation", "test")
"""The splits every method scores: thresholds come from validation, metrics from test."""


@dataclasses.dataclass
class ScoringContext:
    """What a scorer may use for one (fold, seed, training) unit. Arrays are indexed by split name.

    Attributes:
        probabilities: float `[N, K]` classifier softmax per scored split (`"validation"`, `"test"`).
        p_hat: float `[N, K]` EmoConfidNet outputs per scored split (empty without AVD ratings: no head).
        predicted: int `[N]` predicted class per scored split.
        labels: int `[N]` labels per split (`"train"`, `"validation"`, `"test"`; test labels are for the
            evaluation only, a scorer must not read them).
        embedded: float `[N, 256]` penultimate embeddings per split (`"train"`, `"validation"`, `"test"`).
        distances: float `[N, K]` Manhattan AVD distances to the class centroids (`"train"`, `"validation"`;
            empty without AVD ratings).
        rows: int row indices of each split into `features`.
        features: the corpus feature matrix `[rows, D]`.
        classifier: the trained Keras classifier.
        config: the `ProtocolConfig` (training settings, MC-dropout passes, taus, rejection modes, ...).
        seed: the unit's seed.
        num_classes: K.
        methods: the methods asked for.
        has_avd: False for a corpus without AVD ratings: no EmoConfidNet head, no distances, and the
            `needs_avd` methods are not run.
        scores: per scored split, the scores computed so far, `{method: float [N]}`.
        artifacts: what scorers trained or chose that an export needs: `"ensemble_members"` (the extra Keras
            classifiers of `macro_gain_ensemble`), `"recommendation"` (`recommended`'s `Recommendation`).
    """

    probabilities: dict[str, np.ndarray]
    p_hat: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    embedded: dict[str, np.ndarray]
    distances: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    features: Any
    classifier: Any
    config: Any
    seed: int
    num_classes: int
    methods: tuple[str, ...]
    has_avd: bool = True
    scores: dict[str, dict[str, np.ndarray]] = dataclasses.field(
        default_factory=lambda: {part: {} for part in SCORED_PARTS})
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Scored:
    """A scorer's result: float `[N]` scores on validation and test, higher = more confident.

    `choice` (optional) is a row for choices.csv (`choice`, `rejection_mode`, `criterion`, `validation_value`)
    when the scorer chose something on validation; `rejection_modes` (optional) restricts the modes it is
    reported in (default: every mode of the protocol).
    """

    validation: np.ndarray
    test: np.ndarray
    choice: dict | None = None
    rejection_modes: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class ConfidenceMethod:
    """A registered method: its output name, its report display name and colour, its scorer, how an export
    serves it (`serving`: how the SavedModel computes it; `not_served`: why it cannot, when `serving` is None), and
    whether it is trained on AVD ratings (`needs_avd`: it cannot run on a corpus with categories only)."""

    name: str
    display_name: str
    color: str
    scorer: Callable[[ScoringContext], Scored]
    serving: str | None = None
    not_served: str = ""
    needs_avd: bool = False

    @property
    def servable(self) -> bool:
        return self.serving is not None


METHODS: dict[str, ConfidenceMethod] = {}
"""Every registered method by name, in the order they run."""


def register_method(name: str, *, display_name: str, color: str, serving: str | None = None,
                    not_served: str = "", needs_avd: bool = False) -> Callable:
    """Decorator registering `scorer(context) -> Scored` under `name`. Re-registering a name replaces it.

    `serving` says how a SavedModel computes the score (`emoconf_tf.serving.served_score` must implement it);
    None (default) = not servable, with `not_served` saying why (printed when `--score` asks for it).
    `needs_avd`: the scorer reads EmoConfidNet's outputs or the AVD distances, which a corpus without AVD ratings
    does not have (default False).
    """
    def decorate(scorer: Callable[[ScoringContext], Scored]) -> Callable[[ScoringContext], Scored]:
        METHODS[name] = ConfidenceMethod(name, display_name, color, scorer, serving, not_served, needs_avd)
        if "recommended" in METHODS and name != "recommended":  # recommended chooses among the others: last
            METHODS["recommended"] = METHODS.pop("recommended")
        return scorer
    return decorate


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in the order they run (`ALL_METHODS` plus any registered later)."""
    return tuple(METHODS)


def _on_outputs(function: Callable[..., np.ndarray], *, needs_p_hat: bool = False) -> Callable:
    def scorer(context: ScoringContext) -> Scored:
        return Scored(*(
            function(context.probabilities[part], context.p_hat[part]) if needs_p_hat
            else function(context.probabilities[part]) for part in SCORED_PARTS
        ))
    return scorer


register_method("emoconfidnet", display_name="EmoConfidNet", color="tab:red", needs_avd=True,
                serving="p_hat[c] of the EmoConfidNet head on the classifier's penultimate layer (the paper's)")(
    _on_outputs(emoconfidnet_confidence, needs_p_hat=True))
register_method("top2_margin", display_name="Baseline (top-2 margin)", color="tab:green",
                serving="the two largest softmax probabilities' difference (the paper's baseline)")(
    _on_outputs(top2_margin))
register_method("msp", display_name="Max softmax probability", color="tab:blue",
                serving="the largest softmax probability")(_on_outputs(max_probability))
register_method("entropy", display_name="Negative entropy", color="tab:cyan",
                serving="1 - H(softmax) / log K")(_on_outputs(negative_entropy))


@register_method("mc_dropout", display_name="MC dropout", color="tab:purple",
                 not_served="it needs T stochastic forward passes per request, and its scores differ run to run")
def _mc_dropout(context: ScoringContext) -> Scored:
    from emoconf_tf.evaluation.mc_dropout import mc_dropout_confidence, mc_dropout_probabilities

    out = []
    for part in SCORED_PARTS:
        passes = mc_dropout_probabilities(context.classifier, context.features, rows=context.rows[part],
                                          passes=context.config.mc_dropout_passes, seed=context.seed)
        out.append(mc_dropout_confidence(passes.mean(axis=0), context.predicted[part]))
    return Scored(*out)


@register_method("tcp", display_name="ConfidNet (TCP)", color="tab:brown",
                 not_served="its head is trained for the evaluation only and not kept in a run directory")
def _tcp(context: ScoringContext) -> Scored:
    from emoconf_tf.training import fit_tcp_head

    # ConfidNet's target: the classifier's probability of the true class (inference mode); the output layer
    # applied to the penultimate embedding is the classifier's softmax, since dropout is off at inference.
    output_layer = context.classifier.get_layer("probabilities")
    targets = {}
    for part in ("train", "validation"):
        probabilities = np.asarray(output_layer(context.embedded[part]))
        targets[part] = probabilities[np.arange(len(context.labels[part])), context.labels[part]]
    head, _ = fit_tcp_head(context.embedded["train"], targets["train"], context.embedded["validation"],
                           targets["validation"], context.config.training, seed=context.seed)
    return Scored(*(np.asarray(head(context.embedded[part], training=False))[:, 0].astype(np.float32)
                    for part in SCORED_PARTS))


@register_method("emoconfidnet_tau", display_name="EmoConfidNet (tuned tau)", color="tab:orange", needs_avd=True,
                 not_served="its retrained heads are for the evaluation only and not kept in a run directory")
def _emoconfidnet_tau(context: ScoringContext) -> Scored:
    """EmoConfidNet retrained with targets `softmax(-d / tau)` for each tau; validation AURC picks tau (1 included)."""
    from emoconf_tf.evaluation.selective import selective_summary
    from emoconf_tf.targets import softmax_of_negative
    from emoconf_tf.training import fit_confidence_head

    correct = context.predicted["validation"] == context.labels["validation"]
    emoconfidnet = context.scores["validation"]["emoconfidnet"]
    best_tau, best_value = 1.0, selective_summary(correct, emoconfidnet).aurc
    best = {part: context.scores[part]["emoconfidnet"] for part in SCORED_PARTS}
    for tau in context.config.taus:
        head, _ = fit_confidence_head(
            context.embedded["train"], softmax_of_negative(context.distances["train"], tau),
            context.embedded["validation"], softmax_of_negative(context.distances["validation"], tau),
            context.config.training, seed=context.seed,
        )
        tau_scores = {}
        for part in SCORED_PARTS:
            p_hat = np.asarray(head(context.embedded[part], training=False))
            tau_scores[part] = p_hat[np.arange(len(context.predicted[part])), context.predicted[part]]
        value = selective_summary(correct, tau_scores["validation"]).aurc
        if value < best_value - 1e-12:
            best_tau, best_value, best = tau, value, tau_scores
    choice = {"choice": f"tau={best_tau:g}", "rejection_mode": "", "criterion": "aurc", "validation_value": best_value}
    return Scored(*(best[part].astype(np.float32) for part in SCORED_PARTS), choice=choice)


def _macro_gain_of(context: ScoringContext, probabilities: dict[str, np.ndarray]) -> Scored:
    """`macro_gain` of the classifier's predictions, with class probabilities `probabilities` per scored split."""
    return Scored(*(macro_gain(probabilities[part], context.probabilities["validation"],
                               context.labels["validation"], predicted=context.predicted[part],
                               validation_predicted=context.predicted["validation"]) for part in SCORED_PARTS))


@register_method("macro_gain", display_name="Expected macro gain", color="tab:olive",
                 serving="the expected macro gain of the classifier's softmax, the validation precision, recall and "
                 "counts per class stored as constants")
def _macro_gain(context: ScoringContext) -> Scored:
    return _macro_gain_of(context, context.probabilities)


@register_method("macro_gain_ensemble", display_name="Expected macro gain (ensemble)", color="tab:gray",
                 serving="the expected macro gain of the mean softmax of the classifier and the ensemble members, "
                 "every member in the one graph (folded), the validation statistics as constants")
def _macro_gain_ensemble(context: ScoringContext) -> Scored:
    """`macro_gain` of the classifier's predictions with the class probabilities of a deep ensemble: the
    classifier and `config.ensemble_members - 1` more trained from other seeds (`evaluation/ensemble.py`)."""
    from emoconf_tf.evaluation.ensemble import ensemble_probabilities

    members = context.artifacts.setdefault("ensemble_members", [])
    probabilities = ensemble_probabilities(
        context.probabilities, context.features, context.labels, context.rows, context.num_classes,
        context.config.training, seed=context.seed, members=context.config.ensemble_members, trained=members,
    )
    return _macro_gain_of(context, probabilities)


@register_method("recommended", display_name="Recommended (mode chosen on validation)", color="black",
                 serving="the servable score (or blend on validation quantiles) and rejection mode chosen on "
                 "validation by `emoconf train`, by the same rule as `reproduce`")
def _recommended(context: ScoringContext) -> Scored:
    """The score and rejection mode validation chooses among the other methods asked for (`recommended.py`)."""
    from emoconf_tf.evaluation.recommended import choose_recommended, recommended_confidence

    pool = {m: v for m, v in context.scores["validation"].items() if m in context.methods and m != "recommended"}
    choice = choose_recommended(context.labels["validation"], context.predicted["validation"], pool,
                                num_classes=context.num_classes, modes=context.config.rejection_modes,
                                criterion=context.config.recommend_by, seed=context.seed)
    context.artifacts["recommendation"] = choice
    row = {"choice": choice.name, "rejection_mode": choice.rejection_mode, "criterion": choice.criterion,
           "validation_value": choice.validation_value}
    return Scored(*(recommended_confidence(choice.components, pool, context.scores[part]).astype(np.float32)
                    for part in SCORED_PARTS), choice=row, rejection_modes=(choice.rejection_mode,))


PAPER_METHODS = ("emoconfidnet", "top2_margin")
"""The paper's pair: EmoConfidNet and its baseline, the top-two margin. Always computed (EmoConfidNet when the
corpus has AVD ratings)."""
ALL_METHODS = method_names()
"""Every built-in confidence method, by its `method` name in the outputs, in the order they run."""


NO_AVD_REASON = "the corpus has no AVD ratings, which its targets are computed from"
"""Why a method with `needs_avd` is left out on a corpus with categories only (messages and reports say it)."""


def avd_methods() -> tuple[str, ...]:
    """The registered methods trained on AVD ratings (`ConfidenceMethod.needs_avd`), in registry order."""
    return tuple(name for name, method in METHODS.items() if method.needs_avd)


def servable_methods(*, has_avd: bool = True) -> tuple[str, ...]:
    """The registered methods a SavedModel can serve (`ConfidenceMethod.servable`), in registry order; with
    `has_avd` False, only those a run without AVD ratings has (no `needs_avd` method)."""
    return tuple(name for name, method in METHODS.items() if method.servable and (has_avd or not method.needs_avd))


def check_servable(name: str, option: str = "--score", *, has_avd: bool = True) -> str:
    """`name` if it is a servable method (of a run with AVD ratings unless `has_avd` is False), else `EmoconfError`
    in one line saying why not and what can be served."""
    from emoconf_tf.errors import EmoconfError

    method = METHODS.get(name)
    if method is None or not method.servable:
        why = f" cannot be served: {method.not_served}" if method is not None else " is not a confidence score"
        raise EmoconfError(f"{option} {name}:{why}; choose one of {', '.join(servable_methods(has_avd=has_avd))}")
    if method.needs_avd and not has_avd:
        raise EmoconfError(f"{option} {name}: not available: {NO_AVD_REASON}; choose one of "
                           f"{', '.join(servable_methods(has_avd=False))}")
    return name


DEFAULT_SERVED_SCORE = "recommended"
"""What `emoconf train` / `export` serve unless `--score` says otherwise."""
