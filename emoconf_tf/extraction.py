"""Utterance-level openSMILE functionals (ComParE 2016, eGeMAPS v02), extracted in parallel with a resumable cache.

The paper's features are the openSMILE functionals of each utterance: ComParE 2016 (the default) or
eGeMAPS v02. `extract_features` returns them as a float32 DataFrame indexed by file, like
`opensmile.Smile.process_files`; `iter_features` streams them in input order so that a TFDS builder can
write thousands of utterances without holding them all in memory.

Files are processed by a pool of threads, one openSMILE instance per file: the openSMILE library runs
in C and releases the GIL, so threads scale with cores (about 2x on 2 cores) without forking a process
that has TensorFlow loaded. With `cache_dir`, each file's vector is saved (written to a temporary name,
then renamed) and reused by the next call, so an interrupted build resumes where it stopped.

Example:

```python
from emoconf_tf.extraction import extract_features

features = extract_features(["a.wav", "b.wav"], "egemaps_v02", num_workers=2)
features.shape  # (2, 88)
```
"""

from __future__ import annotations

import collections
import concurrent.futures
import enum
import hashlib
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from emoconf_tf.atomic import atomic_path
from emoconf_tf.errors import EmoconfError


class FeatureSet(enum.Enum):
    """The openSMILE feature sets of the paper; the values are the names used in configs and on the CLI."""

    COMPARE_2016 = "compare_2016"
    EGEMAPS_V02 = "egemaps_v02"


# The documented size of each feature set (functionals per utterance); `extract_features` checks it.
FEATURE_DIMENSIONS = {
    FeatureSet.COMPARE_2016: 6373,
    FeatureSet.EGEMAPS_V02: 88,
}

_OPENSMILE_NAMES = {
    FeatureSet.COMPARE_2016: "ComParE_2016",
    FeatureSet.EGEMAPS_V02: "eGeMAPSv02",
}


def feature_set_from_name(feature_set: FeatureSet | str) -> FeatureSet:
    """`FeatureSet` from a member or its name (`"compare_2016"`, `"egemaps_v02"`; case-insensitive)."""
    if isinstance(feature_set, FeatureSet):
        return feature_set
    key = str(feature_set).strip().lower()
    for member in FeatureSet:
        if key in (member.value, member.name.lower(), _OPENSMILE_NAMES[member].lower()):
            return member
    choices = ", ".join(member.value for member in FeatureSet)
    raise EmoconfError(f"feature set {feature_set!r} is not available; choose one of {choices}")


def feature_names(feature_set: FeatureSet | str = "compare_2016") -> list[str]:
    """The names of the D functionals of `feature_set`, in column order."""
    return list(_smile(feature_set_from_name(feature_set)).feature_names)


def extract_features(
    wav_paths: Sequence[str | os.PathLike],
    feature_set: FeatureSet | str = "compare_2016",
    *,
    num_workers: int | None = 1,
    cache_dir: str | os.PathLike | None = None,
    num_features: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Extracts utterance-level openSMILE functionals of every wav file, in parallel.

    Args:
        wav_paths: the audio files (any sampling rate; mono, stereo is downmixed with a warning).
        feature_set: `"compare_2016"` (default, 6,373 functionals) or `"egemaps_v02"` (88).
        num_workers: files processed at once; `None` uses every CPU. Default 1.
        cache_dir: folder for per-file results; files already there are not extracted again.
            Default: no cache.
        num_features: the dimension D the caller expects; a different one raises `EmoconfError`.
            Default: `FEATURE_DIMENSIONS[feature_set]`.
        progress: show a tqdm progress bar.

    Returns:
        float32 DataFrame of shape `(N, D)`, indexed by the paths as given (index name `file`),
        one column per feature name.

    Raises:
        EmoconfError: naming the file that is missing, empty, unreadable or too short.
    """
    feature_set = feature_set_from_name(feature_set)
    names = feature_names(feature_set)
    keys = [os.fspath(path) for path in wav_paths]
    matrix = np.empty((len(keys), len(names)), dtype=np.float32)
    for row, (_, vector) in enumerate(
        iter_features(
            keys,
            feature_set,
            num_workers=num_workers,
            cache_dir=cache_dir,
            num_features=num_features,
            progress=progress,
        )
    ):
        matrix[row] = vector
    return pd.DataFrame(matrix, index=pd.Index(keys, name="file"), columns=names)


def iter_features(
    wav_paths: Sequence[str | os.PathLike],
    feature_set: FeatureSet | str = "compare_2016",
    *,
    num_workers: int | None = 1,
    cache_dir: str | os.PathLike | None = None,
    num_features: int | None = None,
    progress: bool = True,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yields `(path, features)` for every file in input order, extracting in parallel.

    Same arguments as `extract_features`; `features` is float32 `[D]`. At most a few files per worker
    are in flight, so memory stays bounded however many files there are.
    """
    feature_set = feature_set_from_name(feature_set)
    paths = [os.fspath(path) for path in wav_paths]
    expected = FEATURE_DIMENSIONS[feature_set] if num_features is None else int(num_features)
    smile = _smile(feature_set)
    actual = len(smile.feature_names)
    if actual != expected:
        raise EmoconfError(
            f"openSMILE {_OPENSMILE_NAMES[feature_set]} gives {actual} features but {expected} were expected "
            f"for feature set {feature_set.value!r}; check the installed opensmile version "
            f"(tested with 2.6) or the dataset config"
        )
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        more = f" (and {len(missing) - 1} more missing file(s))" if len(missing) > 1 else ""
        raise EmoconfError(f"{missing[0]}: no such audio file{more}")
    workers = _resolve_workers(num_workers)
    cache = None if cache_dir is None else Path(cache_dir) / feature_set.value
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    warned_downmix = False

    def one(path: str) -> tuple[np.ndarray, int]:
        return _features_of_file(path, smile, actual, cache)

    from tqdm.auto import tqdm

    with tqdm(
        total=len(paths), desc=f"openSMILE {feature_set.value}", unit="file", disable=not progress
    ) as bar, concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending: collections.deque[tuple[str, concurrent.futures.Future]] = collections.deque()
        next_index = 0
        try:
            while pending or next_index < len(paths):
                while next_index < len(paths) and len(pending) < 4 * workers:
                    path = paths[next_index]
                    pending.append((path, pool.submit(one, path)))
                    next_index += 1
                path, future = pending.popleft()
                vector, channels = future.result()
                if channels > 1 and not warned_downmix:
                    # Warned here, in the caller's thread: warnings filters are not thread-safe.
                    warned_downmix = True
                    warnings.warn(
                        f"{path}: {channels} channels; downmixed to mono by averaging (further "
                        f"multi-channel files in this run are downmixed without a warning)",
                        stacklevel=2,
                    )
                bar.update(1)
                yield path, vector
        finally:
            for _, future in pending:
                future.cancel()


def _resolve_workers(num_workers: int | None) -> int:
    if num_workers is None:
        return max(1, os.cpu_count() or 1)
    if int(num_workers) < 1:
        raise EmoconfError(f"num_workers={num_workers}: expected a positive number of workers (or None for all CPUs)")
    return int(num_workers)


def _smile(feature_set: FeatureSet):
    import opensmile

    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, _OPENSMILE_NAMES[feature_set]),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def _features_of_file(path: str, smile, num_features: int, cache: Path | None) -> tuple[np.ndarray, int]:
    """`(features [D], number of channels in the file)`; a cached vector reports 1 channel."""
    cache_file = None if cache is None else cache / _cache_name(path)
    if cache_file is not None and cache_file.exists():
        try:
            cached = np.load(cache_file, allow_pickle=False)
        except (OSError, ValueError):
            cached = None  # unreadable: extract again and overwrite
        if cached is not None and cached.shape == (num_features,) and cached.dtype == np.float32:
            return cached, 1
    signal, sampling_rate = _read_wav(path)
    channels = int(signal.shape[0])
    if channels > 1:
        signal = signal.mean(axis=0, keepdims=True)
    values = smile.process_signal(signal, sampling_rate).to_numpy(dtype=np.float32)
    if values.shape != (1, num_features):
        raise EmoconfError(f"{path}: openSMILE returned features of shape {values.shape}, expected (1, {num_features})")
    vector = np.ascontiguousarray(values[0])
    bad = ~np.isfinite(vector)
    if bad.all():
        seconds = signal.shape[1] / sampling_rate
        raise EmoconfError(
            f"{path}: too short for openSMILE functionals ({seconds:.3f} s); remove it or pad it"
        )
    if bad.any():
        raise EmoconfError(f"{path}: openSMILE returned {int(bad.sum())} NaN or infinite feature value(s)")
    if cache_file is not None:
        with atomic_path(cache_file) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, vector, allow_pickle=False)
    return vector, channels


def _cache_name(path: str) -> str:
    """A file name that changes when the audio file (its path, size or time stamp) or openSMILE changes."""
    import opensmile

    stat = os.stat(path)
    fingerprint = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{opensmile.__version__}"
    digest = hashlib.sha1(fingerprint.encode("utf-8")).hexdigest()[:16]
    return f"{Path(path).stem}-{digest}.npy"


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    """Reads a wav file as float32 `[channels, samples]` in [-1, 1], with errors that name the file."""
    import soundfile

    if os.path.getsize(path) == 0:
        raise EmoconfError(f"{path}: the audio file is empty (0 bytes)")
    try:
        signal, sampling_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.SoundFileError) as error:
        raise EmoconfError(f"{path}: cannot be read as audio ({error}); the file may be corrupt or truncated") from None
    if signal.shape[0] == 0:
        raise EmoconfError(f"{path}: the audio file has no samples")
    return np.ascontiguousarray(signal.T), int(sampling_rate)
