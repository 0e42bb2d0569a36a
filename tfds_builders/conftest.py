"""pytest settings for the builders' TFDS tests (`<name>_dataset_builder_test.py`)."""


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase (the base of tfds.testing.DatasetBuilderTestCase) has a deprecated `test_session` context
    # manager that TFDS's own checks use; it is not a test, and pytest would only list it as skipped.
    items[:] = [item for item in items if item.name != "test_session"]
