"""Measures openSMILE extraction throughput (files/s, real-time factor) on generated wavs, per number of workers.

The figures in `tfds_builders/README.md` come from

    python -m tfds_builders.throughput --files 40 --seconds 3 --workers 1 2 --repeats 5

Each run extracts every file afresh (no cache) after one warm-up file, so the figures are the steady
extraction rate of `emoconf_tf.extraction.extract_features`; the median of `--repeats` runs is printed.
The real-time factor is wall-clock seconds per second of audio: below 1 is faster than real time. The CPU
column is process CPU time over wall time (200% = both cores busy): it tells a machine shared with other
jobs from extraction that does not run in parallel. CPU seconds per file is the cost of one file, which
does not depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from emoconf_tf import extraction
from emoconf_tf.feature_sets import FEATURE_SET_NAMES, FeatureSet


def write_speech_like_wavs(folder: Path, num_files: int, seconds: float, sample_rate: int = 16000) -> list[Path]:
    """16-bit mono wavs: a gliding harmonic tone with amplitude modulation and noise, different per file."""
    paths = []
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for index in range(num_files):
        rng = np.random.default_rng(index)
        pitch = 110 + 60 * rng.random() + 20 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + rng.random()) * t) ** 2
        signal = 0.15 * voice * envelope + 0.01 * rng.standard_normal(t.size)
        path = folder / f"utt{index:03d}.wav"
        with wave.open(os.fspath(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(sample_rate)
            handle.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
        paths.append(path)
    return paths


def measure(paths: list[Path], feature_set: str, num_workers: int, seconds_per_file: float, repeats: int = 1) -> dict:
    """`{"workers", "files", "seconds", "files_per_second", "real_time_factor", "cpu_percent"}`, median of `repeats`."""
    extraction.extract_features(paths[:1], feature_set, num_workers=1, progress=False)  # warm-up
    runs = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        extraction.extract_features(paths, feature_set, num_workers=num_workers, progress=False)
        runs.append((time.perf_counter() - start, time.process_time() - start_cpu))
    elapsed, cpu = sorted(runs)[len(runs) // 2]
    return {
        "workers": num_workers,
        "files": len(paths),
        "seconds": elapsed,
        "files_per_second": len(paths) / elapsed,
        "real_time_factor": elapsed / (len(paths) * seconds_per_file),
        "cpu_percent": 100 * cpu / elapsed,
        "cpu_seconds_per_file": cpu / len(paths),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="number of generated wavs (default: 40)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each wav in seconds (default: 3)")
    parser.add_argument("--feature-set", default=FeatureSet.COMPARE_2016.value, choices=FEATURE_SET_NAMES,
                        help="openSMILE feature set (default: compare_2016)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to measure (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs per worker count; the median is shown (default: 5)")
    args = parser.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.files} wavs of {args.seconds:g} s at 16 kHz; openSMILE {args.feature_set}; "
          f"median of {args.repeats} runs")
    print("| workers | files | seconds | files/s | real-time factor | CPU | CPU s/file |")
    print("|--------:|------:|--------:|--------:|-----------------:|----:|-----------:|")
    with tempfile.TemporaryDirectory() as folder:
        paths = write_speech_like_wavs(Path(folder), args.files, args.seconds)
        for workers in args.workers:
            row = measure(paths, args.feature_set, workers, args.seconds, repeats=args.repeats)
            print(f"| {row['workers']} | {row['files']} | {row['seconds']:.2f} | {row['files_per_second']:.1f} | "
                  f"{row['real_time_factor']:.4f} | {row['cpu_percent']:.0f}% | {row['cpu_seconds_per_file']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
