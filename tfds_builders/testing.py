"""`SpeechFeaturesTestCase`: `tfds.testing.DatasetBuilderTestCase` for the audio builders (`msp_podcast`, `iemocap`).

A builder test declares `DATASET_CLASS`, `SPLITS` (examples per split of its `dummy_data/`) and
`BUILDER_CONFIG_NAMES_TO_TEST`, as in TFDS. TFDS then builds each config from `dummy_data/` as the manual dir
into a temporary data dir, with GCS access disabled, and checks the splits, the example spec and a reload.

Two things differ from the plain TFDS test case:

- TFDS's test gives `dummy_data/` as the download dir too, where the builders cache each file's openSMILE
  features: the cache goes to the test's temporary folder instead, so that a test run leaves the committed
  `dummy_data/` untouched.
- The check that builder modules use `tf.io.gfile` rather than `os` and `open` is off: the wavs are read by
  openSMILE and soundfile, which take local paths only, so a manual dir is always a local folder.

Example:

```python
from tfds_builders import testing
from tfds_builders.iemocap import iemocap_dataset_builder


class IemocapTest(testing.SpeechFeaturesTestCase):
    DATASET_CLASS = iemocap_dataset_builder.Builder
    SPLITS = {"session1": 2, "session2": 2, "session3": 1, "session4": 1, "session5": 1}
    BUILDER_CONFIG_NAMES_TO_TEST = ["egemaps_v02"]
```
"""

from __future__ import annotations

import os
from unittest import mock

import tensorflow_datasets as tfds

from tfds_builders.speech_features import SpeechFeaturesBuilder


class SpeechFeaturesTestCase(tfds.testing.DatasetBuilderTestCase):
    """`DatasetBuilderTestCase` with the openSMILE cache in the test's temporary folder (see the module docstring)."""

    MOCK_OUT_FORBIDDEN_OS_FUNCTIONS = False

    def setUp(self):
        super().setUp()
        cache_dir = os.path.join(self.tmp_dir, "opensmile")
        patcher = mock.patch.object(
            SpeechFeaturesBuilder, "_opensmile_cache_dir", lambda builder, dl_manager: cache_dir
        )
        patcher.start()
        self.addCleanup(patcher.stop)
