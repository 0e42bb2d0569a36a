"""The `iemocap` TFDS builder, on a tiny fake release in the real file layout and formats."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("opensmile")

import tfds_builders  # noqa: E402,F401  registers the builders
from emoconf_tf.corpus import read_features_table  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from tfds_builders.build import build_dataset, export_features_table  # noqa: E402

CONFIG = "egemaps_v02"  # 88 features: fast; compare_2016 is exercised in test_extraction.py

# (session, dialog, [(turn, category, (V, A, D))]); the bracket of a summary line is [V, A, D].
DIALOGS = [
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
]
# Per session with exc merged into happy: 3 (xxx skipped), 2 (sur skipped), 2, 2, 2.
SPLITS = {"session1": 3, "session2": 2, "session3": 2, "session4": 2, "session5": 2}


def write_wav(path: Path, *, seed: int, seconds: float = 0.5, sample_rate: int = 16000) -> None:
    """16-bit mono wav: a sine with noise, different per file."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = 0.3 * np.sin(2 * np.pi * (120 + 15 * seed) * t) + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes((signal * 32767).astype("<i2").tobytes())


def evaluation_text(turns, *, latin1_note: bool = False) -> bytes:
    """An EmoEvaluation file: header, then per turn a summary line and per-evaluator lines."""
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    start = 6.2901
    for turn, category, (valence, arousal, dominance) in turns:
        lines.append(
            f"[{start:.4f} - {start + 1.9456:.4f}]\t{turn}\t{category}\t[{valence:.4f}, {arousal:.4f}, {dominance:.4f}]"
        )
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


def write_fake_release(root: Path) -> Path:
    release = root / "IEMOCAP_full_release"
    seed = 0
    for session, dialog, turns in DIALOGS:
        session_dir = release / f"Session{session}"
        evaluation_dir = session_dir / "dialog" / "EmoEvaluation"
        evaluation_dir.mkdir(parents=True)
        (evaluation_dir / f"{dialog}.txt").write_bytes(evaluation_text(turns, latin1_note=session == 2))
        # Sub-folders of per-evaluator files must not be read (a summary-shaped line would be counted).
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (evaluation_dir / sub).mkdir()
            (evaluation_dir / sub / f"{dialog}_e1.txt").write_text(
                f"[1.0000 - 2.0000]\t{dialog}_F999\tang\t[1.0000, 1.0000, 1.0000]\n"
            )
        # macOS resource-fork copies appear in some extracted archives.
        (evaluation_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe")
        for turn, _, _ in turns:
            write_wav(session_dir / "sentences" / "wav" / dialog / f"{turn}.wav", seed=seed)
            seed += 1
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fake release prepared once with the default (exc merged) egemaps config."""
    root = tmp_path_factory.mktemp("iemocap")
    manual_dir = write_fake_release(root / "manual")
    data_dir = root / "tfds"
    builder = build_dataset("iemocap", manual_dir, data_dir, config=CONFIG, num_workers=2, progress=False)
    return builder, manual_dir, data_dir


def examples(builder, split):
    return {
        example["id"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


def test_iemocap_has_one_split_per_session(built):
    builder, _, _ = built
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == SPLITS


def test_iemocap_summary_order_is_valence_arousal_dominance(built):
    builder, _, _ = built
    example = examples(builder, "session1")["Ses01F_impro01_M001"]  # [1.5, 4.5, 4.0] = [V, A, D]
    assert example["valence"] == pytest.approx(1.5)
    assert example["arousal"] == pytest.approx(4.5)
    assert example["dominance"] == pytest.approx(4.0)


def test_iemocap_labels_use_the_five_class_names(built):
    builder, _, _ = built
    names = builder.info.features["label"].names
    assert names == ["angry", "frustrated", "happy", "neutral", "sad"]
    session1 = examples(builder, "session1")
    assert names[session1["Ses01F_impro01_F000"]["label"]] == "neutral"
    assert names[session1["Ses01F_impro01_M001"]["label"]] == "angry"
    assert names[examples(builder, "session3")["Ses03F_impro02_F000"]["label"]] == "frustrated"


def test_iemocap_records_that_excited_is_merged_into_happy(built):
    builder, _, _ = built
    assert dict(builder.info.metadata["merged_labels"]) == {"excited": "happy"}


def test_iemocap_merges_excited_into_happy(built):
    builder, _, _ = built
    names = builder.info.features["label"].names
    assert names[examples(builder, "session1")["Ses01F_impro01_F001"]["label"]] == "happy"


def test_iemocap_counts_skipped_categories(built):
    builder, _, _ = built
    assert dict(builder.info.metadata["skipped_classes"]) == {"xxx": 1, "sur": 1}


def test_iemocap_reads_a_latin1_evaluation_file(built):
    builder, _, _ = built
    assert set(examples(builder, "session2")) == {"Ses02M_script01_1_F000", "Ses02M_script01_1_M000"}


def test_iemocap_keeps_values_outside_the_scale(built):
    builder, _, _ = built
    session5 = examples(builder, "session5")
    assert session5["Ses05F_script02_2_F000"]["valence"] == pytest.approx(0.5)
    assert session5["Ses05F_script02_2_M000"]["arousal"] == pytest.approx(5.5)
    assert list(builder.info.metadata["scale"]) == [1.0, 5.0]


def test_iemocap_speaker_is_the_turns_actor_and_group_the_session(built):
    builder, _, _ = built
    session2 = examples(builder, "session2")
    assert session2["Ses02M_script01_1_F000"]["speaker"].decode() == "Ses02F"
    assert session2["Ses02M_script01_1_M000"]["speaker"].decode() == "Ses02M"
    assert {e["group"].decode() for e in session2.values()} == {"session2"}


def test_iemocap_features_have_the_config_dimension(built):
    builder, _, _ = built
    example = next(iter(examples(builder, "session4").values()))
    assert example["features"].shape == (88,)
    assert example["features"].dtype == np.float32
    assert np.isfinite(example["features"]).all()
    assert len(builder.info.metadata["feature_names"]) == 88


def test_iemocap_sessions_compose_into_folds_with_tfds_load(built):
    _, manual_dir, data_dir = built
    dataset = tfds.load(
        f"iemocap/{CONFIG}",
        split="session1+session2+session3",
        data_dir=str(data_dir),
        try_gcs=False,
        builder_kwargs={"num_workers": 2, "progress": False},
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir), try_download_gcs=False)
        },
    )
    assert sum(1 for _ in dataset) == 3 + 2 + 2


def test_iemocap_hap_only_config_skips_excited(built):
    _, manual_dir, data_dir = built
    # Same data_dir: the openSMILE cache of the first build is reused.
    builder = build_dataset("iemocap", manual_dir, data_dir, config=f"{CONFIG}_hap_only", progress=False)
    assert builder.info.splits["session1"].num_examples == 2
    assert "Ses01F_impro01_F001" not in examples(builder, "session1")
    assert dict(builder.info.metadata["skipped_classes"]) == {"exc": 1, "sur": 1, "xxx": 1}
    names = builder.info.features["label"].names
    assert names[examples(builder, "session2")["Ses02M_script01_1_F000"]["label"]] == "happy"
    assert dict(builder.info.metadata["merged_labels"]) == {}


def test_iemocap_exports_a_features_table_with_sessions_as_groups(built, tmp_path):
    builder, _, data_dir = built
    table = export_features_table(builder, data_dir, tmp_path / "iemocap.csv")
    with pytest.warns(UserWarning, match="outside the scale 1-5"):  # session 5 values, kept
        corpus, dropped = read_features_table(table)  # the table records its scale: no 1-7 default
    assert corpus.scale == (1.0, 5.0) and corpus.merged_labels == (("excited", "happy"),)
    assert not corpus.synthetic
    assert len(corpus) == sum(SPLITS.values()) and dropped == {}
    assert corpus.num_features == 88
    assert set(corpus.group) == set(SPLITS)
    assert set(corpus.split) == {""}  # sessions are not train/validation/test: no split column
    row = list(corpus.ids).index("Ses01F_impro01_M001")
    np.testing.assert_allclose(corpus.avd[row], [4.5, 1.5, 4.0])  # arousal, valence, dominance


def test_iemocap_missing_wav_error_names_the_path(tmp_path):
    manual_dir = write_fake_release(tmp_path / "manual")
    missing = (
        manual_dir / "IEMOCAP_full_release" / "Session3" / "sentences" / "wav" / "Ses03F_impro02"
        / "Ses03F_impro02_M000.wav"
    )
    missing.unlink()
    with pytest.raises(EmoconfError, match="Ses03F_impro02_M000.wav: no such audio file"):
        build_dataset("iemocap", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)


def test_iemocap_missing_session_error_names_the_folder(tmp_path):
    manual_dir = write_fake_release(tmp_path / "manual")
    import shutil

    shutil.rmtree(manual_dir / "IEMOCAP_full_release" / "Session4")
    with pytest.raises(EmoconfError, match=r"Session4/dialog/EmoEvaluation: no such folder"):
        build_dataset("iemocap", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)
