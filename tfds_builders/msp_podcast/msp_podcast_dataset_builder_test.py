"""TFDS's builder test of `msp_podcast` on `dummy_data/`: a release folder in the real layout and formats.

`dummy_data/Labels/labels_consensus.csv` (header `FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set`)
lists 6 utterances, one of class `X` (never kept), and `dummy_data/Audios/MSP-PODCAST_*.wav` holds their audio
(0.3 s, 16 kHz mono 16-bit tones). Splits: Train (2 kept), Development (1), Test1 (1), Test2 (1).
"""

from tensorflow_datasets import testing

from tfds_builders import testing as builder_testing
from tfds_builders.msp_podcast import msp_podcast_dataset_builder


class MspPodcastTest(builder_testing.SpeechFeaturesTestCase):
    DATASET_CLASS = msp_podcast_dataset_builder.Builder
    SPLITS = {"train": 2, "validation": 1, "test1": 1, "test2": 1}
    BUILDER_CONFIG_NAMES_TO_TEST = ["compare_2016", "egemaps_v02"]


if __name__ == "__main__":
    testing.test_main()
