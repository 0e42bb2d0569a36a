"""openSMILE feature extraction: shapes, parallel = sequential, the resumable cache, and errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opensmile")

from emoconf_tf import extraction  # noqa: E402
from emoconf_tf.errors import EmoconfError  # noqa: E402
from emoconf_tf.extraction import FEATURE_DIMENSIONS, FeatureSet, extract_features  # noqa: E402


@pytest.fixture
def wavs(tmp_path, write_wav):
    return [write_wav(tmp_path / f"utt{i}.wav", seed=i) for i in range(4)]


def test_extract_features_returns_float32_frame_indexed_by_file(wavs):
    features = extract_features(wavs, "egemaps_v02", progress=False)
    assert features.shape == (4, FEATURE_DIMENSIONS[FeatureSet.EGEMAPS_V02])
    assert (features.dtypes == np.float32).all()
    assert list(features.index) == [str(path) for path in wavs]
    assert list(features.columns) == extraction.feature_names("egemaps_v02")
    assert np.isfinite(features.to_numpy()).all()


def test_compare_2016_has_6373_features(wavs):
    features = extract_features(wavs[:2], "compare_2016", progress=False)
    assert features.shape == (2, 6373)


@pytest.mark.parametrize("feature_set", list(FeatureSet))
def test_feature_names_match_the_documented_dimension(feature_set):
    assert len(extraction.feature_names(feature_set)) == FEATURE_DIMENSIONS[feature_set]


def test_parallel_extraction_equals_sequential(wavs):
    sequential = extract_features(wavs, "egemaps_v02", num_workers=1, progress=False)
    parallel = extract_features(wavs, "egemaps_v02", num_workers=2, progress=False)
    np.testing.assert_array_equal(parallel.to_numpy(), sequential.to_numpy())


def test_different_files_give_different_features(wavs):
    features = extract_features(wavs[:2], "egemaps_v02", progress=False).to_numpy()
    assert not np.allclose(features[0], features[1])


def test_cache_resumes_without_extracting_again(wavs, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = extract_features(wavs[:2], "egemaps_v02", cache_dir=cache_dir, progress=False)
    assert len(list((cache_dir / "egemaps_v02").glob("*.npy"))) == 2
    assert not list((cache_dir / "egemaps_v02").glob(".*tmp"))  # written to a temp name, then renamed

    read = []
    original_read_wav = extraction._read_wav

    def counting_read_wav(path):
        read.append(Path(path).name)
        return original_read_wav(path)

    monkeypatch.setattr(extraction, "_read_wav", counting_read_wav)
    second = extract_features(wavs, "egemaps_v02", cache_dir=cache_dir, num_workers=2, progress=False)
    assert sorted(read) == ["utt2.wav", "utt3.wav"]  # only the files not cached yet
    np.testing.assert_array_equal(second.to_numpy()[:2], first.to_numpy())


def test_cache_is_invalidated_when_the_file_changes(wavs, tmp_path, write_wav):
    cache_dir = tmp_path / "cache"
    before = extract_features(wavs[:1], "egemaps_v02", cache_dir=cache_dir, progress=False)
    write_wav(wavs[0], seed=9, seconds=0.6)
    after = extract_features(wavs[:1], "egemaps_v02", cache_dir=cache_dir, progress=False)
    assert not np.allclose(before.to_numpy(), after.to_numpy())


def test_stereo_is_downmixed_with_a_warning(tmp_path, write_wav):
    mono = write_wav(tmp_path / "mono.wav", seed=3)
    stereo = write_wav(tmp_path / "stereo.wav", seed=3, channels=2)
    with pytest.warns(UserWarning, match=r"stereo.wav: 2 channels; downmixed to mono"):
        features = extract_features([mono, stereo], "egemaps_v02", progress=False).to_numpy()
    np.testing.assert_allclose(features[1], features[0], rtol=1e-5)  # identical channels: same as mono


def test_any_sampling_rate_is_accepted(tmp_path, write_wav):
    path = write_wav(tmp_path / "narrowband.wav", seed=1, sample_rate=8000)
    with pytest.warns(UserWarning, match=r"narrowband.wav: sampled at 8000 Hz, below 16 kHz: resampled to 16 kHz"):
        assert extract_features([path], "egemaps_v02", progress=False).shape == (1, 88)


def test_missing_file_error_names_it(wavs, tmp_path):
    with pytest.raises(EmoconfError, match=r"gone.wav: no such audio file"):
        extract_features([*wavs, tmp_path / "gone.wav"], "egemaps_v02", progress=False)


def test_empty_file_error_names_it(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmoconfError, match=r"empty.wav: the audio file is empty"):
        extract_features([empty], "egemaps_v02", progress=False)


def test_corrupt_file_error_names_it(tmp_path, wavs):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 4)
    with pytest.raises(EmoconfError, match=r"corrupt.wav: cannot be read as audio"):
        extract_features([*wavs, corrupt], "egemaps_v02", num_workers=2, progress=False)


@pytest.mark.filterwarnings("ignore:Segment too short")  # openSMILE's own warning, before our error
def test_too_short_file_error_names_it(tmp_path, write_wav):
    short = write_wav(tmp_path / "click.wav", seed=0, seconds=0.005)
    with pytest.raises(EmoconfError, match=r"click.wav: too short for openSMILE functionals"):
        extract_features([short], "egemaps_v02", progress=False)


def test_unexpected_dimension_is_a_clear_error(wavs):
    with pytest.raises(EmoconfError, match=r"gives 88 features but 6373 were expected"):
        extract_features(wavs[:1], "egemaps_v02", num_features=6373, progress=False)


def test_unknown_feature_set_is_a_clear_error(wavs):
    with pytest.raises(EmoconfError, match=r"'mfcc' is not available; choose one of compare_2016, egemaps_v02"):
        extract_features(wavs[:1], "mfcc", progress=False)


@pytest.mark.parametrize("name, member", [
    ("compare_2016", FeatureSet.COMPARE_2016),
    ("ComParE_2016", FeatureSet.COMPARE_2016),
    ("EGEMAPS_V02", FeatureSet.EGEMAPS_V02),
    ("eGeMAPSv02", FeatureSet.EGEMAPS_V02),
    (FeatureSet.COMPARE_2016, FeatureSet.COMPARE_2016),
])
def test_feature_set_accepts_its_spellings(name, member):
    assert extraction.feature_set_from_name(name) is member


def test_report_mode_names_failed_files_and_extracts_the_others(tmp_path, wavs):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 4)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    paths = [wavs[0], corrupt, wavs[1], empty, wavs[2]]
    results = list(extraction.iter_features(paths, "egemaps_v02", num_workers=2, progress=False, on_error="report"))
    assert [path for path, _ in results] == [str(path) for path in paths]  # input order, none dropped
    failed = [result for _, result in results if isinstance(result, extraction.FailedFile)]
    assert [Path(failure.path).name for failure in failed] == ["corrupt.wav", "empty.wav"]
    assert "empty.wav: the audio file is empty" in failed[1].reason
    good = extract_features([wavs[0], wavs[1], wavs[2]], "egemaps_v02", progress=False).to_numpy()
    np.testing.assert_array_equal(np.stack([results[0][1], results[2][1], results[4][1]]), good)


def test_extract_features_report_mode_drops_failed_rows_with_one_warning(tmp_path, wavs):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.warns(UserWarning, match=r"1 of 3 audio file\(s\) failed: .*empty.wav: the audio file is empty"):
        features = extract_features([wavs[0], empty, wavs[1]], "egemaps_v02", progress=False, on_error="report")
    assert list(features.index) == [str(wavs[0]), str(wavs[1])]


def test_failure_summary_names_the_first_few_and_counts_the_rest():
    failures = [extraction.FailedFile(f"f{i}.wav", f"f{i}.wav: empty") for i in range(5)]
    assert extraction.failure_summary(failures, 20, limit=2) == (
        "5 of 20 audio file(s) failed: f0.wav: empty; f1.wav: empty; and 3 more")


def test_extract_file_equals_extract_features_and_uses_the_cache(wavs, tmp_path):
    vector = extraction.extract_file(wavs[0], "egemaps_v02", cache_dir=tmp_path / "cache")
    assert vector.shape == (88,) and vector.dtype == np.float32
    np.testing.assert_array_equal(vector, extract_features(wavs[:1], "egemaps_v02", progress=False).to_numpy()[0])
    assert len(list((tmp_path / "cache" / "egemaps_v02").glob("*.npy"))) == 1
