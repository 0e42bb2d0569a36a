"""Serialized `tf.Example`s, the input of an export's `serving_default` signature: one per utterance, its D raw
features in the float_list feature `features` (`EXAMPLE_FEATURE_KEY`), in the order of `assets/feature_names.txt`."""

from __future__ import annotations

import numpy as np

from emoconf_tf.errors import EmoconfError

EXAMPLE_FEATURE_KEY = "features"


def serialize_examples(features: np.ndarray) -> list[bytes]:
    """Serialized `tf.Example`s for `serving_default`: one per row, float_list feature `features`.

    Args:
        features: float `[N, D]` raw features in the order of `feature_names.txt`.

    Returns:
        N serialized `tf.Example` protos (bytes).
    """
    import tensorflow as tf

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise EmoconfError(f"features: expected a [N, D] array, got shape {features.shape}")
    return [
        tf.train.Example(features=tf.train.Features(feature={
            EXAMPLE_FEATURE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=row))})).SerializeToString()
        for row in features
    ]
