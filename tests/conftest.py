import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# No test writes into the real ~/tensorflow_datasets (or the $TFDS_DATA_DIR of whoever runs them): TFDS's
# default data dir, and that of `emoconf build` without --data-dir, is a temporary folder for the session.
# Set here, before any test module imports tensorflow_datasets, which reads it on import. Tests that check
# the default set $TFDS_DATA_DIR or $HOME themselves.
_TFDS_DATA_DIR = tempfile.mkdtemp(prefix="emoconf-tests-tfds-")
os.environ["TFDS_DATA_DIR"] = _TFDS_DATA_DIR
atexit.register(shutil.rmtree, _TFDS_DATA_DIR, ignore_errors=True)

# openSMILE's C library must load before TensorFlow's: both define Ooura's FFT routines (rdft, cdft, ...)
# and, loaded second, openSMILE would call TensorFlow's copies and corrupt the heap
# (see emoconf_tf.extraction). Tests import both in one process, so load openSMILE first here.
import opensmile  # noqa: E402,F401
