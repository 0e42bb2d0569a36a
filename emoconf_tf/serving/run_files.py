"""The files of a run directory (`emoconf_tf.serving.rundir`), each read and checked before it is used, and the
manifest that lists them.

`write_manifest` writes `manifest.json` last: every file with its size and SHA-256. The readers (`read_manifest`,
`read_run_json`, `read_run_csv`, `read_feature_names`, `load_keras_file`) raise `EmoconfError` in one line naming the
file, what is wrong (missing, truncated, not valid JSON, missing column X, not a Keras archive, ...) and what to do.
Their `recorded` is the file's manifest.json entry (`{"bytes": ..., "sha256": ...}`) or None when the manifest does
not list it: a Keras archive must match it; a text part may differ (it can be edited by hand) as long as it parses,
has its columns and does not look truncated (differs from the manifest and does not end in a line break).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd

from emoconf_tf import __version__
from emoconf_tf.atomic import write_json
from emoconf_tf.errors import EmoconfError

# run.json's and manifest.json's `format`: `load_run` refuses a run of another format.
RUN_FORMAT = 1
MANIFEST = "manifest.json"
# What a user can do about a damaged or missing part: a finished run directory is never rewritten in place.
_REDO = "restore it from a backup of the run, or train the run again (`emoconf train ... --out NEW_DIR`)"


def write_manifest(directory: Path) -> None:
    """Writes `directory/manifest.json`: every file under `directory` with its size and SHA-256 (the run's last
    file: a run directory without it is unfinished)."""
    files = {}
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        files[str(file.relative_to(directory))] = {"bytes": file.stat().st_size, "sha256": digest}
    write_json(directory / MANIFEST, {"version": __version__, "format": RUN_FORMAT, "files": files})


def read_manifest(path: Path) -> dict[str, dict]:
    """manifest.json's `files`: run-relative file name -> {"bytes": int, "sha256": str}."""
    data = _read_part(path, "the run's file list")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EmoconfError(f"{path}: not valid JSON ({_one_line(error)}); {_REDO}") from error
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)
            for entry in files.values()):
        raise EmoconfError(f"{path}: not a run manifest (expected 'files': name -> bytes and sha256); {_REDO}")
    return files


def read_run_json(path: Path, *, recorded: dict | None = None) -> dict:
    """run.json as a dict (not checked against `recorded` unless it fails to parse: it may be edited by hand)."""
    data = _read_part(path, "the run's settings")
    note = _manifest_note(data, recorded)
    try:
        info = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise EmoconfError(f"{path}: not UTF-8 text ({_one_line(error)}{note}); {_REDO}") from error
    except json.JSONDecodeError as error:
        raise EmoconfError(f"{path}: not valid JSON ({error.msg}: line {error.lineno} column {error.colno}"
                           f"{note}); {_REDO}") from error
    if not isinstance(info, dict):
        raise EmoconfError(f"{path}: not a JSON object of run settings (a {type(info).__name__}{note}); {_REDO}")
    return info


def check_class_names(path: Path, info: dict) -> None:
    """run.json's `class_names` (`info`, read from `path`) must be a non-empty list of non-empty names."""
    names = info.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise EmoconfError(f"{path}: 'class_names' is missing or not a list of class names; {_REDO}")


def checked_has_avd(path: Path, info: dict) -> bool:
    """run.json's `has_avd`: true or false (absent: true, runs trained before it existed had AVD ratings)."""
    value = info.get("has_avd", True)
    if not isinstance(value, bool):
        raise EmoconfError(f"{path}: 'has_avd' must be true or false (whether the corpus had AVD ratings), got "
                           f"{value!r}; {_REDO}")
    return value


def ensemble_member_files(path: Path, info: dict) -> list[str]:
    """run.json's `ensemble_members`: file names in the run directory (none when absent: older runs)."""
    names = info.get("ensemble_members")
    if names is None:
        return []
    if not isinstance(names, list) or not all(
            isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name for name in names):
        raise EmoconfError(f"{path}: 'ensemble_members' must list file names in the run directory, got {names!r}; "
                           f"{_REDO}")
    return names


def read_run_csv(path: Path, required_columns, *, recorded: dict | None = None,
                 what: str = "a table of the run") -> pd.DataFrame:
    """A CSV part of the run with at least `required_columns` (`what` it holds names it in messages)."""
    data = _read_part(path, what)
    note = _manifest_note(data, recorded)
    if not data:
        raise EmoconfError(f"{path}: empty (0 bytes{note}); {_REDO}")
    _refuse_truncated_text(path, data, note)
    try:
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise EmoconfError(f"{path}: not a readable CSV table ({_one_line(error)}{note}); {_REDO}") from error
    missing = [column for column in required_columns if column not in frame.columns]
    if missing:
        raise EmoconfError(f"{path}: missing column(s) {', '.join(missing)} (a run's {path.name} has "
                           f"{', '.join(required_columns)}, ...{note}); {_REDO}")
    return frame


def read_feature_names(path: Path, info: dict, *, recorded: dict | None = None) -> list[str]:
    """feature_names.txt's lines, as many as run.json's `num_features` (when it records it)."""
    data = _read_part(path, "the model's input names")
    note = _manifest_note(data, recorded)
    try:
        names = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise EmoconfError(f"{path}: not UTF-8 text ({_one_line(error)}{note}); {_REDO}") from error
    _refuse_truncated_text(path, data, note)
    expected = info.get("num_features")
    if not names or (isinstance(expected, int) and len(names) != expected):
        raise EmoconfError(f"{path}: {len(names)} feature name(s), but run.json records num_features {expected} "
                           f"(one name per input{note}); {_REDO}")
    return names


def load_keras_file(path: Path, what: str, *, recorded: dict | None = None, compile: bool = False):
    """A Keras model from a `.keras` archive of the run, checked first: present, as `recorded` (its manifest.json
    entry, when listed: same size and SHA-256), a zip archive; then loaded.

    Args:
        path: the `.keras` file.
        what: what it holds, for messages (e.g. `"the classifier"`).
        recorded: its manifest.json entry, or None (not listed: the manifest check is skipped).
        compile: passed to `keras.saving.load_model`.
    """
    import warnings
    import zipfile
    import zlib

    import keras

    data = _read_part(path, what)
    note = _manifest_note(data, recorded)
    is_zip = zipfile.is_zipfile(io.BytesIO(data))
    if note:
        # A zip keeps its directory at the end: a cut archive is no zip; a shorter zip is another file.
        state = "truncated" if len(data) < recorded["bytes"] and not is_zip else "damaged"
        raise EmoconfError(f"{path}: {state} ({what}{note}); {_REDO}")
    # keras reports a file that is not a zip as "File not found": say what it is.
    if not is_zip:
        raise EmoconfError(f"{path}: not a Keras archive (not a zip file; {what}); {_REDO}")
    try:
        # Keras warns as it goes ("Skipping nested container ..."): noise when the load then fails, so kept until
        # it succeeds.
        with warnings.catch_warnings(record=True) as caught:
            model = keras.saving.load_model(path, compile=compile, safe_mode=True)
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return model
    # What keras raises for a damaged archive: KeyError (no config.json), JSONDecodeError (a ValueError; a bad
    # config.json), TypeError (a config it cannot deserialise), OSError (h5py: a bad model.weights.h5), ValueError
    # (no weights file, weights of another model), BadZipFile (CRC mismatch).
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile,
            zlib.error) as error:
        raise EmoconfError(f"{path}: not a loadable Keras archive ({what}; {type(error).__name__}: "
                           f"{_one_line(error)}); {_REDO}") from error


def _read_part(path: Path, what: str) -> bytes:
    """The bytes of one file of the run; EmoconfError when it is missing, not a file or unreadable."""
    if not path.exists():
        raise EmoconfError(f"{path}: missing ({what}); {_REDO}")
    if not path.is_file():
        raise EmoconfError(f"{path}: not a file ({what}); {_REDO}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise EmoconfError(f"{path}: cannot be read ({error.strerror or error}); check its permissions") from error


def _manifest_note(data: bytes, recorded: dict | None) -> str:
    """`"; N of the M bytes manifest.json records"` (or how else `data` differs from `recorded`); "" when equal."""
    if recorded is None:
        return ""
    if len(data) < recorded["bytes"]:
        return f"; {len(data)} of the {recorded['bytes']} bytes manifest.json records"
    if len(data) != recorded["bytes"]:
        return f"; {len(data)} bytes where manifest.json records {recorded['bytes']}"
    if hashlib.sha256(data).hexdigest() != recorded["sha256"]:
        return "; its SHA-256 differs from manifest.json's"
    return ""


def _refuse_truncated_text(path: Path, data: bytes, note: str) -> None:
    # train_run ends every CSV and .txt with a line break; an edit by hand keeps it, a cut file loses it.
    if note and not data.endswith(b"\n"):
        raise EmoconfError(f"{path}: truncated (its last line is incomplete{note}); {_REDO}")


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
