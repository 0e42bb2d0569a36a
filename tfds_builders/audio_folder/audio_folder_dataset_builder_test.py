"""TFDS's builder test of `audio_folder` on `dummy_data/`: a folder in Hugging Face's `audiofolder` layout.

`dummy_data/metadata.csv` (header `file_name,label,speaker,split,arousal,valence,dominance,scale`) lists the 6
files of `dummy_data/audio/` (0.3 s, 16 kHz mono 16-bit tones): angry, happy, sad twice each, AVD on the 1-7
scale, splits train (3), dev (1, read as validation) and test (2). The class-folder layouts, audio at other
rates, folders without AVD and every bad input are tested in `tests/test_tfds_audio_folder.py`.
"""

from tensorflow_datasets import testing

from tfds_builders import testing as builder_testing
from tfds_builders.audio_folder import audio_folder_dataset_builder


class AudioFolderTest(builder_testing.SpeechFeaturesTestCase):
    DATASET_CLASS = audio_folder_dataset_builder.Builder
    SPLITS = {"train": 3, "validation": 1, "test": 2}
    BUILDER_CONFIG_NAMES_TO_TEST = ["compare_2016", "egemaps_v02"]


if __name__ == "__main__":
    testing.test_main()
