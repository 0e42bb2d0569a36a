"""How much work each part of `emoconf bench` does (`BenchSize`, one per size in `SIZES`: full, `--quick`,
`--tiny`) and the shapes every part shares: batch 256, the classifier's 256 units and 5 classes, EmoConfidNet's
head.
"""

from __future__ import annotations

import dataclasses


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

BATCH_SIZE = 256
UNITS = 256
NUM_CLASSES = 5
HEAD_SHAPES = ((UNITS, UNITS), (UNITS, UNITS), (UNITS, NUM_CLASSES))  # EmoConfidNet's head on the penultimate layer
