"""A folder of audio files with category labels (and AVD when there are ratings): openSMILE functionals per file.

Two layouts, the ones users of Hugging Face `datasets` and TensorFlow Datasets already have:

- **`metadata.csv`** (Hugging Face's `audiofolder`): `DIR/metadata.csv` with a `file_name` column (the path
  relative to `DIR`) and `label`; optional `speaker`, `group`, `split` (`train`, `validation`/`dev`, `test`,
  `test2`, ...), and the AVD ratings `arousal`, `valence`, `dominance` with their `scale` (`LO,HI`, one value
  on every row), all three or none. Other columns are ignored.
- **class folders** (TFDS's `ImageFolder`): no `metadata.csv`, one folder per class, `DIR/<label>/*.wav`
  (one `train` split), or one per split and class, `DIR/<split>/<label>/*.wav`.

Most public emotional-speech corpora (RAVDESS, CREMA-D, EmoDB) have categories but no AVD: then every example
has NaN `arousal`, `valence`, `dominance`, `info.metadata["has_avd"]` is False and no `scale` is recorded.
Without a split, everything is in `train` and `info.metadata["has_splits"]` is False. An exported table
(`tfds_builders.build.export_features_table`) leaves out what the dataset does not have.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import tensorflow_datasets as tfds

from emoconf_tf.corpus import AVD_COLUMNS, SCALE_COLUMN, normalize_split, parse_scale
from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FeatureSet
from tfds_builders import speech_features
from tfds_builders.speech_features import Utterance

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.csv"
FILE_NAME_COLUMN = "file_name"
LABEL_COLUMN = "label"
TEXT_COLUMNS = ("speaker", "group", "split")
# Audio that soundfile (libsndfile) reads, the reader of emoconf_tf.extraction.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
MIN_UTTERANCES_PER_CLASS = 2
LAYOUT_METADATA = "metadata.csv"
LAYOUT_CLASS_FOLDERS = "class folders"
LAYOUT_SPLIT_CLASS_FOLDERS = "split/class folders"
NO_SPLIT = "train"  # the one split of a folder without splits, as in TFDS
_NAMED_FILES = 3  # files named in a message before "and N other(s)"


@dataclasses.dataclass(frozen=True)
class FolderListing:
    """What a manual dir holds, before any audio is read.

    Attributes:
        utterances_by_split: `{split: [Utterance]}`, splits named as the protocol names them (`train`,
            `validation`, `test`, `testN`); AVD NaN when the folder has no ratings.
        class_names: the labels, sorted.
        scale: `(lo, hi)` of the AVD ratings, or None when there are none.
        has_splits: whether the folder gives splits (a `split` column, or split folders).
        layout: `"metadata.csv"`, `"class folders"` or `"split/class folders"`.
        unlisted: audio files in the folder that `metadata.csv` does not list, relative to the folder, sorted.
    """

    utterances_by_split: dict[str, list[Utterance]]
    class_names: tuple[str, ...]
    scale: tuple[float, float] | None
    has_splits: bool
    layout: str
    unlisted: tuple[str, ...] = ()


class Builder(speech_features.SpeechFeaturesBuilder):
    """Audio files with category labels, and AVD if rated, as openSMILE functionals (see the module docstring)."""

    BUILDER_CONFIGS = speech_features.feature_set_configs()
    DEFAULT_CONFIG_NAME = FeatureSet.COMPARE_2016.value

    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    manual_dir is your folder of audio files (.wav, .flac, .ogg, .aiff; any sampling rate and number of
    channels), laid out in one of two ways:

      metadata.csv + audio     metadata.csv with columns file_name (path relative to manual_dir, e.g.
                               wav/03a01Fa.wav) and label; optional speaker, group, split (train,
                               validation or dev, test), and arousal, valence, dominance with scale
                               ('LO,HI', e.g. '1,5', on every row) - all three ratings or none
      <label>/*.wav            one folder per class, no metadata.csv (one train split)
      <split>/<label>/*.wav    one folder per split (train, validation, test) holding one per class

    Every class needs at least 2 files. Nothing is downloaded: the features are extracted with openSMILE.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return speech_features.info_with_labels_from_data(self)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        listing = read_audio_folder(Path(dl_manager.manual_dir))
        self.info.features["label"].names = list(listing.class_names)
        self._check_wavs(listing.utterances_by_split)
        self._record_metadata(scale=listing.scale or (np.nan, np.nan), skipped={})
        metadata = self.info.metadata
        if listing.scale is None:
            del metadata["scale"]  # no ratings, so no scale: an exported table has no `scale` column either
        metadata["has_avd"] = listing.scale is not None
        metadata["has_splits"] = listing.has_splits
        metadata["layout"] = listing.layout
        metadata["unlisted_audio_files"] = len(listing.unlisted)
        if listing.unlisted:
            warnings.warn(
                unlisted_message(Path(dl_manager.manual_dir), listing.unlisted), UserWarning, stacklevel=2
            )
        cache_dir = self._opensmile_cache_dir(dl_manager)
        return {
            split: self._generate_examples(utterances, cache_dir)
            for split, utterances in listing.utterances_by_split.items()
        }


def read_audio_folder(root: Path) -> FolderListing:
    """The utterances of `root`: from `root/metadata.csv` if it exists, else from its class folders.

    Raises:
        EmoconfError: naming the file, row, column or folder at fault (see `read_metadata` and
            `read_class_folders`), or a class with fewer than 2 utterances.
    """
    root = Path(root)
    if not root.is_dir():
        raise EmoconfError(f"{root}: no such folder; give the folder holding your audio files")
    metadata_path = root / METADATA_FILE
    listing = read_metadata(metadata_path) if metadata_path.is_file() else read_class_folders(root)
    _check_class_sizes(listing, metadata_path if listing.layout == LAYOUT_METADATA else root)
    return listing


def read_metadata(path: Path) -> FolderListing:
    """Reads a Hugging Face `audiofolder` `metadata.csv`; file names are relative to its folder.

    A listed file that does not exist is not an error here (the builder decides, see `skip_failed`); a
    file name that leads outside the folder is.

    Raises:
        EmoconfError: naming `path` and the column or the lines at fault: no `file_name` or `label` column,
            empty or repeated file names, empty labels, unknown split names, AVD columns partly present,
            not numeric, empty or outside `scale`.
    """
    root = path.parent
    frame = _read_csv(path)
    lines = frame.index.to_numpy() + 2  # as an editor shows them: the header is line 1
    missing = [column for column in (FILE_NAME_COLUMN, LABEL_COLUMN) if column not in frame.columns]
    if missing:
        raise EmoconfError(
            f"{path}: no column {' or '.join(map(repr, missing))}; metadata.csv needs {FILE_NAME_COLUMN} (the "
            f"audio file's path relative to {root}) and {LABEL_COLUMN} (its category), e.g. the header "
            f"'file_name,label,speaker'"
        )
    if frame.empty:
        raise EmoconfError(f"{path}: no rows; list one audio file per row (file_name,label)")
    file_names = _text(frame[FILE_NAME_COLUMN])
    labels = _text(frame[LABEL_COLUMN])
    _refuse_empty(path, FILE_NAME_COLUMN, file_names, lines)
    _refuse_empty(path, LABEL_COLUMN, labels, lines)
    scale, avd = _read_avd(path, frame, lines)
    has_splits = "split" in frame.columns
    splits = _read_splits(path, frame, lines) if has_splits else np.full(len(frame), NO_SPLIT, dtype=object)
    speakers = _text(frame["speaker"]) if "speaker" in frame.columns else np.full(len(frame), "", dtype=object)
    groups = _text(frame["group"]) if "group" in frame.columns else np.full(len(frame), "", dtype=object)
    ignored = [c for c in frame.columns if c not in (FILE_NAME_COLUMN, LABEL_COLUMN, *TEXT_COLUMNS, *AVD_COLUMNS,
                                                    SCALE_COLUMN)]
    if ignored:
        logger.info("%s: column(s) %s are not used", path, ", ".join(ignored))

    utterances_by_split: dict[str, list[Utterance]] = {}
    first_line: dict[str, int] = {}
    for row, line in enumerate(lines):
        name = file_names[row]
        source = f"{path} line {line} ({FILE_NAME_COLUMN} {name})"
        wav_path = speech_features.path_in_manual_dir(root, name, source=source, example="wav/03a01Fa.wav")
        if wav_path in first_line:
            raise EmoconfError(
                f"{path} line {line}: {name} is also listed on line {first_line[wav_path]}; list each file once"
            )
        first_line[wav_path] = line
        utterances_by_split.setdefault(splits[row], []).append(
            Utterance(
                id=utterance_id(root, wav_path),
                wav_path=wav_path,
                label=labels[row],
                arousal=float(avd[row, 0]),
                valence=float(avd[row, 1]),
                dominance=float(avd[row, 2]),
                speaker=speakers[row],
                group=groups[row],
                source=source,
            )
        )
    _refuse_duplicate_ids(path, utterances_by_split)
    listed = set(first_line)
    unlisted = tuple(os.path.relpath(p, root) for p in audio_files(root) if os.path.normpath(p) not in listed)
    return FolderListing(
        utterances_by_split=_ordered(utterances_by_split),
        class_names=tuple(sorted(set(labels))),
        scale=scale,
        has_splits=has_splits,
        layout=LAYOUT_METADATA,
        unlisted=unlisted,
    )


def read_class_folders(root: Path) -> FolderListing:
    """Reads TFDS `ImageFolder`'s layouts: `root/<label>/...` or `root/<split>/<label>/...` (split folders are
    recognised by their names: `train`, `validation` or `dev`, `test`, `test2`, ...).

    Audio files may be nested deeper inside a class folder. Hidden files and folders (`.name`) are ignored.

    Raises:
        EmoconfError: naming the folder: no class folders, audio files outside a class folder, split
            folders mixed with class folders.
    """
    folders = _sub_folders(root)
    loose = _audio_directly_in(root)
    if loose:
        raise EmoconfError(
            f"{root}: {_few(loose)} {'is' if len(loose) == 1 else 'are'} at the top of the folder, with no "
            f"{METADATA_FILE} to label {'it' if len(loose) == 1 else 'them'}; put each audio file in a folder named "
            f"for its class ({root}/<label>/), or list them in {root / METADATA_FILE} (columns file_name,label)"
        )
    if not folders:
        raise EmoconfError(
            f"{root}: no {METADATA_FILE} and no class folders; give a folder holding {METADATA_FILE} (columns "
            f"file_name,label) or one folder per class ({root}/<label>/*.wav)"
        )
    split_names = {folder.name: _split_name(folder.name) for folder in folders}
    split_folders = [name for name, split in split_names.items() if split is not None]
    if split_folders and len(split_folders) < len(folders):
        others = [name for name, split in split_names.items() if split is None]
        raise EmoconfError(
            f"{root}: split folder(s) {', '.join(split_folders)} beside class folder(s) {', '.join(others)}; use "
            f"{root}/<split>/<label>/ for every file, or {root}/<label>/ (one train split) without split folders"
        )
    utterances_by_split: dict[str, list[Utterance]] = {}
    class_folders: set[str] = set()
    if split_folders:
        for folder in folders:
            loose = _audio_directly_in(folder)
            if loose:
                raise EmoconfError(
                    f"{folder}: {_few(loose)} outside a class folder; in a split folder, put each audio file in a "
                    f"folder named for its class ({folder}/<label>/)"
                )
            utterances = utterances_by_split.setdefault(split_names[folder.name], [])
            for class_folder in _sub_folders(folder):
                class_folders.add(class_folder.name)
                utterances.extend(_class_folder_utterances(root, class_folder))
        empty = [folder.name for folder in folders if not utterances_by_split.get(split_names[folder.name])]
        if empty:
            raise EmoconfError(f"{root}: split folder(s) {', '.join(empty)} hold no audio file in a class folder")
    else:
        class_folders.update(folder.name for folder in folders)
        utterances_by_split[NO_SPLIT] = [u for folder in folders for u in _class_folder_utterances(root, folder)]
    _refuse_duplicate_ids(root, utterances_by_split)
    return FolderListing(
        utterances_by_split=_ordered(utterances_by_split),
        class_names=tuple(sorted(class_folders)),
        scale=None,
        has_splits=bool(split_folders),
        layout=LAYOUT_SPLIT_CLASS_FOLDERS if split_folders else LAYOUT_CLASS_FOLDERS,
    )


def utterance_id(root: Path, path: str) -> str:
    """The file's path relative to `root`, without its suffix, with `/`: `wav/03a01Fa`, `train/angry/a01`."""
    relative = Path(os.path.relpath(path, root))
    return relative.with_suffix("").as_posix()


def audio_files(root: Path) -> list[str]:
    """Every audio file under `root` (`AUDIO_SUFFIXES`), hidden files and folders left out, sorted."""
    found = []
    for folder, sub_folders, files in os.walk(root):
        sub_folders[:] = sorted(name for name in sub_folders if not name.startswith("."))
        found.extend(
            os.path.join(folder, name)
            for name in files
            if name.lower().endswith(AUDIO_SUFFIXES) and not name.startswith(".")
        )
    return sorted(found)


def unlisted_message(root: Path, unlisted: Sequence[str]) -> str:
    """The warning about audio files that `metadata.csv` does not list, naming the first three."""
    return (
        f"{root / METADATA_FILE}: {len(unlisted)} audio file(s) in {root} are not listed, so not in the dataset: "
        f"{_few(unlisted)}; add a row (file_name,label) for each file to include, or move them out of the folder"
    )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # Blank lines are kept (then dropped) so that the index gives each row's line number.
        frame = pd.read_csv(path, dtype=str, skip_blank_lines=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise EmoconfError(f"{path}: cannot be read as a CSV file ({error})") from None
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    return frame.dropna(how="all")


def _text(values: pd.Series) -> np.ndarray:
    return values.fillna("").astype(str).str.strip().to_numpy(dtype=object)


def _refuse_empty(path: Path, column: str, values: np.ndarray, lines: np.ndarray) -> None:
    empty = values == ""
    if empty.any():
        raise EmoconfError(f"{path}: empty {column} on line(s) {_few(lines[empty])}; give one on every row")


def _read_avd(path: Path, frame: pd.DataFrame, lines: np.ndarray) -> tuple[tuple[float, float] | None, np.ndarray]:
    """`(scale, avd float64 [N, 3])` from the AVD columns; `(None, NaN)` when there are none."""
    present = [column for column in AVD_COLUMNS if column in frame.columns]
    if not present:
        if SCALE_COLUMN in frame.columns:
            raise EmoconfError(
                f"{path}: a {SCALE_COLUMN} column but no {', '.join(AVD_COLUMNS)}; give the three AVD ratings with "
                f"their scale, or remove the {SCALE_COLUMN} column"
            )
        return None, np.full((len(frame), 3), np.nan)
    absent = [column for column in AVD_COLUMNS if column not in frame.columns]
    if absent:
        raise EmoconfError(
            f"{path}: column(s) {', '.join(present)} but not {', '.join(absent)}; give all three AVD ratings "
            f"({', '.join(AVD_COLUMNS)}) with their {SCALE_COLUMN}, or none"
        )
    if SCALE_COLUMN not in frame.columns:
        raise EmoconfError(
            f"{path}: AVD ratings but no {SCALE_COLUMN} column; add a column {SCALE_COLUMN} holding the rating scale "
            f"'LO,HI' on every row (e.g. '1,5')"
        )
    scales = _text(frame[SCALE_COLUMN])
    _refuse_empty(path, SCALE_COLUMN, scales, lines)
    distinct = list(dict.fromkeys(scales))
    if len(distinct) > 1:
        raise EmoconfError(
            f"{path}: column {SCALE_COLUMN!r} holds {len(distinct)} different values ({_few(distinct)}); it is the "
            f"scale of every rating: give the same 'LO,HI' on every row"
        )
    try:
        scale = parse_scale(distinct[0])
    except EmoconfError:
        raise EmoconfError(
            f"{path}: column {SCALE_COLUMN!r} holds {distinct[0]!r}; expected the rating scale as 'LO,HI' with "
            f"LO < HI, e.g. '1,5'"
        ) from None
    avd = np.empty((len(frame), 3))
    for j, column in enumerate(AVD_COLUMNS):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise EmoconfError(
                f"{path}: column {column!r} is empty or not a number on line(s) {_few(lines[bad])}; give a rating "
                f"on every row"
            )
        outside = (values < scale[0]) | (values > scale[1])
        if outside.any():
            raise EmoconfError(
                f"{path}: {int(outside.sum())} {column} value(s) outside the scale {scale[0]:g}-{scale[1]:g} on "
                f"line(s) {_few(lines[outside])} (e.g. {values[outside][0]:g}); fix them, or the {SCALE_COLUMN} column"
            )
        avd[:, j] = values
    return scale, avd


def _read_splits(path: Path, frame: pd.DataFrame, lines: np.ndarray) -> np.ndarray:
    values = _text(frame["split"])
    _refuse_empty(path, "split", values, lines)
    splits = []
    for value, line in zip(values, lines):
        split = _split_name(value)
        if split is None:
            raise EmoconfError(
                f"{path} line {line}: split {value!r}; expected train, validation (or dev) or test (test1, test2, "
                f"...); put folds or sessions in a 'group' column instead"
            )
        splits.append(split)
    return np.array(splits, dtype=object)


def _split_name(value: str) -> str | None:
    try:
        return normalize_split(value)
    except EmoconfError:
        return None


def _check_class_sizes(listing: FolderListing, where: Path) -> None:
    counts = dict.fromkeys(listing.class_names, 0)  # a class folder without audio counts 0
    for utterances in listing.utterances_by_split.values():
        for utterance in utterances:
            counts[utterance.label] = counts.get(utterance.label, 0) + 1
    small = {label: count for label, count in sorted(counts.items()) if count < MIN_UTTERANCES_PER_CLASS}
    if small:
        described = ", ".join(f"{label!r} ({count})" for label, count in small.items())
        raise EmoconfError(
            f"{where}: class(es) with fewer than {MIN_UTTERANCES_PER_CLASS} utterances: {described}; add files of "
            f"these classes, or leave them out"
        )
    if len(counts) < 2:
        raise EmoconfError(f"{where}: only one class ({', '.join(counts)}); a classifier needs at least two")


def _refuse_duplicate_ids(where: Path, utterances_by_split: dict[str, list[Utterance]]) -> None:
    seen: dict[str, str] = {}
    for utterances in utterances_by_split.values():
        for utterance in utterances:
            if utterance.id in seen:
                raise EmoconfError(
                    f"{where}: {seen[utterance.id]} and {utterance.wav_path} differ only in their suffix; the id "
                    f"{utterance.id!r} (the path without suffix) must be unique: rename or remove one"
                )
            seen[utterance.id] = utterance.wav_path


def _class_folder_utterances(root: Path, folder: Path) -> list[Utterance]:
    return [
        Utterance(
            id=utterance_id(root, path),
            wav_path=path,
            label=folder.name,
            arousal=float("nan"),
            valence=float("nan"),
            dominance=float("nan"),
        )
        for path in audio_files(folder)
    ]


def _sub_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _audio_directly_in(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir()
        if p.is_file() and p.name.lower().endswith(AUDIO_SUFFIXES) and not p.name.startswith(".")
    )


def _ordered(utterances_by_split: dict[str, list[Utterance]]) -> dict[str, list[Utterance]]:
    """Splits in protocol order (train, validation, test, test2, ...), for a stable `info.splits`."""
    rank = {"train": 0, "validation": 1, "test": 2}
    order = sorted(utterances_by_split, key=lambda split: (rank.get(split, 3), split))
    return {split: utterances_by_split[split] for split in order}


def _few(values: Sequence, limit: int = _NAMED_FILES) -> str:
    values = [str(v) for v in values]
    text = ", ".join(values[:limit])
    return text + (f" and {len(values) - limit} other(s)" if len(values) > limit else "")
