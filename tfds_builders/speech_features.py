"""What the speech-emotion builders share: the feature-set configs, the example spec and example writing.

Every example is one utterance:

- `id` (text), `features` (float32 `[D]`, openSMILE functionals), `label` (ClassLabel),
- `arousal`, `valence`, `dominance` (float32, on the corpus scale: 1-7 MSP-Podcast, 1-5 IEMOCAP),
- `speaker` (text, "" when unknown), `group` (text: the recording session, or "").

The audio builders extract the features in `_generate_examples` with `emoconf_tf.extraction.iter_features`:
files are processed by `num_workers` threads (a builder argument, default every CPU) and cached per file
under `<data_dir>/downloads/opensmile/`, so an interrupted build resumes without extracting again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from emoconf_tf import extraction
from emoconf_tf.errors import EmoconfError

logger = logging.getLogger(__name__)

VERSION = tfds.core.Version("1.0.0")
RELEASE_NOTES = {"1.0.0": "Initial release: openSMILE functionals, category labels and AVD per utterance."}


@dataclasses.dataclass(eq=False)
class SpeechFeaturesConfig(tfds.core.BuilderConfig):
    """A builder config naming the openSMILE feature set.

    Attributes:
        feature_set: `"compare_2016"` or `"egemaps_v02"` (see `emoconf_tf.extraction.FeatureSet`).
        num_features: the feature dimension D the dataset declares; the extracted dimension must match.
            `None` only for tables of any width (`ser_features/custom`).
    """

    feature_set: str = "compare_2016"
    num_features: int | None = None


def feature_set_configs(config_class=SpeechFeaturesConfig, suffix: str = "", description: str = "", **fields):
    """The two configs of the paper, `compare_2016` (default, listed first) and `egemaps_v02`."""
    configs = []
    for feature_set, size in extraction.FEATURE_DIMENSIONS.items():
        configs.append(
            config_class(
                name=feature_set.value + suffix,
                description=f"openSMILE {feature_set.value} functionals ({size} per utterance){description}.",
                feature_set=feature_set.value,
                num_features=size,
                **fields,
            )
        )
    return configs


def example_features(class_names: Sequence[str] | None, num_features: int | None) -> tfds.features.FeaturesDict:
    """The example spec; `class_names=None` leaves the ClassLabel names to be set when the data is read."""
    label = tfds.features.ClassLabel(names=list(class_names)) if class_names is not None else tfds.features.ClassLabel()
    return tfds.features.FeaturesDict(
        {
            "id": tfds.features.Text(),
            "features": tfds.features.Tensor(shape=(num_features,), dtype=np.float32),
            "label": label,
            "arousal": np.float32,
            "valence": np.float32,
            "dominance": np.float32,
            "speaker": tfds.features.Text(),
            "group": tfds.features.Text(),
        }
    )


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One labelled utterance of an audio corpus, before its features are extracted."""

    id: str
    wav_path: str
    label: str
    arousal: float
    valence: float
    dominance: float
    speaker: str = ""
    group: str = ""


class SpeechFeaturesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the audio builders: openSMILE features of `Utterance`s, extracted in parallel.

    Args:
        num_workers: files extracted at once; default every CPU. Pass it with
            `tfds.builder(name, num_workers=4)` or `tfds.load(name, builder_kwargs={"num_workers": 4})`.
        **kwargs: `data_dir`, `config`, `version`, ... as for any `tfds.core.DatasetBuilder`.
    """

    VERSION = VERSION
    RELEASE_NOTES = RELEASE_NOTES

    def __init__(self, *, num_workers: int | None = None, progress: bool = True, **kwargs):
        self._num_workers = num_workers
        self._progress = progress
        super().__init__(**kwargs)

    def _opensmile_cache_dir(self, dl_manager) -> str:
        # Under the download dir (default `<data_dir>/downloads`), which TFDS keeps across builds.
        return os.fspath(dl_manager.download_dir / "opensmile")

    def _generate_examples(self, utterances: Sequence[Utterance], cache_dir: str) -> Iterator[tuple[str, dict]]:
        vectors = extraction.iter_features(
            [utterance.wav_path for utterance in utterances],
            self.builder_config.feature_set,
            num_workers=self._num_workers,
            cache_dir=cache_dir,
            num_features=self.builder_config.num_features,
            progress=self._progress,
        )
        for utterance, (_, vector) in zip(utterances, vectors):
            yield utterance.id, {
                "id": utterance.id,
                "features": vector,
                "label": utterance.label,
                "arousal": np.float32(utterance.arousal),
                "valence": np.float32(utterance.valence),
                "dominance": np.float32(utterance.dominance),
                "speaker": utterance.speaker,
                "group": utterance.group,
            }

    def _record_metadata(self, *, scale: tuple[float, float], skipped: dict, skipped_reasons: dict | None = None):
        """Stores the scale, feature names and skipped counts in `info.metadata` (`metadata.json`)."""
        metadata = self.info.metadata
        metadata["scale"] = [float(scale[0]), float(scale[1])]
        metadata["feature_set"] = self.builder_config.feature_set
        metadata["feature_names"] = extraction.feature_names(self.builder_config.feature_set)
        metadata["skipped_classes"] = {str(k): int(v) for k, v in sorted(skipped.items())}
        metadata["skipped_other"] = {str(k): int(v) for k, v in sorted((skipped_reasons or {}).items())}
        total = sum(metadata["skipped_classes"].values()) + sum(metadata["skipped_other"].values())
        if total:
            logger.info(
                "%s: skipped %d utterance(s): classes %s, other %s",
                self.name,
                total,
                metadata["skipped_classes"],
                metadata["skipped_other"],
            )


def check_wavs_exist(utterances: Iterable[Utterance], where: str) -> None:
    """Fails before any extraction, naming the first missing wav and how many are missing."""
    missing = [u.wav_path for u in utterances if not os.path.isfile(u.wav_path)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise EmoconfError(
            f"{missing[0]}: no such audio file{more}; the {where} copy in the manual dir is incomplete"
        )
