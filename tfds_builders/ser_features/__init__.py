"""The `ser_features` TFDS builder."""
