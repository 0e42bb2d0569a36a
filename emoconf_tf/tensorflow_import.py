"""Importing TensorFlow without its C++ start-up lines (oneDNN, "no CUDA drivers"): noise for a CPU user."""

from __future__ import annotations

import os
import sys
import warnings


def import_tensorflow_quietly(debug: bool = False, *, load: bool = True) -> None:
    """Imports TensorFlow (unless `load` is False) with its C++ start-up lines muted, and sets
    `TF_CPP_MIN_LOG_LEVEL=3` (unless already set) and a filter for Keras's "Skipping variable loading for
    optimizer" warning, both inherited by worker processes started afterwards.

    TensorFlow 2.21 prints those lines before absl logging is initialised, ignoring TF_CPP_MIN_LOG_LEVEL, so the
    C-level stderr is muted for the import only (never with `debug`, nor when TensorFlow is loaded already).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=".*Skipping variable loading for optimizer.*")
    if debug or not load or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    stderr_fd = 2  # the process's C-level stderr, whatever sys.stderr is (pytest, notebooks replace it)
    saved = os.dup(stderr_fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), stderr_fd)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, stderr_fd)
        os.close(saved)
