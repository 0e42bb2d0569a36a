"""Tests of `emoconf_tf.row_batches`: batches and chunks of a feature matrix's rows taken by index."""

import keras
import numpy as np
import pytest

from emoconf_tf.models import build_classifier
from emoconf_tf.row_batches import row_batches, row_chunks, row_count
from emoconf_tf.training import TrainingConfig, feature_moments, fit_classifier


def numbered_rows(n=23, d=3):
    """float32 `[n, d]` whose row i is all i, so that a batch shows which rows it holds."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1)


def epoch(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_unshuffled_batches_hold_the_selected_rows_in_order():
    features = numbered_rows()
    rows = np.array([20, 3, 3, 7, 0, 11, 5])
    batches = epoch(row_batches(features, rows * 10, rows, batch_size=3))
    # 7 rows in batches of 3: 3 + 3 + the partial batch of 1
    assert [len(x) for x, _ in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), features[rows])
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), rows * 10)


def test_shuffled_batches_cover_every_selected_row_once_per_epoch():
    features = numbered_rows(200)
    rows = np.arange(0, 200, 2)  # the even rows
    keras.utils.set_random_seed(0)
    dataset = row_batches(features, rows, rows, batch_size=16, shuffle=True)
    assert int(dataset.cardinality()) == 7  # ceil(100 / 16)
    batches = epoch(dataset)
    assert [len(x) for x, _ in batches] == [16] * 6 + [4]
    order = np.concatenate([x[:, 0] for x, _ in batches]).astype(int)
    np.testing.assert_array_equal(order, np.concatenate([y for _, y in batches]))  # each row keeps its target
    assert sorted(order) == list(rows) and not np.array_equal(order, rows)


def test_with_a_global_seed_every_epoch_draws_the_same_order_as_keras_does():
    # Keras 3.15's own array pipeline on TensorFlow 2.21 behaves the same: seeded, its shuffle op restarts from
    # its seed with every new iterator. Unseeded, each epoch gets a new order.
    import tensorflow as tf

    features = numbered_rows(64)

    def two_epochs():
        dataset = row_batches(features, np.zeros(64), batch_size=8, shuffle=True)
        return [np.concatenate([x[:, 0] for x, _ in epoch(dataset)]) for _ in range(2)]

    keras.utils.set_random_seed(5)
    first, second = two_epochs()
    np.testing.assert_array_equal(first, second)
    tf.random.set_seed(None)
    first, second = two_epochs()
    assert not np.array_equal(first, second)


def test_same_seed_gives_the_same_order():
    features = numbered_rows(64)

    def first_epoch():
        keras.utils.set_random_seed(5)
        batches = row_batches(features, np.zeros(64), batch_size=8, shuffle=True)
        return np.concatenate([x[:, 0] for x, _ in epoch(batches)])

    np.testing.assert_array_equal(first_epoch(), first_epoch())


def test_reshuffle_each_epoch_draws_a_new_seeded_permutation_every_epoch():
    features = numbered_rows(50)
    rows = np.arange(50)[::-1]

    def three_epochs(seed):
        dataset = row_batches(features, rows, rows, batch_size=8, shuffle=True, reshuffle_each_epoch=True, seed=seed)
        batches = [epoch(dataset) for _ in range(3)]
        assert all([len(x) for x, _ in b] == [8] * 6 + [2] for b in batches)  # 50 = 6 x 8 + 2
        for b in batches:  # each row keeps its target
            np.testing.assert_array_equal(np.concatenate([x[:, 0] for x, _ in b]), np.concatenate([y for _, y in b]))
        return [np.concatenate([x[:, 0] for x, _ in b]).astype(int) for b in batches]

    first = three_epochs(7)
    assert all(sorted(order) == list(range(50)) for order in first)  # a permutation of the selected rows
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    again = three_epochs(7)
    for a, b in zip(first, again):  # deterministic for a seed, epoch by epoch
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(three_epochs(8)[0], first[0])


def test_fit_with_reshuffle_is_deterministic_and_differs_from_one_fixed_order():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 10)).astype(np.float32)
    labels = rng.integers(0, 3, 200)
    rows, validation = np.arange(150), np.arange(150, 200)
    config = TrainingConfig(max_epochs=3, batch_size=32, patience=5)

    def weights(cfg):
        model, _ = fit_classifier(features, labels[rows], features, labels[validation], 3, cfg, seed=1,
                                  train_rows=rows, validation_rows=validation)
        return model.get_weights()

    first, second = weights(config), weights(config)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, second))
    fixed = weights(TrainingConfig(max_epochs=3, batch_size=32, patience=5, reshuffle_each_epoch=False))
    assert any(a.tobytes() != b.tobytes() for a, b in zip(first, fixed))


def test_fit_on_row_indices_gives_the_weights_of_keras_fit_on_the_copied_rows():
    # The reference is the fit as it was before row_batches: Keras batches and shuffles the copied arrays.
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(300, 20)) * 3 + 50).astype(np.float32)
    labels = rng.integers(0, 3, 300)
    features[np.arange(300), labels] += 4.0
    train_rows, validation_rows = rng.permutation(300)[:200], np.arange(250, 300)
    # reshuffle_each_epoch=False: Keras's own order (drawn once, the same in every epoch)
    config = TrainingConfig(max_epochs=4, batch_size=32, patience=2, reshuffle_each_epoch=False)

    keras.utils.set_random_seed(0)
    reference = build_classifier(*feature_moments(features[train_rows]), 3, seed=0)
    eye = np.eye(3, dtype=np.float32)
    reference.fit(
        features[train_rows], eye[labels[train_rows]],
        validation_data=(features[validation_rows], eye[labels[validation_rows]]),
        batch_size=config.batch_size, epochs=config.max_epochs, shuffle=True, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                 restore_best_weights=True)],
    )
    by_rows, _ = fit_classifier(features, labels[train_rows], features, labels[validation_rows], 3, config, seed=0,
                                train_rows=train_rows, validation_rows=validation_rows)
    copied, _ = fit_classifier(features[train_rows], labels[train_rows], features[validation_rows],
                               labels[validation_rows], 3, config, seed=0)
    for expected, got, also in zip(reference.get_weights(), by_rows.get_weights(), copied.get_weights()):
        assert expected.tobytes() == got.tobytes() == also.tobytes()


def test_row_chunks_equal_fancy_indexing_and_are_views_without_rows():
    features = numbered_rows(10, 2)
    rows = np.array([9, 0, 4, 4, 1])
    chunks = list(row_chunks(features, rows, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), features[rows])
    views = list(row_chunks(features, chunk_rows=4))
    assert [len(c) for c in views] == [4, 4, 2] and all(np.shares_memory(v, features) for v in views)


def test_a_boolean_mask_selects_its_true_rows():
    features = numbered_rows(6, 1)
    mask = np.array([True, False, False, True, True, False])
    assert row_count(features, mask) == 3 and row_count(features) == 6
    np.testing.assert_array_equal(np.concatenate(list(row_chunks(features, mask))), features[mask])


@pytest.mark.parametrize("rows, message", [
    (np.array([0, 10]), r"\[0, 10\)"),
    (np.array([-1]), r"\[0, 10\)"),
    (np.array([[0, 1]]), "1-d array"),
    (np.array([0.0, 1.0]), "integer"),
    (np.ones(3, dtype=bool), r"shape \(10,\)"),
])
def test_bad_row_indices_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        list(row_chunks(numbered_rows(10), rows))


def test_targets_must_match_the_selected_rows():
    with pytest.raises(ValueError, match="targets has 2 rows; expected one per selected row \\(3\\)"):
        row_batches(numbered_rows(10), np.zeros(2), np.array([1, 2, 3]), batch_size=4)
