"""Any features table (see `emoconf_tf.corpus`) as a TFDS dataset, split by its `split` column."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from emoconf_tf.corpus import read_features_table
from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FeatureSet
from tfds_builders import speech_features

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
# A folder may hold several tables; this name is preferred, else the folder must hold exactly one.
PREFERRED_STEM = "features"


@dataclasses.dataclass(eq=False)
class SerFeaturesConfig(speech_features.SpeechFeaturesConfig):
    """The feature set names the expected table width; `custom` accepts any width."""


class Builder(tfds.core.GeneratorBasedBuilder):
    """Utterances of a features table: features, category labels (sorted names), AVD, speaker and group."""

    VERSION = speech_features.VERSION
    RELEASE_NOTES = speech_features.RELEASE_NOTES
    BUILDER_CONFIGS = speech_features.feature_set_configs(SerFeaturesConfig) + [
        SerFeaturesConfig(
            name="custom",
            description="A features table of any width (features of shape [None]).",
            feature_set="custom",
            num_features=None,
        )
    ]
    DEFAULT_CONFIG_NAME = FeatureSet.COMPARE_2016.value

    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    manual_dir must hold one features table (features.csv, features.csv.gz or features.parquet; any
    name if it is the only table there), with columns id, label, arousal, valence, dominance, scale
    (the AVD scale 'LO,HI' on every row, e.g. '1,5'), optional speaker, group, split, synthetic,
    merged_labels, and one numeric column per feature (see emoconf_tf/corpus.py). Splits come from
    its split column (train, validation/development, test/test1, test2, ...), or one train split.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return speech_features.info_with_labels_from_data(self)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        table_path = find_table(Path(dl_manager.manual_dir))
        corpus, _ = read_features_table(table_path)
        expected = self.builder_config.num_features
        if expected is not None and corpus.num_features != expected:
            raise EmoconfError(
                f"{table_path}: {corpus.num_features} feature columns, but config {self.builder_config.name!r} "
                f"expects {expected}; use the config of the table's feature set, or 'custom'"
            )
        self.info.features["label"].names = list(corpus.class_names)
        metadata = self.info.metadata
        metadata["feature_set"] = self.builder_config.feature_set
        metadata["feature_names"] = list(corpus.feature_names)
        metadata["source_table"] = table_path.name
        # The table's own record (read_features_table refuses a table without a scale): a dataset of a
        # synthetic table stays synthetic, and IEMOCAP's merge of excited into happy is kept.
        metadata["scale"] = [float(corpus.scale[0]), float(corpus.scale[1])]
        metadata["merged_labels"] = dict(corpus.merged_labels)
        if corpus.synthetic:
            metadata["synthetic"] = True
        metadata["skipped_classes"] = {}
        metadata["skipped_other"] = {}
        splits = corpus.split if (corpus.split != "").all() else np.full(len(corpus), "train", dtype=object)
        return {
            split: self._generate_examples(corpus.subset(splits == split))
            for split in sorted(set(splits), key=_split_rank)
        }

    def _generate_examples(self, corpus):
        for row in range(len(corpus)):
            yield str(corpus.ids[row]), {
                "id": str(corpus.ids[row]),
                "features": corpus.features[row],
                "label": int(corpus.labels[row]),
                "arousal": corpus.avd[row, 0],
                "valence": corpus.avd[row, 1],
                "dominance": corpus.avd[row, 2],
                "speaker": str(corpus.speaker[row]),
                "group": str(corpus.group[row]),
            }


def find_table(manual_dir: Path) -> Path:
    """The features table in `manual_dir`: `features.<suffix>` if present, else the only table there."""
    tables = sorted(
        path for path in manual_dir.iterdir() if path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES)
    )
    preferred = [path for path in tables if path.name.split(".")[0] == PREFERRED_STEM]
    if len(preferred) == 1:
        return preferred[0]
    if len(tables) == 1:
        return tables[0]
    if not tables:
        raise EmoconfError(
            f"{manual_dir / 'features.csv'}: no such file; manual_dir must hold a features table "
            f"({', '.join(TABLE_SUFFIXES)})"
        )
    raise EmoconfError(
        f"{manual_dir}: {len(tables)} tables ({', '.join(p.name for p in tables)}); keep one, or name it features.csv"
    )


def _split_rank(split: str) -> tuple[int, str]:
    return ({"train": 0, "validation": 1, "test": 2}.get(split, 3), split)
