"""The built-in confidence methods, registered in the order they run (`settings.ALL_METHODS`, checked below).

Importing this module registers them; `emoconf_tf.scores` does on import. The scorers that train networks (`tcp`,
`emoconfidnet_tau`, through `ensemble.py` `macro_gain_ensemble`) import `emoconf_tf.training`, and `mc_dropout` runs
Keras, only when called: this module stays TensorFlow-free, so the CLI can check `--methods` before TensorFlow loads.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from emoconf_tf.scores.context import SCORED_PARTS, Scored, ScoringContext
from emoconf_tf.scores.ensemble import ensemble_probabilities
from emoconf_tf.scores.functions import emoconfidnet_confidence, max_probability, negative_entropy, top2_margin
from emoconf_tf.scores.macro_gain import macro_gain
from emoconf_tf.scores.mc_dropout import mc_dropout_confidence, mc_dropout_probabilities
from emoconf_tf.scores.recommended import choose_recommended, recommended_confidence
from emoconf_tf.scores.registry import method_names, register_method
from emoconf_tf.selective import selective_summary
from emoconf_tf.settings import ALL_METHODS
from emoconf_tf.targets import softmax_of_negative


def _on_outputs(function: Callable[..., np.ndarray], *, needs_p_hat: bool = False) -> Callable:
    """A scorer applying `function` to the classifier's softmax (and EmoConfidNet's `p_hat`) of each scored split."""
    def scorer(context: ScoringContext) -> Scored:
        if needs_p_hat:
            return Scored.from_parts(lambda part: function(context.probabilities[part], context.p_hat[part]))
        return Scored.from_parts(lambda part: function(context.probabilities[part]))
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
    def score(part: str) -> np.ndarray:
        passes = mc_dropout_probabilities(context.classifier, context.features, rows=context.rows[part],
                                          passes=context.config.mc_dropout_passes, seed=context.seed)
        return mc_dropout_confidence(passes.mean(axis=0), context.predicted[part])
    return Scored.from_parts(score)


@register_method("tcp", display_name="ConfidNet (TCP)", color="tab:brown",
                 not_served="its head is trained for the evaluation only and not kept in a run directory")
def _tcp(context: ScoringContext) -> Scored:
    from emoconf_tf.training import fit_tcp_head  # TensorFlow only when training

    # ConfidNet's target: the classifier's probability of the true class (inference mode); the output layer
    # applied to the penultimate embedding is the classifier's softmax, since dropout is off at inference.
    output_layer = context.classifier.get_layer("probabilities")
    targets = {}
    for part in ("train", "validation"):
        probabilities = np.asarray(output_layer(context.embedded[part]))
        targets[part] = probabilities[np.arange(len(context.labels[part])), context.labels[part]]
    head, _ = fit_tcp_head(context.embedded["train"], targets["train"], context.embedded["validation"],
                           targets["validation"], context.config.training, seed=context.seed)
    return Scored.from_parts(
        lambda part: np.asarray(head(context.embedded[part], training=False))[:, 0].astype(np.float32))


@register_method("emoconfidnet_tau", display_name="EmoConfidNet (tuned tau)", color="tab:orange", needs_avd=True,
                 not_served="its retrained heads are for the evaluation only and not kept in a run directory")
def _emoconfidnet_tau(context: ScoringContext) -> Scored:
    """EmoConfidNet retrained with targets `softmax(-d / tau)` for each tau; validation AURC picks tau (1 included)."""
    from emoconf_tf.training import fit_confidence_head  # TensorFlow only when training

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
    return Scored.from_parts(lambda part: best[part].astype(np.float32), choice=choice)


def _macro_gain_of(context: ScoringContext, probabilities: dict[str, np.ndarray]) -> Scored:
    """`macro_gain` of the classifier's predictions, with class probabilities `probabilities` per scored split."""
    return Scored.from_parts(lambda part: macro_gain(
        probabilities[part], context.probabilities["validation"], context.labels["validation"],
        predicted=context.predicted[part], validation_predicted=context.predicted["validation"]))


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
    classifier and `config.ensemble_members - 1` more trained from other seeds (`ensemble.py`)."""
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
    pool = {m: v for m, v in context.scores["validation"].items() if m in context.methods and m != "recommended"}
    choice = choose_recommended(context.labels["validation"], context.predicted["validation"], pool,
                                num_classes=context.num_classes, modes=context.config.rejection_modes,
                                criterion=context.config.recommend_by, seed=context.seed)
    context.artifacts["recommendation"] = choice
    row = {"choice": choice.name, "rejection_mode": choice.rejection_mode, "criterion": choice.criterion,
           "validation_value": choice.validation_value}
    return Scored.from_parts(
        lambda part: recommended_confidence(choice.components, pool, context.scores[part]).astype(np.float32),
        choice=row, rejection_modes=(choice.rejection_mode,))


if method_names() != ALL_METHODS:  # settings lists the built-in scores for the CLI, before this module loads
    raise RuntimeError(f"the built-in scores {method_names()} differ from settings.ALL_METHODS {ALL_METHODS}")
