"""The `iemocap` TFDS builder."""
