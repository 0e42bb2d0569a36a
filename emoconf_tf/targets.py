"""EmoConfidNet's confidence targets: per-category AVD centroids, Manhattan distances, softmax(-d)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emoconf_tf.errors import EmoconfError


def class_centroids(labels: Sequence[str] | np.ndarray, avd: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Mean AVD vector of each category.

    Args:
        labels: str `[N]` category names (or int `[N]` ids into `class_names`).
        avd: float `[N, 3]`, arousal, valence, dominance on the corpus scale.
        class_names: the K categories, in output order.

    Returns:
        float64 `[K, 3]`, row k the centroid of `class_names[k]`.

    Raises:
        EmoconfError: if a category has no rows.
    """
    labels = _label_names(labels, class_names)
    avd = np.asarray(avd, dtype=np.float64)
    if avd.ndim != 2 or avd.shape[1] != 3 or avd.shape[0] != labels.shape[0]:
        raise EmoconfError(f"avd must be [N, 3] with N = {labels.shape[0]} labels; got {avd.shape}")
    centroids = np.empty((len(class_names), 3), dtype=np.float64)
    for k, name in enumerate(class_names):
        rows = labels == name
        if not rows.any():
            raise EmoconfError(
                f"class {name!r} has no training rows (after filtering), so it has no AVD centroid; "
                "drop it with --classes or loosen the filter"
            )
        centroids[k] = avd[rows].mean(axis=0)
    return centroids


def manhattan_distances(avd: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """L1 distance of each AVD vector `[N, 3]` to each centroid `[K, 3]` -> `[N, K]` (scale units)."""
    avd = np.asarray(avd, dtype=np.float64)
    return np.abs(avd[:, None, :] - np.asarray(centroids, dtype=np.float64)[None, :, :]).sum(axis=-1)


def softmax_of_negative(distances: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """`softmax(-d / temperature)` along the last axis, computed stably. `[N, K]` -> `[N, K]`."""
    logits = -np.asarray(distances, dtype=np.float64) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def confidence_targets(
    labels: Sequence[str] | np.ndarray,
    avd_train: np.ndarray,
    avd: np.ndarray,
    class_names: Sequence[str],
) -> np.ndarray:
    """EmoConfidNet targets `p = softmax(-d)` for the rows of `avd`.

    Centroids come from the training rows (`labels`, `avd_train`); `d[n, k]` is the Manhattan
    distance of `avd[n]` to the centroid of class k.

    Args:
        labels: str `[M]` training category names (or int ids into `class_names`).
        avd_train: float `[M, 3]` training AVD (arousal, valence, dominance).
        avd: float `[N, 3]` AVD of the rows to compute targets for.
        class_names: the K categories, in output order.

    Returns:
        float32 `[N, K]`; each row sums to 1.
    """
    centroids = class_centroids(labels, avd_train, class_names)
    avd = np.asarray(avd, dtype=np.float64)
    if avd.ndim != 2 or avd.shape[1] != 3:
        raise EmoconfError(f"avd must be [N, 3] (arousal, valence, dominance); got {avd.shape}")
    return softmax_of_negative(manhattan_distances(avd, centroids)).astype(np.float32)


def _label_names(labels, class_names: Sequence[str]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise EmoconfError(f"label ids must lie in [0, {len(class_names)}); got {labels.min()}..{labels.max()}")
        return np.asarray(class_names, dtype=object)[labels].astype(str)
    return labels.astype(str)
