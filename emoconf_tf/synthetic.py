"""The built-in synthetic corpus: a seeded stand-in for MSP-Podcast that needs no download.

Every row is invented. Each utterance gets a *true* emotion category (imbalanced priors like
MSP-Podcast), a true arousal/valence/dominance (AVD) point typical of that category, and
features computed from the true category and AVD plus noise. Five simulated annotators rate the
AVD on the 1-7 scale; the corpus keeps the mean of their ratings. Then annotation noise swaps the
*observed* category of a fraction of utterances to another one while their AVD and features still
follow the true emotion, so that about 10-15 % of the rows contradict their AVD under the paper's
conflict rules (`emoconf_tf.filtering.conflict_mask`, scale 1-7), mostly because they are
mislabelled -- the case the training-set filter exists for.

Features (`D = num_features`, default 6373 like ComParE-2016) are a low-dimensional latent
(noisy class code, standardised true AVD, a speaker code) times a fixed random projection, plus
Gaussian noise, then put on per-feature scales and offsets (some skewed and positive, like energy
functionals) so that standardising them matters. The classes overlap: a small MLP reaches roughly
50-60 % UAR on the test split, not 95 %.

Speakers do not overlap across the train/validation/test splits (as in MSP-Podcast); each speaker
belongs to one of five `session` groups, for group cross-validation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError

CLASS_NAMES = ("angry", "disgusted", "happy", "neutral", "sad")
"""The five categories of the synthetic corpus, in label-id order."""

SCALE = (1.0, 7.0)
"""The AVD scale of the synthetic corpus (MSP-Podcast's)."""

# Mean and standard deviation of the true (arousal, valence, dominance) of each category on the
# 1-7 scale, one row per entry of CLASS_NAMES; roughly where MSP-Podcast's category centroids lie.
_AVD_MEAN = np.array(
    [
        [5.3, 2.6, 5.2],  # angry: high arousal, low valence, high dominance
        [4.6, 2.6, 4.6],  # disgusted: fairly high arousal, low valence
        [5.0, 5.4, 4.7],  # happy: high valence, raised arousal
        [3.9, 4.1, 4.1],  # neutral: near the middle
        [3.0, 2.8, 3.3],  # sad: low arousal, low valence, low dominance
    ]
)
_AVD_STD = np.array(
    [
        [0.55, 0.55, 0.60],
        [0.60, 0.55, 0.60],
        [0.55, 0.55, 0.60],
        [0.60, 0.60, 0.60],
        [0.55, 0.55, 0.60],
    ]
)
_RATER_STD = 0.7  # spread of one annotator's rating around the true AVD, before rounding to 1..7
_SPEAKER_DIMS = 8
_SPLIT_NAMES = ("train", "validation", "test")
_BLOCK_VALUES = 1 << 22  # feature values (float32, 16 MB) generated per block of rows


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic corpus. Every field has a default; the seed is one of them.

    Args:
        n_utterances: number of rows N. Default 4000.
        num_features: feature dimension D. Default 6373 (the ComParE-2016 size).
        seed: seed of every random draw; the same seed gives bit-identical arrays. Default 0.
        class_priors: probability of each true category, in `CLASS_NAMES` order
            (angry, disgusted, happy, neutral, sad). Default `(0.10, 0.07, 0.30, 0.38, 0.15)`.
        label_noise: fraction in [0, 1) of rows whose observed category is swapped to another
            one (drawn in proportion to the priors of the others). Default 0.20, which gives
            about 11-12.5 % conflicting rows (2-3 % without it).
        num_annotators: raters whose integer 1-7 AVD ratings are averaged per row. Default 5.
        class_separation: length of the class code in the latent, in units of its within-class
            noise (larger = easier). Default 1.8.
        avd_weight: weight of the standardised true AVD in the latent. Default 0.5.
        speaker_effect: standard deviation of the per-speaker latent code. Default 0.5.
        feature_noise: standard deviation of the per-feature Gaussian noise, relative to a
            signal of unit variance per feature. Default 2.0.
        num_speakers: synthetic speakers, assigned utterances evenly. Default 40.
        num_groups: session groups (`session1`...), speakers assigned evenly. Default 5.
        split_fractions: fractions of speakers (hence of rows) in train, validation and test.
            Default `(0.65, 0.15, 0.20)`, about MSP-Podcast's.
    """

    n_utterances: int = 4000
    num_features: int = 6373
    seed: int = 0
    class_priors: tuple[float, ...] = (0.10, 0.07, 0.30, 0.38, 0.15)
    label_noise: float = 0.20
    num_annotators: int = 5
    class_separation: float = 1.8
    avd_weight: float = 0.5
    speaker_effect: float = 0.5
    feature_noise: float = 2.0
    num_speakers: int = 40
    num_groups: int = 5
    split_fractions: tuple[float, float, float] = (0.65, 0.15, 0.20)

    def __post_init__(self):
        if int(self.n_utterances) < 1:
            raise EmoconfError(f"n_utterances must be at least 1; got {self.n_utterances}")
        if int(self.num_features) < 1:
            raise EmoconfError(f"num_features must be at least 1; got {self.num_features}")
        priors = np.asarray(self.class_priors, dtype=np.float64)
        if priors.shape != (len(CLASS_NAMES),) or (priors <= 0).any() or abs(priors.sum() - 1.0) > 1e-6:
            raise EmoconfError(
                f"class_priors must be {len(CLASS_NAMES)} positive numbers summing to 1 "
                f"(for {', '.join(CLASS_NAMES)}); got {self.class_priors}"
            )
        if not 0.0 <= self.label_noise < 1.0:
            raise EmoconfError(f"label_noise must be a fraction in [0, 1); got {self.label_noise}")
        if int(self.num_annotators) < 1:
            raise EmoconfError(f"num_annotators must be at least 1; got {self.num_annotators}")
        for field in ("class_separation", "avd_weight", "speaker_effect", "feature_noise"):
            if not getattr(self, field) >= 0.0:
                raise EmoconfError(f"{field} must be non-negative; got {getattr(self, field)}")
        fractions = np.asarray(self.split_fractions, dtype=np.float64)
        if fractions.shape != (3,) or (fractions < 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
            raise EmoconfError(
                f"split_fractions must be 3 non-negative fractions (train, validation, test) summing to 1; "
                f"got {self.split_fractions}"
            )
        if int(self.num_groups) < 1:
            raise EmoconfError(f"num_groups must be at least 1; got {self.num_groups}")
        if int(self.num_speakers) < max(int(self.num_groups), int((fractions > 0).sum())):
            raise EmoconfError(
                f"num_speakers must be at least num_groups ({self.num_groups}) and the number of non-empty "
                f"splits ({int((fractions > 0).sum())}), since speakers do not cross them; got {self.num_speakers}"
            )


def make_synthetic_corpus(config: SyntheticConfig = SyntheticConfig(), **overrides) -> Corpus:
    """Generates the synthetic corpus.

    Args:
        config: the settings; default `SyntheticConfig()`.
        **overrides: fields of `SyntheticConfig` to replace, e.g. `n_utterances=600, seed=1`.

    Returns:
        A `Corpus` named `synthetic`, with `synthetic=True` and `scale` (1, 7), and N = `n_utterances` rows:
        `ids` `synthetic_00001`...; `features` float32 `[N, num_features]` (arbitrary units, on
        per-feature scales and offsets); `labels` int64 `[N]` into `CLASS_NAMES` (the observed,
        partly noisy category); `avd` float32 `[N, 3]`, the annotators' mean arousal, valence,
        dominance on the 1-7 scale; `speaker` `speaker_01`...; `group` `session1`...;
        `split` train/validation/test (speaker-disjoint); `feature_names` `synthetic_feature_0000`...

    Raises:
        EmoconfError: if an override is not a field of `SyntheticConfig` or a value is out of range.

    Example:
    >>> corpus = make_synthetic_corpus(n_utterances=300, num_features=16, seed=1)
    >>> corpus.features.shape, corpus.class_names[0], corpus.ids[0]
    ((300, 16), 'angry', 'synthetic_00001')
    """
    if overrides:
        fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise EmoconfError(
                f"unknown synthetic corpus setting(s) {', '.join(unknown)}; choose from {', '.join(sorted(fields))}"
            )
        config = dataclasses.replace(config, **overrides)

    n = int(config.n_utterances)
    num_features = int(config.num_features)
    # Independent streams, so that e.g. the projection matrix does not change with n_utterances.
    streams = np.random.SeedSequence(config.seed).spawn(6)
    label_rng, avd_rng, speaker_rng, latent_rng, projection_rng, noise_rng = (np.random.default_rng(s) for s in streams)

    priors = np.asarray(config.class_priors, dtype=np.float64)
    true_labels = label_rng.choice(len(CLASS_NAMES), size=n, p=priors / priors.sum())
    labels = _annotation_noise(true_labels, priors, config.label_noise, label_rng)

    true_avd = _AVD_MEAN[true_labels] + _AVD_STD[true_labels] * avd_rng.standard_normal((n, 3))
    true_avd = np.clip(true_avd, *SCALE)
    ratings = np.rint(true_avd[:, :, None] + _RATER_STD * avd_rng.standard_normal((n, 3, config.num_annotators)))
    avd = np.clip(ratings, *SCALE).mean(axis=2).astype(np.float32)

    speaker_ids, speaker_split, speaker_group = _speakers(n, config, speaker_rng)

    features = _features(true_labels, true_avd, speaker_ids, config, latent_rng, projection_rng, noise_rng)

    width = len(str(num_features))
    id_width = max(5, len(str(n)))
    speaker_width = max(2, len(str(config.num_speakers)))
    return Corpus(
        ids=np.array([f"synthetic_{i:0{id_width}d}" for i in range(1, n + 1)], dtype=object),
        features=features,
        labels=labels.astype(np.int64),
        avd=avd,
        class_names=CLASS_NAMES,
        scale=SCALE,
        speaker=np.array([f"speaker_{s + 1:0{speaker_width}d}" for s in speaker_ids], dtype=object),
        group=np.array([f"session{g + 1}" for g in speaker_group[speaker_ids]], dtype=object),
        split=np.asarray(_SPLIT_NAMES, dtype=object)[speaker_split[speaker_ids]],
        feature_names=tuple(f"synthetic_feature_{j:0{width}d}" for j in range(num_features)),
        name="synthetic",
        synthetic=True,
    )


def _annotation_noise(
    true_labels: np.ndarray, priors: np.ndarray, label_noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Observed labels int `[N]`: a `label_noise` fraction swapped to another class, in proportion to its prior."""
    labels = true_labels.copy()
    swapped = np.flatnonzero(rng.random(true_labels.shape[0]) < label_noise)
    num_classes = priors.shape[0]
    for k in range(num_classes):
        rows = swapped[true_labels[swapped] == k]
        others = np.delete(np.arange(num_classes), k)
        weights = np.delete(priors, k)
        labels[rows] = rng.choice(others, size=rows.shape[0], p=weights / weights.sum())
    return labels


def _speakers(
    n: int, config: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Speaker of each row int `[N]`, split of each speaker int `[S]`, group of each speaker int `[S]`."""
    num_speakers = int(config.num_speakers)
    speaker_ids = rng.permutation(np.arange(n) % num_speakers)
    # Whole speakers go to splits, largest remainder first, so the row fractions follow split_fractions.
    quotas = np.asarray(config.split_fractions, dtype=np.float64) * num_speakers
    counts = np.floor(quotas).astype(int)
    counts[np.argsort(-(quotas - counts), kind="stable")[: num_speakers - counts.sum()]] += 1
    speaker_split = rng.permutation(np.repeat(np.arange(3), counts))
    speaker_group = rng.permutation(np.arange(num_speakers) % int(config.num_groups))
    return speaker_ids, speaker_split, speaker_group


def _features(
    true_labels: np.ndarray,
    true_avd: np.ndarray,
    speaker_ids: np.ndarray,
    config: SyntheticConfig,
    latent_rng: np.random.Generator,
    projection_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    *,
    block_rows: int | None = None,
) -> np.ndarray:
    """float32 `[N, D]`: latent `[N, L]` (noisy class code, standardised AVD, speaker code) @ projection + noise.

    The rows are computed `block_rows` at a time (default: about `_BLOCK_VALUES` values per block) straight
    into the output, so that the peak memory is the output plus one block. Every value is the same, bit for
    bit, as when the whole matrix is computed at once (tests/test_synthetic.py compares the two): the noise
    is drawn in row order from its own stream, the per-feature draws come first, and every later step,
    the product with the projection included, gives a row the same values whatever block it is in.
    """
    n, num_classes = true_labels.shape[0], len(CLASS_NAMES)
    num_features = int(config.num_features)

    class_code = config.class_separation * np.eye(num_classes)[true_labels]
    class_code += latent_rng.standard_normal((n, num_classes))
    avd_code = config.avd_weight * (true_avd - 4.0) / 1.2
    speaker_code = config.speaker_effect * latent_rng.standard_normal((int(config.num_speakers), _SPEAKER_DIMS))
    latent = np.concatenate([class_code, avd_code, speaker_code[speaker_ids]], axis=1).astype(np.float32)

    # Features load on the latent with varying strength; some carry almost no signal, as in ComParE.
    projection = projection_rng.standard_normal((latent.shape[1], num_features), dtype=np.float32)
    loading = projection_rng.uniform(0.0, 1.0, size=num_features).astype(np.float32) ** 2
    projection *= loading * np.float32(np.sqrt(3.0 / latent.shape[1]))

    # Per-feature offsets and scales over many orders of magnitude, some skewed positive (energies).
    skewed = projection_rng.random(num_features) < 0.25
    scale = np.exp(projection_rng.uniform(np.log(1e-3), np.log(1e3), size=num_features)).astype(np.float32)
    offset = projection_rng.normal(0.0, 10.0, size=num_features).astype(np.float32) * scale

    if block_rows is None:
        block_rows = max(1, _BLOCK_VALUES // num_features)
    features = np.empty((n, num_features), dtype=np.float32)
    for start in range(0, n, block_rows):
        block = features[start:start + block_rows]  # a view: every step below writes into the output
        noise_rng.standard_normal(dtype=np.float32, out=block)
        block *= np.float32(config.feature_noise)
        block += latent[start:start + block_rows] @ projection
        block[:, skewed] = np.exp(np.float32(0.3) * block[:, skewed])
        block *= scale
        block += offset
    return features
