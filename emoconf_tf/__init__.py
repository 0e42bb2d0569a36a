"""emoconf-tf: confidence-aware speech emotion recognition (EmoConfidNet) in TensorFlow/Keras.

Public names are imported lazily (PEP 562) so that `emoconf --help` and the NumPy-only parts of
the method do not pay for importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Corpus": "emoconf_tf.corpus",
    "read_features_table": "emoconf_tf.corpus",
    "EmoconfError": "emoconf_tf.errors",
    "ConflictRule": "emoconf_tf.filtering",
    "PAPER_RULES": "emoconf_tf.filtering",
    "conflict_mask": "emoconf_tf.filtering",
    "class_centroids": "emoconf_tf.targets",
    "confidence_targets": "emoconf_tf.targets",
    "PairwiseConfidenceLoss": "emoconf_tf.losses",
    "build_classifier": "emoconf_tf.models",
    "build_confidence_head": "emoconf_tf.models",
    "build_emoconfidnet": "emoconf_tf.models",
    "TrainingConfig": "emoconf_tf.settings",
    "fit_classifier": "emoconf_tf.training",
    "fit_emoconfidnet": "emoconf_tf.training",
    "emoconfidnet_confidence": "emoconf_tf.scores",
    "top2_margin": "emoconf_tf.scores",
    "rejection_threshold": "emoconf_tf.thresholds",
    "rejection_thresholds": "emoconf_tf.thresholds",
    "selective_scores": "emoconf_tf.metrics",
    "ProtocolConfig": "emoconf_tf.settings",
    "run_protocol": "emoconf_tf.evaluation.protocol",
    "make_synthetic_corpus": "emoconf_tf.synthetic",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'emoconf_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
