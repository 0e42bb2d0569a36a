"""TFDS builders for speech emotion corpora as openSMILE features: `msp_podcast`, `iemocap`, `ser_features`,
`audio_folder` (any folder of audio with a metadata.csv or one sub-folder per class).

Importing this package registers the four builders with TFDS, so that `tfds.load("iemocap", ...)` and
`tfds.builder("msp_podcast", ...)` find them. See README.md for how to point each one at a licensed copy.
"""

from tfds_builders.audio_folder.audio_folder_dataset_builder import Builder as AudioFolder
from tfds_builders.iemocap.iemocap_dataset_builder import Builder as Iemocap
from tfds_builders.iemocap.iemocap_dataset_builder import IemocapConfig
from tfds_builders.msp_podcast.msp_podcast_dataset_builder import Builder as MspPodcast
from tfds_builders.ser_features.ser_features_dataset_builder import Builder as SerFeatures
from tfds_builders.speech_features import SpeechFeaturesConfig

__all__ = ["AudioFolder", "Iemocap", "IemocapConfig", "MspPodcast", "SerFeatures", "SpeechFeaturesConfig"]
