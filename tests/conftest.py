"""Shared set-up of the test suite, and the two writers of fake data that test modules share as fixtures.

- `write_wav`: one wav file, a tone with noise that differs per seed (any rate, any number of channels).
- `fake_corpus`: tiny corpora in the real file layouts and formats: an MSP-Podcast release, an IEMOCAP
  release, a features table (`ser_features`). The default rows are below (`MSP_PODCAST_ROWS`,
  `IEMOCAP_DIALOGS`); the tests that count on them state the counts they expect themselves.

Test modules never import each other (nor this file): what they share is a fixture here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# No test writes into the real ~/tensorflow_datasets (or the $TFDS_DATA_DIR of whoever runs them): TFDS's
# default data dir, and that of `emoconf build` without --data-dir, is a temporary folder for the session.
# Set here, before any test module imports tensorflow_datasets, which reads it on import. Tests that check
# the default set $TFDS_DATA_DIR or $HOME themselves.
_TFDS_DATA_DIR = tempfile.mkdtemp(prefix="emoconf-tests-tfds-")
os.environ["TFDS_DATA_DIR"] = _TFDS_DATA_DIR
atexit.register(shutil.rmtree, _TFDS_DATA_DIR, ignore_errors=True)

# openSMILE's C library must load before TensorFlow's: both define Ooura's FFT routines (rdft, cdft, ...)
# and, loaded second, openSMILE would call TensorFlow's copies and corrupt the heap
# (see emoconf_tf.extraction). Tests import both in one process, so load openSMILE first here.
import opensmile  # noqa: E402,F401

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

# === Wav files ===


def write_wav(path: Path, *, seed: int, seconds: float = 0.5, sample_rate: int = 16000, channels: int = 1) -> Path:
    """16-bit PCM wav: a sine of 150 + 20 * seed Hz with noise, different per seed; every channel the same."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = 0.3 * np.sin(2 * np.pi * (150 + 20 * seed) * t) + 0.02 * rng.standard_normal(t.size)
    samples = (signal * 32767).astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(np.repeat(samples, channels).tobytes())
    return path


@pytest.fixture(scope="session", name="write_wav")
def write_wav_fixture():
    """`write_wav(path, *, seed, seconds=0.5, sample_rate=16000, channels=1) -> path`."""
    return write_wav


# === Fake corpora ===

MSP_PODCAST_HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
# FileName, EmoClass, EmoAct (arousal), EmoVal (valence), EmoDom (dominance), SpkrID, Gender, Split_Set.
# Eight rows, six of the five classes (X and C are not among them): train 2, validation 1, test1 2, test2 1.
MSP_PODCAST_ROWS = (
    ("MSP-PODCAST_0001_0008.wav", "N", 4.0, 4.2, 4.4, "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0019.wav", "A", 6.0, 2.0, 5.6, "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0024.wav", "X", 3.0, 3.8, 4.0, "127", "Female", "Train"),
    ("MSP-PODCAST_0002_0033.wav", "H", 5.2, 6.0, 4.8, "Unknown", "Unknown", "Development"),
    ("MSP-PODCAST_0003_0001.wav", "S", 2.0, 2.4, 3.0, "45", "Male", "Test1"),
    ("MSP-PODCAST_0003_0002.wav", "D", 4.6, 2.2, 4.2, "45", "Male", "Test1"),
    ("MSP-PODCAST_0004_0001.wav", "C", 4.0, 3.0, 5.0, "812", "Male", "Test2"),
    ("MSP-PODCAST_0004_0002.wav", "N", 3.6, 4.0, 3.8, "812", "Male", "Test2"),
)

# (session, dialog, [(turn, category, (V, A, D))]); the bracket of a summary line is [V, A, D].
# Per session with exc merged into happy: 3 (xxx skipped), 2 (sur skipped), 2, 2, 2.
IEMOCAP_DIALOGS = (
    (1, "Ses01F_impro01", [
        ("Ses01F_impro01_F000", "neu", (2.5, 2.0, 3.0)),
        ("Ses01F_impro01_F001", "exc", (4.0, 3.5, 3.0)),
        ("Ses01F_impro01_M000", "xxx", (2.0, 3.0, 3.0)),
        ("Ses01F_impro01_M001", "ang", (1.5, 4.5, 4.0)),
    ]),
    (2, "Ses02M_script01_1", [
        ("Ses02M_script01_1_F000", "hap", (4.5, 3.5, 3.5)),
        ("Ses02M_script01_1_M000", "sad", (1.5, 1.5, 2.0)),
        ("Ses02M_script01_1_M001", "sur", (3.0, 4.0, 3.0)),
    ]),
    (3, "Ses03F_impro02", [
        ("Ses03F_impro02_F000", "fru", (2.0, 3.5, 3.5)),
        ("Ses03F_impro02_M000", "neu", (3.0, 2.5, 2.5)),
    ]),
    (4, "Ses04M_impro03", [
        ("Ses04M_impro03_F000", "fru", (1.5, 4.0, 4.5)),
        ("Ses04M_impro03_M000", "neu", (3.0, 3.0, 3.0)),
    ]),
    (5, "Ses05F_script02_2", [
        # Real summaries hold a few values just outside 1-5: kept as they are.
        ("Ses05F_script02_2_F000", "sad", (0.5, 1.0, 1.5)),
        ("Ses05F_script02_2_M000", "ang", (1.0, 5.5, 4.5)),
    ]),
)


def _evaluation_text(turns, *, latin1_note: bool = False) -> bytes:
    """An EmoEvaluation file: header, then per turn a summary line and per-evaluator lines."""
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    start = 6.2901
    for turn, category, (valence, arousal, dominance) in turns:
        lines.append(f"[{start:.4f} - {start + 1.9456:.4f}]\t{turn}\t{category}\t"
                     f"[{valence:.4f}, {arousal:.4f}, {dominance:.4f}]")
        lines.append("C-E1:\tNeutral state;\t()")
        lines.append("C-E2:\tFrustration; Anger;\t()")
        lines.append("A-E1:\tval 3; act 2; dom  3;\t()")
        lines.append("A-E2:\tval 2; act 3; dom  3;\t(mildly aggravated)")
        lines.append("")
        start += 3.5
    data = "\n".join(lines).encode("ascii")
    if latin1_note:
        # One real file has a Latin-1 byte in an evaluator's comment: not valid UTF-8.
        data = data.replace(b"(mildly aggravated)", b"(caf\xe9 noise)", 1)
    return data


class FakeCorpus:
    """Writes tiny corpora in the real layouts and formats, one wav per utterance (`write_wav`, seed = its index)."""

    msp_podcast_header = MSP_PODCAST_HEADER
    msp_podcast_rows = MSP_PODCAST_ROWS
    iemocap_dialogs = IEMOCAP_DIALOGS

    @staticmethod
    def msp_podcast(root: Path, rows: Sequence[tuple] = MSP_PODCAST_ROWS, *, old_layout: bool = False,
                    wav_options: Sequence[dict] = ()) -> Path:
        """An MSP-Podcast release in `root`: `Labels/labels_consensus.csv` and `Audios/<FileName>`.

        `old_layout`: `labels_concensus.csv` without Split_Set, `Partitions.txt`, audio nested per podcast.
        `wav_options[i]`: `write_wav` options of row i's wav (e.g. `{"sample_rate": 8000}`).
        """
        root = Path(root)
        labels_dir = root / "Labels"
        labels_dir.mkdir(parents=True)
        if old_layout:
            lines = [MSP_PODCAST_HEADER.rsplit(",", 1)[0]] + [",".join(map(str, row[:-1])) for row in rows]
            (labels_dir / "labels_concensus.csv").write_text("\n".join(lines) + "\n")
            # The old partition names: Validation for the development set.
            partitions = [f"{row[-1].replace('Development', 'Validation')}; {row[0]}" for row in rows]
            (root / "Partitions.txt").write_text("\n".join(partitions) + "\n")
        else:
            lines = [MSP_PODCAST_HEADER] + [",".join(map(str, row)) for row in rows]
            (labels_dir / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
        for seed, row in enumerate(rows):
            name = row[0]
            folder = root / "Audios" / (name[:16] if old_layout else "")  # nested: Audios/MSP-PODCAST_0001/...
            options = wav_options[seed] if seed < len(wav_options) else {}
            write_wav(folder / name, seed=seed, **options)
        return root

    @staticmethod
    def iemocap(root: Path, dialogs: Sequence[tuple] = IEMOCAP_DIALOGS) -> Path:
        """`root/IEMOCAP_full_release`: per session an EmoEvaluation file per dialog and a wav per turn.

        As in the real release: per-evaluator sub-folders (which must not be read), macOS `._` copies, and a
        Latin-1 byte in session 2's evaluation file.
        """
        release = Path(root) / "IEMOCAP_full_release"
        seed = 0
        for session, dialog, turns in dialogs:
            session_dir = release / f"Session{session}"
            evaluation_dir = session_dir / "dialog" / "EmoEvaluation"
            evaluation_dir.mkdir(parents=True, exist_ok=True)
            (evaluation_dir / f"{dialog}.txt").write_bytes(_evaluation_text(turns, latin1_note=session == 2))
            # Sub-folders of per-evaluator files must not be read (a summary-shaped line would be counted).
            for sub in ("Categorical", "Attribute", "Self-evaluation"):
                (evaluation_dir / sub).mkdir(exist_ok=True)
                (evaluation_dir / sub / f"{dialog}_e1.txt").write_text(
                    f"[1.0000 - 2.0000]\t{dialog}_F999\tang\t[1.0000, 1.0000, 1.0000]\n"
                )
            # macOS resource-fork copies appear in some extracted archives.
            (evaluation_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe")
            for turn, _, _ in turns:
                write_wav(session_dir / "sentences" / "wav" / dialog / f"{turn}.wav", seed=seed)
                seed += 1
        return Path(root)

    @staticmethod
    def features_frame(num_features: int = 5, *, with_split: bool = True, seed: int = 0) -> pd.DataFrame:
        """Eight utterances, three classes, AVD on 1-7 (recorded in `scale`); splits spelled as corpora spell them.

        Split column: Train x 4, Development x 2, Test1 x 2. Features `feat_0` ... float32 normal(seed).
        """
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame(
            {
                "id": [f"utt{i:02d}" for i in range(8)],
                "label": ["sad", "angry", "neutral", "angry", "sad", "neutral", "angry", "sad"],
                "arousal": [2.0, 6.0, 4.0, 5.5, 2.5, 4.0, 6.5, 1.5],
                "valence": [2.5, 2.0, 4.0, 1.5, 3.0, 4.5, 2.0, 2.0],
                "dominance": [3.0, 5.0, 4.0, 5.5, 3.0, 4.0, 6.0, 2.0],
                "speaker": ["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4"],
                "group": [""] * 8,
                "scale": ["1,7"] * 8,
            }
        )
        if with_split:
            frame["split"] = ["Train", "Train", "Train", "Train", "Development", "Development", "Test1", "Test1"]
        features = pd.DataFrame(
            rng.normal(size=(8, num_features)).astype(np.float32), columns=[f"feat_{j}" for j in range(num_features)]
        )
        return pd.concat([frame, features], axis=1)

    @staticmethod
    def features_table(folder: Path, frame: pd.DataFrame | None = None, name: str = "features.csv") -> Path:
        """`frame` (default `features_frame()`) written to `folder/name`: .csv (9 digits, exact float32) or .parquet."""
        frame = FakeCorpus.features_frame() if frame is None else frame
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, float_format="%.9g")
        return path


@pytest.fixture(scope="session")
def fake_corpus() -> FakeCorpus:
    """The fake-corpus writer: `fake_corpus.msp_podcast(root)`, `.iemocap(root)`, `.features_table(folder)`."""
    return FakeCorpus()


# === A tiny trained and exported run ===


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """`(corpus, run_dir, export)`: one tiny run, trained and exported once for the tests that only read them.

    300 SYNTHETIC utterances x 16 features (seed 3), split folds, the filtered training set, 2 epochs, served score
    EmoConfidNet (`--score emoconfidnet`: the paper's model, global thresholds); exported (verified) as
    `<tmp>/savedmodels/tiny/1`. Tests that change a run or a model work on a copy.
    """
    from emoconf_tf.serving.export import export_run
    from emoconf_tf.evaluation.protocol import ProtocolConfig
    from emoconf_tf.serving.rundir import train_run
    from emoconf_tf.synthetic import make_synthetic_corpus
    from emoconf_tf.training import TrainingConfig

    root = tmp_path_factory.mktemp("tiny_export")
    corpus = make_synthetic_corpus(n_utterances=300, num_features=16, seed=3)
    config = ProtocolConfig(cv="split", seeds=(0,), trainings=("filtered",),
                            training=TrainingConfig(max_epochs=2, batch_size=64),
                            methods=("emoconfidnet", "top2_margin"))
    run_dir = train_run(corpus, root / "run", config, seed=0, score="emoconfidnet")
    return corpus, run_dir, export_run(run_dir, root / "savedmodels" / "tiny")
