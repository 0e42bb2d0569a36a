import dataclasses

import keras
import numpy as np
import pytest

from emoconf_tf import PairwiseConfidenceLoss, build_classifier, build_emoconfidnet
from emoconf_tf.models import (
    CLIP_NAME, FROZEN_CLASSIFIER_NAME, HEAD_NAME, PENULTIMATE, ClipToRange, InferenceOnly, build_confidence_head,
    find_layer, masked_feature_count, penultimate_model,
)
from emoconf_tf.training import TrainingConfig, feature_moments, feature_range, fit_classifier, fit_emoconfidnet

D, K = 12, 4


def small_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    x = (rng.normal(size=(n, D)) * 5 + 100 + y[:, None]).astype("float32")
    return x, y


def test_classifier_has_the_paper_shape():
    x, _ = small_data()
    model = build_classifier(*feature_moments(x), num_classes=K)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [256, 256, K]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 2
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    assert model.get_layer(PENULTIMATE).output.shape == (None, 256)
    assert model.output_shape == (None, K)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)


def test_standardisation_lives_in_the_model():
    x, _ = small_data()
    model = build_classifier(*feature_moments(x), num_classes=K)
    standardized = model.get_layer("standardize")(x).numpy()
    np.testing.assert_allclose(standardized.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(standardized.std(axis=0), 1.0, atol=1e-3)


def test_head_is_attached_to_the_penultimate_layer_in_one_graph():
    x, _ = small_data()
    classifier = build_classifier(*feature_moments(x), num_classes=K)
    model = build_emoconfidnet(classifier)
    head = model.get_layer(HEAD_NAME)
    frozen = model.get_layer(FROZEN_CLASSIFIER_NAME)
    assert isinstance(frozen, InferenceOnly)
    # The head takes the frozen classifier's first output, which is the classifier's `penultimate` layer.
    assert head._inbound_nodes[0].input_tensors[0] is frozen.output[0]
    assert frozen.model.outputs[0] is classifier.get_layer(PENULTIMATE).output
    assert frozen.model.get_layer(PENULTIMATE) is classifier.get_layer(PENULTIMATE)  # shared, not copied
    out = model.predict(x[:5], verbose=0)
    assert set(out) == {"probabilities", "p_hat"}
    np.testing.assert_allclose(out["p_hat"].sum(axis=1), 1.0, rtol=1e-5)
    embedding = penultimate_model(classifier).predict(x[:5], verbose=0)
    np.testing.assert_allclose(out["p_hat"], head.predict(embedding, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"], classifier.predict(x[:5], verbose=0), rtol=1e-5, atol=1e-6)


def test_classifier_is_frozen_while_the_head_trains():
    x, y = small_data()
    classifier, _ = fit_classifier(x, y, x, y, K, TrainingConfig(max_epochs=2, batch_size=32), seed=0)
    before = [w.copy() for w in classifier.get_weights()]
    targets = np.full((len(x), K), 1.0 / K, dtype="float32")
    targets[:, 0] += 0.1
    targets /= targets.sum(axis=1, keepdims=True)
    model, epochs = fit_emoconfidnet(classifier, x, targets, x, targets, TrainingConfig(max_epochs=3, batch_size=32),
                                     seed=0)
    assert epochs >= 1
    for w0, w1 in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert not any(layer.trainable for layer in classifier.layers)
    # the combined graph trains only the head: model.fit on p_hat leaves the classifier unchanged too
    head_before = [w.copy() for w in model.get_layer(HEAD_NAME).get_weights()]
    model.fit(x, {"p_hat": targets}, epochs=1, batch_size=32, verbose=0)
    for w0, w1 in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, model.get_layer(HEAD_NAME).get_weights()))


def test_feature_constant_in_training_is_masked():
    # Training rows: column 0 is 1 and 3 (mean 2, variance 1); column 1 is 5 on both (mean 5, variance 0).
    x_train = np.array([[1.0, 5.0], [3.0, 5.0]], dtype="float32")
    classifier = build_classifier(*feature_moments(x_train), num_classes=K, units=4, seed=0)
    standardize = classifier.get_layer("standardize")
    np.testing.assert_array_equal(np.ravel(standardize.variance), [1.0, np.inf])  # the 0 is stored as infinity
    assert masked_feature_count(classifier) == 1
    # Test rows vary in column 1. Standardised: (4 - 2) / 1 = 2, (7 - 5) / inf = 0; (2 - 2) / 1 = 0, 0;
    # (0 - 2) / 1 = -2, (-3 - 5) / inf = 0. Keras's epsilon would have given (7 - 5) / 1e-7 = 2e7, a scale of 1 gave 2.
    x_test = np.array([[4.0, 7.0], [2.0, 5.0], [0.0, -3.0]], dtype="float32")
    np.testing.assert_array_equal(standardize(x_test), [[2.0, 0.0], [0.0, 0.0], [-2.0, 0.0]])
    # So column 1 has no influence: the outputs equal those with the training constant there, bit for bit.
    x_constant = np.array([[4.0, 5.0], [2.0, 5.0], [0.0, 5.0]], dtype="float32")
    np.testing.assert_array_equal(classifier(x_test, training=False), classifier(x_constant, training=False))


def test_a_masked_model_round_trips_through_keras_saving(tmp_path):
    x_train = np.array([[1.0, 5.0], [3.0, 5.0]], dtype="float32")
    classifier = build_classifier(*feature_moments(x_train), num_classes=K, units=4, seed=0)
    classifier.save(tmp_path / "masked.keras")
    loaded = keras.saving.load_model(tmp_path / "masked.keras", compile=False)
    x_test = np.array([[4.0, 7.0], [0.0, -3.0]], dtype="float32")
    np.testing.assert_array_equal(loaded(x_test, training=False), classifier(x_test, training=False))
    assert masked_feature_count(loaded) == 1


def test_inputs_are_clipped_to_the_training_range_before_standardisation():
    # Training rows: column 0 is 1 and 3 (range 1..3, mean 2, variance 1); column 1 is -4 and 6 (range -4..6,
    # mean 1, variance 25). Test rows: (10, 0) clips to (3, 0) -> standardised ((3-2)/1, (0-1)/5) = (1, -0.2);
    # (-5, -100) clips to (1, -4) -> (-1, -1); (2, 6) is inside the range -> (0, 1).
    x_train = np.array([[1.0, -4.0], [3.0, 6.0]], dtype="float32")
    lower, upper = feature_range(x_train)
    np.testing.assert_array_equal(lower, [1.0, -4.0])
    np.testing.assert_array_equal(upper, [3.0, 6.0])
    classifier = build_classifier(*feature_moments(x_train), num_classes=K, units=4, seed=0, lower=lower, upper=upper)
    assert [layer.name for layer in classifier.layers[:3]] == ["features", CLIP_NAME, "standardize"]
    standardized = keras.Model(classifier.input, classifier.get_layer("standardize").output)
    x_test = np.array([[10.0, 0.0], [-5.0, -100.0], [2.0, 6.0]], dtype="float32")
    np.testing.assert_allclose(standardized(x_test), [[1.0, -0.2], [-1.0, -1.0], [0.0, 1.0]], rtol=1e-6)
    # a value beyond the range has the influence of the range's end, no more
    np.testing.assert_array_equal(classifier(x_test, training=False),
                                  classifier(np.clip(x_test, lower, upper), training=False))


def test_fit_classifier_clips_by_default_and_not_when_asked(tmp_path):
    x, y = small_data()
    config = TrainingConfig(max_epochs=1, batch_size=32)
    clipped, _ = fit_classifier(x[:64], y[:64], x[64:], y[64:], K, config, seed=0)
    layer = clipped.get_layer(CLIP_NAME)
    np.testing.assert_array_equal(layer.lower, x[:64].min(axis=0))
    np.testing.assert_array_equal(layer.upper, x[:64].max(axis=0))
    clipped.save(tmp_path / "clipped.keras")
    loaded = keras.saving.load_model(tmp_path / "clipped.keras", compile=False)
    far = x[64:] * np.float32(50.0)
    np.testing.assert_array_equal(loaded(far, training=False), clipped(far, training=False))
    plain, _ = fit_classifier(x[:64], y[:64], x[64:], y[64:], K, dataclasses.replace(config, clip_inputs=False),
                              seed=0)
    assert CLIP_NAME not in [layer.name for layer in plain.layers]


def test_clip_bounds_must_be_ordered_vectors():
    with pytest.raises(ValueError, match="lower <= upper"):
        ClipToRange([1.0, 0.0], [0.0, 1.0])


def test_model_fit_on_emoconfidnet_trains_the_head_as_the_protocol_does():
    # The protocol fits the head on inference-mode embeddings (fit_confidence_head); model.fit on the combined
    # graph must train the same head: the frozen classifier's dropout off, its batch norms on moving statistics.
    x, y = small_data()
    classifier, _ = fit_classifier(x, y, x, y, K, TrainingConfig(max_epochs=2, batch_size=32), seed=0)
    rng = np.random.default_rng(1)
    targets = rng.dirichlet(np.ones(K), size=len(x)).astype("float32")
    embedded = np.asarray(penultimate_model(classifier)(x, training=False))
    weights = []
    for path in ("head", "combined"):
        keras.utils.set_random_seed(7)
        head = build_confidence_head(embedded.shape[1], K, units=16, seed=7)
        if path == "head":
            head.fit(embedded, targets, batch_size=32, epochs=2, shuffle=False, verbose=0)
        else:
            model = build_emoconfidnet(classifier, head, learning_rate=1e-4)
            model.fit(x, {"p_hat": targets}, batch_size=32, epochs=2, shuffle=False, verbose=0)
        weights.append([w.numpy() for w in head.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_inference_only_ignores_the_training_flag():
    # A classifier with dropout 0.5: in training mode half its units would be zeroed and the output would change.
    x, _ = small_data()
    classifier = build_classifier(*feature_moments(x), num_classes=K, units=8, seed=0)
    model = build_emoconfidnet(classifier, units=8, seed=0)
    expected = np.asarray(classifier(x, training=False))
    np.testing.assert_array_equal(np.asarray(model(x, training=True)["probabilities"]), expected)
    assert not np.array_equal(np.asarray(classifier(x, training=True)), expected)


def test_find_layer_reaches_into_the_frozen_classifier():
    x, _ = small_data()
    classifier = build_classifier(*feature_moments(x), num_classes=K, units=8)
    model = build_emoconfidnet(classifier, units=8)
    assert find_layer(model, "standardize") is classifier.get_layer("standardize")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        find_layer(model, "nope")


def test_save_load_round_trip_with_the_custom_loss(tmp_path):
    x, y = small_data()
    classifier, _ = fit_classifier(x, y, x, y, K, TrainingConfig(max_epochs=1, batch_size=32), seed=0)
    targets = np.full((len(x), K), 1.0 / K, dtype="float32")
    model, _ = fit_emoconfidnet(classifier, x, targets, x, targets, TrainingConfig(max_epochs=1, batch_size=32), seed=0)
    path = tmp_path / "emoconfidnet.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    expected = model.predict(x, verbose=0)
    got = restored.predict(x, verbose=0)
    for name in ("probabilities", "p_hat"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-7)
    assert isinstance(restored.loss["p_hat"], PairwiseConfidenceLoss)
    frozen = restored.get_layer(FROZEN_CLASSIFIER_NAME)
    assert isinstance(frozen, InferenceOnly) and not frozen.trainable
    assert frozen.get_config()["model"]["config"]["name"] == "classifier_outputs"
    # Still in inference mode after loading: training=True changes nothing.
    np.testing.assert_array_equal(np.asarray(restored(x, training=True)["probabilities"]), got["probabilities"])


def test_training_stops_early_on_validation_loss():
    x, y = small_data(seed=1)
    rng = np.random.default_rng(5)
    # validation labels are noise: validation loss stops improving early
    config = TrainingConfig(max_epochs=200, patience=2, batch_size=32)
    _, epochs = fit_classifier(x, y, x, rng.integers(0, K, len(x)), K, config, seed=0)
    assert epochs < 200


def test_steps_per_execution_trains_the_same_weights_as_one_step_per_call():
    # 96 rows / batch 8 = 12 steps per epoch: chunks of 32 cover the epoch in one call, with a partial chunk.
    from emoconf_tf.models import STEPS_PER_EXECUTION

    x, y = small_data()
    onehot = np.eye(K, dtype="float32")[y]
    weights = []
    for steps in (1, STEPS_PER_EXECUTION):
        keras.utils.set_random_seed(3)
        model = build_classifier(*feature_moments(x), num_classes=K, seed=3)
        assert model.steps_per_execution == STEPS_PER_EXECUTION
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", steps_per_execution=steps)
        model.fit(x, onehot, batch_size=8, epochs=3, shuffle=True, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
