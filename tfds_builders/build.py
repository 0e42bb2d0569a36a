"""Building a dataset from a licensed copy, offline, and exporting it as a features table.

The library side of `emoconf build`: `build_dataset` runs `download_and_prepare` with the manual dir and
nothing fetched from the network (no GCS lookup); `export_features_table` writes the prepared dataset as a
features table (`emoconf_tf/corpus.py`) that `emoconf reproduce --table` reads.

Example:

```python
from tfds_builders.build import build_dataset, export_features_table

builder = build_dataset("iemocap", "~/corpora/IEMOCAP", "~/tensorflow_datasets", config="egemaps_v02")
export_features_table(builder, "~/tensorflow_datasets", "iemocap_egemaps.parquet")
```
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from emoconf_tf.atomic import atomic_path
from emoconf_tf.corpus import normalize_split
from emoconf_tf.errors import EmoconfError

DATASET_NAMES = ("msp_podcast", "iemocap", "ser_features")
_EXPORT_BATCH = 1024


def build_dataset(
    name: str,
    manual_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    config: str = "compare_2016",
    num_workers: int | None = 2,
    *,
    overwrite: bool = False,
    progress: bool = True,
):
    """Prepares dataset `name` from the licensed copy in `manual_dir`, without network access.

    Args:
        name: `"msp_podcast"`, `"iemocap"` or `"ser_features"`.
        manual_dir: the licensed copy (see each builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`); for
            `ser_features`, the folder holding the table or the table file itself.
        data_dir: the TFDS data dir where the dataset is written (and the openSMILE cache, under
            `downloads/opensmile/`).
        config: builder config, e.g. `"compare_2016"` (default), `"egemaps_v02"`,
            `"compare_2016_hap_only"` (iemocap), `"custom"` (ser_features).
        num_workers: audio files extracted at once; `None` uses every CPU. Default 2.
        overwrite: rebuild even if the dataset is already prepared (the openSMILE cache is reused).
        progress: show progress bars.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Raises:
        EmoconfError: unknown name or config, or a manual dir that is missing files (naming the path).
    """
    import tensorflow_datasets as tfds

    import tfds_builders  # noqa: F401  registers the builders
    from tfds_builders.speech_features import SpeechFeaturesBuilder

    if name not in DATASET_NAMES:
        raise EmoconfError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    builder_cls = tfds.builder_cls(name)
    config_names = [c.name for c in builder_cls.BUILDER_CONFIGS]
    if config not in config_names:
        raise EmoconfError(f"unknown config {config!r} for {name}; choose one of {', '.join(config_names)}")
    manual_dir = Path(manual_dir).expanduser()
    data_dir = Path(data_dir).expanduser()
    if not manual_dir.exists():
        raise EmoconfError(f"{manual_dir}: no such file or folder; give the folder of the licensed {name} copy")
    if manual_dir.is_file():
        if name != "ser_features":
            raise EmoconfError(f"{manual_dir}: is a file; give the folder of the licensed {name} copy")
        manual_dir = _table_folder(manual_dir, data_dir)
    elif not any(manual_dir.iterdir()):
        raise EmoconfError(f"{manual_dir}: the folder is empty; it should hold the licensed {name} copy")

    # Only the audio builders extract features; ser_features takes no extraction options.
    extraction_options = (
        {"num_workers": num_workers, "progress": progress} if issubclass(builder_cls, SpeechFeaturesBuilder) else {}
    )
    builder = tfds.builder(name, config=config, data_dir=os.fspath(data_dir), try_gcs=False, **extraction_options)
    # REUSE_CACHE_IF_EXISTS regenerates the dataset but keeps `downloads/`, where the openSMILE cache is.
    modes = tfds.download.GenerateMode
    mode = modes.REUSE_CACHE_IF_EXISTS if overwrite else modes.REUSE_DATASET_IF_EXISTS
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir),
            download_mode=mode,
            try_download_gcs=False,
        )
    )
    return builder


def export_features_table(
    builder_or_name,
    data_dir: str | os.PathLike | None,
    out_path: str | os.PathLike,
    *,
    config: str | None = None,
) -> Path:
    """Writes a prepared dataset as a features table (`.csv`, `.csv.gz` or `.parquet`), atomically.

    Columns: `id`, `label` (class name), `arousal`, `valence`, `dominance`, `speaker`, `group`, then
    `split` (the TFDS split name: `train`, `validation`, `test1`, ...) unless the splits are not
    train/validation/test splits (IEMOCAP's `session1`..`session5`: the session is then in `group`), then one
    column per feature, named as openSMILE names them.

    Args:
        builder_or_name: a prepared builder, or a dataset name (`"iemocap"` or `"iemocap/egemaps_v02"`).
        data_dir: the TFDS data dir (used when a name is given).
        out_path: the table to write; Parquet if it ends with `.parquet`, else CSV.
        config: config name when a name without `/config` is given; default the builder's default.

    Returns:
        `out_path`.
    """
    import tensorflow_datasets as tfds

    import tfds_builders  # noqa: F401  registers the builders

    if isinstance(builder_or_name, str):
        kwargs = {} if config is None else {"config": config}
        try:
            builder = tfds.builder(
                builder_or_name,
                data_dir=None if data_dir is None else os.fspath(Path(data_dir).expanduser()),
                try_gcs=False,
                **kwargs,
            )
        except tfds.core.registered.DatasetNotFoundError as error:
            raise EmoconfError(f"unknown dataset {builder_or_name!r} ({error})") from None
    else:
        builder = builder_or_name
    if not builder.is_prepared():
        raise EmoconfError(
            f"{builder.data_dir}: {builder.info.full_name} is not prepared; build it first (build_dataset)"
        )
    out_path = Path(out_path).expanduser()
    splits = list(builder.info.splits.keys())
    with_split = all(_is_protocol_split(split) for split in splits)
    class_names = np.asarray(builder.info.features["label"].names, dtype=object)
    names = list(builder.info.metadata.get("feature_names", []) if builder.info.metadata else [])

    def batches():
        for split in splits:
            dataset = builder.as_dataset(split=split, shuffle_files=False).batch(_EXPORT_BATCH)
            for batch in tfds.as_numpy(dataset):
                features = batch["features"]
                frame = pd.DataFrame(
                    {
                        "id": _text(batch["id"]),
                        "label": class_names[batch["label"]],
                        "arousal": batch["arousal"],
                        "valence": batch["valence"],
                        "dominance": batch["dominance"],
                        "speaker": _text(batch["speaker"]),
                        "group": _text(batch["group"]),
                    }
                )
                if with_split:
                    frame["split"] = split
                columns = names if len(names) == features.shape[1] else [f"f{j}" for j in range(features.shape[1])]
                yield pd.concat([frame, pd.DataFrame(features, columns=columns)], axis=1)

    with atomic_path(out_path) as tmp:
        if out_path.suffix.lower() in (".parquet", ".pq"):
            written = _write_parquet(batches(), tmp)
        else:
            written = _write_csv(batches(), tmp, compress=out_path.suffix.lower() == ".gz")
        if not written:
            raise EmoconfError(f"{builder.info.full_name}: the dataset has no examples")
    return out_path


def _write_parquet(frames, path: Path) -> int:
    """Writes the frames as one Parquet file, batch by batch; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_csv(frames, path: Path, *, compress: bool) -> int:
    """Writes the frames as one CSV file (gzip-compressed if `compress`); returns the number of rows."""
    import gzip

    opener = gzip.open if compress else open
    rows = 0
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        for frame in frames:
            frame.to_csv(handle, header=rows == 0, index=False, float_format="%.9g")
            rows += len(frame)
    return rows


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def _is_protocol_split(split: str) -> bool:
    try:
        normalize_split(split)
    except EmoconfError:
        return False
    return True


def _table_folder(table: Path, data_dir: Path) -> Path:
    """A folder holding only `table` (a symlink to it, or a copy), for `ser_features`' manual dir."""
    suffix = "".join(table.suffixes[-2:]) if table.name.lower().endswith(".csv.gz") else table.suffix
    folder = data_dir / "downloads" / "manual" / "ser_features" / table.name.replace(".", "_")
    link = folder / f"features{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(table.resolve())
    except OSError:
        import shutil

        shutil.copyfile(table, link)
    return folder
