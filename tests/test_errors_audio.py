"""The bad-input catalogue (docs/errors.md), audio and builder rows: `emoconf build` as a user meets it.

Every row: exit status 2 with one `emoconf build: error: ...` line naming the file (and the labels row)
and what to do, or exit 0 with one warning per kind of problem where the audio is usable; no traceback.
The table rows are in test_errors.py, the SavedModel rows in test_export.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
soundfile = pytest.importorskip("soundfile")
pytest.importorskip("opensmile")

from emoconf_tf import extraction  # noqa: E402
from emoconf_tf.cli import main  # noqa: E402
from tfds_builders.build import build_dataset  # noqa: E402

CONFIG = "egemaps_v02"  # 88 features: fast
LABELS = Path("Labels") / "labels_consensus.csv"


def release_rows(wavs: list[tuple[str, str, dict]]) -> tuple[list[tuple], list[dict]]:
    """MSP-Podcast labels rows and `write_wav` options, one per `(EmoClass, Split_Set, write_wav options)`."""
    rows = [(f"MSP-PODCAST_{index + 1:04d}_0001.wav", code, 4.0, 4.0, 4.0, str(100 + index), "Female", split)
            for index, (code, split, _) in enumerate(wavs)]
    return rows, [options for _, _, options in wavs]


def build(capsys, manual_dir: Path, data_dir: Path, *extra: str) -> tuple[int, str, str, list[str]]:
    """`emoconf build msp_podcast ...` -> `(exit code, stdout, stderr, warnings)`.

    The warnings are those raised as Python warnings plus the `warning: ...` lines on stderr, so that
    the test holds whether the CLI prints warnings itself or lets Python show them.
    """
    argv = ["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(data_dir), "--config", CONFIG,
            *extra]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    messages += [line.split("warning: ", 1)[1] for line in err.splitlines() if line.startswith("warning: ")]
    return code, out, err, messages


def error_line(code: int, err: str) -> str:
    """The one error line of a failed command (after TFDS' progress bars), checked for no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    line = err[err.index("emoconf build: error: "):].strip()
    assert "\n" not in line, line
    return line


def cache_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "downloads" / "opensmile" / CONFIG).glob("*.npy"))


def dataset_examples(data_dir: Path) -> dict[str, dict]:
    """`{id: example}` over every split of the prepared dataset in `data_dir`."""
    builder = tfds.builder(f"msp_podcast/{CONFIG}", data_dir=str(data_dir), try_gcs=False)
    return {
        example["id"].decode(): example
        for split in builder.info.splits
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


def assert_same_dataset(data_dir: Path, reference_dir: Path) -> None:
    actual, expected = dataset_examples(data_dir), dataset_examples(reference_dir)
    assert sorted(actual) == sorted(expected)
    for utterance_id, example in expected.items():
        np.testing.assert_allclose(actual[utterance_id]["features"], example["features"], rtol=1e-6, atol=1e-6)
        for key in ("label", "arousal", "valence", "dominance", "speaker"):
            assert actual[utterance_id][key] == example[key], (utterance_id, key)


@pytest.fixture(scope="module")
def release(tmp_path_factory, fake_corpus) -> Path:
    """The default 8-row fake MSP-Podcast release (conftest.MSP_PODCAST_ROWS: 6 utterances of the five classes)."""
    return fake_corpus.msp_podcast(tmp_path_factory.mktemp("release") / "manual")


@pytest.fixture
def copy_of_release(release, tmp_path) -> Path:
    return Path(shutil.copytree(release, tmp_path / "manual"))


# --- wavs that cannot be processed --------------------------------------------------------------------

BAD_WAVS = {  # kind -> the reason the error gives
    "empty": "the audio file is empty (0 bytes)",
    "corrupt": "cannot be read as audio",
    "too_short": "too short for openSMILE functionals",
}


@pytest.mark.filterwarnings("ignore:Segment too short")  # openSMILE's own warning, before our error
@pytest.mark.parametrize("kind", sorted(BAD_WAVS))
def test_build_with_a_bad_wav_fails_at_the_end_naming_it(capsys, copy_of_release, tmp_path, write_wav, kind):
    reason = BAD_WAVS[kind]
    bad = copy_of_release / "Audios" / "MSP-PODCAST_0001_0019.wav"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "corrupt":
        bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 4)
    else:
        write_wav(bad, seed=0, seconds=0.005)
    code, _, err, _ = build(capsys, copy_of_release, tmp_path / "tfds")
    line = error_line(code, err)
    assert line.startswith("emoconf build: error: msp_podcast: 1 of 6 audio file(s) failed: ")
    assert f"{bad}: {reason}" in line
    assert "--skip-failed" in line
    # Every other file was extracted and cached for the next attempt.
    assert len(cache_files(tmp_path / "tfds")) == 5


# --- audio that is usable after a change: one warning per kind and build --------------------------------

# (EmoClass, Split_Set, format); splits are generated train, validation, test1, so the files are met in the
# order 0 1 4 7 | 2 5 9 | 3 6 8.
MIXED = [
    ("N", "Train", {}),
    ("A", "Train", {"channels": 2}),
    ("H", "Development", {"channels": 2}),
    ("S", "Test1", {"sample_rate": 8000}),
    ("D", "Train", {"sample_rate": 8000}),
    ("N", "Development", {"sample_rate": 8000}),
    ("A", "Test1", {"sample_rate": 8000}),
    ("H", "Train", {"sample_rate": 44100}),
    ("S", "Test1", {"sample_rate": 48000}),
    ("D", "Development", {}),
]


@pytest.fixture(scope="module")
def mixed_build(tmp_path_factory, fake_corpus):
    """`(audio folder, exit code, warnings, data dir)` of one build of a release of mixed formats."""
    root = tmp_path_factory.mktemp("mixed")
    rows, wav_options = release_rows(MIXED)
    manual_dir = fake_corpus.msp_podcast(root / "manual", rows, wav_options=wav_options)
    with pytest.MonkeyPatch.context() as patch:
        captured = []
        patch.setattr(sys, "stderr", _Tee(captured))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = main(["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(root / "tfds"),
                         "--config", CONFIG])
    err = "".join(captured)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    messages += [line.split("warning: ", 1)[1] for line in err.splitlines() if line.startswith("warning: ")]
    return manual_dir / "Audios", code, messages, root / "tfds"


class _Tee:
    """A stand-in stderr that keeps what is written (a module fixture cannot use capsys)."""

    def __init__(self, parts: list[str]):
        self.parts = parts

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def wav(audio: Path, index: int) -> str:
    return str(audio / f"MSP-PODCAST_{index + 1:04d}_0001.wav")


def only(messages: list[str], needle: str) -> str:
    found = [message for message in messages if needle in message]
    assert len(found) == 1, (needle, messages)  # once per build, not once per file (or per split)
    return found[0]


def test_mixed_formats_build_every_utterance(mixed_build):
    _, code, _, data_dir = mixed_build
    assert code == 0
    assert len(dataset_examples(data_dir)) == len(MIXED)


def test_stereo_wavs_are_downmixed_with_one_warning_naming_them(mixed_build):
    audio, _, messages, _ = mixed_build
    message = only(messages, "downmixed to mono")
    assert message == (
        f"msp_podcast: {wav(audio, 1)}: 2 channels; downmixed to mono by averaging; "
        f"so were 1 more file(s): {wav(audio, 2)} (2 channels)"
    )


def test_8khz_wavs_give_one_warning_naming_the_first_and_counting_the_rest(mixed_build):
    audio, _, messages, _ = mixed_build
    message = only(messages, "below 16 kHz")
    assert message.startswith(
        f"msp_podcast: {wav(audio, 4)}: sampled at 8000 Hz, below 16 kHz, as are 3 more file(s): "
        f"{wav(audio, 5)} (8000 Hz), {wav(audio, 3)} (8000 Hz) and 1 other(s): resampled to 16 kHz"
    )
    assert "nothing above 4000 Hz" in message and "not comparable with those of 16 kHz corpora" in message


def test_44k_and_48k_wavs_are_resampled_to_16k_with_one_warning(mixed_build):
    audio, _, messages, _ = mixed_build
    message = only(messages, "(audresample)")
    assert message.startswith(
        f"msp_podcast: {wav(audio, 7)}: sampled at 44100 Hz, as are 1 more file(s): {wav(audio, 8)} (48000 Hz); "
        f"resampled to 16 kHz (audresample) before openSMILE"
    )


def test_format_warnings_are_kept_with_the_dataset(mixed_build):
    _, _, messages, data_dir = mixed_build
    builder = tfds.builder(f"msp_podcast/{CONFIG}", data_dir=str(data_dir), try_gcs=False)
    kept = builder.info.metadata["audio_format_notes"]
    assert sorted(kept) == sorted(message for message in messages if message.startswith("msp_podcast: "))
    assert len(kept) == 3


def test_a_48k_copy_gives_the_features_of_the_16k_original(tmp_path, write_wav):
    import audresample

    original = write_wav(tmp_path / "16k.wav", seed=3, seconds=1.0)
    signal, rate = soundfile.read(original, dtype="float32")
    upsampled = audresample.resample(signal, rate, 48000)[0]
    soundfile.write(tmp_path / "48k.wav", upsampled, 48000, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"48k.wav: sampled at 48000 Hz; resampled to 16 kHz"):
        features = extraction.extract_features([original, tmp_path / "48k.wav"], CONFIG, progress=False).to_numpy()
    # Analysed at 48 kHz the two would differ by ~5% (median); resampled, only the resampling's filters remain.
    relative = np.abs(features[1] - features[0]) / (np.abs(features[0]) + 1e-3)
    assert np.median(relative) < 0.01


# --- labels rows that name a missing wav, or a path outside the manual dir ---------------------------------


def test_label_row_naming_a_missing_wav_names_the_labels_file_row_and_path(capsys, copy_of_release, tmp_path):
    (copy_of_release / "Audios" / "MSP-PODCAST_0002_0033.wav").unlink()  # line 5 of the labels file
    (copy_of_release / "Audios" / "MSP-PODCAST_0003_0002.wav").unlink()  # line 7
    code, _, err, _ = build(capsys, copy_of_release, tmp_path / "tfds")
    line = error_line(code, err)
    audio, labels = copy_of_release / "Audios", copy_of_release / LABELS
    assert line == (
        f"emoconf build: error: {audio}/MSP-PODCAST_0002_0033.wav: no such audio file, listed in {labels} line 5 "
        f"(FileName MSP-PODCAST_0002_0033.wav) (1 more listed wav(s) are missing: {audio}/MSP-PODCAST_0003_0002.wav); "
        f"the msp_podcast copy in the manual dir is incomplete: copy the missing wav(s) there, or leave these rows "
        f"out with --skip-failed (skip_failed=True)"
    )
    assert cache_files(tmp_path / "tfds") == []  # refused before any extraction


def test_skip_failed_leaves_out_rows_whose_wav_is_missing(capsys, copy_of_release, tmp_path):
    (copy_of_release / "Audios" / "MSP-PODCAST_0003_0002.wav").unlink()  # line 7, one of two test1 utterances
    labels = copy_of_release / LABELS
    code, out, _, _ = build(capsys, copy_of_release, tmp_path / "tfds", "--skip-failed")
    assert code == 0
    assert "test1 1, test2 1, train 2, validation 1" in out
    assert "left out 1 utterance(s) whose audio failed" in out
    assert (f"{copy_of_release / 'Audios'}/MSP-PODCAST_0003_0002.wav: no such audio file, listed in {labels} line 7 "
            f"(FileName MSP-PODCAST_0003_0002.wav)") in out


def test_iemocap_turn_whose_wav_is_missing_names_the_evaluation_file_and_turn(capsys, tmp_path, fake_corpus):
    manual_dir = fake_corpus.iemocap(tmp_path / "manual")
    session3 = manual_dir / "IEMOCAP_full_release" / "Session3"
    missing = session3 / "sentences" / "wav" / "Ses03F_impro02" / "Ses03F_impro02_M000.wav"
    missing.unlink()
    code = main(["build", "iemocap", "--manual-dir", str(manual_dir), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG])
    line = error_line(code, capsys.readouterr().err)
    evaluation = session3 / "dialog" / "EmoEvaluation" / "Ses03F_impro02.txt"
    assert line.startswith(
        f"emoconf build: error: {missing}: no such audio file, listed in {evaluation} (turn Ses03F_impro02_M000); "
        f"the iemocap copy in the manual dir is incomplete"
    )


@pytest.mark.parametrize("kind", ["parent", "absolute", "windows_parent"])
def test_file_name_leading_outside_the_manual_dir_is_refused(capsys, copy_of_release, tmp_path, write_wav, kind):
    outside = write_wav(tmp_path / "outside.wav", seed=1)  # a valid wav that must never be read
    name = {"parent": "../../outside.wav", "absolute": str(outside), "windows_parent": "..\\..\\outside.wav"}[kind]
    labels = copy_of_release / LABELS
    labels.write_text(labels.read_text().replace("MSP-PODCAST_0001_0008.wav", name))  # line 2
    code, _, err, _ = build(capsys, copy_of_release, tmp_path / "tfds")
    line = error_line(code, err)
    assert line.startswith(
        f"emoconf build: error: {labels} line 2 (FileName {name}): {name!r} is not a file name inside the manual dir "
        f"({copy_of_release / 'Audios'}); the build reads nothing outside it"
    )
    assert cache_files(tmp_path / "tfds") == []


def test_iemocap_turn_name_holding_a_path_is_refused(capsys, tmp_path, fake_corpus):
    manual_dir = fake_corpus.iemocap(tmp_path / "manual")
    evaluation = manual_dir / "IEMOCAP_full_release" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    evaluation.write_bytes(evaluation.read_bytes().replace(b"\tSes01F_impro01_F000\t", b"\t../../../../../../x_F000\t"))
    code = main(["build", "iemocap", "--manual-dir", str(manual_dir), "--data-dir", str(tmp_path / "tfds"),
                 "--config", CONFIG])
    line = error_line(code, capsys.readouterr().err)
    assert line.startswith(f"emoconf build: error: {evaluation}: turn name '../../../../../../x_F000' is not like "
                           f"Ses01F_impro01_F000")


# --- interruptions ---------------------------------------------------------------------------------------


def test_truncated_cache_file_is_extracted_again_not_read(release, tmp_path):
    reference = tmp_path / "reference"
    build_dataset("msp_podcast", release, reference, config=CONFIG, progress=False)
    data_dir = tmp_path / "tfds"
    shutil.copytree(reference / "downloads" / "opensmile", data_dir / "downloads" / "opensmile")
    damaged = cache_files(data_dir)[0]
    damaged.write_bytes(damaged.read_bytes()[:100])  # as a write cut short would leave it, had it no temp name
    # What a killed write does leave: a hidden temporary, never looked up.
    (damaged.parent / f".{damaged.name}.k1ll3d.tmp").write_bytes(b"\x93NUMPY")
    build_dataset("msp_podcast", release, data_dir, config=CONFIG, progress=False)
    assert np.load(damaged).shape == (88,)  # extracted again and rewritten
    assert_same_dataset(data_dir, reference)


def test_build_killed_by_sigkill_resumes_from_the_cache_to_the_same_dataset(tmp_path, fake_corpus):
    # 24 two-second wavs, one worker: a window of a second or more in which to kill the build mid-way.
    codes, splits = ("A", "D", "H", "N", "S", "N"), ("Train", "Train", "Development", "Test1")
    rows, wav_options = release_rows([(codes[i % 6], splits[i % 4], {"seconds": 2.0}) for i in range(24)])
    manual_dir = fake_corpus.msp_podcast(tmp_path / "manual", rows, wav_options=wav_options)
    command = [sys.executable, "-m", "emoconf_tf.cli", "build", "msp_podcast", "--manual-dir", str(manual_dir),
               "--config", CONFIG, "--workers", "1"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    killed = tmp_path / "killed"
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a full pipe would stall the build
    with open(log, "wb") as stderr:
        process = subprocess.Popen([*command, "--data-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=env)
    deadline = time.time() + 300
    while len(cache_files(killed)) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-2000:]
    kept = {path: path.stat().st_mtime_ns for path in cache_files(killed)}
    assert 3 <= len(kept) < 24, "the build was not killed mid-way"
    # Only whole vectors under their final names: a write cut short is a hidden `.<name>.<random>.tmp`.
    for path in kept:
        vector = np.load(path, allow_pickle=False)
        assert vector.shape == (88,) and vector.dtype == np.float32
    folder = killed / "msp_podcast" / CONFIG
    assert list(folder.glob("incomplete.*")), "TFDS' temporary dataset folder should be left by the kill"
    assert not (folder / "1.0.0").exists()

    assert main(["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(killed),
                 "--config", CONFIG, "--workers", "2"]) == 0
    assert {path: path.stat().st_mtime_ns for path in kept} == kept  # reused, not extracted again
    assert len(cache_files(killed)) == 24
    assert not list(folder.glob("incomplete.*"))  # the killed build's folder is removed

    clean = tmp_path / "clean"
    assert main(["build", "msp_podcast", "--manual-dir", str(manual_dir), "--data-dir", str(clean),
                 "--config", CONFIG, "--workers", "2"]) == 0
    assert_same_dataset(killed, clean)
