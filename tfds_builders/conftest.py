"""pytest settings for the builders' TFDS tests (`<name>_dataset_builder_test.py`) and the modules' doctests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# openSMILE's C library must load before TensorFlow's (see tests/conftest.py and emoconf_tf.extraction): the
# builder tests extract features in the process that imported tensorflow_datasets. tests/conftest.py does the
# same, but `pytest tfds_builders` alone does not load it.
import opensmile  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase (the base of tfds.testing.DatasetBuilderTestCase) has a deprecated `test_session` context
    # manager that TFDS's own checks use; it is not a test, and pytest would only list it as skipped.
    items[:] = [item for item in items if item.name != "test_session"]
