"""Building the audio datasets: failed files, resuming an interrupted build, and the Apache Beam path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("opensmile")

import tfds_builders  # noqa: E402,F401  registers the builders
from emoconf_tf import extraction  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from tfds_builders.build import build_dataset  # noqa: E402

CONFIG = "egemaps_v02"  # 88 features: fast
# The default fake release (conftest.MSP_PODCAST_ROWS): six utterances of the five classes, one wav each.
SPLITS = {"train": 2, "validation": 1, "test1": 2, "test2": 1}
NUM_WAVS = sum(SPLITS.values())
CORRUPT = "MSP-PODCAST_0001_0019"  # train
EMPTY = "MSP-PODCAST_0003_0001"  # test1


class SimulatedInterrupt(Exception):
    """Stands for a crash or Ctrl-C in the middle of extraction."""


def split_examples(builder) -> dict[str, dict[str, dict]]:
    """`{split: {id: example}}` of a prepared builder."""
    return {
        split: {
            example["id"].decode(): example
            for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
        }
        for split in builder.info.splits
    }


def assert_same_dataset(builder, reference) -> None:
    actual, expected = split_examples(builder), split_examples(reference)
    assert {s: sorted(e) for s, e in actual.items()} == {s: sorted(e) for s, e in expected.items()}
    for split, examples in expected.items():
        for utterance_id, example in examples.items():
            for key in ("features", "label", "arousal", "valence", "dominance", "speaker", "group"):
                np.testing.assert_array_equal(actual[split][utterance_id][key], example[key],
                                              err_msg=f"{utterance_id} {key}")


def cached_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "downloads" / "opensmile" / CONFIG).glob("*.npy"))


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory, fake_corpus):
    return fake_corpus.msp_podcast(tmp_path_factory.mktemp("msp_podcast") / "manual")


@pytest.fixture(scope="module")
def reference(manual_dir, tmp_path_factory):
    """The dataset built in one go, locally: what every other way of building must give."""
    data_dir = tmp_path_factory.mktemp("reference") / "tfds"
    return build_dataset("msp_podcast", manual_dir, data_dir, config=CONFIG, num_workers=2, progress=False)


@pytest.fixture
def damaged_manual_dir(manual_dir, tmp_path):
    """The fake release with one corrupt and one empty wav among the good ones."""
    copy = Path(shutil.copytree(manual_dir, tmp_path / "manual"))
    (copy / "Audios" / f"{CORRUPT}.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 4)
    (copy / "Audios" / f"{EMPTY}.wav").write_bytes(b"")
    return copy


def test_failed_files_are_named_after_every_other_file_is_extracted(damaged_manual_dir, tmp_path):
    data_dir = tmp_path / "tfds"
    with pytest.raises(EmoconfError) as raised:
        build_dataset("msp_podcast", damaged_manual_dir, data_dir, config=CONFIG, num_workers=2, progress=False)
    message = str(raised.value)
    assert "2 of 6 audio file(s) failed" in message
    assert f"{CORRUPT}.wav: cannot be read as audio" in message
    assert f"{EMPTY}.wav: the audio file is empty" in message
    assert "--skip-failed" in message
    # The good files were not abandoned: all four are cached for the next attempt, and nothing is prepared.
    assert len(cached_files(data_dir)) == NUM_WAVS - 2
    assert not (data_dir / "msp_podcast" / CONFIG / "1.0.0" / "dataset_info.json").exists()


def test_skip_failed_leaves_the_failed_utterances_out_and_counts_them(damaged_manual_dir, tmp_path):
    builder = build_dataset(
        "msp_podcast", damaged_manual_dir, tmp_path / "tfds", config=CONFIG, progress=False, skip_failed=True
    )
    counts = {name: info.num_examples for name, info in builder.info.splits.items()}
    assert counts == {**SPLITS, "train": SPLITS["train"] - 1, "test1": SPLITS["test1"] - 1}
    failed = builder.info.metadata["failed_files"]
    assert [record["id"] for record in failed] == [CORRUPT, EMPTY]
    assert "the audio file is empty" in failed[1]["reason"]
    assert dict(builder.info.metadata["skipped_other"]) == {"failed extraction": 2}
    # Written to metadata.json: a builder that reloads the prepared dataset sees the same record.
    reloaded = tfds.builder(f"msp_podcast/{CONFIG}", data_dir=str(tmp_path / "tfds"), try_gcs=False)
    assert [record["id"] for record in reloaded.info.metadata["failed_files"]] == [CORRUPT, EMPTY]


def test_a_split_whose_every_file_fails_is_named_even_with_skip_failed(manual_dir, tmp_path):
    copy = Path(shutil.copytree(manual_dir, tmp_path / "manual"))
    (copy / "Audios" / "MSP-PODCAST_0002_0033.wav").write_bytes(b"")  # the only validation utterance
    # TFDS cannot write an empty split: the error says why it would be empty.
    with pytest.raises(EmoconfError, match=r"no example left in a split of 1 utterance\(s\): 1 of 1 audio "
                       r"file\(s\) failed: .*MSP-PODCAST_0002_0033.wav: the audio file is empty"):
        build_dataset("msp_podcast", copy, tmp_path / "tfds", config=CONFIG, progress=False, skip_failed=True)


def test_interrupted_build_resumes_from_cached_features(manual_dir, reference, tmp_path, monkeypatch):
    data_dir = tmp_path / "tfds"
    original_read_wav = extraction._read_wav
    reads = []

    def interrupted_after_three_files(path):
        if len(reads) == 3:
            raise SimulatedInterrupt(path)
        reads.append(Path(path).stem)
        return original_read_wav(path)

    monkeypatch.setattr(extraction, "_read_wav", interrupted_after_three_files)
    with pytest.raises(SimulatedInterrupt):
        build_dataset("msp_podcast", manual_dir, data_dir, config=CONFIG, num_workers=1, progress=False)
    cached_before = cached_files(data_dir)
    assert 3 <= len(cached_before) < NUM_WAVS  # interrupted mid-way, with some features kept

    reads.clear()

    def counting_read_wav(path):
        reads.append(Path(path).stem)
        return original_read_wav(path)

    monkeypatch.setattr(extraction, "_read_wav", counting_read_wav)
    builder = build_dataset("msp_podcast", manual_dir, data_dir, config=CONFIG, num_workers=2, progress=False)
    # Only the files without cached features were read again ...
    assert len(reads) == NUM_WAVS - len(cached_before)
    assert not {path.name.rsplit("-", 1)[0] for path in cached_before} & set(reads)
    # ... and the result is the dataset of an uninterrupted build.
    assert_same_dataset(builder, reference)


def test_beam_direct_runner_builds_the_same_dataset(manual_dir, reference, tmp_path):
    pytest.importorskip("apache_beam")
    builder = build_dataset(
        "msp_podcast", manual_dir, tmp_path / "tfds", config=CONFIG, progress=False, beam_runner="DirectRunner"
    )
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == SPLITS
    assert builder.info.metadata["failed_files"] == []
    assert_same_dataset(builder, reference)


def test_beam_path_reports_failed_files_from_the_workers(damaged_manual_dir, tmp_path):
    pytest.importorskip("apache_beam")
    builder = build_dataset(
        "msp_podcast", damaged_manual_dir, tmp_path / "tfds", config=CONFIG, progress=False, skip_failed=True,
        beam_runner="DirectRunner",
    )
    assert sum(info.num_examples for info in builder.info.splits.values()) == NUM_WAVS - 2
    # Read back from the workers' metrics, then handled as on the local path (without skip_failed: the
    # same EmoconfError, tested above).
    assert [record["id"] for record in builder.info.metadata["failed_files"]] == [CORRUPT, EMPTY]
    assert dict(builder.info.metadata["skipped_other"]) == {"failed extraction": 2}


def test_beam_is_refused_for_a_features_table(tmp_path):
    table = tmp_path / "features.csv"
    table.write_text("id,label,arousal,valence,dominance,f0\na,x,1,1,1,0.5\n")
    with pytest.raises(EmoconfError, match="ser_features reads one table and has no Beam path"):
        build_dataset("ser_features", table, tmp_path / "tfds", config="custom", beam_runner="DirectRunner")
