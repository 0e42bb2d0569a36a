"""The `msp_podcast` TFDS builder."""
