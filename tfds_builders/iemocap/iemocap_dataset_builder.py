"""IEMOCAP: openSMILE functionals, five emotions and the evaluators' mean AVD (1-5) per turn, one split per session."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from pathlib import Path

import tensorflow_datasets as tfds

from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FeatureSet
from tfds_builders import speech_features
from tfds_builders.speech_features import Utterance

# Summary-line category -> class. `exc` (excited) joins `happy` unless the config keeps `hap` only;
# xxx (no agreement), sur, fea, oth, dis are skipped and counted.
LABEL_MAP = {
    "ang": "angry",
    "fru": "frustrated",
    "hap": "happy",
    "neu": "neutral",
    "sad": "sad",
}
CLASS_NAMES = ["angry", "frustrated", "happy", "neutral", "sad"]
SCALE = (1.0, 5.0)
SESSIONS = tuple(range(1, 6))

# `[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]`: the bracket is [V, A, D].
_NUMBER = r"([-+]?\d+(?:\.\d*)?)"
SUMMARY_LINE = re.compile(
    rf"^\[\s*{_NUMBER}\s*-\s*{_NUMBER}\s*\]\s+(\S+)\s+(\S+)\s+\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\]"
)
# A turn names its wav (`<dialog>/<turn>.wav`): letters, digits, `_` and `-` only, never a path.
TURN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*_[A-Za-z0-9-]+$")


@dataclasses.dataclass(eq=False)
class IemocapConfig(speech_features.SpeechFeaturesConfig):
    """Adds `merge_excited`: `exc` turns count as `happy` (True, the usual 5-class setup and the default
    configs') or are skipped (the `*_hap_only` configs)."""

    merge_excited: bool = True

    @property
    def merged_labels(self) -> dict[str, str]:
        """`{"excited": "happy"}` when `merge_excited`, recorded in `info.metadata["merged_labels"]`."""
        return {"excited": "happy"} if self.merge_excited else {}


class Builder(speech_features.SpeechFeaturesBuilder):
    """IEMOCAP turns as openSMILE functionals with five classes and AVD on the 1-5 scale."""

    BUILDER_CONFIGS = speech_features.feature_set_configs(
        IemocapConfig, description=", exc merged into happy", merge_excited=True
    ) + speech_features.feature_set_configs(
        IemocapConfig, suffix="_hap_only", description=", hap only (exc skipped)", merge_excited=False
    )
    DEFAULT_CONFIG_NAME = FeatureSet.COMPARE_2016.value

    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    IEMOCAP is licensed by the SAIL lab, University of Southern California; request it at
    https://sail.usc.edu/iemocap/iemocap_release.htm.
    manual_dir must hold the extracted release, either as manual_dir/IEMOCAP_full_release/ or as
    manual_dir itself, with for N in 1..5:

      SessionN/dialog/EmoEvaluation/*.txt          (the summary annotation files)
      SessionN/sentences/wav/<dialog>/<turn>.wav

    Nothing is downloaded: the features are extracted from the wavs with openSMILE.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=speech_features.example_features(CLASS_NAMES, self.builder_config.num_features),
            supervised_keys=("features", "label"),
            homepage="https://sail.usc.edu/iemocap/",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = find_release_root(Path(dl_manager.manual_dir))
        utterances_by_split, skipped = read_release(root, merge_excited=self.builder_config.merge_excited)
        self._check_wavs(utterances_by_split)
        self._record_metadata(scale=SCALE, skipped=skipped)
        cache_dir = self._opensmile_cache_dir(dl_manager)
        return {
            split: self._generate_examples(utterances, cache_dir) for split, utterances in utterances_by_split.items()
        }


def find_release_root(manual_dir: Path) -> Path:
    """`manual_dir/IEMOCAP_full_release` if it exists, else `manual_dir`; every session must be there."""
    root = manual_dir / "IEMOCAP_full_release"
    if not root.is_dir():
        root = manual_dir
    for session in SESSIONS:
        evaluation_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        if not evaluation_dir.is_dir():
            raise EmoconfError(
                f"{evaluation_dir}: no such folder; manual_dir must hold IEMOCAP_full_release/Session1 ... Session5"
            )
    return root


def read_release(root: Path, *, merge_excited: bool = True) -> tuple[dict[str, list[Utterance]], dict[str, int]]:
    """Reads the summary lines of every session's EmoEvaluation files.

    Returns:
        `({"session1": [...], ..., "session5": [...]}, skipped)` where `skipped` counts each category
        left out (`xxx`, `sur`, ..., and `exc` when `merge_excited` is False).

    Raises:
        EmoconfError: naming the file and turn of a turn annotated twice or whose name is not a plain
            turn name (it makes the wav's path, so `../x_F000` or `/abs_F000` is refused). A missing wav
            is not an error here (the builder decides, see `skip_failed`).
    """
    label_map = dict(LABEL_MAP, exc="happy") if merge_excited else LABEL_MAP
    utterances_by_split: dict[str, list[Utterance]] = {}
    skipped: dict[str, int] = {}
    seen: dict[str, Path] = {}
    for session in SESSIONS:
        split = f"session{session}"
        session_dir = root / f"Session{session}"
        utterances = []
        for path in evaluation_files(session_dir / "dialog" / "EmoEvaluation"):
            for turn, category, (valence, arousal, dominance) in read_summary_lines(path):
                if category not in label_map:
                    skipped[category] = skipped.get(category, 0) + 1
                    continue
                if turn in seen:
                    raise EmoconfError(f"{path}: turn {turn} is also annotated in {seen[turn]}")
                seen[turn] = path
                if not TURN_NAME.match(turn):
                    raise EmoconfError(
                        f"{path}: turn name {turn!r} is not like Ses01F_impro01_F000 (letters, digits and _ only); "
                        f"it names the turn's wav inside the manual dir, so it cannot hold a path: fix that line"
                    )
                dialog, speaker_turn = turn.rsplit("_", 1)
                source = f"{path} (turn {turn})"
                wav_path = speech_features.path_in_manual_dir(
                    session_dir / "sentences" / "wav", f"{dialog}/{turn}.wav", source=source,
                    example="Ses01F_impro01/Ses01F_impro01_F000.wav",
                )
                utterances.append(
                    Utterance(
                        id=turn,
                        wav_path=wav_path,
                        label=label_map[category],
                        arousal=arousal,
                        valence=valence,
                        dominance=dominance,
                        # The speaker of a turn is the session's actor of the turn's gender (F000 -> F).
                        speaker=turn[:5] + speaker_turn[:1],
                        group=split,
                        source=source,
                    )
                )
        utterances_by_split[split] = utterances
    if not any(utterances_by_split.values()):
        raise EmoconfError(f"{root}: no turn of the classes {', '.join(CLASS_NAMES)} in any EmoEvaluation file")
    return {split: u for split, u in utterances_by_split.items() if u}, skipped


def evaluation_files(evaluation_dir: Path) -> list[Path]:
    """The summary files directly in `EmoEvaluation/` (not `Categorical/`, `Attribute/`, `Self-evaluation/`)."""
    return [
        Path(path)
        for path in sorted(glob.glob(os.path.join(glob.escape(os.fspath(evaluation_dir)), "*.txt")))
        if not os.path.basename(path).startswith(".") and os.path.isfile(path)
    ]


def read_summary_lines(path: Path) -> list[tuple[str, str, tuple[float, float, float]]]:
    """`[(turn, category, (valence, arousal, dominance))]` from one EmoEvaluation file.

    Values are kept as annotated, even slightly outside 1-5. Some files are not UTF-8: they are decoded as
    Latin-1 instead.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = []
    for line in text.splitlines():
        match = SUMMARY_LINE.match(line.strip())
        if match is None:
            continue
        _, _, turn, category, valence, arousal, dominance = match.groups()
        lines.append((turn, category.lower(), (float(valence), float(arousal), float(dominance))))
    return lines
