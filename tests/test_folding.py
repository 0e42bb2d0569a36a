"""Folding the standardisation, batch norms and dropout into dense layers: hand values, Keras agreement, export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from emoconf_tf import EmoconfError
from emoconf_tf.serving.folded_network import (
    FoldedClassifierInference, FoldedInference, fold_classifier, fold_emoconfidnet,
)
from emoconf_tf.models import FROZEN_CLASSIFIER_NAME, build_classifier, build_emoconfidnet
from emoconf_tf.training import TrainingConfig, feature_moments, fit_classifier, fit_emoconfidnet

K = 3


def _set(layer, *values):
    layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])


def test_one_block_folds_to_hand_computed_kernel_and_bias():
    # D = 1, one unit. Standardisation: mean 10, variance 16 -> std 4. Dense: w 2, b 1.
    # BatchNorm: gamma 3, beta 0.5, moving mean 1, moving variance 3.999 (+ eps 0.001 = 4, sqrt 2) -> s = 1.5.
    # Folded: kernel 2 * 1.5 / 4 = 0.75, bias (1 - 1) * 1.5 + 0.5 = 0.5, after subtracting the mean 10.
    # x = 14: Keras (14 - 10) / 4 = 1 -> 1 * 2 + 1 = 3 -> 1.5 * (3 - 1) + 0.5 = 3.5; folded 4 * 0.75 + 0.5 = 3.5.
    classifier = build_classifier(np.array([10.0]), np.array([16.0]), num_classes=K, units=1)
    _set(classifier.get_layer("block1_dense"), [[2.0]], [1.0])
    _set(classifier.get_layer("block1_batchnorm"), [3.0], [0.5], [1.0], [3.999])
    folded = fold_emoconfidnet(build_emoconfidnet(classifier, units=4))
    first = folded.classifier[0]
    assert first.name == "block1_dense" and first.activation == "relu"
    np.testing.assert_allclose(first.kernel, [[0.75]], rtol=1e-6)
    np.testing.assert_allclose(first.bias, [0.5], rtol=1e-6)
    np.testing.assert_array_equal(folded.input_mean, [10.0])
    relu = classifier.get_layer("block1_relu")
    np.testing.assert_allclose(keras.Model(classifier.input, relu.output)(np.array([[14.0]]), training=False), [[3.5]],
                               rtol=1e-6)


def test_folded_chain_has_three_dense_layers_each_and_drops_dropout():
    classifier = build_classifier(np.zeros(6), np.ones(6), num_classes=K)
    folded = fold_emoconfidnet(build_emoconfidnet(classifier))
    assert [(d.name, d.activation, d.kernel.shape) for d in folded.classifier] == [
        ("block1_dense", "relu", (6, 256)), ("block2_dense", "relu", (256, 256)),
        ("probabilities", "softmax", (256, K))]
    assert [(d.name, d.activation) for d in folded.head] == [
        ("head_block1_dense", "relu"), ("head_block2_dense", "relu"), ("p_hat", "softmax")]


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 400)
    # Features far from zero with very different scales, as openSMILE functionals are.
    x = (rng.normal(size=(400, 10)) * np.logspace(-3, 3, 10) + 500.0 + y[:, None]).astype(np.float32)
    config = TrainingConfig(max_epochs=3, batch_size=32)
    classifier, _ = fit_classifier(x[:300], y[:300], x[300:], y[300:], K, config, seed=0)
    targets = np.eye(K, dtype=np.float32)[y] * 0.6 + 0.4 / K
    model, _ = fit_emoconfidnet(classifier, x[:300], targets[:300], x[300:], targets[300:], config, seed=0)
    return model, x


def test_folded_network_matches_the_keras_model_in_inference_mode(trained):
    model, x = trained
    expected = model(x, training=False)
    for name, got in zip(("probabilities", "p_hat"), FoldedInference(fold_emoconfidnet(model))(tf.constant(x))):
        np.testing.assert_allclose(got.numpy(), np.asarray(expected[name]), atol=2e-6)
    assert (np.asarray(expected["probabilities"]).std(axis=0) > 0).all()  # a trained, non-constant model


def test_folded_network_clips_like_the_keras_model(trained):
    model, x = trained  # fit_classifier clips to the training range by default
    folded = fold_emoconfidnet(model)
    lower, upper = folded.input_range
    np.testing.assert_array_equal(lower, x[:300].min(axis=0))
    np.testing.assert_array_equal(upper, x[:300].max(axis=0))
    far = np.concatenate([x[300:] * np.float32(1e3), x[300:] - np.float32(1e4)])  # far outside on both sides
    expected = model(far, training=False)
    got = FoldedInference(folded)(tf.constant(far))
    for name, value in zip(("probabilities", "p_hat"), got):
        np.testing.assert_allclose(value.numpy(), np.asarray(expected[name]), atol=2e-6)
    classifier = fold_classifier(model.get_layer(FROZEN_CLASSIFIER_NAME).model)
    np.testing.assert_array_equal(classifier.input_range[0], lower)
    np.testing.assert_allclose(FoldedClassifierInference(classifier)(tf.constant(far)).numpy(),
                               np.asarray(expected["probabilities"]), atol=2e-6)


def test_tiny_variance_keeps_the_mean_subtraction_exact():
    # Variance 1e-14 -> std 1e-7: a kernel of 1e7 x w. Folding the mean into the bias would cancel
    # 1e7 * 1000 against itself in float32; keeping `x - mean` first gives the Keras answer.
    mean, variance = np.array([1000.0, 0.0]), np.array([1e-14, 1.0])
    classifier = build_classifier(mean, variance, num_classes=K, units=4)
    model = build_emoconfidnet(classifier, units=4)
    x = np.array([[1000.0, 0.3], [1000.0, -1.2], [1000.0625, 0.1]], dtype=np.float32)
    expected = model(x, training=False)
    probabilities, p_hat = FoldedInference(fold_emoconfidnet(model))(tf.constant(x))
    np.testing.assert_allclose(probabilities.numpy(), np.asarray(expected["probabilities"]), atol=1e-6)
    np.testing.assert_allclose(p_hat.numpy(), np.asarray(expected["p_hat"]), atol=1e-6)


def test_a_layer_outside_the_chain_is_refused_by_name():
    inputs = keras.Input((4,), name="features")
    x = keras.layers.Normalization(mean=np.zeros(4), variance=np.ones(4), name="standardize")(inputs)
    x = keras.layers.Dense(8, name="block1_dense")(x)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    x = keras.layers.ReLU(name="penultimate")(x)
    x = keras.layers.Dense(K, activation="softmax", name="probabilities")(x)
    model = build_emoconfidnet(keras.Model(inputs, x), units=4)
    with pytest.raises(EmoconfError, match="layer 'odd_norm' \\(LayerNormalization\\)"):
        fold_emoconfidnet(model)


def test_feature_moments_model_folds_with_default_epsilon():
    x = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    model = build_emoconfidnet(build_classifier(*feature_moments(x), num_classes=K, units=4), units=4)
    probabilities, _ = FoldedInference(fold_emoconfidnet(model))(tf.constant(x))
    np.testing.assert_allclose(probabilities.numpy(), np.asarray(model(x, training=False)["probabilities"]),
                               atol=1e-6)


def _fit_with_constant_column(x_train, y_train):
    config = TrainingConfig(max_epochs=2, batch_size=32)
    classifier, _ = fit_classifier(x_train, y_train, x_train, y_train, K, config, seed=0)
    targets = np.eye(K, dtype=np.float32)[y_train] * 0.6 + 0.4 / K
    model, _ = fit_emoconfidnet(classifier, x_train, targets, x_train, targets, config, seed=0)
    return model


def test_feature_constant_in_training_folds_and_exports_like_keras(tmp_path):
    from emoconf_tf.serving.serving_module import EmoconfServingModule

    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 200)
    x = (rng.normal(size=(200, 4)) + y[:, None]).astype(np.float32)
    x[:, 2] = 50.0  # constant on every training row: variance 0
    model = _fit_with_constant_column(x, y)
    # Test rows vary in that column, by up to 50: the feature is masked, so every row answers as if it were 50.
    x_test = np.array(x[:6], copy=True)
    x_test[:, 2] = [50.0, 51.0, 0.0, 100.0, 49.5, 50.25]
    x_constant = np.array(x[:6], copy=True)
    expected = model(x_test, training=False)
    for name in ("probabilities", "p_hat"):
        np.testing.assert_array_equal(np.asarray(expected[name]), np.asarray(model(x_constant, training=False)[name]))
    folded = fold_emoconfidnet(model)
    # The folded first kernel row of that column is 0 (Keras's row times 1 / inf), the others unchanged.
    assert not folded.classifier[0].kernel[2].any() and folded.classifier[0].kernel[1].any()
    for name, got in zip(("probabilities", "p_hat"), FoldedInference(folded)(tf.constant(x_test))):
        assert np.isfinite(got.numpy()).all()
        np.testing.assert_allclose(got.numpy(), np.asarray(expected[name]), atol=2e-6)
    # The SavedModel's predict signature (the folded network, as `emoconf export` writes it) agrees too.
    module = EmoconfServingModule(model, [f"c{k}" for k in range(K)], np.linspace(0.2, 0.9, 10),
                                  default_rejection=0.2, default_threshold=0.76)
    module.save(tmp_path / "saved_model")
    served = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["predict"](features=tf.constant(x_test))
    np.testing.assert_allclose(served["probabilities"].numpy(), np.asarray(expected["probabilities"]), atol=2e-6)
