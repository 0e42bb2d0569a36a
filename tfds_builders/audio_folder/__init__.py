"""The `audio_folder` TFDS builder: your own folder of labelled audio files."""
