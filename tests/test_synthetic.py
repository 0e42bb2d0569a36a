"""Tests of the built-in synthetic corpus (`emoconf_tf.synthetic`)."""

import dataclasses

import numpy as np
import pytest

from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.filtering import conflict_mask
from emoconf_tf import synthetic
from emoconf_tf.synthetic import CLASS_NAMES, SyntheticConfig, make_synthetic_corpus


@pytest.fixture(scope="module")
def small():
    return make_synthetic_corpus(n_utterances=400, num_features=32, seed=3)


@pytest.fixture(scope="module")
def large_narrow():
    # Big enough to measure fractions to about +-0.6 % (one standard error at p = 0.12, N = 3000).
    return make_synthetic_corpus(n_utterances=3000, num_features=8, seed=0)


def _conflict_rate(corpus):
    names = np.asarray(corpus.class_names)[corpus.labels]
    return conflict_mask(names, corpus.avd[:, 0], corpus.avd[:, 1], scale=(1, 7)).mean()


def test_arrays_have_the_documented_shapes_and_dtypes(small):
    assert isinstance(small, Corpus)
    assert len(small) == 400
    assert small.features.shape == (400, 32) and small.features.dtype == np.float32
    assert small.features.flags["C_CONTIGUOUS"]
    assert np.isfinite(small.features).all()
    assert small.labels.shape == (400,) and small.labels.dtype == np.int64
    assert small.avd.shape == (400, 3) and small.avd.dtype == np.float32
    for column in (small.ids, small.speaker, small.group, small.split):
        assert column.shape == (400,)
    assert len(set(small.ids)) == 400


def test_same_seed_gives_bit_identical_arrays():
    first = make_synthetic_corpus(n_utterances=150, num_features=24, seed=7)
    second = make_synthetic_corpus(n_utterances=150, num_features=24, seed=7)
    for field in ("features", "labels", "avd", "ids", "speaker", "group", "split"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert first.features.tobytes() == second.features.tobytes()


def test_other_seed_gives_different_arrays():
    first = make_synthetic_corpus(n_utterances=150, num_features=24, seed=7)
    second = make_synthetic_corpus(n_utterances=150, num_features=24, seed=8)
    assert not np.array_equal(first.features, second.features)
    assert not np.array_equal(first.labels, second.labels)
    assert not np.array_equal(first.avd, second.avd)


def test_classes_are_in_paper_order_and_all_present(small):
    assert small.class_names == ("angry", "disgusted", "happy", "neutral", "sad") == CLASS_NAMES
    assert set(np.unique(small.labels)) == {0, 1, 2, 3, 4}


def test_class_priors_are_imbalanced_like_msp_podcast(large_narrow):
    share = np.bincount(large_narrow.labels, minlength=5) / len(large_narrow)
    angry, disgusted, happy, neutral, sad = share
    assert neutral > happy > sad > angry > disgusted
    assert 0.04 < disgusted < 0.10 and 0.30 < neutral < 0.45


def test_avd_lies_on_the_1_to_7_scale_as_annotator_means(small):
    assert small.scale == (1.0, 7.0)
    assert small.avd.min() >= 1.0 and small.avd.max() <= 7.0
    # Means of 5 integer ratings are multiples of 0.2.
    np.testing.assert_allclose(small.avd * 5, np.rint(small.avd * 5), atol=1e-4)


def test_avd_centroids_follow_the_emotions(large_narrow):
    centroid = {name: large_narrow.avd[large_narrow.labels == k].mean(axis=0) for k, name in enumerate(CLASS_NAMES)}
    arousal, valence, dominance = 0, 1, 2
    assert centroid["happy"][valence] > centroid["neutral"][valence] > centroid["sad"][valence]
    assert centroid["angry"][arousal] > centroid["neutral"][arousal] > centroid["sad"][arousal]
    assert centroid["angry"][valence] < 4.0 and centroid["angry"][dominance] > centroid["sad"][dominance]


@pytest.mark.parametrize("seed", [0, 1])
def test_conflict_rate_is_between_10_and_15_percent(seed, large_narrow):
    corpus = large_narrow if seed == 0 else make_synthetic_corpus(n_utterances=3000, num_features=8, seed=seed)
    assert 0.10 <= _conflict_rate(corpus) <= 0.15


def test_conflicts_come_mostly_from_annotation_noise(large_narrow):
    clean = make_synthetic_corpus(n_utterances=3000, num_features=8, seed=0, label_noise=0.0)
    # Without swapped labels only the tails of the category AVD clouds cross the midpoint (~2-3 %).
    assert _conflict_rate(clean) < 0.05 < _conflict_rate(large_narrow)


def test_splits_follow_msp_podcast_proportions_without_shared_speakers(large_narrow):
    share = {name: np.mean(large_narrow.split == name) for name in ("train", "validation", "test")}
    assert set(large_narrow.split) == set(share)
    assert share["train"] == pytest.approx(0.65, abs=0.03)
    assert share["validation"] == pytest.approx(0.15, abs=0.03)
    assert share["test"] == pytest.approx(0.20, abs=0.03)
    speakers = {name: set(large_narrow.speaker[large_narrow.split == name]) for name in share}
    assert not (speakers["train"] & speakers["validation"] or speakers["train"] & speakers["test"])
    assert not speakers["validation"] & speakers["test"]
    assert len(set(large_narrow.speaker)) == 40


def test_groups_are_five_roughly_equal_sessions(large_narrow):
    groups, counts = np.unique(large_narrow.group, return_counts=True)
    assert list(groups) == ["session1", "session2", "session3", "session4", "session5"]
    assert counts.min() / len(large_narrow) > 0.15 and counts.max() / len(large_narrow) < 0.25


def test_feature_dimension_follows_num_features():
    corpus = make_synthetic_corpus(n_utterances=20, num_features=123)
    assert corpus.features.shape == (20, 123) and corpus.num_features == 123
    assert corpus.feature_names[0] == "synthetic_feature_000"
    assert corpus.feature_names[-1] == "synthetic_feature_122"
    assert len(set(corpus.feature_names)) == 123


def test_default_config_matches_compare_2016_size():
    config = SyntheticConfig()
    assert config.num_features == 6373 and config.n_utterances == 4000


def test_everything_is_labelled_synthetic(small):
    assert small.name == "synthetic" and small.synthetic
    assert small.ids[0] == "synthetic_00001" and small.ids[-1] == "synthetic_00400"
    assert all(name.startswith("synthetic_feature_") for name in small.feature_names)


def test_features_sit_on_different_scales(small):
    spread = small.features.std(axis=0)
    assert spread.max() / spread.min() > 100
    assert np.abs(small.features.mean(axis=0)).max() > 10 * np.median(spread)


def test_keyword_overrides_equal_the_same_config():
    by_keyword = make_synthetic_corpus(n_utterances=60, num_features=10, seed=2)
    by_config = make_synthetic_corpus(SyntheticConfig(n_utterances=60, num_features=10, seed=2))
    np.testing.assert_array_equal(by_keyword.features, by_config.features)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SyntheticConfig().seed = 1


def test_unknown_override_is_named_in_the_error():
    with pytest.raises(EmoconfError, match="num_feature"):
        make_synthetic_corpus(num_feature=10)


@pytest.mark.parametrize(
    "settings",
    [
        {"n_utterances": 0},
        {"num_features": 0},
        {"class_priors": (0.5, 0.5)},
        {"label_noise": 1.0},
        {"split_fractions": (0.5, 0.2, 0.2)},
        {"num_speakers": 2},
    ],
)
def test_invalid_settings_raise(settings):
    with pytest.raises(EmoconfError, match=next(iter(settings))):
        SyntheticConfig(**settings)


def test_classes_are_learnable_but_overlap():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    corpus = make_synthetic_corpus(n_utterances=2000, num_features=256, seed=0)
    train, test = corpus.split == "train", corpus.split == "test"
    scaler = StandardScaler().fit(corpus.features[train])
    model = LogisticRegression(C=1e-3, max_iter=1000, class_weight="balanced")
    model.fit(scaler.transform(corpus.features[train]), corpus.labels[train])
    predicted = model.predict(scaler.transform(corpus.features[test]))
    # Chance is 0.20; ~0.5 is expected. Far above 0.85 would make the confidence study pointless.
    assert 0.35 < balanced_accuracy_score(corpus.labels[test], predicted) < 0.85


def _features_all_at_once(true_labels, true_avd, speaker_ids, config, latent_rng, projection_rng, noise_rng):
    """The generator as it was before it worked in blocks of rows: every step on the whole `[N, D]` matrix."""
    n, num_classes = true_labels.shape[0], len(CLASS_NAMES)
    class_code = config.class_separation * np.eye(num_classes)[true_labels]
    class_code += latent_rng.standard_normal((n, num_classes))
    avd_code = config.avd_weight * (true_avd - 4.0) / 1.2
    speaker_code = config.speaker_effect * latent_rng.standard_normal((config.num_speakers, 8))
    latent = np.concatenate([class_code, avd_code, speaker_code[speaker_ids]], axis=1).astype(np.float32)
    projection = projection_rng.standard_normal((latent.shape[1], config.num_features), dtype=np.float32)
    loading = projection_rng.uniform(0.0, 1.0, size=config.num_features).astype(np.float32) ** 2
    projection *= loading * np.float32(np.sqrt(3.0 / latent.shape[1]))
    features = noise_rng.standard_normal((n, config.num_features), dtype=np.float32)
    features *= np.float32(config.feature_noise)
    features += latent @ projection
    skewed = projection_rng.random(config.num_features) < 0.25
    features[:, skewed] = np.exp(np.float32(0.3) * features[:, skewed])
    scale = np.exp(projection_rng.uniform(np.log(1e-3), np.log(1e3), size=config.num_features)).astype(np.float32)
    offset = projection_rng.normal(0.0, 10.0, size=config.num_features).astype(np.float32) * scale
    features *= scale
    features += offset
    return features


@pytest.mark.parametrize("block_rows", [1, 7, 50, None])
def test_features_made_in_blocks_of_rows_equal_the_whole_matrix_at_once(block_rows):
    config = SyntheticConfig(n_utterances=50, num_features=37, num_speakers=6, seed=4)
    inputs = np.random.default_rng(9)
    true_labels = inputs.integers(0, len(CLASS_NAMES), 50)
    true_avd = inputs.uniform(1.0, 7.0, size=(50, 3))
    speaker_ids = inputs.integers(0, 6, 50)

    def streams():
        return [np.random.default_rng(s) for s in np.random.SeedSequence(11).spawn(3)]

    expected = _features_all_at_once(true_labels, true_avd, speaker_ids, config, *streams())
    # 50 rows in blocks of 7: seven full blocks and a last one of 1
    got = synthetic._features(true_labels, true_avd, speaker_ids, config, *streams(), block_rows=block_rows)
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    assert got.tobytes() == expected.tobytes()


def test_the_generator_holds_the_features_and_one_block_of_rows():
    # NumPy reports its arrays to tracemalloc. 100 MB of features and 16 MB blocks; the generator that worked on
    # the whole matrix at once peaked at over twice the features (a second [N, D] array for latent @ projection).
    import tracemalloc

    tracemalloc.start()
    try:
        corpus = make_synthetic_corpus(n_utterances=20000, num_features=1250, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block_bytes = synthetic._BLOCK_VALUES * 4
    assert peak < corpus.features.nbytes + 2 * block_bytes < 1.5 * corpus.features.nbytes
