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

import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from emoconf_tf.atomic import atomic_path
from emoconf_tf.corpus import AVD_COLUMNS, Corpus, normalize_split, parse_scale, table_columns
from emoconf_tf.errors import EmoconfError

logger = logging.getLogger(__name__)

DATASET_NAMES = ("msp_podcast", "iemocap", "ser_features", "audio_folder")
_EXPORT_BATCH = 1024


def build_dataset(
    name: str,
    manual_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    config: str = "compare_2016",
    num_workers: int | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    skip_failed: bool = False,
    beam_runner: str | None = None,
    beam_options: Sequence[str] | None = None,
):
    """Prepares dataset `name` from the licensed copy in `manual_dir`, without network access.

    Args:
        name: `"msp_podcast"`, `"iemocap"`, `"ser_features"` or `"audio_folder"`.
        manual_dir: the licensed copy (see each builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`); for
            `ser_features`, the folder holding the table or the table file itself; for `audio_folder`, your
            folder of audio files (`metadata.csv`, or one folder per class).
        data_dir: the TFDS data dir where the dataset is written (and the openSMILE cache, under
            `downloads/opensmile/`); default None, TFDS's default data dir (`$TFDS_DATA_DIR` if set, else
            `~/tensorflow_datasets`).
        config: builder config, e.g. `"compare_2016"` (default), `"egemaps_v02"`,
            `"compare_2016_hap_only"` (iemocap), `"custom"` (ser_features).
        num_workers: audio files extracted at once; default None, one per CPU (`os.cpu_count()`).
        overwrite: rebuild even if the dataset is already prepared (the openSMILE cache is reused).
        progress: show progress bars.
        skip_failed: leave out utterances whose audio cannot be processed (empty, corrupt, too short),
            counted in `builder.info.metadata["failed_files"]` and `["skipped_other"]`. Default False:
            every file is tried, then the build fails naming the files that failed.
        beam_runner: extract on Apache Beam with this runner (`"DirectRunner"`, `"DataflowRunner"`,
            `"FlinkRunner"`, `"SparkRunner"`) instead of local threads. Needs `apache-beam`.
        beam_options: Beam pipeline options as command-line flags, e.g.
            `["--direct_num_workers=2", "--direct_running_mode=multi_processing"]` or the `--project`,
            `--region`, `--temp_location` of Dataflow; also selects the Beam path. `num_workers` is then
            not used.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Raises:
        EmoconfError: unknown name or config, a manual dir that is missing files (naming the path), or
            audio files that failed (naming them) without `skip_failed`.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import constants

    _register_builders()
    from tfds_builders.speech_features import SpeechFeaturesBuilder

    if name not in DATASET_NAMES:
        raise EmoconfError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    builder_cls = tfds.builder_cls(name)
    config_names = [c.name for c in builder_cls.BUILDER_CONFIGS]
    if config not in config_names:
        raise EmoconfError(f"unknown config {config!r} for {name}; choose one of {', '.join(config_names)}")
    manual_dir = Path(manual_dir).expanduser()
    data_dir = Path(constants.get_default_data_dir() if data_dir is None else data_dir).expanduser()
    if not manual_dir.exists():
        raise EmoconfError(f"{manual_dir}: no such file or folder; give the folder of the licensed {name} copy")
    if manual_dir.is_file():
        if name != "ser_features":
            raise EmoconfError(f"{manual_dir}: is a file; give the folder of the licensed {name} copy")
        manual_dir = _table_folder(manual_dir, data_dir)
    elif not any(manual_dir.iterdir()):
        raise EmoconfError(f"{manual_dir}: the folder is empty; it should hold the licensed {name} copy")

    use_beam = beam_runner is not None or beam_options is not None
    is_audio = issubclass(builder_cls, SpeechFeaturesBuilder)
    if use_beam and not is_audio:
        raise EmoconfError(f"{name} reads one table and has no Beam path; build it without beam_runner/beam_options")
    # Only the audio builders extract features; ser_features takes no extraction options.
    extraction_options = (
        {"num_workers": num_workers, "progress": progress, "skip_failed": skip_failed} if is_audio else {}
    )
    builder = tfds.builder(name, config=config, data_dir=os.fspath(data_dir), try_gcs=False, **extraction_options)
    # REUSE_CACHE_IF_EXISTS regenerates the dataset but keeps `downloads/`, where the openSMILE cache is.
    modes = tfds.download.GenerateMode
    mode = modes.REUSE_CACHE_IF_EXISTS if overwrite else modes.REUSE_DATASET_IF_EXISTS
    _remove_interrupted_builds(builder)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir),
            download_mode=mode,
            try_download_gcs=False,
            **(_beam_config(beam_runner, beam_options) if use_beam else {}),
        )
    )
    return builder


def _remove_interrupted_builds(builder) -> list[Path]:
    """Deletes what interrupted builds of this dataset version left: TFDS' `incomplete.XXXXXX_<version>` folders.

    TFDS writes a dataset into such a folder and renames it when done; a build that was killed leaves it
    (with partial TFRecord files) and the next build writes into a new one. Nothing in it is reused: the
    per-file openSMILE cache, under `downloads/`, is what makes a rerun fast. Two builds of the same dataset
    into the same data dir at once are not supported (TFDS could not rename the second one either).
    """
    from tensorflow_datasets.core import constants

    version_dir = Path(builder.data_dir)
    removed = []
    for stale in sorted(version_dir.parent.glob(f"{constants.INCOMPLETE_PREFIX}*_{version_dir.name}")):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    if removed:
        logger.info("removed %d folder(s) of interrupted builds: %s", len(removed), ", ".join(map(str, removed)))
    return removed


def _beam_config(beam_runner: str | None, beam_options: Sequence[str] | None) -> dict:
    """`beam_runner` and `beam_options` for `tfds.download.DownloadConfig`."""
    try:
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError as error:
        raise EmoconfError(
            f"the Beam path needs Apache Beam, which cannot be imported here ({error}); pip install apache-beam, "
            f"or build without beam_runner/beam_options (local threads)"
        ) from None
    if isinstance(beam_options, str):
        raise EmoconfError(f"beam_options={beam_options!r}: expected a list of flags, e.g. ['--direct_num_workers=2']")
    # Explicit (possibly empty) flags: otherwise Beam would parse this process's own command line.
    return {"beam_runner": beam_runner, "beam_options": PipelineOptions(flags=list(beam_options or []))}


def export_features_table(
    builder_or_name,
    data_dir: str | os.PathLike | None,
    out_path: str | os.PathLike,
    *,
    config: str | None = None,
) -> Path:
    """Writes a prepared dataset as a features table (`.csv`, `.csv.gz` or `.parquet`), atomically.

    Columns: `id`, `label` (class name), `arousal`, `valence`, `dominance` (not for a dataset without AVD
    ratings, `info.metadata["has_avd"]` False), `speaker`, `group`, then `split` (the TFDS split name: `train`,
    `validation`, `test1`, ...) unless the splits are not train/validation/test splits (IEMOCAP's
    `session1`..`session5`: the session is then in `group`) or the dataset has none (an `audio_folder` without
    splits, `info.metadata["has_splits"]` False), then the
    table-level columns of `emoconf_tf.corpus.table_columns`: `scale` (the dataset's recorded AVD scale, e.g.
    `1,5`, so that `emoconf reproduce --table` needs no `--scale`), `synthetic` and `merged_labels`
    (`excited=happy` for IEMOCAP's default configs) when they apply, then one column per feature, named as
    openSMILE names them.

    Args:
        builder_or_name: a prepared builder, or a dataset name (`"iemocap"` or `"iemocap/egemaps_v02"`).
        data_dir: the TFDS data dir (used when a name is given); None = TFDS's default (`$TFDS_DATA_DIR` if
            set, else `~/tensorflow_datasets`).
        out_path: the table to write; Parquet if it ends with `.parquet`, else CSV.
        config: config name when a name without `/config` is given; default the builder's default.

    Returns:
        `out_path`.
    """
    builder = prepared_builder(builder_or_name, data_dir, config)
    out_path = Path(out_path).expanduser()
    with_split = _has_protocol_splits(builder)
    with_avd = _has_avd(builder)
    metadata = builder.info.metadata or {}
    facts = table_columns(scale=metadata.get("scale"), synthetic=bool(metadata.get("synthetic", False)),
                          merged_labels=merged_labels(builder))

    def batches():
        for split, frame, features, columns in _iter_batches(builder):
            if not with_avd:
                frame = frame.drop(columns=list(AVD_COLUMNS))
            if with_split:
                frame["split"] = split
            for column, value in facts.items():
                frame[column] = value
            yield pd.concat([frame, pd.DataFrame(features, columns=columns)], axis=1)

    with atomic_path(out_path) as tmp:
        if out_path.suffix.lower() in (".parquet", ".pq"):
            written = _write_parquet(batches(), tmp)
        else:
            written = _write_csv(batches(), tmp, compress=out_path.suffix.lower() == ".gz")
        if not written:
            raise EmoconfError(f"{builder.info.full_name}: the dataset has no examples")
    return out_path


def load_corpus(
    builder_or_name,
    data_dir: str | os.PathLike | None,
    *,
    config: str | None = None,
    classes: Sequence[str] | None = None,
    scale: tuple[float, float] | str | None = None,
) -> tuple[Corpus, dict[str, int]]:
    """A prepared dataset as the `Corpus` the protocol runs on, like `read_features_table` on its export.

    Args:
        builder_or_name: a prepared builder, or `"msp_podcast/compare_2016"`, `"iemocap"`, ...
        data_dir: the TFDS data dir (used when a name is given); None = TFDS's default (`$TFDS_DATA_DIR` if
            set, else `~/tensorflow_datasets`).
        config: config name when a name without `/config` is given; default the builder's default.
        classes: category names to keep, in label-id order; other examples are dropped and counted.
            Default: the dataset's classes, in its label order.
        scale: AVD scale `(lo, hi)` or `"LO,HI"`, overriding the dataset's; default None, the dataset's
            (`info.metadata["scale"]`; none for a dataset without AVD ratings).

    Returns:
        `(corpus, dropped)`: `corpus.split` is `train`/`validation`/`test`/`testN` (`test1` -> `test`) when the
        splits are a train/validation/test partition, else "" with the split name in `corpus.group`
        (IEMOCAP's sessions); `corpus.synthetic` and `corpus.merged_labels` as the dataset records them;
        `dropped` counts the examples of each label not in `classes`.

    Raises:
        EmoconfError: an unknown or unprepared dataset, unknown class names, or no scale to use for a dataset with
            AVD ratings. A dataset without them (`info.metadata["has_avd"]` False) gives a corpus with
            `has_avd` False and NaN AVD.
    """
    builder = prepared_builder(builder_or_name, data_dir, config)
    metadata = builder.info.metadata or {}
    has_avd = _has_avd(builder)
    if scale is None and not has_avd:
        scale = metadata.get("scale")
    elif scale is None:
        if "scale" not in metadata:
            raise EmoconfError(
                f"{builder.data_dir}: {builder.info.full_name} does not record its AVD scale; give it (--scale 1,5 "
                f"for IEMOCAP, --scale 1,7 for MSP-Podcast; scale=(1, 5) in Python)"
            )
        scale = tuple(metadata["scale"])
    scale = None if scale is None else parse_scale(scale)
    with_split = _has_protocol_splits(builder)
    class_names = list(builder.info.features["label"].names)
    kept_names = class_names if classes is None else [str(c).strip() for c in classes]
    unknown = [c for c in kept_names if c not in class_names]
    if unknown:
        raise EmoconfError(
            f"{builder.info.full_name}: unknown class(es) {', '.join(unknown)}; the dataset has "
            f"{', '.join(class_names)}"
        )
    if len(set(kept_names)) != len(kept_names) or len(kept_names) < 2:
        raise EmoconfError(f"classes {','.join(kept_names)}: need at least two unique class names")

    frames, feature_blocks, columns = [], [], None
    for split, frame, features, columns in _iter_batches(builder):
        frame["split"] = normalize_split(split) if with_split else ""
        keep = frame["label"].isin(kept_names).to_numpy()
        frames.append(frame)
        feature_blocks.append(features[keep])
    if not frames:
        raise EmoconfError(f"{builder.info.full_name}: the dataset has no examples")
    frame = pd.concat(frames, ignore_index=True)
    dropped = frame.loc[~frame["label"].isin(kept_names), "label"].value_counts().to_dict()
    frame = frame[frame["label"].isin(kept_names)].reset_index(drop=True)
    if frame.empty:
        raise EmoconfError(f"{builder.info.full_name}: no example has a label in {','.join(kept_names)}")
    label_ids = {name: index for index, name in enumerate(kept_names)}
    corpus = Corpus(
        ids=frame["id"].to_numpy(dtype=object),
        features=np.ascontiguousarray(np.concatenate(feature_blocks), dtype=np.float32),
        labels=frame["label"].map(label_ids).to_numpy(dtype=np.int64),
        avd=frame[["arousal", "valence", "dominance"]].to_numpy(dtype=np.float32),
        class_names=tuple(kept_names),
        scale=scale,
        speaker=frame["speaker"].to_numpy(dtype=object),
        group=frame["group"].to_numpy(dtype=object),
        split=frame["split"].to_numpy(dtype=object),
        feature_names=tuple(columns),
        name=f"{builder.name}_{builder.builder_config.name}" if builder.builder_config else builder.name,
        synthetic=bool(metadata.get("synthetic", False)),
        merged_labels=merged_labels(builder),
        has_avd=has_avd,
    )
    return corpus, {str(k): int(v) for k, v in dropped.items()}


def merged_labels(builder) -> tuple[tuple[str, str], ...]:
    """`(category, class)` pairs the dataset merged, e.g. `(("excited", "happy"),)` for IEMOCAP's default configs.

    From `info.metadata["merged_labels"]` (`{"excited": "happy"}`), or, for a dataset prepared before the builders
    recorded it, from the builder config's `merged_labels`.
    """
    metadata = builder.info.metadata or {}
    if "merged_labels" in metadata:
        return tuple((str(k), str(v)) for k, v in dict(metadata["merged_labels"]).items())
    return tuple(getattr(builder.builder_config, "merged_labels", {}).items())


def prepared_builder(builder_or_name, data_dir: str | os.PathLike | None, config: str | None):
    """The builder given, or the one named, with this package's builder classes registered; it must be prepared."""
    from emoconf_tf import datasets

    _register_builders()

    return datasets.prepared_builder(builder_or_name, data_dir, config)


def _register_builders() -> None:
    """Imports the builder classes, which registers their names with TFDS."""
    import tfds_builders  # noqa: F401  msp_podcast, iemocap, ser_features
    import tfds_builders.audio_folder.audio_folder_dataset_builder  # noqa: F401


def _has_protocol_splits(builder) -> bool:
    """Whether the splits are train/validation/test(N) (MSP-Podcast), not sessions (IEMOCAP), nor the one `train`
    split of a folder that gave none (`audio_folder`: `info.metadata["has_splits"]` False)."""
    metadata = builder.info.metadata or {}
    if not metadata.get("has_splits", True):
        return False
    return all(_is_protocol_split(split) for split in builder.info.splits.keys())


def _has_avd(builder) -> bool:
    """False for a dataset without AVD ratings (`audio_folder` of a corpus with categories only: NaN AVD and
    `info.metadata["has_avd"]` False)."""
    return bool((builder.info.metadata or {}).get("has_avd", True))


def _iter_batches(builder):
    """Yields `(split, meta frame, features float32 [B, D], feature column names)` batch by batch."""
    import tensorflow_datasets as tfds

    class_names = np.asarray(builder.info.features["label"].names, dtype=object)
    names = list(builder.info.metadata.get("feature_names", []) if builder.info.metadata else [])
    for split in builder.info.splits.keys():
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
            columns = names if len(names) == features.shape[1] else [f"f{j}" for j in range(features.shape[1])]
            yield split, frame, features, columns


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
        shutil.copyfile(table, link)
    return folder
