"""MSP-Podcast: openSMILE functionals, the five primary emotions and consensus AVD (1-7) per utterance."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import pandas as pd
import tensorflow_datasets as tfds

from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FeatureSet
from tfds_builders import speech_features
from tfds_builders.speech_features import Utterance

# EmoClass codes of the paper's five classes; other codes (C, F, U, O, X, ...) are skipped and counted.
LABEL_MAP = {
    "A": "angry",
    "D": "disgusted",
    "H": "happy",
    "N": "neutral",
    "S": "sad",
}
CLASS_NAMES = list(LABEL_MAP.values())
SCALE = (1.0, 7.0)

# `Split_Set` (or `Partitions.txt`) value -> TFDS split.
SPLIT_MAP = {
    "train": "train",
    "development": "validation",
    "validation": "validation",
    "test1": "test1",
    "test2": "test2",
    "test3": "test3",
}
SPLIT_ORDER = ("train", "validation", "test1", "test2", "test3")
# Utterances per split after selecting the five classes, as the paper reports them; a build logs its own counts
# beside them (`class_selection_summary`). Other releases of the corpus give other counts.
PAPER_SPLIT_COUNTS = {"train": 34280, "validation": 5958, "test1": 10124}

logger = logging.getLogger(__name__)

# Newer releases spell it "consensus", older ones "concensus".
LABELS_FILES = ("Labels/labels_consensus.csv", "Labels/labels_concensus.csv")
LABELS_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID")
PARTITIONS_FILES = ("Partitions.txt", "Labels/Partitions.txt")
AUDIO_DIRS = ("Audios", "Audio")


class Builder(speech_features.SpeechFeaturesBuilder):
    """MSP-Podcast utterances as openSMILE functionals with category labels and AVD on the 1-7 scale."""

    BUILDER_CONFIGS = speech_features.feature_set_configs()
    DEFAULT_CONFIG_NAME = FeatureSet.COMPARE_2016.value

    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    MSP-Podcast is licensed by The University of Texas at Dallas (MSP lab); request it at
    https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html.
    manual_dir must be the release folder as delivered, holding:

      Labels/labels_consensus.csv   (older releases: Labels/labels_concensus.csv)
      Audios/MSP-PODCAST_xxxx_xxxx.wav   (flat, or in sub-folders)
      Partitions.txt                (only when labels_consensus.csv has no Split_Set column)

    Nothing is downloaded: the features are extracted from the wavs with openSMILE.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=speech_features.example_features(CLASS_NAMES, self.builder_config.num_features),
            supervised_keys=("features", "label"),
            homepage="https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = Path(dl_manager.manual_dir)
        utterances_by_split, skipped_classes, skipped_other = read_release(root)
        self._check_wavs(utterances_by_split)
        self._record_metadata(scale=SCALE, skipped=skipped_classes, skipped_reasons=skipped_other)
        counts = {split: len(utterances_by_split[split]) for split in SPLIT_ORDER if split in utterances_by_split}
        self.info.metadata["class_selection_counts"] = counts
        logger.info("%s: %s", self.name, class_selection_summary(counts))
        cache_dir = self._opensmile_cache_dir(dl_manager)
        return {
            split: self._generate_examples(utterances_by_split[split], cache_dir)
            for split in SPLIT_ORDER
            if utterances_by_split.get(split)
        }


def class_selection_summary(counts: Mapping[str, int]) -> str:
    """One line: utterances of the five classes per split (with a partition and AVD, before any audio is
    read) beside the paper's `PAPER_SPLIT_COUNTS`.

    Args:
        counts: `{split: utterances}`, e.g. `info.metadata["class_selection_counts"]`.

    Example:
    >>> class_selection_summary({"train": 34500, "validation": 6000, "test1": 10200})
    'after class selection: train 34,500 (paper 34,280), validation 6,000 (paper 5,958), test1 10,200 (paper 10,124)'
    """
    parts = []
    for split in [s for s in SPLIT_ORDER if s in counts or s in PAPER_SPLIT_COUNTS]:
        paper = PAPER_SPLIT_COUNTS.get(split)
        parts.append(f"{split} {int(counts.get(split, 0)):,}" + (f" (paper {paper:,})" if paper else ""))
    return "after class selection: " + ", ".join(parts)


def read_release(root: Path) -> tuple[dict[str, list[Utterance]], dict[str, int], dict[str, int]]:
    """Reads the labels (and partitions) of an MSP-Podcast release folder.

    Returns:
        `(utterances_by_split, skipped_classes, skipped_other)`: the utterances of the five classes per TFDS
        split, the count of each other EmoClass code, and counts of utterances skipped for another reason
        (`no split`, `missing AVD`).

    A listed wav that does not exist is not an error here (the builder decides, see `skip_failed`); a
    FileName that would lead outside the `Audios` folder is.

    Raises:
        EmoconfError: naming the missing file or folder, or the row at fault.
    """
    labels_path = _find_first(root, LABELS_FILES)
    if labels_path is None:
        raise EmoconfError(
            f"{root / LABELS_FILES[0]}: no such file (nor {LABELS_FILES[1]}); manual_dir must be the "
            f"MSP-Podcast release folder"
        )
    frame = _read_labels(labels_path)
    if "Split_Set" in frame.columns:
        splits = frame["Split_Set"]
        split_source = f"{labels_path} column Split_Set"
    else:
        partitions_path = _find_first(root, PARTITIONS_FILES)
        if partitions_path is None:
            raise EmoconfError(
                f"{labels_path} has no Split_Set column and {root / PARTITIONS_FILES[0]} does not exist; "
                f"one of the two must give the partition of each file"
            )
        partitions = read_partitions(partitions_path)
        splits = frame["FileName"].map(partitions)
        split_source = str(partitions_path)

    audio_root, audio_index = _index_audio(root)
    utterances_by_split: dict[str, list[Utterance]] = {}
    skipped_classes: dict[str, int] = {}
    skipped_other: dict[str, int] = {}
    # Line numbers as an editor shows them: the header is line 1.
    for line, (row, split_value) in enumerate(zip(frame.itertuples(index=False), splits), start=2):
        code = str(row.EmoClass).strip()
        if code not in LABEL_MAP:
            skipped_classes[code] = skipped_classes.get(code, 0) + 1
            continue
        if pd.isna(split_value) or not str(split_value).strip():
            skipped_other["no split"] = skipped_other.get("no split", 0) + 1
            continue
        split = SPLIT_MAP.get(str(split_value).strip().lower())
        if split is None:
            raise EmoconfError(
                f"{split_source}: file {row.FileName} has partition {split_value!r}; expected one of "
                f"Train, Development, Validation, Test1, Test2, Test3"
            )
        avd = [pd.to_numeric(value, errors="coerce") for value in (row.EmoAct, row.EmoVal, row.EmoDom)]
        if any(pd.isna(value) for value in avd):
            skipped_other["missing AVD"] = skipped_other.get("missing AVD", 0) + 1
            continue
        file_name = str(row.FileName).strip()
        source = f"{labels_path} line {line} (FileName {file_name})"
        wav_path = audio_index.get(file_name) or speech_features.path_in_manual_dir(
            audio_root, file_name, source=source, example="MSP-PODCAST_0001_0008.wav"
        )
        speaker = "" if pd.isna(row.SpkrID) else str(row.SpkrID).strip()
        utterances_by_split.setdefault(split, []).append(
            Utterance(
                id=Path(file_name).stem,
                wav_path=wav_path,
                label=LABEL_MAP[code],
                arousal=float(avd[0]),
                valence=float(avd[1]),
                dominance=float(avd[2]),
                speaker="" if speaker.lower() == "unknown" else speaker,
                group="",
                source=source,
            )
        )
    if not utterances_by_split:
        raise EmoconfError(f"{labels_path}: no utterance of the classes {', '.join(LABEL_MAP)} with a partition")
    return utterances_by_split, skipped_classes, skipped_other


def read_partitions(path: Path) -> dict[str, str]:
    """`{file name: partition}` from `Partitions.txt` lines like `Train; MSP-PODCAST_0001_0008.wav`."""
    partitions = {}
    text = path.read_bytes().decode("utf-8", errors="replace")
    for line_number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(";")]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise EmoconfError(
                f"{path}:{line_number}: expected 'Partition; FileName.wav' (e.g. 'Train; MSP-PODCAST_0001_0008.wav'), "
                f"got {line!r}"
            )
        partitions[parts[1]] = parts[0]
    return partitions


def _find_first(root: Path, relative_paths) -> Path | None:
    for relative in relative_paths:
        if (root / relative).is_file():
            return root / relative
    return None


def _read_labels(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise EmoconfError(f"{path}: cannot be read as the MSP-Podcast labels CSV ({error})") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    missing = [column for column in LABELS_COLUMNS if column not in frame.columns]
    if missing:
        raise EmoconfError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the header "
            f"FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
        )
    return frame


def _index_audio(root: Path) -> tuple[Path, dict[str, str]]:
    """`(Audios folder, {file name: path})` of every wav under `Audios/`, flat or in sub-folders."""
    audio_root = next((root / name for name in AUDIO_DIRS if (root / name).is_dir()), None)
    if audio_root is None:
        raise EmoconfError(f"{root / AUDIO_DIRS[0]}: no such folder; it should hold the MSP-PODCAST_*.wav files")
    index: dict[str, str] = {}
    for folder, _, files in os.walk(audio_root):
        for name in files:
            if name.lower().endswith(".wav") and not name.startswith("._"):
                index.setdefault(name, os.path.join(folder, name))
    return audio_root, index
