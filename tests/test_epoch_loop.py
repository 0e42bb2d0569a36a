"""Tests of `emoconf_tf.epoch_loop`: early-stopped training, one compiled call per epoch, as `model.fit` trains."""

import keras
import numpy as np
import pytest

from emoconf_tf.epoch_loop import fit_early_stopped
from emoconf_tf.models import build_classifier, build_confidence_head
from emoconf_tf.row_batches import row_batches


def corpus(n=260, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    features = rng.normal(size=(n, d)).astype(np.float32)
    features[np.arange(n), labels] += 1.5
    return features, np.eye(k, dtype=np.float32)[labels]


def keras_fit(model, features, targets, rows, validation_rows, *, batch_size, epochs, patience, reshuffle, seed):
    """The reference: `model.fit` on `row_batches` with Keras's EarlyStopping, as `training` ran it before."""
    history = model.fit(
        row_batches(features, targets[rows], rows, batch_size=batch_size, shuffle=True,
                    reshuffle_each_epoch=reshuffle, seed=seed),
        validation_data=row_batches(features, targets[validation_rows], validation_rows, batch_size=batch_size),
        shuffle=False, epochs=epochs, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)],
    )
    return history.history["val_loss"]


def classifier(features, rows, seed=0):
    keras.utils.set_random_seed(seed)
    return build_classifier(features[rows].mean(0), features[rows].var(0), 3, units=32, seed=seed)


@pytest.mark.parametrize("reshuffle", [True, False])
@pytest.mark.parametrize("max_copied_bytes", [2**30, 0])  # the rows as one constant; gathered batch by batch
def test_weights_epochs_and_validation_losses_are_those_of_keras_fit(reshuffle, max_copied_bytes):
    features, targets = corpus()
    rows, validation_rows = np.arange(0, 200)[::-1], np.arange(200, 260)  # 200 rows: 6 full batches and 8 rows
    settings = dict(batch_size=32, patience=2, reshuffle=reshuffle, seed=5)
    # learning rate 0.05 with patience 2 stops early (before epoch 30): restoring the best weights is exercised
    reference = classifier(features, rows)
    reference.optimizer.learning_rate.assign(0.05)
    expected = keras_fit(reference, features, targets, rows, validation_rows, epochs=30, **settings)
    model = classifier(features, rows)
    model.optimizer.learning_rate.assign(0.05)
    losses = fit_early_stopped(model, features, targets[rows], features, targets[validation_rows], rows=rows,
                               validation_rows=validation_rows, batch_size=32, max_epochs=30, patience=2,
                               reshuffle_each_epoch=reshuffle, seed=5, max_copied_bytes=max_copied_bytes)
    assert len(expected) < 30
    assert losses == expected  # float32 losses, compared exactly
    for want, got in zip(reference.get_weights(), model.get_weights()):
        assert want.tobytes() == got.tobytes()


def test_a_confidence_head_with_its_pairwise_loss_trains_as_under_fit():
    rng = np.random.default_rng(1)
    embedded = rng.normal(size=(150, 16)).astype(np.float32)
    targets = keras.ops.convert_to_numpy(keras.ops.softmax(rng.normal(size=(150, 4)))).astype(np.float32)
    rows, validation_rows = np.arange(100), np.arange(100, 150)

    def head():
        keras.utils.set_random_seed(3)
        return build_confidence_head(16, 4, units=8, seed=3)

    reference = head()
    expected = keras_fit(reference, embedded, targets, rows, validation_rows, batch_size=16, epochs=4, patience=10,
                         reshuffle=True, seed=4)
    model = head()
    losses = fit_early_stopped(model, embedded[rows], targets[rows], embedded[validation_rows],
                               targets[validation_rows], batch_size=16, max_epochs=4, patience=10,
                               reshuffle_each_epoch=True, seed=4)
    assert losses == expected and len(losses) == 4
    for want, got in zip(reference.get_weights(), model.get_weights()):
        assert want.tobytes() == got.tobytes()


def test_bad_arguments_are_refused_before_training():
    features, targets = corpus(n=40)
    model = classifier(features, np.arange(40))
    with pytest.raises(ValueError, match="targets has 39 rows; expected one per selected row \\(40\\)"):
        fit_early_stopped(model, features, targets[:39], features, targets, batch_size=8, max_epochs=2, patience=1)
    with pytest.raises(ValueError, match="max_epochs must be at least 1, got 0"):
        fit_early_stopped(model, features, targets, features, targets, batch_size=8, max_epochs=0, patience=1)
    with pytest.raises(ValueError, match="cannot fit on zero rows"):
        fit_early_stopped(model, features, targets[:0], features, targets, rows=np.arange(0), batch_size=8,
                          max_epochs=2, patience=1)
