"""TFDS's builder test of `iemocap` on `dummy_data/`: a release with the five sessions' real layout and formats.

`dummy_data/IEMOCAP_full_release/SessionN/dialog/EmoEvaluation/<dialog>.txt` (summary lines
`[start - end]<TAB>turn<TAB>category<TAB>[V, A, D]` with per-evaluator lines) and
`SessionN/sentences/wav/<dialog>/<turn>.wav` (0.3 s, 16 kHz mono 16-bit tones): 8 turns, of which
Session1 holds `neu`, `exc` and `xxx` (never kept), the other sessions `hap`, `sad`, `fru`, `ang`, `neu`.
"""

import importlib.util
import os
import subprocess
import sys

from tensorflow_datasets import testing

from tfds_builders import testing as builder_testing
from tfds_builders.iemocap import iemocap_dataset_builder

BUILDER_FOLDER = os.path.dirname(os.path.abspath(iemocap_dataset_builder.__file__))
REPOSITORY = os.path.dirname(os.path.dirname(BUILDER_FOLDER))


class IemocapTest(builder_testing.SpeechFeaturesTestCase):
    """The default configs: `exc` merged into happy, so Session1 keeps 2 of its 3 turns."""

    DATASET_CLASS = iemocap_dataset_builder.Builder
    SPLITS = {"session1": 2, "session2": 2, "session3": 1, "session4": 1, "session5": 1}
    BUILDER_CONFIG_NAMES_TO_TEST = ["compare_2016", "egemaps_v02"]

    def test_tfds_build_command_prepares_a_config_from_the_builder_folder(self):
        """`tfds build tfds_builders/iemocap --manual_dir ... --config egemaps_v02`, as tfds_builders/README.md
        gives it, run from the repository root."""
        if importlib.util.find_spec("mlcroissant") is None:
            self.skipTest("the tfds command of tensorflow-datasets 4.9.10 imports mlcroissant: pip install mlcroissant")
        data_dir = os.path.join(self.tmp_dir, "tfds_cli")
        command = [
            sys.executable, "-m", "tensorflow_datasets.scripts.cli.main", "build", "tfds_builders/iemocap",
            "--manual_dir", os.path.join(BUILDER_FOLDER, "dummy_data"), "--config", "egemaps_v02",
            "--data_dir", data_dir,
        ]
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=900)
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        builder = iemocap_dataset_builder.Builder(data_dir=data_dir, config="egemaps_v02")
        self.assertEqual({name: split.num_examples for name, split in builder.info.splits.items()}, self.SPLITS)
        self.assertEqual(builder.info.features["features"].shape, (88,))


class IemocapHapOnlyTest(builder_testing.SpeechFeaturesTestCase):
    """The `*_hap_only` configs: `exc` skipped, so Session1 keeps only its `neu` turn."""

    DATASET_CLASS = iemocap_dataset_builder.Builder
    SPLITS = {"session1": 1, "session2": 2, "session3": 1, "session4": 1, "session5": 1}
    BUILDER_CONFIG_NAMES_TO_TEST = ["compare_2016_hap_only", "egemaps_v02_hap_only"]


if __name__ == "__main__":
    testing.test_main()
