"""Bench, part `extraction`: openSMILE ComParE-2016 real-time factor with one worker, and the speed-up with two,
on generated audio, in a fresh process without TensorFlow (`extraction_child`).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emoconf_tf.benchmarks.child_process import run_child
from emoconf_tf.benchmarks.sizes import BenchSize


def write_test_wavs(directory: Path, count: int, seconds: float, *, sampling_rate: int = 16000,
                    seed: int = 0) -> list[Path]:
    """`count` mono 16-bit wav files of noise plus three amplitude-modulated tones (speech-like band)."""
    import soundfile

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    paths = []
    for i in range(count):
        signal = 0.05 * rng.standard_normal(t.shape)
        for _ in range(3):
            frequency, rate = rng.uniform(120, 3000), rng.uniform(2, 8)
            signal += 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t)) * np.sin(2 * np.pi * frequency * t)
        path = directory / f"bench_{i:03d}.wav"
        soundfile.write(path, np.clip(signal, -1, 1).astype(np.float32), sampling_rate, subtype="PCM_16")
        paths.append(path)
    return paths


def extraction_figures(size: BenchSize, log: Callable[[str], None]) -> dict:
    """openSMILE ComParE-2016 with 1 and 2 workers on generated audio: RTF and speed-up.

    Runs in a fresh process without TensorFlow, as `emoconf build` workers would: the timing does not depend on
    what this process has loaded (TensorFlow's thread pools, or its copies of openSMILE's FFT symbols, which
    `emoconf_tf.extraction` keeps apart). Between timings, a GIL-free C reference (SHA-256 in 1 and 2 threads)
    measures the speed-up two cores give at that moment.
    """
    return run_child("extraction", {"files": size.extract_files, "seconds": size.extract_seconds,
                                     "rounds": size.extract_rounds}, log)


def extraction_child(arguments: dict) -> dict:
    """`extraction_figures` in its own process: `arguments["files"]` generated wav files of `["seconds"]` s each,
    extracted with 1 and with 2 workers in each of `["rounds"]` rounds (the best time of each kept), the GIL-free
    reference timed before each. Returns the RTF (seconds per second of audio) and the two speed-ups."""
    from emoconf_tf.extraction import extract_features
    from emoconf_tf.feature_sets import FeatureSet

    files, seconds, rounds = arguments["files"], arguments["seconds"], arguments["rounds"]
    with tempfile.TemporaryDirectory(prefix="emoconf-bench-wavs-") as tmp:
        paths = write_test_wavs(Path(tmp), files, seconds)
        audio_seconds = files * seconds
        # set-up, outside the timing
        extract_features(paths[:1], FeatureSet.COMPARE_2016, num_workers=1, progress=False)
        best = {1: math.inf, 2: math.inf}
        reference = {1: math.inf, 2: math.inf}
        for round_ in range(rounds):
            for workers in (1, 2):
                reference[workers] = min(reference[workers], _parallel_reference_seconds(workers))
                start = time.perf_counter()
                extract_features(paths, FeatureSet.COMPARE_2016, num_workers=workers, progress=False)
                best[workers] = min(best[workers], time.perf_counter() - start)
            print(f"round {round_ + 1}: 1 worker {best[1]:.2f} s, 2 workers {best[2]:.2f} s for {audio_seconds:g} s "
                  f"of audio; GIL-free reference speed-up {reference[1] / reference[2]:.2f}", flush=True)
    return {"extract_rtf_1": best[1] / audio_seconds, "extract_speedup_2": best[1] / best[2],
            "parallel_reference_speedup_2": reference[1] / reference[2], "extract_audio_s": audio_seconds}


def _parallel_reference_seconds(workers: int, tasks: int = 12) -> float:
    """Seconds for `tasks` SHA-256 hashes of 32 MB by `workers` threads (about as long as an extraction timing):
    C code that releases the GIL, so its speed-up with 2 threads is what two cores give right now."""
    import concurrent.futures
    import hashlib

    data = bytes(32 * 1024 * 1024)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: hashlib.sha256(data).digest(), range(tasks)))
    return time.perf_counter() - start
