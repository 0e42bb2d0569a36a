"""The corpus a protocol runs on: features, category labels and AVD, read from a features table.

A *features table* (CSV or Parquet) has one row per utterance:

- `id` (text, unique), `label` (category name), `arousal`, `valence`, `dominance` (corpus scale; optional: a
  table without the three columns, or with all three empty, is a corpus with no AVD ratings, on which everything
  that does not need AVD runs: see `Corpus.has_avd`),
- optional `speaker`, `group` (e.g. recording session) and `split`
  (`train` / `validation` / `test`; `Train`, `Development`, `Validation`, `Test1`, ... are accepted),
- facts about the whole table, one value repeated on every row (so that CSV and Parquet carry them alike):
  `scale`, the AVD scale as `LO,HI` (`1,7` MSP-Podcast, `1,5` IEMOCAP; needed with AVD unless the reader is
  given one), optional `synthetic` (`true` for generated data) and optional `merged_labels` (`excited=happy`:
  corpus categories the dataset merged into a class, `;`-separated),
- every other column a numeric feature. The feature dimension D comes from the table.

`write_features_table` and `emoconf build --table` / `emoconf export-table` write the table-level columns.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from emoconf_tf.errors import EmoconfError

AVD_COLUMNS = ("arousal", "valence", "dominance")
SCALE_COLUMN = "scale"
SYNTHETIC_COLUMN = "synthetic"
MERGED_LABELS_COLUMN = "merged_labels"
TABLE_COLUMNS = (SCALE_COLUMN, SYNTHETIC_COLUMN, MERGED_LABELS_COLUMN)  # one value for the whole table
META_COLUMNS = ("id", "label", *AVD_COLUMNS, "speaker", "group", "split", *TABLE_COLUMNS)
REQUIRED_COLUMNS = ("id", "label")
SPLITS = ("train", "validation", "test")
NO_AVD_RATINGS = ("no AVD ratings (a corpus with categories only), so no conflict filter and no EmoConfidNet "
                  "(both need arousal/valence/dominance); every other score runs")
"""What reports, run directories and model cards say of a corpus without AVD ratings (`Corpus.has_avd` False)."""

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "development": "validation",
    "dev": "validation",
    "devel": "validation",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "test": "test",
    "test1": "test",
}


def normalize_split(value: str) -> str:
    """Maps a split name as corpora spell it to `train`, `validation`, `test` or `testN`.

    `Train` -> `train`; `Development`/`Validation` -> `validation`; `Test`/`Test1` -> `test`;
    `Test2`, `Test3` keep their own name (`test2`, ...) and are not used by the protocol.
    Raises `EmoconfError` for anything else.
    """
    key = str(value).strip().lower()
    if key in _SPLIT_ALIASES:
        return _SPLIT_ALIASES[key]
    if re.fullmatch(r"test\d+", key):
        return key
    raise EmoconfError(
        f"unknown split {value!r}: expected train, validation (or development) or test (test1, test2, ...)"
    )


def parse_scale(text: str | Sequence[float]) -> tuple[float, float]:
    """Parses an AVD scale `"LO,HI"` (e.g. `"1,7"`) into `(lo, hi)` with lo < hi."""
    if isinstance(text, str):
        parts = text.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 2:
            raise EmoconfError(f"scale {text!r}: expected two numbers 'LO,HI', e.g. '1,7'", argument="scale")
    else:
        values = [float(v) for v in text]
        if len(values) != 2:
            raise EmoconfError(f"scale {text!r}: expected (lo, hi)")
    lo, hi = values
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise EmoconfError(f"scale {text!r}: expected LO < HI, both finite")
    return lo, hi


def check_class_names(classes: Sequence[str]) -> tuple[str, ...]:
    """The category names to keep (`read_features_table`'s `classes`), stripped (`["angry", " happy"]` ->
    `("angry", "happy")`), if they are unique and non-empty; else `EmoconfError` (`argument="classes"`)."""
    class_names = tuple(str(c).strip() for c in classes)
    if len(set(class_names)) != len(class_names) or not all(class_names):
        raise EmoconfError(f"classes {','.join(map(str, classes))}: class names must be unique and non-empty",
                           argument="classes")
    return class_names


def format_scale(scale: Sequence[float]) -> str:
    """`(1.0, 7.0)` -> `"1,7"`: the AVD scale as `--scale` and the table's `scale` column spell it."""
    lo, hi = parse_scale(scale)
    return f"{lo:g},{hi:g}"


def parse_merged_labels(text: str) -> tuple[tuple[str, str], ...]:
    """`"excited=happy"` (pairs `category=class`, `;`-separated) -> `(("excited", "happy"),)`; `""` -> `()`."""
    pairs = []
    for part in filter(None, (p.strip() for p in str(text).split(";"))):
        category, _, class_name = (x.strip() for x in part.partition("="))
        if not category or not class_name:
            raise EmoconfError(f"merged labels {text!r}: expected CATEGORY=CLASS pairs, e.g. 'excited=happy'")
        pairs.append((category, class_name))
    return tuple(pairs)


def format_merged_labels(merged_labels: Sequence[tuple[str, str]] | dict[str, str]) -> str:
    """`(("excited", "happy"),)` or `{"excited": "happy"}` -> `"excited=happy"` (the inverse of
    `parse_merged_labels`)."""
    pairs = merged_labels.items() if isinstance(merged_labels, dict) else merged_labels
    return ";".join(f"{category}={class_name}" for category, class_name in pairs)


def table_columns(
    *, scale: Sequence[float] | None, synthetic: bool = False, merged_labels: Sequence[tuple[str, str]] = ()
) -> dict[str, object]:
    """The table-level columns a features table carries, `{column: value for every row}`.

    `scale` always when known (`"1,7"`), `synthetic` only when True, `merged_labels` only when not empty:
    a table without them is real data with no merged categories.

    Example:
    >>> table_columns(scale=(1, 5), merged_labels=(("excited", "happy"),))
    {'scale': '1,5', 'merged_labels': 'excited=happy'}
    """
    columns: dict[str, object] = {}
    if scale is not None:
        columns[SCALE_COLUMN] = format_scale(scale)
    if synthetic:
        columns[SYNTHETIC_COLUMN] = True
    if merged_labels:
        columns[MERGED_LABELS_COLUMN] = format_merged_labels(merged_labels)
    return columns


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Utterances with features, category labels and AVD annotations.

    Attributes:
        ids: str `[N]`, unique utterance ids.
        features: float32 `[N, D]`.
        labels: int64 `[N]`, index into `class_names`.
        avd: float32 `[N, 3]`, arousal, valence, dominance on the corpus `scale`; NaN when `has_avd` is False.
        class_names: the K category names, in label-id order.
        scale: `(lo, hi)` of the AVD scale (1-7 for MSP-Podcast, 1-5 for IEMOCAP); None for a corpus without AVD
            ratings that records no scale.
        speaker: str `[N]` ("" when unknown).
        group: str `[N]` ("" when unknown), e.g. the recording session.
        split: str `[N]`, `train`/`validation`/`test`/`testN`, or "" when the table has none.
        feature_names: the D feature column names.
        name: a short name used in titles and file names (`synthetic` for the built-in corpus).
        synthetic: True for generated data (the built-in synthetic corpus, or a table whose `synthetic` column
            says so): reports, run directories and model cards say so. Never guessed from `name`.
        merged_labels: `(category, class)` pairs: corpus categories the dataset merged into one of
            `class_names`, e.g. `(("excited", "happy"),)` for IEMOCAP's default configs; `()` when none.
    """

    ids: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    avd: np.ndarray
    class_names: tuple[str, ...]
    scale: tuple[float, float] | None
    speaker: np.ndarray
    group: np.ndarray
    split: np.ndarray
    feature_names: tuple[str, ...]
    name: str = "corpus"
    synthetic: bool = False
    merged_labels: tuple[tuple[str, str], ...] = ()
    has_avd: bool = True

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: np.ndarray) -> "Corpus":
        """Rows selected by a boolean mask `[N]` or an integer index array."""
        return dataclasses.replace(
            self,
            ids=self.ids[index],
            features=self.features[index],
            labels=self.labels[index],
            avd=self.avd[index],
            speaker=self.speaker[index],
            group=self.group[index],
            split=self.split[index],
        )


def read_features_table(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    scale: tuple[float, float] | str | None = None,
    name: str | None = None,
) -> tuple[Corpus, dict[str, int]]:
    """Reads and validates a features table (`.csv`, `.csv.gz` or `.parquet`).

    Args:
        path: the table.
        classes: category names to keep, in label-id order. Rows with other labels are dropped
            and counted. Default: every label in the table, sorted.
        scale: AVD scale `(lo, hi)` or `"LO,HI"`; it overrides the table's `scale` column. Default None: the
            scale the table records; a table with AVD and without one is refused (a wrong scale moves the conflict
            filter's midpoint: 4 instead of 3 for IEMOCAP's 1-5 values read on 1-7). AVD values outside the
            scale are kept with a warning. A table without AVD needs no scale.
        name: corpus name for titles; default the file stem.

    Returns:
        `(corpus, dropped)` where `dropped` maps each label not in `classes` to its row count. The corpus is
        `synthetic` and has `merged_labels` only as the table's own columns record them; it has AVD
        (`Corpus.has_avd`) when the table has the three AVD columns with values (all three absent, or all three
        empty on every row: no AVD ratings).

    Raises:
        EmoconfError: naming the file and the column or row ids at fault, or asking for the scale.
    """
    path = Path(path)
    scale = None if scale is None else parse_scale(scale)
    frame = read_table_frame(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise EmoconfError(
            f"{path}: missing column(s) {', '.join(missing)}; a features table needs "
            f"{', '.join(REQUIRED_COLUMNS)} plus numeric feature columns"
        )
    feature_names = [c for c in frame.columns if c not in META_COLUMNS]
    if not feature_names:
        raise EmoconfError(f"{path}: no feature columns (every column besides {', '.join(META_COLUMNS)} is a feature)")
    if len(frame) == 0:
        raise EmoconfError(f"{path}: the table has no rows")

    ids = frame["id"].astype(str).to_numpy()
    duplicated = pd.unique(ids[pd.Series(ids).duplicated().to_numpy()])
    if len(duplicated):
        raise EmoconfError(f"{path}: duplicate id(s) {_few(duplicated)}; ids must be unique")
    recorded = _table_facts(path, frame, ids)
    has_avd = _has_avd(path, frame)
    if scale is None:
        scale = recorded["scale"]
        if scale is None and has_avd:
            raise EmoconfError(
                f"{path}: the table does not record its AVD scale (no column {SCALE_COLUMN!r}); give it (--scale 1,5 "
                f"for IEMOCAP, --scale 1,7 for MSP-Podcast; scale=(1, 5) in Python), or add a column "
                f"{SCALE_COLUMN!r} holding 'LO,HI' on every row"
            )
    if frame["label"].isna().any():
        raise EmoconfError(f"{path}: empty label in row id(s) {_few(ids[frame['label'].isna().to_numpy()])}")
    labels_text = frame["label"].astype(str).str.strip().to_numpy()

    if classes is None:
        class_names = tuple(sorted(set(labels_text)))
    else:
        class_names = check_class_names(classes)
    if len(class_names) < 2:
        raise EmoconfError(f"{path}: need at least two classes, found {list(class_names)}")
    keep = np.isin(labels_text, class_names)
    dropped = pd.Series(labels_text[~keep]).value_counts().to_dict()
    if not keep.any():
        raise EmoconfError(f"{path}: no row has a label in {','.join(class_names)}")
    frame = frame.loc[keep].reset_index(drop=True)
    ids, labels_text = ids[keep], labels_text[keep]

    avd = np.full((len(frame), 3), np.nan, dtype=np.float32)
    for j, column in enumerate(AVD_COLUMNS if has_avd else ()):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise EmoconfError(f"{path}: column {column!r} is missing or not numeric in row id(s) {_few(ids[bad])}")
        outside = (values < scale[0]) | (values > scale[1])
        if outside.any():
            warnings.warn(
                f"{path}: {int(outside.sum())} {column} value(s) outside the scale {scale[0]:g}-{scale[1]:g} "
                f"(e.g. id {ids[outside][0]}); kept as they are",
                stacklevel=2,
            )
        avd[:, j] = values

    features = feature_matrix(path, frame, feature_names, ids)
    label_ids = {c: i for i, c in enumerate(class_names)}
    labels = np.array([label_ids[c] for c in labels_text], dtype=np.int64)

    def text_column(column: str) -> np.ndarray:
        if column not in frame.columns:
            return np.full(len(frame), "", dtype=object)
        values = frame[column]  # an all-empty column is float NaN: filled as text, not as a float
        return values.astype(object).where(values.notna(), "").astype(str).to_numpy(dtype=object)

    split = text_column("split")
    if "split" in frame.columns:
        normalized = []
        for row_id, value in zip(ids, split):
            try:
                normalized.append(normalize_split(value))
            except EmoconfError as error:
                raise EmoconfError(f"{path}: row id {row_id}: {error}") from None
        split = np.array(normalized, dtype=object)

    corpus = Corpus(
        ids=ids.astype(object),
        features=features,
        labels=labels,
        avd=avd,
        class_names=class_names,
        scale=scale,
        speaker=text_column("speaker"),
        group=text_column("group"),
        split=split,
        feature_names=tuple(str(c) for c in feature_names),
        name=name or path.name.split(".")[0],
        synthetic=recorded["synthetic"],
        merged_labels=recorded["merged_labels"],
        has_avd=has_avd,
    )
    return corpus, dropped


def _has_avd(path: Path, frame: pd.DataFrame) -> bool:
    """True when the table has AVD ratings: the three columns, not all empty. None of them, or all three empty on
    every row, is a table without ratings; one or two of them is refused (a column missing by mistake)."""
    present = [c for c in AVD_COLUMNS if c in frame.columns]
    if not present:
        return False
    if len(present) < len(AVD_COLUMNS):
        missing = [c for c in AVD_COLUMNS if c not in present]
        raise EmoconfError(
            f"{path}: has column(s) {', '.join(present)} but not {', '.join(missing)}; give all three AVD columns "
            "(arousal, valence, dominance) or none (a corpus with categories only)"
        )
    return not all(frame[c].isna().all() for c in AVD_COLUMNS)


def write_features_table(corpus: Corpus, path: str | os.PathLike) -> Path:
    """Writes `corpus` as a features table (CSV or Parquet by suffix), atomically."""
    from emoconf_tf.atomic import atomic_path

    path = Path(path)
    frame = corpus_frame(corpus)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    return path


def corpus_frame(corpus: Corpus) -> pd.DataFrame:
    """The corpus as a features-table DataFrame: meta columns first (the AVD columns only when the corpus has AVD;
    the table-level `scale` when known, and `synthetic` / `merged_labels` when they apply, `table_columns`), then
    features."""
    avd = {name: corpus.avd[:, j] for j, name in enumerate(AVD_COLUMNS)} if corpus.has_avd else {}
    meta = pd.DataFrame(
        {
            "id": corpus.ids,
            "label": np.asarray(corpus.class_names, dtype=object)[corpus.labels],
            **avd,
            "speaker": corpus.speaker,
            "group": corpus.group,
            "split": corpus.split,
        }
    )
    for column, value in table_columns(scale=corpus.scale, synthetic=corpus.synthetic,
                                       merged_labels=corpus.merged_labels).items():
        meta[column] = value
    features = pd.DataFrame(corpus.features, columns=list(corpus.feature_names))
    return pd.concat([meta, features], axis=1)


def _table_facts(path: Path, frame: pd.DataFrame, ids: np.ndarray) -> dict:
    """`{"scale": (lo, hi) or None, "synthetic": bool, "merged_labels": pairs}` from the table-level columns,
    each of which must hold one value on every row."""

    def one_value(column: str) -> str | None:
        if column not in frame.columns:
            return None
        values = frame[column]
        if values.isna().all():
            return None
        if values.isna().any():
            empty = _few(ids[values.isna().to_numpy()])
            raise EmoconfError(f"{path}: column {column!r} is empty in row id(s) {empty}; it records one fact "
                               "about the whole table: give the same value on every row")
        distinct = pd.unique(values.astype(str).str.strip())
        if len(distinct) > 1:
            raise EmoconfError(f"{path}: column {column!r} holds {len(distinct)} different values ({_few(distinct)}); "
                               "it records one fact about the whole table: give the same value on every row")
        return str(distinct[0])

    facts: dict = {"scale": None, "synthetic": False, "merged_labels": ()}
    text = one_value(SCALE_COLUMN)
    if text is not None:
        try:
            facts["scale"] = parse_scale(text)
        except EmoconfError:
            raise EmoconfError(f"{path}: column {SCALE_COLUMN!r} holds {text!r}; expected the AVD scale as 'LO,HI' "
                               "with LO < HI, e.g. '1,5' for IEMOCAP or '1,7' for MSP-Podcast") from None
    text = one_value(SYNTHETIC_COLUMN)
    if text is not None:
        if text.lower() not in ("true", "false", "1", "0"):
            raise EmoconfError(f"{path}: column {SYNTHETIC_COLUMN!r} holds {text!r}; expected true or false")
        facts["synthetic"] = text.lower() in ("true", "1")
    text = one_value(MERGED_LABELS_COLUMN)
    if text is not None:
        try:
            facts["merged_labels"] = parse_merged_labels(text)
        except EmoconfError as error:
            raise EmoconfError(f"{path}: column {MERGED_LABELS_COLUMN!r}: {error}") from None
    return facts


def check_table_path(path: str | os.PathLike) -> Path:
    """`path` as a `Path` if it is a non-empty file, or `EmoconfError` naming it (before anything is read)."""
    path = Path(path)
    if not path.exists():
        raise EmoconfError(f"{path}: no such file; give the path of a features table (.csv or .parquet)")
    if path.is_dir():
        raise EmoconfError(f"{path}: is a directory; give the path of a features table (.csv or .parquet)")
    if path.stat().st_size == 0:
        raise EmoconfError(f"{path}: the file is empty")
    return path


def read_table_frame(path: Path) -> pd.DataFrame:
    """The table at `path` (`.csv`, `.csv.gz`, `.parquet`/`.pq`) as a DataFrame, after `check_table_path`.

    Raises:
        EmoconfError: naming the file, when it is missing, empty, or cannot be parsed as CSV or Parquet.
    """
    check_table_path(path)
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise EmoconfError(f"{path}: cannot be read as a features table ({error})") from None
    except Exception as error:  # pyarrow raises its own types for a corrupt Parquet file
        raise EmoconfError(f"{path}: cannot be read as a features table ({type(error).__name__}: {error})") from None


def feature_matrix(path: Path, frame: pd.DataFrame, feature_names: list[str], ids: np.ndarray) -> np.ndarray:
    """The columns `feature_names` of `frame` as a C-contiguous float32 matrix `[N, D]`.

    Args:
        path: the file `frame` was read from (named in errors).
        frame: the table, N rows; feature_names: the D columns, in order; ids: the N row ids (named in errors).

    Raises:
        EmoconfError: naming the file, for a non-numeric column (with a row id and its value) or a NaN or
            infinite value (with the row ids).
    """
    block = frame[feature_names]
    non_numeric = [c for c in feature_names if not pd.api.types.is_numeric_dtype(block[c])]
    if non_numeric:
        column = non_numeric[0]
        values = pd.to_numeric(block[column], errors="coerce")
        bad = values.isna() & block[column].notna()
        example = ids[bad.to_numpy()][:1]
        raise EmoconfError(
            f"{path}: feature column {column!r} is not numeric"
            + (f" (e.g. row id {example[0]}: {block[column][bad].iloc[0]!r})" if len(example) else "")
            + (f"; {len(non_numeric)} such column(s)" if len(non_numeric) > 1 else "")
        )
    features = block.to_numpy(dtype=np.float32)
    bad_rows = ~np.isfinite(features).all(axis=1)
    if bad_rows.any():
        raise EmoconfError(f"{path}: NaN or infinite feature values in row id(s) {_few(ids[bad_rows])}")
    return np.ascontiguousarray(features)


def _few(values: Sequence, limit: int = 5) -> str:
    values = [str(v) for v in values]
    text = ", ".join(values[:limit])
    return text + (f" and {len(values) - limit} more" if len(values) > limit else "")
