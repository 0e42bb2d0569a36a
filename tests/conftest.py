import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# openSMILE's C library must load before TensorFlow's: both define Ooura's FFT routines (rdft, cdft, ...)
# and, loaded second, openSMILE would call TensorFlow's copies and corrupt the heap
# (see emoconf_tf.extraction). Tests import both in one process, so load openSMILE first here.
import opensmile  # noqa: E402,F401
