"""TFDS's builder test of `ser_features` on `dummy_data/features.csv`, a features table as `emoconf export-table`
writes it: 6 utterances, three classes, AVD on 1-7 (`scale` column), a `split` column and the 88 eGeMAPS v02
feature columns under their openSMILE names.

`compare_2016` is not tested here: its table would be 6,373 columns wide (about 0.5 MB); the configs differ only
in the width they expect, which `tests/test_tfds_ser_features.py` checks.
"""

from tensorflow_datasets import testing

from tfds_builders.ser_features import ser_features_dataset_builder


class SerFeaturesTest(testing.DatasetBuilderTestCase):
    DATASET_CLASS = ser_features_dataset_builder.Builder
    SPLITS = {"train": 3, "validation": 1, "test": 2}
    BUILDER_CONFIG_NAMES_TO_TEST = ["egemaps_v02", "custom"]


if __name__ == "__main__":
    testing.test_main()
