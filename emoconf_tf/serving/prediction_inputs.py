"""The inputs of `emoconf_tf.serving.prediction.predict`, read as an export's features: float32 `[N, D]` in the
order of its `assets/feature_names.txt`, and a row id each, from

- **features tables** (`.csv`, `.csv.gz`, `.parquet`): the model's feature columns are taken by name, in
  the order of its `assets/feature_names.txt` (other columns, such as `label` or AVD, are ignored); the
  row id is the `id` column, or `<table>:<row>` (1-based data row) when there is none;
- **audio files** (`.wav`, `.flac`, `.ogg`): their openSMILE functionals are extracted with the feature set
  the model records in `assets/feature_set.txt` (`compare_2016` or `egemaps_v02`); the id is the path as
  given. A model trained on synthetic features, or on a table whose feature set was not given
  (`emoconf train --feature-set`), cannot predict from audio.

openSMILE's library must be loaded before TensorFlow's (`preload_opensmile`); once TensorFlow is loaded, audio is
extracted in a child process (`extract_features_safely`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FEATURE_SET_NAMES

if TYPE_CHECKING:
    from emoconf_tf.serving.model_assets import ModelAssets

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def input_kind(path: str | os.PathLike) -> str:
    """`"audio"` or `"table"` by the file's suffix; `EmoconfError` for anything else or a missing file."""
    name = os.fspath(path).lower()
    if name.endswith(AUDIO_SUFFIXES):
        kind = "audio"
    elif name.endswith(TABLE_SUFFIXES):
        kind = "table"
    else:
        raise EmoconfError(
            f"{path}: not an audio file ({', '.join(AUDIO_SUFFIXES)}) or a features table "
            f"({', '.join(TABLE_SUFFIXES)})"
        )
    if not os.path.isfile(path):
        raise EmoconfError(f"{path}: no such {'audio file' if kind == 'audio' else 'features table'}")
    return kind


def table_features(path: str | os.PathLike, feature_names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The model's feature columns of a features table, by name.

    Args:
        path: `.csv`, `.csv.gz` or `.parquet` with a column per name in `feature_names` (others ignored)
            and optionally `id`.
        feature_names: the D column names the model takes, in input order.

    Returns:
        `(ids, features)`: N row ids (the `id` column, else `<path>:<row>` 1-based) and float32 `[N, D]`.

    Raises:
        EmoconfError: the file is unreadable or empty, a column is missing (they are named), or a value
            is not a finite number (the row id is named).
    """
    # The features-table reader's checks, with its messages (corpus.py owns the format).
    from emoconf_tf.corpus import feature_matrix, read_table_frame

    path = Path(path)
    frame = read_table_frame(path)
    if len(frame) == 0:
        raise EmoconfError(f"{path}: the table has no rows")
    ids = (frame["id"].astype(str).to_numpy() if "id" in frame.columns
           else np.array([f"{path}:{row}" for row in range(1, len(frame) + 1)]))
    _check_columns(path, frame.columns, feature_names)
    return [str(i) for i in ids], feature_matrix(path, frame, list(feature_names), ids)


def audio_features(
    paths: Sequence[str | os.PathLike],
    assets: ModelAssets,
    *,
    num_workers: int | None = 1,
    progress: bool = False,
) -> tuple[list[str], np.ndarray]:
    """openSMILE functionals of audio files, in the model's feature order.

    Args:
        paths: the audio files.
        assets: the model's `ModelAssets`; its `feature_set` must be an openSMILE set.
        num_workers: files extracted at once (default 1; None = every CPU).
        progress: show a progress bar (default False).

    Returns:
        `(ids, features)`: the paths as given and float32 `[N, D]`.
    """
    _check_audio_possible(paths[0], assets)
    frame = extract_features_safely(paths, assets.feature_set, num_workers=num_workers, progress=progress)
    _check_columns(f"openSMILE {assets.feature_set}", frame.columns, assets.feature_names)
    features = frame[list(assets.feature_names)].to_numpy(dtype=np.float32)
    return [os.fspath(p) for p in paths], np.ascontiguousarray(features)


def preload_opensmile() -> None:
    """Loads openSMILE's C library now, so that it comes before TensorFlow's (call it before importing TensorFlow).

    `libSMILEapi.so` and `libtensorflow_framework.so.2` both define Ooura's FFT functions (`rdft`, `cdft`,
    `bitrv2`, ...). When TensorFlow is loaded first, openSMILE's calls reach TensorFlow's copies and corrupt
    the heap: `malloc(): invalid size` or a segmentation fault some files later (openSMILE 2.6, TensorFlow
    2.21). Loaded first, openSMILE keeps its own.
    """
    import opensmile  # noqa: F401  (opensmile.core.lib loads libSMILEapi.so on import)


def extract_features_safely(
    wav_paths: Sequence[str | os.PathLike],
    feature_set: str,
    *,
    num_workers: int | None = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """`emoconf_tf.extraction.extract_features`, in a child process when TensorFlow was loaded before openSMILE.

    In-process when openSMILE's library can still be loaded first (TensorFlow not imported yet) or already
    was (see `preload_opensmile`); otherwise in a fresh `spawn`ed process that never imports TensorFlow,
    which costs a few seconds of start-up but cannot crash this one.

    Args:
        wav_paths: the audio files.
        feature_set: `"compare_2016"` or `"egemaps_v02"`.
        num_workers: files extracted at once (default 1; None = every CPU).
        progress: show a progress bar (default False).

    Returns:
        The float32 DataFrame of `extract_features`, indexed by the paths as given.
    """
    from emoconf_tf.extraction import extract_features

    paths = [os.fspath(path) for path in wav_paths]
    order = {name: index for index, name in enumerate(sys.modules)}  # sys.modules keeps import order
    if "tensorflow" not in order or order.get("opensmile.core.lib", len(order)) < order["tensorflow"]:
        preload_opensmile()
        return extract_features(paths, feature_set, num_workers=num_workers, progress=progress)
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(extract_features, paths, feature_set, num_workers=num_workers,
                           progress=progress).result()


def _check_audio_possible(path, assets: ModelAssets) -> None:
    if assets.feature_set not in FEATURE_SET_NAMES:
        raise EmoconfError(
            f"{path}: the model {assets.path} was trained on {assets.feature_set_description} features, so it cannot "
            f"extract them from audio; give a features table (CSV or Parquet) with the columns of "
            f"{assets.path / 'assets' / 'feature_names.txt'}"
        )


def _check_columns(where, columns, feature_names: Sequence[str]) -> None:
    present = set(map(str, columns))
    missing = [name for name in feature_names if name not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise EmoconfError(
            f"{where}: missing {len(missing)} of the model's {len(feature_names)} feature columns: {shown} "
            f"(columns are matched by name to the model's feature_names.txt)"
        )
