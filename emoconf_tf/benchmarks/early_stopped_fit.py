"""Bench, part of `training`: the protocol's early-stopped fit, `epoch_loop.fit_early_stopped` (ours) against
Keras's `model.fit` with `EarlyStopping` on the same `row_batches` (`training.keras_fit_early_stopped`, the
baseline: what `training` ran before).

Each round builds the classifier afresh from the same seed and fits it both ways, the baseline first, on an
IEMOCAP-sized synthetic set (`BenchSize.small_features` features; 4,667 training and 1,348 validation rows at full
size, as IEMOCAP's fold 0): the time of one fit includes what a fresh network costs in the protocol (tracing its
functions), so it is the time the protocol pays per network. Patience equals the epochs, so both run every epoch.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

# (key, label, format) rows of the bench table, after the training rows
TABLE_ROWS = (
    ("early_stopped_fit_s", "training: early-stopped fit, IEMOCAP size (epoch_loop)", "{:.2f} s"),
    ("early_stopped_keras_fit_s", "  baseline: Keras model.fit + EarlyStopping", "{:.2f} s"),
    ("early_stopped_fit_speedup", "  Keras / epoch_loop time", "{:.2f}x"),
    ("early_stopped_fit_identical", "  weights identical, epoch_loop vs Keras", "yes/no"),
)


def early_stopped_fit_figures(size, log: Callable[[str], None]) -> dict:
    """Seconds of one early-stopped classifier fit, ours and Keras's (best of `size.rounds` alternating rounds),
    their ratio, and whether every round gave bit-identical weights."""
    import keras

    from emoconf_tf.epoch_loop import fit_early_stopped
    from emoconf_tf.models import build_classifier
    from emoconf_tf.training import keras_fit_early_stopped

    train_rows = {"full": 4667, "quick": 1200}.get(size.name, 200)
    validation_rows = max(50, train_rows * 1348 // 4667)
    epochs = {"full": 30, "quick": 15}.get(size.name, 2)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, train_rows + validation_rows)
    features = rng.standard_normal((labels.size, size.small_features), dtype=np.float32)
    features[np.arange(labels.size), labels % size.small_features] += 1.0
    targets = np.eye(5, dtype=np.float32)[labels]
    train, validation = np.arange(train_rows), np.arange(train_rows, labels.size)
    mean, variance = features[train].mean(0), features[train].var(0)

    def fresh():
        keras.utils.set_random_seed(0)
        return build_classifier(mean, variance, 5, seed=0)

    def fitted(fit):
        model = fresh()
        fit(model, features, targets[train], features, targets[validation], rows=train, validation_rows=validation,
            batch_size=128, max_epochs=epochs, patience=epochs, reshuffle_each_epoch=True, seed=0)
        return model

    seconds: dict[str, list[float]] = {"keras": [], "ours": []}
    identical = True
    for round_ in range(size.rounds):
        weights = {}
        for name, fit in (("keras", keras_fit_early_stopped), ("ours", fit_early_stopped)):
            start = time.perf_counter()
            weights[name] = fitted(fit).get_weights()
            seconds[name].append(time.perf_counter() - start)
        identical &= all(a.tobytes() == b.tobytes() for a, b in zip(weights["keras"], weights["ours"]))
        log(f"  round {round_ + 1}: early-stopped fit of {epochs} epochs, {train_rows} rows: Keras "
            f"{seconds['keras'][-1]:.2f} s, epoch_loop {seconds['ours'][-1]:.2f} s")
    best = {name: min(values) for name, values in seconds.items()}
    return {
        "early_stopped_fit_s": best["ours"],
        "early_stopped_keras_fit_s": best["keras"],
        "early_stopped_fit_speedup": best["keras"] / best["ours"],
        "early_stopped_fit_identical": bool(identical),
    }
