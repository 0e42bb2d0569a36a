"""Performance figures on this machine: training, serving, feature extraction and the paper's protocol.

`run_bench` measures, `bench_table` prints; `emoconf bench` is the command. Timings depend on the machine
and on what else runs on it, so every figure that has a target is a *ratio* against a reference measured
in the same run, on the same cores, a moment apart:

- training: Keras `model.fit` of the classifier (batch 256, D = 6,373) against the rate that a bare chain
  of `tf.matmul`s of the same shapes, forward and backward in one `tf.function`, reaches here (the
  roofline: the model's matmul FLOPs per sample divided by that measured FLOP/s), and against
  scikit-learn's `MLPClassifier` with the same layer sizes, the alternative a user might pick;
- serving: batch-1 latency (p50, p99) of the exported `serving_default` signature (serialized `tf.Example`
  in), in process; batch-256 throughput against a forward-only matmul chain; `model.predict` on one sample.
  One run trained as `emoconf train` trains it (the default score, `recommended`, with its ensemble members) is
  exported as the paper's single network (`--score emoconfidnet`, the figures with targets; also with
  `--no-fold`, their baseline) and as the default export (what `recommended` chose, usually
  `macro_gain_ensemble`: three classifiers in one graph), timed in turns so that the ratio default / paper is
  of one moment of the machine;
- extraction: openSMILE ComParE-2016 real-time factor with one worker, and the speed-up with two;
- protocol: wall time of the paper's protocol (raw + filtered training, EmoConfidNet and the top-two
  margin) on an MSP-Podcast-sized synthetic corpus (34,000 / 7,000 / 10,000 utterances, 6,373 features),
  its peak resident memory against the size of the feature matrix, and the exponent of its time against
  the corpus size;
- protocol_small: the protocol with every confidence score (`ALL_METHODS`) on an IEMOCAP-development-sized
  synthetic corpus (7,000 utterances, 47 features, five session groups: `cv="group"`, 5 folds), run serially
  (`jobs=1`, the baseline) and then with worker processes (`jobs=2`, or `--jobs`), each in its own process:
  the wall time of each and their ratio, the peak of the RSS summed over each run's process tree (the
  protocol's process and its workers) and whether the two runs' `results.csv` are identical. Only when asked
  for (`parts=PARTS`, `--parts protocol_small`): it is not one of `DEFAULT_PARTS`.

On a shared machine every timing is the best of a few repeats (other work only ever slows a run down),
and a rate and its reference are measured alternately.

Example:

```python
from emoconf_tf.benchmarks.harness import bench_table, run_bench

results = run_bench("quick")
print(bench_table(results))
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from emoconf_tf.benchmarks.early_stopped_fit import TABLE_ROWS as EARLY_STOPPED_FIT_ROWS
from emoconf_tf.benchmarks.early_stopped_fit import early_stopped_fit_figures
from emoconf_tf.errors import EmoconfError


@dataclasses.dataclass(frozen=True)
class BenchSize:
    """How much work each part of the bench does.

    Args:
        name: `"full"`, `"quick"` or `"tiny"`.
        train, validation, test: utterances of the protocol's synthetic corpus in each split.
        num_features: feature dimension D of every part (6,373, ComParE-2016).
        rounds: alternating repeats of each rate and its reference (the best of each is kept).
        fit_batches: batches of 256 in one timed `model.fit` epoch.
        sklearn_samples: rows `MLPClassifier` is fitted on (two epochs).
        serving_calls: batch-1 calls timed for the latency percentiles.
        serving_utterances: size of the corpus the exported model is trained on (2 epochs).
        extract_files: generated wav files per extraction timing; extract_seconds: their length;
        extract_rounds: repeats of the 1- and 2-worker timings.
        scaling_divisor: the protocol's second size is the corpus divided by this.
        scaling_epochs: fixed epochs (no early stopping) of both scaling runs.
        max_epochs: default upper bound on the protocol's epochs (early stopping ends it sooner).
        overlap_protocol: run the protocol process alongside the other parts (for sizes whose timings do not
            matter: it shares the cores with them).
        small_utterances: rows of the `protocol_small` corpus (7,000, IEMOCAP's development corpus).
        small_features: its feature dimension (47, the IEMOCAP features of the real-data run in docs/results.md).
        small_methods: the confidence methods it evaluates; None (default) is every one, `ALL_METHODS`.
        small_folds: its five session groups gathered into this many folds (`ProtocolConfig.folds`); None
            (default): one fold per session, 5.
        small_trainings: its trainings, default raw and filtered.
    """

    name: str
    train: int
    validation: int
    test: int
    num_features: int = 6373
    rounds: int = 3
    fit_batches: int = 40
    sklearn_samples: int = 4096
    serving_calls: int = 1000
    serving_utterances: int = 600
    extract_files: int = 16
    extract_seconds: float = 3.0
    extract_rounds: int = 5
    scaling_divisor: int = 4
    scaling_epochs: int = 4
    max_epochs: int = 200
    overlap_protocol: bool = False
    small_utterances: int = 7000
    small_features: int = 47
    small_methods: tuple[str, ...] | None = None
    small_folds: int | None = None
    small_trainings: tuple[str, ...] = ("raw", "filtered")

    @property
    def utterances(self) -> int:
        return self.train + self.validation + self.test


SIZES = {
    "full": BenchSize("full", 34000, 7000, 10000),
    "quick": BenchSize("quick", 3400, 700, 1000, rounds=3, fit_batches=24, sklearn_samples=2048, serving_calls=500,
                       extract_files=8, scaling_epochs=4, small_utterances=700),
    # for the test suite: every key, no meaningful timing (protocol_small: 3 units, 1 epoch, where two processes
    # importing TensorFlow, and two workers doing so again, take most of the time)
    "tiny": BenchSize("tiny", 340, 70, 100, rounds=1, fit_batches=3, sklearn_samples=256, serving_calls=20,
                      serving_utterances=200, extract_files=2, extract_seconds=1.0, extract_rounds=1, scaling_divisor=2,
                      scaling_epochs=1, max_epochs=1, overlap_protocol=True, small_utterances=300,
                      small_methods=("emoconfidnet", "top2_margin", "msp"), small_folds=3, small_trainings=("raw",)),
}

PARTS = ("training", "serving", "extraction", "protocol", "protocol_small")
# protocol_small only when asked for: every method, twice, at IEMOCAP size is longer than the rest together
DEFAULT_PARTS = ("training", "serving", "extraction", "protocol")
BATCH_SIZE = 256
UNITS = 256
NUM_CLASSES = 5
HEAD_SHAPES = ((UNITS, UNITS), (UNITS, UNITS), (UNITS, NUM_CLASSES))  # EmoConfidNet's head on the penultimate layer
FULL_PROTOCOL_SECONDS = 600.0
RSS_POLL_S = 0.2  # protocol_small: seconds between two readings of its process tree's RSS


@dataclasses.dataclass(frozen=True)
class Target:
    """A target on one figure: `value <op> bound`, e.g. `train_vs_roofline >= 0.7`."""

    key: str
    op: str  # ">=" or "<="
    bound: float
    text: str
    full_size_only: bool = False
    relative_to: str | None = None  # the bound is `bound * results[relative_to]`

    def met(self, results: dict) -> bool | None:
        """True/False, or None when the target does not apply (e.g. a full-size target on a smaller run)."""
        if self.full_size_only and results.get("bench_full_size") != 1:
            return None
        bound = self.bound * (results[self.relative_to] if self.relative_to else 1.0)
        return results[self.key] >= bound if self.op == ">=" else results[self.key] <= bound


TARGETS = (
    Target("train_vs_roofline", ">=", 0.7, ">= 0.7"),
    Target("serving_p50_ms", "<=", 0.5, "<= 0.5 ms"),
    Target("serving_vs_roofline", ">=", 0.8, ">= 0.8"),
    Target("extract_speedup_2", ">=", 1.9, ">= 1.9"),
    Target("protocol_s", "<=", FULL_PROTOCOL_SECONDS, "< 600 s (full size)", full_size_only=True),
    Target("peak_rss_gb", "<=", 1.5, "<= 1.5 x features_gb", relative_to="features_gb"),
    Target("scaling_exponent", "<=", 1.1, "<= 1.1"),
)

# (key, label, format) in table order; keys without a target are context for the ones with one.
TABLE_ROWS = (
    ("train_samples_per_s", "training: Keras model.fit, batch 256", "{:,.0f} samples/s"),
    ("roofline_samples_per_s", "training: matmul-chain roofline (fwd + bwd)", "{:,.0f} samples/s"),
    ("roofline_gflops", "  measured matmul FLOP/s (fwd + bwd)", "{:,.1f} GFLOP/s"),
    ("train_vs_roofline", "training: fit / roofline", "{:.2f}"),
    ("train_steps1_vs_roofline", "  baseline: Keras default, steps_per_execution=1", "{:.2f}"),
    ("sklearn_samples_per_s", "training: scikit-learn MLPClassifier", "{:,.0f} samples/s"),
    ("train_vs_sklearn", "training: fit / scikit-learn", "{:.1f}x"),
    *EARLY_STOPPED_FIT_ROWS,
    # serving_*: the paper export (--score emoconfidnet: the classifier and EmoConfidNet's head, as before
    # scores could be served); serving_default_export_*: the default export of the same run (recommended).
    ("serving_p50_ms", "serving_default batch 1, p50, paper export", "{:.3f} ms"),
    ("serving_p99_ms", "serving_default batch 1, p99, paper export", "{:.3f} ms"),
    ("serving_unfolded_p50_ms", "  baseline: not folded (--no-fold), p50", "{:.3f} ms"),
    ("signature_call_floor_ms", "  empty signature call, p50 (TF floor)", "{:.3f} ms"),
    ("matmul_chain_b1_p50_ms", "  bare 6-matmul chain batch 1, p50 (floor)", "{:.3f} ms"),
    ("serving_default_export_score", "default export serves", "{}"),
    ("serving_default_export_classifiers", "  classifiers in its graph (1 + ensemble members)", "{:.0f}"),
    ("serving_default_export_p50_ms", "serving_default batch 1, p50, default export", "{:.3f} ms"),
    ("serving_p50_ms", "  baseline: paper export (--score emoconfidnet)", "{:.3f} ms"),
    ("serving_default_export_vs_paper_p50", "  default / paper, p50", "{:.2f}x"),
    ("serving_default_export_p99_ms", "serving_default batch 1, p99, default export", "{:.3f} ms"),
    ("serving_p99_ms", "  baseline: paper export (--score emoconfidnet)", "{:.3f} ms"),
    ("serving_default_export_vs_paper_p99", "  default / paper, p99", "{:.2f}x"),
    ("serving_default_export_flops_vs_paper", "  forward matmul FLOPs per sample, default / paper", "{:.2f}x"),
    ("ensemble_chain_b1_p50_ms", "  bare matmul chains of its classifiers + head, p50", "{:.3f} ms"),
    ("serving_1thread_p50_ms", "serving_default batch 1, p50, 1 thread, paper export", "{:.3f} ms"),
    ("serving_1thread_p99_ms", "serving_default batch 1, p99, 1 thread, paper export", "{:.3f} ms"),
    ("signature_call_floor_1thread_ms", "  empty signature call, p50, 1 thread", "{:.3f} ms"),
    ("matmul_chain_b1_1thread_p50_ms", "  bare 6-matmul chain batch 1, p50, 1 thread", "{:.3f} ms"),
    ("serving_default_export_1thread_p50_ms", "serving_default batch 1, p50, 1 thread, default export", "{:.3f} ms"),
    ("serving_default_export_1thread_p99_ms", "serving_default batch 1, p99, 1 thread, default export", "{:.3f} ms"),
    ("serving_default_export_vs_paper_1thread_p50", "  default / paper, p50, 1 thread", "{:.2f}x"),
    ("ensemble_chain_b1_1thread_p50_ms", "  bare matmul chains of its classifiers + head, 1 thread", "{:.3f} ms"),
    ("keras_predict_p50_ms", "Keras model.predict batch 1, p50", "{:.1f} ms"),
    ("serving_batch256_samples_per_s", "serving_default batch 256, paper export", "{:,.0f} samples/s"),
    ("serving_unfolded_batch256_samples_per_s", "  baseline: not folded (--no-fold)", "{:,.0f} samples/s"),
    ("predict_batch256_samples_per_s", "  predict signature (float32 in) batch 256", "{:,.0f} samples/s"),
    ("forward_roofline_samples_per_s", "forward matmul roofline (classifier + head)", "{:,.0f} samples/s"),
    ("serving_vs_roofline", "serving batch 256 / forward roofline", "{:.2f}"),
    ("serving_default_export_batch256_samples_per_s", "serving_default batch 256, default export",
     "{:,.0f} samples/s"),
    ("serving_batch256_samples_per_s", "  baseline: paper export (--score emoconfidnet)", "{:,.0f} samples/s"),
    ("serving_default_export_vs_paper_batch256", "  default / paper", "{:.2f}x"),
    ("extract_rtf_1", "openSMILE ComParE-2016 RTF, 1 worker", "{:.4f}"),
    ("extract_speedup_2", "openSMILE speed-up with 2 workers", "{:.2f}x"),
    ("parallel_reference_speedup_2", "  GIL-free C reference speed-up, 2 threads", "{:.2f}x"),
    ("protocol_utterances", "protocol corpus (train + validation + test)", "{:,.0f} utterances"),
    ("protocol_s", "protocol wall time (PAPER_METHODS)", "{:,.1f} s"),
    ("protocol_classifier_epochs", "  classifier epochs, summed over units", "{:.0f}"),
    ("protocol_head_epochs", "  EmoConfidNet epochs, summed over units", "{:.0f}"),
    ("features_gb", "feature matrix", "{:.3f} GB"),
    ("peak_rss_gb", "protocol peak RSS", "{:.3f} GB"),
    ("runtime_rss_gb", "  of which Python + TF/Keras runtime", "{:.3f} GB"),
    ("protocol_own_rss_gb", "  protocol's own (peak - corpus - runtime)", "{:.3f} GB"),
    ("peak_rss_less_runtime_vs_features", "  (peak - runtime) / features_gb", "{:.2f}x"),
    ("generator_peak_rss_gb", "synthetic generator peak RSS", "{:.3f} GB"),
    ("scaling_exponent", "protocol time exponent vs corpus size", "{:.2f}"),
    # protocol_small: the jobs run (ours) beside the serial run (the baseline), one after the other, same bench run
    ("protocol_small_utterances", "protocol_small corpus (IEMOCAP dev size, cv group)", "{:,.0f} utterances"),
    ("protocol_small_features", "  features", "{:.0f}"),
    ("protocol_small_methods", "  confidence methods (ALL_METHODS unless tiny)", "{:.0f}"),
    ("protocol_small_units", "  units (folds x seeds x trainings)", "{:.0f}"),
    ("protocol_small_jobs", "  worker processes of the jobs run (--jobs)", "{:.0f}"),
    ("protocol_small_jobs_s", "protocol_small wall time, jobs run", "{:,.1f} s"),
    ("protocol_small_serial_s", "  baseline: serial run (jobs=1)", "{:,.1f} s"),
    ("protocol_small_jobs_vs_serial", "  jobs / serial wall time", "{:.2f}x"),
    ("protocol_small_jobs_peak_rss_gb", "protocol_small peak RSS, jobs run (process tree)", "{:.3f} GB"),
    ("protocol_small_serial_peak_rss_gb", "  baseline: serial run", "{:.3f} GB"),
    ("protocol_small_jobs_vs_serial_rss", "  jobs / serial peak RSS", "{:.2f}x"),
    ("protocol_small_results_equal", "protocol_small results.csv identical, jobs vs serial", "yes/no"),
)


def layer_shapes(num_features: int, units: int = UNITS, num_classes: int = NUM_CLASSES) -> list[tuple[int, int]]:
    """The classifier's dense kernels `(inputs, outputs)`: D -> 256 -> 256 -> K."""
    return [(num_features, units), (units, units), (units, num_classes)]


def forward_flops(shapes: list[tuple[int, int]]) -> int:
    """Multiply-add FLOPs per sample of the forward pass: 2 * sum(inputs * outputs)."""
    return 2 * sum(a * b for a, b in shapes)


def train_flops(shapes: list[tuple[int, int]]) -> int:
    """FLOPs per sample of one training step: forward, kernel gradients (as many again) and the gradients
    of every layer's input but the first (the features need none)."""
    return 2 * forward_flops(shapes) + 2 * sum(a * b for a, b in shapes[1:])


class MatmulRoofline:
    """Bare `tf.matmul` chains of the model's shapes, forward and forward + backward, in `tf.function`s.

    Args:
        shapes: the classifier's kernel shapes from `layer_shapes`.
        head_shapes: kernels of a head on the penultimate output (EmoConfidNet's, for serving), forward only.
        batch_size: rows per step (256).
        seed: seeds the random operands.
    """

    def __init__(self, shapes, head_shapes=(), batch_size: int = BATCH_SIZE, *, seed: int = 0):
        import tensorflow as tf

        rng = np.random.default_rng(seed)
        self.shapes, self.head_shapes, self.batch_size = list(shapes), list(head_shapes), int(batch_size)
        # Variables, as a model's kernels are: nothing in the chain can be folded into a constant at tracing.
        kernels = [tf.Variable(rng.standard_normal(s, dtype=np.float32) * 0.01) for s in self.shapes]
        head = [tf.Variable(rng.standard_normal(s, dtype=np.float32) * 0.01) for s in self.head_shapes]
        inputs = tf.constant(rng.standard_normal((self.batch_size, self.shapes[0][0]), dtype=np.float32))

        @tf.function
        def forward():
            h = inputs
            for w in kernels[:-1]:
                h = tf.matmul(h, w)
            total = tf.reduce_sum(tf.matmul(h, kernels[-1]))
            for w in head:
                h = tf.matmul(h, w)
            return total + tf.reduce_sum(h)

        @tf.function
        def forward_backward():
            activations, h = [inputs], inputs
            for w in kernels:
                h = tf.matmul(h, w)
                activations.append(h)
            grad, total = tf.ones_like(h), tf.constant(0.0)
            for i in reversed(range(len(kernels))):
                total += tf.reduce_sum(tf.matmul(activations[i], grad, transpose_a=True))  # kernel gradient
                if i > 0:
                    grad = tf.matmul(grad, kernels[i], transpose_b=True)  # input gradient
            return total

        self._forward, self._forward_backward = forward, forward_backward
        forward().numpy(), forward_backward().numpy()  # trace outside the timings

    def samples_per_s(self, *, backward: bool, steps: int) -> float:
        """Rate of `steps` consecutive steps (each waited for, as `fit` does): samples per second."""
        step = self._forward_backward if backward else self._forward
        start = time.perf_counter()
        for _ in range(steps):
            step().numpy()
        return steps * self.batch_size / (time.perf_counter() - start)

    def gflops(self, samples_per_s: float, *, backward: bool) -> float:
        flops = train_flops(self.shapes) if backward else forward_flops(self.shapes + self.head_shapes)
        return samples_per_s * flops / 1e9


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


def _percentiles_ms(call: Callable[[int], object], calls: int, warmup: int = 20) -> tuple[float, float]:
    """p50 and p99 in ms of `call(i)` for i in range(calls)."""
    return _interleaved_percentiles_ms({"call": call}, calls, warmup)["call"]


def _interleaved_percentiles_ms(calls: dict[str, Callable[[int], object]], count: int, warmup: int = 20,
                                block: int = 50) -> dict[str, tuple[float, float]]:
    """p50 and p99 in ms of each call, the calls taking turns in blocks of `block` so that they see the same
    machine (one call at a time would let each disturb the next one's caches and threads)."""
    for i in range(warmup):
        for call in calls.values():
            call(i)
    times = {name: [] for name in calls}
    for first in range(0, count, block):
        for name, call in calls.items():
            for i in range(first, min(first + block, count)):
                start = time.perf_counter()
                call(i)
                times[name].append(time.perf_counter() - start)
    return {name: (float(np.percentile(t, 50) * 1e3), float(np.percentile(t, 99) * 1e3)) for name, t in times.items()}


def batch1_latency(model_dir: str | os.PathLike, rows: np.ndarray, calls: int,
                   others: dict[str, str | os.PathLike] | None = None,
                   ensemble_classifiers: int = 1) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of batch-1 calls, taking turns: `serving` (the exported `serving_default`, one serialized
    `tf.Example`), `empty` (an empty signature: what any in-process call costs), `chain` (the bare forward matmul
    chain of the model's six kernels, classifier and head, with float32 `[1, D]` in), for each entry of
    `others`, the `serving_default` of that export under its name (e.g. `baseline`, the unfolded Keras graph)
    and, with `ensemble_classifiers` > 1, `ensemble_chain` (the bare chains of that many classifiers, each with
    its own kernels, and the head: the matmuls of a `macro_gain_ensemble` export).

    Args:
        model_dir: an exported version directory.
        rows: float32 `[n, D]` raw features; call i sends row `i % n`.
        calls: timed calls of each (after 20 untimed ones).
        others: name -> another exported version directory to time alongside (default: none).
        ensemble_classifiers: classifiers in the `ensemble_chain` floor (default 1: not timed).
    """
    import tensorflow as tf

    from emoconf_tf.serving.export import serialize_examples

    loaded = tf.saved_model.load(os.fspath(model_dir))
    serving_default = loaded.signatures["serving_default"]
    examples = serialize_examples(rows)
    count, num_features = len(examples), rows.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def empty(examples):  # named as the spec: a keyword call under another name is slower (docs/performance.md)
        return {"class_ids": tf.zeros(tf.shape(examples), tf.int64)}

    shapes = layer_shapes(num_features) + list(HEAD_SHAPES)
    kernels = [tf.Variable(np.random.default_rng(2).standard_normal(s, dtype=np.float32) * 0.01) for s in shapes]

    @tf.function(input_signature=[tf.TensorSpec([None, num_features], tf.float32, name="features")])
    def matmul_chain(features):
        h = tf.matmul(tf.matmul(features, kernels[0]), kernels[1])
        g = tf.matmul(tf.matmul(h, kernels[3]), kernels[4])
        return {"probabilities": tf.matmul(h, kernels[2]), "p_hat": tf.matmul(g, kernels[5])}

    empty_call, chain_call = empty.get_concrete_function(), matmul_chain.get_concrete_function()
    calls_by_name = {
        "serving": lambda i: serving_default(examples=tf.constant([examples[i % count]]))["class_ids"].numpy(),
        "empty": lambda i: empty_call(examples=tf.constant([examples[i % count]]))["class_ids"].numpy(),
        "chain": lambda i: chain_call(features=tf.constant(rows[i % count][None]))["probabilities"].numpy(),
    }
    if ensemble_classifiers > 1:
        # Each member reads its own 6.5 MB first-layer kernel, as in the export: at batch 1 that read is the cost.
        member_kernels = [[tf.Variable(np.random.default_rng(3 + j).standard_normal(s, dtype=np.float32) * 0.01)
                           for s in layer_shapes(num_features)] for j in range(ensemble_classifiers - 1)]

        @tf.function(input_signature=[tf.TensorSpec([None, num_features], tf.float32, name="features")])
        def ensemble_chain(features):
            out = matmul_chain(features)
            for first, second, last in member_kernels:
                out["probabilities"] += tf.matmul(tf.matmul(tf.matmul(features, first), second), last)
            return out

        ensemble_call = ensemble_chain.get_concrete_function()
        calls_by_name["ensemble_chain"] = lambda i: ensemble_call(
            features=tf.constant(rows[i % count][None]))["probabilities"].numpy()
    for name, other_dir in (others or {}).items():
        other = tf.saved_model.load(os.fspath(other_dir)).signatures["serving_default"]
        calls_by_name[name] = (lambda signature: lambda i: signature(
            examples=tf.constant([examples[i % count]]))["class_ids"].numpy())(other)
    return _interleaved_percentiles_ms(calls_by_name, calls)


def _serving_child(arguments: dict) -> dict:
    """`batch1_latency` with TensorFlow on one thread (inter- and intra-op), as a latency-bound server runs it."""
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    latency = batch1_latency(arguments["model_dir"], np.load(arguments["rows"]), arguments["calls"],
                             others={"default_export": arguments["default_export_dir"]},
                             ensemble_classifiers=arguments["default_export_classifiers"])
    return {"serving_1thread_p50_ms": latency["serving"][0], "serving_1thread_p99_ms": latency["serving"][1],
            "signature_call_floor_1thread_ms": latency["empty"][0],
            "matmul_chain_b1_1thread_p50_ms": latency["chain"][0],
            "serving_default_export_1thread_p50_ms": latency["default_export"][0],
            "serving_default_export_1thread_p99_ms": latency["default_export"][1],
            "serving_default_export_vs_paper_1thread_p50": latency["default_export"][0] / latency["serving"][0],
            **({"ensemble_chain_b1_1thread_p50_ms": latency["ensemble_chain"][0]} if "ensemble_chain" in latency
               else {})}


def serving_figures(size: BenchSize, work_dir: Path, log: Callable[[str], None]) -> dict:
    """Trains one small run (2 epochs) with the default score, exports it three times, loads the SavedModels in
    process and times their signatures, taking turns.

    The exports: the paper's (`score="emoconfidnet"`: the classifier and EmoConfidNet's head; the `serving_*`
    figures and their targets), the same unfolded (`fold=False`, its baseline) and the default
    (`score=None`: the run's `recommended`, whatever validation chose; `serving_default_export_*`).
    """
    import tensorflow as tf

    from emoconf_tf.serving.export import export_run, serialize_examples
    from emoconf_tf.evaluation.protocol import PAPER_METHODS, ProtocolConfig
    from emoconf_tf.serving.rundir import load_run, train_run
    from emoconf_tf.serving.served_score import SCORE_ASSET
    from emoconf_tf.synthetic import make_synthetic_corpus
    from emoconf_tf.settings import TrainingConfig

    corpus = make_synthetic_corpus(n_utterances=size.serving_utterances, num_features=size.num_features, seed=0)
    config = ProtocolConfig(methods=PAPER_METHODS, training=TrainingConfig(max_epochs=2))
    # train_run's default score (recommended), as `emoconf train` trains a run: the ensemble members exist, so
    # the same classifier can be served both ways.
    run_dir = train_run(corpus, work_dir / "run", config, training="raw")
    exported = export_run(run_dir, work_dir / "savedmodels" / "bench", score="emoconfidnet")
    unfolded = export_run(run_dir, work_dir / "savedmodels" / "bench_unfolded", score="emoconfidnet", fold=False)
    default = export_run(run_dir, work_dir / "savedmodels" / "bench_default")
    classifiers = json.loads((default.path / "assets" / SCORE_ASSET).read_text(encoding="utf-8"))["ensemble_members"]
    log(f"  exported the paper's model {exported.path} (baseline, not folded: {unfolded.path}) and the default "
        f"export {default.path}, serving {default.score} ({classifiers} classifier(s) in the graph)")
    loaded = tf.saved_model.load(str(exported.path))
    serving_default = loaded.signatures["serving_default"]
    predict_signature = loaded.signatures["predict"]
    unfolded_default = tf.saved_model.load(str(unfolded.path)).signatures["serving_default"]
    default_export = tf.saved_model.load(str(default.path)).signatures["serving_default"]
    rows = corpus.features[:BATCH_SIZE]
    count = len(rows)

    latency = batch1_latency(exported.path, rows, size.serving_calls,
                             others={"baseline": unfolded.path, "default_export": default.path},
                             ensemble_classifiers=classifiers)
    np.save(work_dir / "rows.npy", rows)
    latency_1thread = _run_child("serving", {"model_dir": str(exported.path), "rows": str(work_dir / "rows.npy"),
                                             "calls": size.serving_calls,
                                             "default_export_dir": str(default.path),
                                             "default_export_classifiers": classifiers}, log)

    batch = np.resize(rows, (BATCH_SIZE, rows.shape[1])).astype(np.float32)
    batch_examples = serialize_examples(batch)
    roofline = MatmulRoofline(layer_shapes(size.num_features), head_shapes=HEAD_SHAPES)
    steps = max(2, size.fit_batches // 4)

    def rate(call) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            call()
        return steps * BATCH_SIZE / (time.perf_counter() - start)

    # Inputs made once, as the roofline's are: the figure is the signature's own cost.
    examples_tensor, batch_tensor = tf.constant(batch_examples), tf.constant(batch)
    serving_rates, predict_rates, unfolded_rates, default_rates, roof_rates = [], [], [], [], []
    for round_ in range(3 * size.rounds):
        roof_rates.append(roofline.samples_per_s(backward=False, steps=steps))
        serving_rates.append(rate(lambda: serving_default(examples=examples_tensor)["class_ids"].numpy()))
        predict_rates.append(rate(lambda: predict_signature(features=batch_tensor)["class_ids"].numpy()))
        unfolded_rates.append(rate(lambda: unfolded_default(examples=examples_tensor)["class_ids"].numpy()))
        default_rates.append(rate(lambda: default_export(examples=examples_tensor)["class_ids"].numpy()))
        log(f"  round {round_ + 1}: batch 256 serving_default {serving_rates[-1]:,.0f} samples/s, predict "
            f"{predict_rates[-1]:,.0f}, not folded {unfolded_rates[-1]:,.0f}, default export "
            f"{default_rates[-1]:,.0f}, forward roofline {roof_rates[-1]:,.0f}")

    run = load_run(run_dir)
    predict_p50, _ = _percentiles_ms(
        lambda i: run.emoconfidnet.predict(corpus.features[i % count: i % count + 1], verbose=0),
        max(10, size.serving_calls // 20), warmup=2)
    forward_rate = max(roof_rates)
    classifier_flops = forward_flops(layer_shapes(size.num_features))
    paper_flops = classifier_flops + forward_flops(list(HEAD_SHAPES))
    return {
        "serving_p50_ms": latency["serving"][0],
        "serving_p99_ms": latency["serving"][1],
        "serving_unfolded_p50_ms": latency["baseline"][0],
        "serving_unfolded_batch256_samples_per_s": max(unfolded_rates),
        "signature_call_floor_ms": latency["empty"][0],
        "matmul_chain_b1_p50_ms": latency["chain"][0],
        "serving_batch256_samples_per_s": max(serving_rates),
        "predict_batch256_samples_per_s": max(predict_rates),
        "forward_roofline_samples_per_s": forward_rate,
        "serving_vs_roofline": max(serving_rates) / forward_rate,
        "keras_predict_p50_ms": predict_p50,
        "serving_default_export_score": default.score,
        "serving_default_export_classifiers": classifiers,
        "serving_default_export_p50_ms": latency["default_export"][0],
        "serving_default_export_p99_ms": latency["default_export"][1],
        "serving_default_export_vs_paper_p50": latency["default_export"][0] / latency["serving"][0],
        "serving_default_export_vs_paper_p99": latency["default_export"][1] / latency["serving"][1],
        "serving_default_export_flops_vs_paper": (paper_flops + (classifiers - 1) * classifier_flops) / paper_flops,
        **({"ensemble_chain_b1_p50_ms": latency["ensemble_chain"][0]} if "ensemble_chain" in latency else {}),
        "serving_default_export_batch256_samples_per_s": max(default_rates),
        "serving_default_export_vs_paper_batch256": max(default_rates) / max(serving_rates),
        **latency_1thread,
    }


def write_test_wavs(directory: Path, count: int, seconds: float, *, sampling_rate: int = 16000,
                    seed: int = 0) -> list[Path]:
    """`count` mono 16-bit wav files of noise plus three amplitude-modulated tones (speech-like band)."""
    import soundfile

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    paths = []
    for i in range(count):
        signal = 0.05 * rng.standard_normal(t.shape)
        for _ in range(3):
            frequency, rate = rng.uniform(120, 3000), rng.uniform(2, 8)
            signal += 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t)) * np.sin(2 * np.pi * frequency * t)
        path = directory / f"bench_{i:03d}.wav"
        soundfile.write(path, np.clip(signal, -1, 1).astype(np.float32), sampling_rate, subtype="PCM_16")
        paths.append(path)
    return paths


def extraction_figures(size: BenchSize, log: Callable[[str], None]) -> dict:
    """openSMILE ComParE-2016 with 1 and 2 workers on generated audio: RTF and speed-up.

    Runs in a fresh process without TensorFlow, as `emoconf build` workers would: the timing does not depend on
    what this process has loaded (TensorFlow's thread pools, or its copies of openSMILE's FFT symbols, which
    `emoconf_tf.extraction` keeps apart). Between timings, a GIL-free C reference (SHA-256 in 1 and 2 threads)
    measures the speed-up two cores give at that moment.
    """
    return _run_child("extraction", {"files": size.extract_files, "seconds": size.extract_seconds,
                                     "rounds": size.extract_rounds}, log)


def _extraction_child(arguments: dict) -> dict:
    from emoconf_tf.extraction import extract_features
    from emoconf_tf.feature_sets import FeatureSet

    files, seconds, rounds = arguments["files"], arguments["seconds"], arguments["rounds"]
    with tempfile.TemporaryDirectory(prefix="emoconf-bench-wavs-") as tmp:
        paths = write_test_wavs(Path(tmp), files, seconds)
        audio_seconds = files * seconds
        # set-up, outside the timing
        extract_features(paths[:1], FeatureSet.COMPARE_2016, num_workers=1, progress=False)
        best = {1: math.inf, 2: math.inf}
        reference = {1: math.inf, 2: math.inf}
        for round_ in range(rounds):
            for workers in (1, 2):
                reference[workers] = min(reference[workers], _parallel_reference_seconds(workers))
                start = time.perf_counter()
                extract_features(paths, FeatureSet.COMPARE_2016, num_workers=workers, progress=False)
                best[workers] = min(best[workers], time.perf_counter() - start)
            print(f"round {round_ + 1}: 1 worker {best[1]:.2f} s, 2 workers {best[2]:.2f} s for {audio_seconds:g} s "
                  f"of audio; GIL-free reference speed-up {reference[1] / reference[2]:.2f}", flush=True)
    return {"extract_rtf_1": best[1] / audio_seconds, "extract_speedup_2": best[1] / best[2],
            "parallel_reference_speedup_2": reference[1] / reference[2], "extract_audio_s": audio_seconds}


def _parallel_reference_seconds(workers: int, tasks: int = 12) -> float:
    """Seconds for `tasks` SHA-256 hashes of 32 MB by `workers` threads (about as long as an extraction timing):
    C code that releases the GIL, so its speed-up with 2 threads is what two cores give right now."""
    import concurrent.futures
    import hashlib

    data = bytes(32 * 1024 * 1024)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: hashlib.sha256(data).digest(), range(tasks)))
    return time.perf_counter() - start


def _protocol_process(size: BenchSize, *, max_epochs: int, log: Callable[[str], None]) -> "_Child":
    """The protocol in a fresh Python process (so that its peak memory is its own); `.result()` gives its figures."""
    return _Child("protocol", {
        "train": size.train, "validation": size.validation, "test": size.test, "num_features": size.num_features,
        "max_epochs": max_epochs, "scaling_divisor": size.scaling_divisor, "scaling_epochs": size.scaling_epochs,
    }, log)


def protocol_small_figures(size: BenchSize, *, max_epochs: int, jobs: int, log: Callable[[str], None]) -> dict:
    """The protocol on an IEMOCAP-development-sized corpus, serially and then with `jobs` worker processes.

    Each run is a fresh process (`_protocol_small_child`: the synthetic corpus of `size.small_utterances` rows x
    `size.small_features` features, five session groups, `cv="group"`: 5 folds x 1 seed x raw and filtered
    training, or `size.small_folds` x `size.small_trainings`; `size.small_methods`, default every method),
    started after the other has ended, so that the two see the same machine a moment apart and neither shares
    the cores with the other. Each is timed once (a run of many units is long enough that a repeat would tell
    more about the machine's other work than about the protocol). While each runs, this process sums the RSS
    of its process tree (the protocol's process, its loky workers and loky's resource tracker) every
    `RSS_POLL_S` seconds (`_ProcessTreeRss`) and keeps the peak. Both runs write `results.csv` at full
    precision; `protocol_small_results_equal` is 1 when the two frames are equal, value for value.

    Args:
        size: the bench size.
        max_epochs: upper bound on every network's epochs (early stopping, patience 10, usually ends sooner).
        jobs: worker processes of the second run, 2 or more (`run_protocol(..., jobs=jobs)`).
        log: called with progress lines.

    Returns:
        dict of `protocol_small_*` figures: `_serial_s`, `_jobs_s` (wall seconds of `run_protocol` in each run,
        from the corpus in memory to the tables; the jobs run's includes starting its workers), their ratio
        `_jobs_vs_serial`, `_serial_peak_rss_gb`, `_jobs_peak_rss_gb` (GB, 1e9 bytes; RSS summed over the tree,
        so pages shared between the processes are counted once per process), their ratio, `_results_equal`
        (1 or 0), and the run's size (`_utterances`, `_features`, `_methods`, `_units`, `_jobs`).
    """
    import pandas as pd

    from emoconf_tf.confidence_methods import ALL_METHODS

    methods = list(size.small_methods or ALL_METHODS)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="emoconf-bench-small-") as tmp:
        results_csv = {}
        for name, run_jobs in (("serial", 1), ("jobs", jobs)):
            results_csv[name] = Path(tmp) / name / "results.csv"
            results_csv[name].parent.mkdir()
            log(f"protocol_small: {name} run (jobs={run_jobs}) in a separate process")
            child = _Child("protocol_small", {
                "utterances": size.small_utterances, "num_features": size.small_features, "methods": methods,
                "folds": size.small_folds, "trainings": list(size.small_trainings), "max_epochs": max_epochs,
                "jobs": run_jobs, "results_csv": str(results_csv[name]),
            }, log)
            try:
                with _ProcessTreeRss(child.pid) as rss:
                    run = child.result()
            finally:
                child.stop()
            figures[f"protocol_small_{name}_s"] = run["seconds"]
            figures[f"protocol_small_{name}_peak_rss_gb"] = rss.peak_gb
            log(f"  {name}: {run['seconds']:.1f} s, peak RSS {rss.peak_gb:.3f} GB over up to {rss.processes} "
                "process(es)")
        serial, parallel = (pd.read_csv(results_csv[name], float_precision="round_trip")
                            for name in ("serial", "jobs"))
    figures.update({
        "protocol_small_utterances": run["utterances"],
        "protocol_small_features": size.small_features,
        "protocol_small_methods": len(methods),
        "protocol_small_units": run["units"],
        "protocol_small_jobs": jobs,
        "protocol_small_jobs_vs_serial": figures["protocol_small_jobs_s"] / figures["protocol_small_serial_s"],
        "protocol_small_jobs_vs_serial_rss": (figures["protocol_small_jobs_peak_rss_gb"]
                                              / figures["protocol_small_serial_peak_rss_gb"]),
        "protocol_small_results_equal": int(serial.equals(parallel)),
    })
    return figures


def _run_child(kind: str, arguments: dict, log: Callable[[str], None]) -> dict:
    """Runs `_CHILDREN[kind](arguments)` in `python -m emoconf_tf.benchmarks.harness` and returns its figures."""
    return _Child(kind, arguments, log).result()


class _Child:
    """`_CHILDREN[kind](arguments)` running in `python -m emoconf_tf.benchmarks.harness`; its progress lines go to
    `log`."""

    def __init__(self, kind: str, arguments: dict, log: Callable[[str], None]):
        self.kind, self._result, self._stderr = kind, None, []
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-m", "emoconf_tf.benchmarks.harness", "--child", kind, json.dumps(arguments)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

        def read_stdout():
            for line in self._process.stdout:
                if line.startswith("{"):
                    self._result = json.loads(line)
                elif line.strip():
                    log("  " + line.rstrip())

        self._readers = [threading.Thread(target=read_stdout, daemon=True),
                         threading.Thread(target=lambda: self._stderr.extend(self._process.stderr), daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        """The process id (for watching its memory)."""
        return self._process.pid

    def stop(self) -> None:
        """Ends the process if it still runs (after an error or an interrupt in the caller)."""
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait()

    def result(self) -> dict:
        """Waits for the process; its figures, or `EmoconfError` with the end of its stderr."""
        self._process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        if self._process.returncode != 0 or self._result is None:
            tail = "".join(self._stderr[-15:]).rstrip()
            raise EmoconfError(
                f"the {self.kind} benchmark process failed (exit status {self._process.returncode}): {tail}")
        return self._result


def run_bench(size: str | BenchSize = "full", *, max_epochs: int | None = None, parts: tuple[str, ...] | None = None,
              jobs: int = 2, log: Callable[[str], None] | None = None) -> dict[str, float | str]:
    """Measures every figure of `emoconf bench`.

    Args:
        size: `"full"` (the MSP-Podcast-sized protocol; docs/performance.md), `"quick"` (a tenth of it), `"tiny"`
            (seconds; for tests) or a `BenchSize`.
        max_epochs: upper bound on the epochs of `protocol` and `protocol_small` (early stopping, patience 10,
            usually ends sooner); default the size's (200, the paper's setting, except for `"tiny"`).
        parts: subset of `PARTS`, `("training", "serving", "extraction", "protocol", "protocol_small")`; default
            `DEFAULT_PARTS`, all but `protocol_small`.
        jobs: worker processes of `protocol_small`'s second run (2 or more, or -1: joblib's CPU count); its first
            run, the baseline, is serial. Default 2.
        log: called with progress lines (default: silent).

    Returns:
        dict of figure name -> number (see `TABLE_ROWS`; `bench_full_size` is 1 for the full size), and
        `serving_default_export_score`, the text of what the default export serves (`ExportResult.score`).
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise EmoconfError(f"bench size {size!r}: choose from {', '.join(SIZES)}")
        size = SIZES[size]
    max_epochs = size.max_epochs if max_epochs is None else int(max_epochs)
    if max_epochs < 1:
        raise EmoconfError("--max-epochs must be at least 1")
    parts = tuple(parts or DEFAULT_PARTS)
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise EmoconfError(f"bench parts {list(parts)}: choose from {', '.join(PARTS)}")
    if jobs != -1 and jobs < 2:
        raise EmoconfError(f"--jobs {jobs}: protocol_small compares a serial run with one of 2 or more worker "
                           "processes; give 2 or more, or -1 for one per CPU core")
    if jobs == -1:
        import joblib

        jobs = joblib.cpu_count()  # as run_protocol counts them
    log = log or (lambda line: None)
    results: dict[str, float | str] = {"bench_full_size": int(size == SIZES["full"]), "bench_rounds": size.rounds,
                                       "bench_cpu_count": os.cpu_count() or 0}
    protocol = None
    if "protocol" in parts and size.overlap_protocol:
        log("protocol: started alongside the other parts (timings of this size mean nothing)")
        protocol = _protocol_process(size, max_epochs=max_epochs, log=log)
    try:
        with tempfile.TemporaryDirectory(prefix="emoconf-bench-") as tmp:
            work_dir = Path(tmp)
            if "training" in parts:
                log("training: Keras fit vs matmul roofline")
                results.update(keras_fit_rate(size, log))
                log("training: scikit-learn MLPClassifier")
                results.update(sklearn_fit_rate(size))
                results["train_vs_sklearn"] = results["train_samples_per_s"] / results["sklearn_samples_per_s"]
                log("training: the protocol's early-stopped fit, epoch_loop vs Keras model.fit")
                results.update(early_stopped_fit_figures(size, log))
            if "serving" in parts:
                log("serving: train a small run, export, time the signatures")
                results.update(serving_figures(size, work_dir, log))
        if "extraction" in parts:
            log("extraction: openSMILE ComParE-2016 on generated audio, in a separate process")
            results.update(extraction_figures(size, log))
        if "protocol" in parts:
            log(f"protocol: {size.utterances:,} synthetic utterances ({size.train:,} / {size.validation:,} / "
                f"{size.test:,}), {size.num_features} features, in a separate process")
            if protocol is None:
                protocol = _protocol_process(size, max_epochs=max_epochs, log=log)
            results.update(protocol.result())
        if "protocol_small" in parts:
            log(f"protocol_small: {size.small_utterances:,} synthetic utterances, {size.small_features} features, "
                f"{size.small_folds or 5} group folds, serially and then with {jobs} worker processes")
            results.update(protocol_small_figures(size, max_epochs=max_epochs, jobs=jobs, log=log))
    finally:
        if protocol is not None:
            protocol.stop()
    return results


def bench_table(results: dict) -> str:
    """The figures as a fixed-width table, each beside its target and whether it is met.

    A figure shown again further down (as the baseline of another) has its target beside its first row only;
    a text figure (what the default export serves) is written after its label, not in the value column; a
    check (format `"yes/no"`, a 1 or 0 in `results`) is written as yes or no.
    """
    targets = {t.key: t for t in TARGETS}
    width = 56
    lines = [f"{'figure':<{width}} {'value':>20}  {'target':<22} met", "-" * (width + 50)]
    shown = set()
    for key, label, fmt in TABLE_ROWS:
        if key not in results:
            continue
        if isinstance(results[key], str):
            lines.append(f"{label:<{width}} {results[key]}")
            continue
        target = targets.get(key) if key not in shown else None
        shown.add(key)
        met = target.met(results) if target else None
        verdict = "" if target is None else ("n/a" if met is None else ("yes" if met else "NO"))
        text = target.text if target else ""
        value = ("yes" if results[key] else "no") if fmt == "yes/no" else fmt.format(results[key])
        lines.append(f"{label:<{width}} {value:>20}  {text:<22} {verdict}".rstrip())
    checked = [t.met(results) for t in TARGETS if t.key in results]
    applicable = [m for m in checked if m is not None]
    lines.append("-" * (width + 50))
    lines.append(f"targets met: {sum(applicable)} of {len(applicable)}")
    return "\n".join(lines)


# === The protocol process ===

def _memory_status(key: str) -> float | None:
    """`VmRSS` / `VmHWM` of this process in GB (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        return None
    return None


class _PeakRss:
    """Peak resident memory from now on: the kernel's high-water mark reset through `/proc/self/clear_refs`,
    or, where that is not allowed, psutil polled every 10 ms."""

    def __enter__(self):
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = None
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
            self.exact = _memory_status("VmHWM") is not None
        except OSError:
            self.exact = False
        if not self.exact:
            import psutil

            process = psutil.Process()

            def poll():
                while not self._stop.wait(0.01):
                    self.peak = max(self.peak, process.memory_info().rss / 1e9)

            self._thread = threading.Thread(target=poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.exact:
            self.peak = _memory_status("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
        return False


class _ProcessTreeRss:
    """Peak of the RSS summed over a process and all its descendants (e.g. the protocol's loky workers), read with
    psutil every `interval` seconds from a thread of this process until the `with` block ends.

    Attributes (after the block): `peak_gb`, the peak sum in GB (1e9 bytes); `processes`, the most processes seen
    in the tree at once. A process that starts and ends between two readings is missed, as is a peak shorter
    than `interval`.
    """

    def __init__(self, pid: int, interval: float = RSS_POLL_S):
        self.pid, self.interval = pid, interval
        self.peak_gb, self.processes = 0.0, 0

    def _read(self, root) -> None:
        import psutil

        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:  # the process has ended
            return
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:  # a worker that ended since the listing
                pass
        self.peak_gb = max(self.peak_gb, total / 1e9)
        self.processes = max(self.processes, len(tree))

    def __enter__(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            root = None
        self._stop = threading.Event()

        def poll():
            while root is not None and not self._stop.wait(self.interval):
                self._read(root)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def _synthetic_corpus(train: int, validation: int, test: int, num_features: int, seed: int = 0):
    """The synthetic corpus with exactly `train / validation / test` rows: speakers of `gcd` rows each."""
    from emoconf_tf.synthetic import make_synthetic_corpus

    total = train + validation + test
    rows_per_speaker = math.gcd(train, math.gcd(validation, test))
    speakers = total // rows_per_speaker
    if speakers > 5000:
        raise EmoconfError(f"split sizes {train}/{validation}/{test}: choose sizes with a larger common divisor")
    return make_synthetic_corpus(n_utterances=total, num_features=num_features, seed=seed, num_speakers=speakers,
                                 split_fractions=(train / total, validation / total, test / total))


def _first_rows_of_each_split(corpus, divisor: int):
    """The first 1/divisor of every split's rows (speakers stay split-disjoint)."""
    keep = np.zeros(len(corpus), dtype=bool)
    for split in ("train", "validation", "test"):
        rows = np.flatnonzero(corpus.split == split)
        keep[rows[: max(1, len(rows) // divisor)]] = True
    return corpus.subset(keep)


def _protocol_child(arguments: dict) -> dict:
    start = time.perf_counter()
    corpus = _synthetic_corpus(arguments["train"], arguments["validation"], arguments["test"],
                               arguments["num_features"])
    generator_s = time.perf_counter() - start
    generator_peak = _memory_status("VmHWM") or 0.0
    print(f"generated the corpus in {generator_s:.0f} s", flush=True)

    from emoconf_tf.evaluation.protocol import PAPER_METHODS, ProtocolConfig, run_protocol
    from emoconf_tf.settings import TrainingConfig

    def on_unit(summary, resumed):
        print(f"{time.perf_counter() - start:.0f} s: {summary['training']} done, epochs "
              f"{summary['classifier_epochs']} / {summary['confidence_epochs']}", flush=True)

    config = ProtocolConfig(methods=PAPER_METHODS, training=TrainingConfig(max_epochs=arguments["max_epochs"]))
    runtime_and_corpus = _memory_status("VmRSS") or 0.0
    with _PeakRss() as peak:
        start = time.perf_counter()
        outputs = run_protocol(corpus, config, None, progress=False, on_unit=on_unit)
        protocol_s = time.perf_counter() - start
    features_gb = corpus.features.nbytes / 1e9
    figures = {
        "protocol_s": protocol_s,
        "protocol_utterances": len(corpus),
        "protocol_classifier_epochs": int(outputs.runs["classifier_epochs"].sum()),
        "protocol_head_epochs": int(outputs.runs["confidence_epochs"].sum()),
        "protocol_units": len(outputs.runs),
        "features_gb": features_gb,
        "peak_rss_gb": peak.peak,
        "runtime_rss_gb": runtime_and_corpus - features_gb,
        "protocol_own_rss_gb": peak.peak - runtime_and_corpus,
        "peak_rss_less_runtime_vs_features": (peak.peak - (runtime_and_corpus - features_gb)) / features_gb,
        "generator_s": generator_s,
        "generator_peak_rss_gb": generator_peak,
        "peak_rss_exact": int(peak.exact),
    }
    # Scaling: the same protocol with a fixed number of epochs (no early stopping), on the corpus and on
    # 1/divisor of it, so that the time ratio is the implementation's, not a change in epochs.
    epochs = arguments["scaling_epochs"]
    fixed = dataclasses.replace(config, training=TrainingConfig(max_epochs=epochs, patience=epochs))
    small = _first_rows_of_each_split(corpus, arguments["scaling_divisor"])
    seconds = {}
    sizes = (("small", small), ("large", corpus))
    if arguments["max_epochs"] == epochs and epochs <= config.training.patience:
        seconds["large"] = protocol_s  # the run above had these fixed epochs already
        sizes = sizes[:1]
    for name, part in sizes:
        start = time.perf_counter()
        run_protocol(part, fixed, None, progress=False)
        seconds[name] = time.perf_counter() - start
        print(f"scaling: {len(part):,} utterances, {epochs} epochs: {seconds[name]:.1f} s", flush=True)
    figures.update({
        "scaling_small_s": seconds["small"],
        "scaling_large_s": seconds["large"],
        "scaling_exponent": math.log(seconds["large"] / seconds["small"]) / math.log(len(corpus) / len(small)),
    })
    return figures


def _protocol_small_child(arguments: dict) -> dict:
    """One run of `protocol_small_figures`: the corpus, `run_protocol` with `arguments["jobs"]` (timed), and its
    results table written to `arguments["results_csv"]` at full precision (pandas' shortest round-trip floats)."""
    from emoconf_tf.evaluation.protocol import ProtocolConfig, run_protocol
    from emoconf_tf.synthetic import make_synthetic_corpus
    from emoconf_tf.settings import TrainingConfig

    # five session groups (make_synthetic_corpus's default), one fold each, as IEMOCAP's five sessions
    corpus = make_synthetic_corpus(n_utterances=arguments["utterances"], num_features=arguments["num_features"],
                                   seed=0)
    config = ProtocolConfig(cv="group", folds=arguments["folds"], trainings=tuple(arguments["trainings"]),
                            methods=tuple(arguments["methods"]),
                            training=TrainingConfig(max_epochs=arguments["max_epochs"]))
    start = time.perf_counter()

    def on_unit(summary, resumed):
        print(f"{time.perf_counter() - start:.0f} s: fold {summary['fold']} {summary['training']} done, epochs "
              f"{summary['classifier_epochs']} / {summary['confidence_epochs']}", flush=True)

    outputs = run_protocol(corpus, config, None, progress=False, on_unit=on_unit, jobs=arguments["jobs"])
    seconds = time.perf_counter() - start
    outputs.results.to_csv(arguments["results_csv"], index=False)
    return {"seconds": seconds, "utterances": len(corpus), "units": len(outputs.runs)}


_CHILDREN = {"protocol": _protocol_child, "extraction": _extraction_child, "serving": _serving_child,
             "protocol_small": _protocol_small_child}

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child" and sys.argv[2] in _CHILDREN:
        print(json.dumps(_CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))), flush=True)
    else:
        sys.exit(f"usage: python -m emoconf_tf.benchmarks.harness --child {'|'.join(_CHILDREN)} JSON "
                 "(internal; use `emoconf bench`)")
