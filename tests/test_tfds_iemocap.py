"""The `iemocap` TFDS builder, on a tiny fake release in the real file layout and formats."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("opensmile")

import tfds_builders  # noqa: E402,F401  registers the builders
from emoconf_tf.corpus import read_features_table  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from tfds_builders.build import build_dataset, export_features_table  # noqa: E402

CONFIG = "egemaps_v02"  # 88 features: fast; compare_2016 is exercised in test_extraction.py

# Of the default fake release (conftest.IEMOCAP_DIALOGS), per session with exc merged into happy:
# 3 (xxx skipped), 2 (sur skipped), 2, 2, 2.
SPLITS = {"session1": 3, "session2": 2, "session3": 2, "session4": 2, "session5": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory, fake_corpus):
    """The fake release prepared once with the default (exc merged) egemaps config."""
    root = tmp_path_factory.mktemp("iemocap")
    manual_dir = fake_corpus.iemocap(root / "manual")
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


def test_iemocap_missing_wav_error_names_the_path(tmp_path, fake_corpus):
    manual_dir = fake_corpus.iemocap(tmp_path / "manual")
    missing = (
        manual_dir / "IEMOCAP_full_release" / "Session3" / "sentences" / "wav" / "Ses03F_impro02"
        / "Ses03F_impro02_M000.wav"
    )
    missing.unlink()
    with pytest.raises(EmoconfError, match="Ses03F_impro02_M000.wav: no such audio file"):
        build_dataset("iemocap", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)


def test_iemocap_missing_session_error_names_the_folder(tmp_path, fake_corpus):
    manual_dir = fake_corpus.iemocap(tmp_path / "manual")
    shutil.rmtree(manual_dir / "IEMOCAP_full_release" / "Session4")
    with pytest.raises(EmoconfError, match=r"Session4/dialog/EmoEvaluation: no such folder"):
        build_dataset("iemocap", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False)
