"""Confidence scores: the score functions (`functions`, `macro_gain`), MC dropout (`mc_dropout`), deep-ensemble
probabilities (`ensemble`), the validation-chosen `recommended` score (`recommended`), and the registry of the
methods the protocol evaluates (`registry`, `context`; the built-in ones in `builtin`). TensorFlow-free on import.
"""

from emoconf_tf.scores import builtin  # noqa: F401  (registers the built-in methods)
from emoconf_tf.scores.context import SCORED_PARTS, Scored, ScoringContext
from emoconf_tf.scores.ensemble import ensemble_probabilities, mean_softmax, member_seeds
from emoconf_tf.scores.functions import (
    emoconfidnet_confidence, max_probability, negative_entropy, predicted_class, top2_margin, validation_quantile,
)
from emoconf_tf.scores.macro_gain import (
    MacroGainStatistics, macro_gain, macro_gain_from_statistics, macro_gain_statistics,
)
from emoconf_tf.scores.mc_dropout import mc_dropout_confidence, mc_dropout_probabilities
from emoconf_tf.scores.recommended import Recommendation, choose_recommended, recommended_confidence
from emoconf_tf.scores.registry import (
    METHODS, NO_AVD_REASON, ConfidenceMethod, avd_methods, check_methods, check_servable, method_names,
    register_method, servable_methods,
)

__all__ = [
    "METHODS", "NO_AVD_REASON", "SCORED_PARTS", "ConfidenceMethod", "MacroGainStatistics", "Recommendation",
    "Scored", "ScoringContext", "avd_methods", "check_methods", "check_servable", "choose_recommended",
    "emoconfidnet_confidence", "ensemble_probabilities", "macro_gain", "macro_gain_from_statistics",
    "macro_gain_statistics", "max_probability", "mc_dropout_confidence", "mc_dropout_probabilities", "mean_softmax",
    "member_seeds", "method_names", "negative_entropy", "predicted_class", "recommended_confidence",
    "register_method", "servable_methods", "top2_margin", "validation_quantile",
]
