"""Bench, part `training`: Keras `model.fit` of the classifier (batch 256, D = 6,373) against the rate that a
bare chain of `tf.matmul`s of the same shapes, forward and backward in one `tf.function`, reaches here (the
roofline: the model's matmul FLOPs per sample divided by that measured FLOP/s; `roofline.MatmulRoofline`), and
against scikit-learn's `MLPClassifier` with the same layer sizes, the alternative a user might pick.

The part's third comparison, the protocol's early-stopped fit against Keras's, is `early_stopped_fit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from emoconf_tf.benchmarks.roofline import MatmulRoofline, layer_shapes
from emoconf_tf.benchmarks.sizes import BATCH_SIZE, NUM_CLASSES, UNITS, BenchSize


def keras_fit_rate(size: BenchSize, log: Callable[[str], None]) -> dict:
    """`model.fit` of the classifier (numpy in, shuffled, batch 256) against the matmul roofline, alternately."""
    import keras

    from emoconf_tf.models import build_classifier

    rng = np.random.default_rng(0)
    n = size.fit_batches * BATCH_SIZE
    features = rng.standard_normal((n, size.num_features), dtype=np.float32)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, n)]
    roofline = MatmulRoofline(layer_shapes(size.num_features))
    keras.utils.set_random_seed(0)
    model = build_classifier(np.zeros(size.num_features), np.ones(size.num_features), NUM_CLASSES, seed=0)
    # Baseline: the same model with Keras's default of one step (one Python round trip) per call.
    baseline = build_classifier(np.zeros(size.num_features), np.ones(size.num_features), NUM_CLASSES, seed=0)
    baseline.compile(optimizer=model.optimizer.__class__.from_config(model.optimizer.get_config()),
                     loss=keras.losses.CategoricalCrossentropy(),
                     metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], steps_per_execution=1)

    class EpochSeconds(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    def epoch_rate(fitted) -> float:
        seconds.clear()
        fitted.fit(features, onehot, batch_size=BATCH_SIZE, epochs=2, shuffle=True, verbose=0,
                   callbacks=[EpochSeconds()])
        return n / min(seconds)

    seconds: list[float] = []
    for fitted in (model, baseline):  # trace outside the timings
        fitted.fit(features[:BATCH_SIZE * 2], onehot[:BATCH_SIZE * 2], batch_size=BATCH_SIZE, epochs=1, verbose=0)
    fit_rates, baseline_rates, roof_rates = [], [], []
    for round_ in range(size.rounds):
        roof_rates.append(roofline.samples_per_s(backward=True, steps=size.fit_batches))
        fit_rates.append(epoch_rate(model))
        baseline_rates.append(epoch_rate(baseline))
        log(f"  round {round_ + 1}: fit {fit_rates[-1]:,.0f} samples/s (baseline, 1 step per call "
            f"{baseline_rates[-1]:,.0f}), roofline {roof_rates[-1]:,.0f}")
    train_rate, roof_rate = max(fit_rates), max(roof_rates)
    return {
        "train_samples_per_s": train_rate,
        "roofline_samples_per_s": roof_rate,
        "roofline_gflops": roofline.gflops(roof_rate, backward=True),
        "train_vs_roofline": train_rate / roof_rate,
        "train_steps1_vs_roofline": max(baseline_rates) / roof_rate,
    }


def sklearn_fit_rate(size: BenchSize) -> dict:
    """scikit-learn `MLPClassifier` (256, 256), Adam, batch 256, two epochs: samples per second (best of rounds)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(1)
    n = size.sklearn_samples
    features = rng.standard_normal((n, size.num_features), dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, n)
    best = 0.0
    for _ in range(max(1, size.rounds - 1)):
        model = MLPClassifier(hidden_layer_sizes=(UNITS, UNITS), batch_size=BATCH_SIZE, learning_rate_init=1e-4,
                              max_iter=2, shuffle=True, random_state=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features, labels)
        best = max(best, 2 * n / (time.perf_counter() - start))
    return {"sklearn_samples_per_s": best}
