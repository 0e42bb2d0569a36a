"""Keras's `fit` with early stopping, one compiled call per epoch: the same weights, in less time.

`model.fit(row_batches(...), validation_data=..., callbacks=[EarlyStopping(...)])` spends most of an epoch of
the paper's small networks outside the arithmetic: a `tf.data` pipeline that gathers each batch through a Python
callback, a `tf.function` call per 32 steps with `Optional`s and conditionals around every step, callbacks and
logs between them, and two new functions traced for every freshly built model. `fit_early_stopped` runs the
same steps, in the same order, on the same batches:

- the batch positions come from `row_batches.batch_positions`, one iterator per epoch as `fit` makes them
  (including the one `fit` makes and drops at the end of every epoch, which moves a reshuffled order on);
- a batch's rows are gathered inside the compiled epoch: from one constant copy of the selected rows when they
  are small (`MAX_COPIED_BYTES`, 16 MiB), else from the matrix through `tf.numpy_function` as `row_batches` does;
- each step is the model's own `train_step` (forward, compiled loss, gradients, optimizer), each validation
  batch its `test_step`, so the loss tracker averages the validation loss as `evaluate` does;
- Keras's own `EarlyStopping` decides when to stop and restores the best weights.

So the trained weights, the epochs run and the validation losses are bit-identical to `model.fit`'s
(`tests/test_epoch_loop.py` compares them). What it leaves out: Keras's progress bar and other callbacks; ask for
a bar (`verbose` > 0) and `training` uses `model.fit` itself.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from emoconf_tf.row_batches import batch_positions, checked_rows, gathered_rows

MAX_COPIED_BYTES = 16 * 2**20
"""Selected rows up to this size (float32) are copied once into a constant the epoch gathers from in the graph (the
heads' 256-d embeddings and IEMOCAP-sized feature tables, a few MB); larger ones (ComParE's 6,373 features: 119 MB
for IEMOCAP's training rows, 1.3 GB at MSP-Podcast size) are gathered batch by batch from the matrix, never copied,
where the per-batch gather is small beside the first layer's arithmetic."""


def fit_early_stopped(
    model: keras.Model,
    features: np.ndarray,
    targets: np.ndarray,
    validation_features: np.ndarray,
    validation_targets: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    validation_rows: np.ndarray | None = None,
    batch_size: int,
    max_epochs: int,
    patience: int,
    reshuffle_each_epoch: bool = False,
    seed: int | None = None,
    max_copied_bytes: int = MAX_COPIED_BYTES,
) -> list[float]:
    """Trains a compiled `model` as `model.fit` with `EarlyStopping(monitor="val_loss", patience,
    restore_best_weights=True)` would, on `row_batches` of the same arguments; returns the validation loss of
    every epoch run (its length is the number of epochs).

    Args:
        model: a compiled Keras model (its optimizer and loss are used as `fit` uses them).
        features: float32 `[N, D]`; the model trains on `features[rows]` (rows None = every row).
        targets: `[n, ...]`, one per selected training row.
        validation_features: float32 `[M, D]`; validation on `validation_features[validation_rows]`.
        validation_targets: `[m, ...]`, one per selected validation row.
        rows, validation_rows: int `[n]` / `[m]` row indices, or None.
        batch_size: rows per batch (the last batch holds the rest).
        max_epochs: epochs at most; patience: epochs without a lower validation loss before stopping.
        reshuffle_each_epoch: as `row_batches` (a new seeded order of the training rows in every epoch).
        seed: the shuffle's seed with `reshuffle_each_epoch`.
        max_copied_bytes: selected rows up to this many bytes (float32) are held as one constant copy.

    Returns:
        The validation loss (float) of each epoch run; the model holds the weights of the best one.
    """
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}")
    train = _Part(features, targets, rows, batch_size, max_copied_bytes, shuffle=True,
                  reshuffle_each_epoch=reshuffle_each_epoch, seed=seed)
    validation = _Part(validation_features, validation_targets, validation_rows, batch_size, max_copied_bytes)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)

    train_epoch = _epoch_function(model.train_step, train)
    validation_epoch = _epoch_function(model.test_step, validation)

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    stopper.set_model(model)
    model.stop_training = False
    stopper.on_train_begin()
    losses = []
    for epoch in range(max_epochs):
        if epoch:
            iter(train.positions)  # fit's epoch iterator makes one at the end of every epoch and drops it
        model.reset_metrics()
        train_epoch(iter(train.positions))
        model.reset_metrics()
        validation_epoch(iter(validation.positions))
        losses.append(float(model.get_metrics_result()["loss"]))
        stopper.on_epoch_end(epoch, {"val_loss": losses[-1]})
        if model.stop_training:
            break
    stopper.on_train_end()
    return losses


def _epoch_function(step, part: _Part):
    """A compiled function running `step` on each of `part`'s batches, drawn from the positions iterator it is
    given (a `tf.while_loop` traced once, without AutoGraph)."""

    def epoch(iterator):
        def body(i):
            with tf.control_dependencies(tf.nest.flatten(step(part.batch(iterator.get_next())))):
                return i + 1

        tf.while_loop(lambda i: i < part.num_batches, body, [tf.constant(0)])

    return tf.function(epoch, autograph=False)


class _Part:
    """One part's batches: the positions dataset and how a batch of positions becomes `(x [b, D], y [b, ...])`."""

    def __init__(self, features, targets, rows, batch_size, max_copied_bytes, *, shuffle=False,
                 reshuffle_each_epoch=False, seed=None):
        features, targets, rows = checked_rows(features, targets, rows)
        count = len(targets)
        if count == 0:
            raise ValueError("cannot fit on zero rows")
        self.positions = batch_positions(count, batch_size, shuffle=shuffle,
                                         reshuffle_each_epoch=reshuffle_each_epoch, seed=seed)
        self.num_batches = int(self.positions.cardinality())
        self.targets = tf.constant(targets)
        if count * features.shape[1] * 4 <= max_copied_bytes:
            self.copied = tf.constant(features if rows is None else features[rows])
        else:
            self.copied, self.features, self.rows = None, features, rows

    def batch(self, positions):
        if self.copied is not None:
            x = tf.gather(self.copied, positions)
        else:
            x = gathered_rows(self.features, self.rows, positions)
        return x, tf.gather(self.targets, positions)
