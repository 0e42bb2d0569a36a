import keras
import numpy as np
import pytest

from emoconf_tf import PairwiseConfidenceLoss, build_classifier, build_emoconfidnet
from emoconf_tf.models import HEAD_NAME, PENULTIMATE, penultimate_model
from emoconf_tf.training import TrainingConfig, feature_moments, fit_classifier, fit_emoconfidnet

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
    inbound = head._inbound_nodes[0].input_tensors[0]
    assert inbound is classifier.get_layer(PENULTIMATE).output
    assert model.inputs[0] is classifier.inputs[0]
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
    model, epochs = fit_emoconfidnet(classifier, x, targets, x, targets, TrainingConfig(max_epochs=3, batch_size=32), seed=0)
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


def test_training_stops_early_on_validation_loss():
    x, y = small_data(seed=1)
    rng = np.random.default_rng(5)
    # validation labels are noise: validation loss stops improving early
    _, epochs = fit_classifier(x, y, x, rng.integers(0, K, len(x)), K, TrainingConfig(max_epochs=200, patience=2, batch_size=32), seed=0)
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
