"""Utterance-level openSMILE functionals (ComParE 2016, eGeMAPS v02), extracted in parallel with a resumable cache.

The features are the openSMILE functionals of each utterance: ComParE 2016 (6,373, the paper's and the
default) or eGeMAPS v02 (88, our light option for quick runs; not used in the paper). `extract_features`
returns them as a float32 DataFrame indexed by file, like `opensmile.Smile.process_files`; `iter_features`
streams them in input order so that a TFDS builder can write thousands of utterances without holding them all
in memory.

Files are processed by a pool of threads, one openSMILE instance per file: the openSMILE library runs
in C and releases the GIL, so threads scale with cores (about 2x on 2 cores) without forking a process
that has TensorFlow loaded. With `cache_dir`, each file's vector is saved (written to a temporary name,
then renamed) and reused by the next call, so an interrupted build resumes where it stopped.

openSMILE analyses every file at 16 kHz, the rate of the paper's corpora (MSP-Podcast, IEMOCAP): a file
at another rate is resampled first (audresample, through openSMILE's own `resample=True`), since openSMILE
computes at the rate it is given and features of 44.1 kHz audio differ from those of the same speech at
16 kHz. A file with more than one channel is downmixed to mono by averaging. Neither stops the run; each
kind gives one warning per run that names the first files and counts the others (`AudioFormatNotes`):
audio below 16 kHz has nothing in the upper bands, so its features are not comparable.

A file that cannot be processed (empty, corrupt, unreadable, too short for functionals) raises an
`EmoconfError` naming it, or, with `on_error="report"`, is reported as a `FailedFile` while the other
files go on: a corpus of 100,000 files is not lost to one bad recording. `extract_file` is the
one-file step that a Beam worker runs (`tfds_builders/speech_features.py`).

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
import ctypes
import dataclasses
import functools
import glob
import hashlib
import importlib.util
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import pandas as pd

from emoconf_tf.atomic import atomic_path
from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FEATURE_DIMENSIONS, FeatureSet, feature_set_from_name


# The rate openSMILE analyses at, in Hz: that of MSP-Podcast and IEMOCAP. Other rates are resampled to it.
ANALYSIS_SAMPLING_RATE = 16000


@dataclasses.dataclass(frozen=True)
class FailedFile:
    """An audio file whose features could not be extracted.

    Attributes:
        path: the file, as given.
        reason: the error message, which starts with the path (e.g. `"a.wav: the audio file is empty (0 bytes)"`).
    """

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class AudioFormat:
    """The sampling rate (Hz) and number of channels of an audio file, as read from its header."""

    sampling_rate: int
    channels: int


class AudioFormatNotes:
    """The files of a run whose audio is changed before openSMILE, for one warning per kind and run.

    Three kinds: more than one channel (downmixed to mono), below 16 kHz and above 16 kHz (both resampled
    to 16 kHz; below, the upper bands are empty). Only the first `limit` files of each kind are kept, with
    a count of all, so memory stays small for any corpus.

    Args:
        limit: files named per warning. Default 3.

    Example:

    ```python
    notes = AudioFormatNotes()
    notes.add("a.wav", AudioFormat(sampling_rate=8000, channels=1))
    notes.messages()  # ["a.wav: sampled at 8000 Hz, below 16 kHz: ..."]
    ```
    """

    KINDS = ("channels", "below", "above")

    def __init__(self, limit: int = 3):
        if int(limit) < 1:
            raise EmoconfError(f"limit={limit}: expected at least 1 file named per warning")
        self.limit = int(limit)
        self.files: dict[str, list[tuple[str, AudioFormat]]] = {kind: [] for kind in self.KINDS}
        self.counts: dict[str, int] = dict.fromkeys(self.KINDS, 0)
        self.lowest_rate: int | None = None

    def add(self, path: str | os.PathLike, file_format: AudioFormat | None) -> None:
        """Notes `path` under every kind its format is of; a 16 kHz mono file (or `None`) is not noted."""
        if file_format is None:
            return
        kinds = []
        if file_format.channels > 1:
            kinds.append("channels")
        if file_format.sampling_rate < ANALYSIS_SAMPLING_RATE:
            kinds.append("below")
            self.lowest_rate = min(file_format.sampling_rate, self.lowest_rate or file_format.sampling_rate)
        elif file_format.sampling_rate > ANALYSIS_SAMPLING_RATE:
            kinds.append("above")
        for kind in kinds:
            self.counts[kind] += 1
            if len(self.files[kind]) < self.limit:
                self.files[kind].append((os.fspath(path), file_format))

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def messages(self) -> list[str]:
        """One message per kind noted, each naming the first files and counting the others."""
        messages = []
        target = f"{ANALYSIS_SAMPLING_RATE // 1000} kHz"
        if self.counts["channels"]:
            path, first = self.files["channels"][0]
            others = self._others("channels", lambda f: f"{f.channels} channels")
            also = f"; so were {others}" if others else ""
            messages.append(f"{path}: {first.channels} channels; downmixed to mono by averaging{also}")
        if self.counts["below"]:
            path, first = self.files["below"][0]
            others = self._others("below", lambda f: f"{f.sampling_rate} Hz")
            also = f", as are {others}" if others else ""
            messages.append(
                f"{path}: sampled at {first.sampling_rate} Hz, below {target}{also}: resampled to {target} for "
                f"openSMILE, but with nothing above {self.lowest_rate // 2} Hz (half of {self.lowest_rate} Hz) the "
                f"spectral features of the upper bands carry nothing, and the features are not comparable with "
                f"those of {target} corpora (MSP-Podcast, IEMOCAP); use recordings at {target} or more if you have them"
            )
        if self.counts["above"]:
            path, first = self.files["above"][0]
            others = self._others("above", lambda f: f"{f.sampling_rate} Hz")
            also = f", as are {others}" if others else ""
            messages.append(
                f"{path}: sampled at {first.sampling_rate} Hz{also}; resampled to {target} (audresample) before "
                f"openSMILE, which analyses at the rate it is given: features of the original rate would differ "
                f"from those of the {target} corpora (MSP-Podcast, IEMOCAP)"
            )
        return messages

    def _others(self, kind: str, detail) -> str:
        """The files of `kind` after the first: `"4 more file(s): b.wav (8000 Hz), c.wav (8000 Hz) and 2 other(s)"`."""
        count = self.counts[kind]
        if count <= 1:
            return ""
        named = ", ".join(f"{path} ({detail(file_format)})" for path, file_format in self.files[kind][1:])
        unnamed = count - len(self.files[kind])
        if not named:
            return f"{count - 1} more file(s)"
        return f"{count - 1} more file(s): {named}" + (f" and {unnamed} other(s)" if unnamed else "")


def audio_format(path: str | os.PathLike) -> AudioFormat | None:
    """The `AudioFormat` of an audio file from its header; `None` if the header cannot be read."""
    import soundfile

    try:
        info = soundfile.info(os.fspath(path))
    except (RuntimeError, OSError, soundfile.SoundFileError):
        return None
    return AudioFormat(sampling_rate=int(info.samplerate), channels=int(info.channels))


def failure_summary(failures: Sequence[FailedFile], total: int, *, limit: int = 3) -> str:
    """One line naming the first `limit` failures and how many more, e.g. `"2 of 9 audio file(s) failed: ..."`."""
    shown = "; ".join(failure.reason for failure in failures[:limit])
    more = f"; and {len(failures) - limit} more" if len(failures) > limit else ""
    return f"{len(failures)} of {total} audio file(s) failed: {shown}{more}"


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
    on_error: Literal["raise", "report"] = "raise",
) -> pd.DataFrame:
    """Extracts utterance-level openSMILE functionals of every wav file, in parallel.

    Args:
        wav_paths: the audio files, at any sampling rate (resampled to 16 kHz) with any number of channels
            (downmixed); one warning per kind of change names the files (see `AudioFormatNotes`).
        feature_set: `"compare_2016"` (default, 6,373 functionals) or `"egemaps_v02"` (88).
        num_workers: files processed at once; `None` uses every CPU. Default 1.
        cache_dir: folder for per-file results; files already there are not extracted again.
            Default: no cache.
        num_features: the dimension D the caller expects; a different one raises `EmoconfError`.
            Default: `FEATURE_DIMENSIONS[feature_set]`.
        progress: show a tqdm progress bar.
        on_error: `"raise"` (default): the first file that fails raises. `"report"`: every file is
            tried; the rows of files that fail are left out and one warning names them.

    Returns:
        float32 DataFrame of shape `(N, D)`, indexed by the paths as given (index name `file`),
        one column per feature name; with `on_error="report"`, only the files that succeeded.

    Raises:
        EmoconfError: naming the file that is missing, empty, unreadable or too short.
    """
    feature_set = feature_set_from_name(feature_set)
    names = feature_names(feature_set)
    keys = [os.fspath(path) for path in wav_paths]
    matrix = np.empty((len(keys), len(names)), dtype=np.float32)
    succeeded = np.ones(len(keys), dtype=bool)
    failures = []
    for row, (_, result) in enumerate(
        iter_features(
            keys,
            feature_set,
            num_workers=num_workers,
            cache_dir=cache_dir,
            num_features=num_features,
            progress=progress,
            on_error=on_error,
        )
    ):
        if isinstance(result, FailedFile):
            succeeded[row] = False
            failures.append(result)
        else:
            matrix[row] = result
    if failures:
        warnings.warn(f"{failure_summary(failures, len(keys))}; left out", stacklevel=2)
    index = pd.Index([key for key, ok in zip(keys, succeeded) if ok], name="file")
    return pd.DataFrame(matrix[succeeded], index=index, columns=names)


def iter_features(
    wav_paths: Sequence[str | os.PathLike],
    feature_set: FeatureSet | str = "compare_2016",
    *,
    num_workers: int | None = 1,
    cache_dir: str | os.PathLike | None = None,
    num_features: int | None = None,
    progress: bool = True,
    on_error: Literal["raise", "report"] = "raise",
    format_notes: AudioFormatNotes | None = None,
) -> Iterator[tuple[str, np.ndarray | FailedFile]]:
    """Yields `(path, features)` for every file in input order, extracting in parallel.

    Same arguments as `extract_features`; `features` is float32 `[D]`. At most a few files per worker
    are in flight, so memory stays bounded however many files there are. With `on_error="report"`, a
    file that fails yields `(path, FailedFile(path, reason))` instead and the other files go on; with
    `"raise"` (default) its `EmoconfError` is raised.

    Files that are not 16 kHz mono (downmixed, resampled) are noted in `format_notes`, for the caller to
    warn once over several calls (a TFDS build calls this once per split); without it (default), one
    `UserWarning` per kind is issued once every file has been yielded.
    """
    if on_error not in ("raise", "report"):
        raise EmoconfError(f"on_error={on_error!r}: expected 'raise' or 'report'")
    feature_set = feature_set_from_name(feature_set)
    paths = [os.fspath(path) for path in wav_paths]
    expected = FEATURE_DIMENSIONS[feature_set] if num_features is None else int(num_features)
    smile = _smile(feature_set)
    actual = len(smile.feature_names)
    if actual != expected:
        raise EmoconfError(
            f"openSMILE {feature_set.opensmile_name} gives {actual} features but {expected} were expected "
            f"for feature set {feature_set.value!r}; check the installed opensmile version "
            f"(tested with 2.6) or the dataset config"
        )
    missing = [path for path in paths if not os.path.isfile(path)] if on_error == "raise" else []
    if missing:
        more = f" (and {len(missing) - 1} more missing file(s))" if len(missing) > 1 else ""
        raise EmoconfError(f"{missing[0]}: no such audio file{more}")
    workers = _resolve_workers(num_workers)
    cache = None if cache_dir is None else Path(cache_dir) / feature_set.value
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    notes = AudioFormatNotes() if format_notes is None else format_notes

    def one(path: str) -> tuple[np.ndarray | FailedFile, AudioFormat | None]:
        try:
            return _features_of_file(path, smile, actual, cache)
        except EmoconfError as error:
            if on_error == "raise":
                raise
            return FailedFile(path, str(error)), None

    from tqdm.auto import tqdm

    with tqdm(
        total=len(paths), desc=f"openSMILE {feature_set.value}", unit="file", disable=not progress
    ) as bar, concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending: collections.deque[tuple[str, concurrent.futures.Future]] = collections.deque()
        next_index = 0
        failed = 0
        try:
            while pending or next_index < len(paths):
                while next_index < len(paths) and len(pending) < 4 * workers:
                    path = paths[next_index]
                    pending.append((path, pool.submit(one, path)))
                    next_index += 1
                path, future = pending.popleft()
                vector, file_format = future.result()
                notes.add(path, file_format)  # here, in the caller's thread: the notes take no lock
                if isinstance(vector, FailedFile):
                    failed += 1
                    bar.set_postfix(failed=failed, refresh=False)
                bar.update(1)
                yield path, vector
        finally:
            for _, future in pending:
                future.cancel()
    if format_notes is None:
        for message in notes.messages():
            warnings.warn(message, stacklevel=3)


def extract_file(
    wav_path: str | os.PathLike,
    feature_set: FeatureSet | str = "compare_2016",
    *,
    cache_dir: str | os.PathLike | None = None,
    num_features: int | None = None,
) -> np.ndarray:
    """The functionals of one wav file, float32 `[D]`, read from / saved to `cache_dir` like `iter_features`.

    This is the step a Beam worker runs per utterance; the openSMILE instance is made once per process.

    Raises:
        EmoconfError: naming the file that is missing, empty, unreadable or too short.
    """
    feature_set = feature_set_from_name(feature_set)
    path = os.fspath(wav_path)
    smile = _smile(feature_set)
    expected = FEATURE_DIMENSIONS[feature_set] if num_features is None else int(num_features)
    if len(smile.feature_names) != expected:
        raise EmoconfError(
            f"openSMILE {feature_set.opensmile_name} gives {len(smile.feature_names)} features but {expected} "
            f"were expected for feature set {feature_set.value!r}"
        )
    cache = None if cache_dir is None else Path(cache_dir) / feature_set.value
    vector, _ = _features_of_file(path, smile, expected, cache)
    return vector


def _resolve_workers(num_workers: int | None) -> int:
    if num_workers is None:
        return max(1, os.cpu_count() or 1)
    if int(num_workers) < 1:
        raise EmoconfError(f"num_workers={num_workers}: expected a positive number of workers (or None for all CPUs)")
    return int(num_workers)


@functools.lru_cache(maxsize=None)
def _smile(feature_set: FeatureSet):
    """One openSMILE instance per feature set and process; `process_signal` is safe to call from threads.

    It resamples any other rate to `ANALYSIS_SAMPLING_RATE` itself (audresample, openSMILE's dependency).
    """
    opensmile = _import_opensmile()
    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set.opensmile_name),
        feature_level=opensmile.FeatureLevel.Functionals,
        sampling_rate=ANALYSIS_SAMPLING_RATE,
        resample=True,
    )


_OPENSMILE_LIBRARY = []  # the ctypes handle of libSMILEapi, kept for the life of the process


def _import_opensmile():
    """`import opensmile`, with its C library bound to its own symbols first (Linux), whatever came before.

    `libSMILEapi.so` and TensorFlow's `libtensorflow_framework.so.2` both export Ooura's FFT functions
    (`rdft`, `cdft`, `bitrv2`, ...). Loaded after TensorFlow with the default flags, openSMILE's calls reach
    TensorFlow's copies and corrupt the heap (`malloc(): corrupted top size` in `emoconf build`, which imports
    TensorFlow first; openSMILE 2.6, TensorFlow 2.21). Loaded first with `RTLD_DEEPBIND`, the library looks
    up its own symbols before the global ones, and `opensmile.core.lib` then gets that loaded library. The
    features are bit-identical to those of a process without TensorFlow.
    """
    if "opensmile.core.lib" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
        library = _opensmile_library_path()
        if library is not None:
            _OPENSMILE_LIBRARY.append(ctypes.CDLL(library, mode=os.RTLD_NOW | os.RTLD_DEEPBIND))
    import opensmile

    return opensmile


def _opensmile_library_path() -> str | None:
    """The path of the `libSMILEapi.so` that `opensmile.core.lib` loads on Linux, found without importing it."""
    spec = importlib.util.find_spec("opensmile")
    if spec is None or not spec.submodule_search_locations or platform.system() != "Linux":
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "core", "bin")
    found = glob.glob(os.path.join(glob.escape(folder), f"*linux*_{platform.machine().lower()}", "libSMILEapi.so"))
    return found[0] if len(found) == 1 else None


def _features_of_file(
    path: str, smile, num_features: int, cache: Path | None
) -> tuple[np.ndarray, AudioFormat | None]:
    """`(features [D], the file's format)`; the format is read from the header when the features are cached."""
    if not os.path.isfile(path):
        raise EmoconfError(f"{path}: no such audio file")
    file_format = audio_format(path)  # None when unreadable: `_read_wav` then says why
    cache_file = None if cache is None else cache / _cache_name(path, file_format)
    if cache_file is not None and cache_file.exists():
        try:
            cached = np.load(cache_file, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            cached = None  # unreadable: extract again and overwrite
        if cached is not None and cached.shape == (num_features,) and cached.dtype == np.float32:
            return cached, file_format
    signal, sampling_rate = _read_wav(path)
    channels = int(signal.shape[0])
    file_format = AudioFormat(sampling_rate=sampling_rate, channels=channels)
    if channels > 1:
        signal = signal.mean(axis=0, keepdims=True)
    try:
        values = smile.process_signal(signal, sampling_rate).to_numpy(dtype=np.float32)
    except (RuntimeError, ValueError, OSError) as error:
        raise EmoconfError(f"{path}: openSMILE failed ({type(error).__name__}: {error})") from None
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
        # A temporary name, then a rename: a build killed mid-write leaves a `.<name>.<random>.tmp` file that
        # is never looked up, not a truncated `.npy` under the name that is.
        with atomic_path(cache_file) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, vector, allow_pickle=False)
    return vector, file_format


def _cache_name(path: str, file_format: AudioFormat | None = None) -> str:
    """A file name that changes when the audio file (its path, size or time stamp) or openSMILE changes.

    Files not at 16 kHz also carry the analysis rate, so that features computed at their own rate by
    earlier versions are not reused; 16 kHz files keep the names they had.
    """
    opensmile = _import_opensmile()

    stat = os.stat(path)
    fingerprint = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{opensmile.__version__}"
    if file_format is not None and file_format.sampling_rate != ANALYSIS_SAMPLING_RATE:
        fingerprint += f"|resampled to {ANALYSIS_SAMPLING_RATE} Hz"
    digest = hashlib.sha1(fingerprint.encode("utf-8")).hexdigest()[:16]
    return f"{Path(path).stem}-{digest}.npy"


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    """Reads a wav file as float32 `[channels, samples]` in [-1, 1], with errors that name the file."""
    import soundfile

    if os.path.getsize(path) == 0:
        raise EmoconfError(f"{path}: the audio file is empty (0 bytes)")
    try:
        signal, sampling_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.SoundFileError) as error:
        raise EmoconfError(f"{path}: cannot be read as audio ({error}); the file may be corrupt or truncated") from None
    if signal.shape[0] == 0:
        raise EmoconfError(f"{path}: the audio file has no samples")
    return np.ascontiguousarray(signal.T), int(sampling_rate)
