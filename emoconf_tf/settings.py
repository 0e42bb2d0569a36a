"""Settings of training and of the protocol's worker processes, in a module that imports neither TensorFlow nor
Keras.

The command line builds them (and reads their defaults) before anything loads TensorFlow, and a process that
only dispatches the protocol's units to worker processes (`run_protocol(..., jobs=N)`) never loads it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Settings shared by the classifier and the EmoConfidNet head (paper, Section 4.3).

    Args:
        units: hidden width, default 256.
        dropout_rate: default 0.5.
        learning_rate: Adam learning rate, default 1e-4.
        batch_size: default 128 (the paper does not give one).
        max_epochs: upper bound on epochs, default 200; early stopping normally ends sooner.
        patience: early-stopping patience on validation loss, default 10; best weights are restored.
        reshuffle_each_epoch: draw a new (seeded) order of the training rows in every epoch. False repeats
            Keras 3's behaviour with `keras.utils.set_random_seed`: one order, drawn once, in every epoch.
        verbose: Keras `fit` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        clip_inputs: clip each feature to its training range in the classifier (`models.ClipToRange`), default
            True: a value far outside it (heavy-tailed functionals on an unseen speaker) no longer reaches the
            network as is. False gives the paper's network exactly.
    """

    units: int = 256
    dropout_rate: float = 0.5
    learning_rate: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10
    reshuffle_each_epoch: bool = True
    verbose: int = 0
    clip_inputs: bool = True


WORKER_MEMORY_GROWTH = 160 * 2**20
"""Bytes a loky worker's RSS may grow beyond its size after its first unit before loky replaces it by a fresh
process. Each unit trains about seven networks, and TensorFlow keeps about 12 MB of every one after it is freed
(85 MB a unit on IEMOCAP-47), so a worker that lived through a 3-seed protocol would end over a gigabyte larger;
a fresh worker costs a few seconds (TensorFlow's start and first traces), once every two or three units."""
