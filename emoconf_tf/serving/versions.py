"""Numbered model versions in TF Serving's layout: a model base path holds integer directories `1/`, `2/`, ...,
each a SavedModel, and TF Serving serves the highest. One place that lists and picks them.

Example:
>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> for v in ("1", "2", "10", "notes"):
...     (base / v).mkdir()
>>> (base / "2" / "saved_model.pb").write_bytes(b"")
0
>>> model_versions(base), model_versions(base, exported=True)
([1, 2, 10], [2])
>>> version_dir(base).name
'2'
"""

from __future__ import annotations

import os
from pathlib import Path

from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.model_dir import missing_saved_model


def model_versions(base: str | os.PathLike, *, exported: bool = False) -> list[int]:
    """The integer version directories of a model base path, ascending; empty when there are none.

    With `exported`, only those holding a `saved_model.pb` (a version being written by `emoconf export` lives under
    a temporary name until it is complete, so a numbered directory without one is left over from elsewhere).
    """
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.is_dir() and p.name.isdigit() and (not exported or (p / "saved_model.pb").is_file()))


def version_dir(model: str | os.PathLike, version: int | None = None) -> Path:
    """The SavedModel directory to load.

    Args:
        model: a model base path (`savedmodels/NAME`, holding integer versions) or a version directory.
        version: the version to use; default None, the highest exported one (what TF Serving serves).

    Returns:
        `model/<version>`, or `model` itself when it is a version directory and `version` is None.

    Raises:
        EmoconfError: naming the path, when it does not exist, holds no exported version, or lacks `version`;
            naming saved_model.pb when a version directory (given, asked for, or the only ones) has none.
    """
    path = Path(model)
    if (path / "saved_model.pb").is_file():
        if version is None:
            return path
        raise EmoconfError(
            f"version {version}: {path} is a version directory itself; give the model base path ({path.parent}) "
            f"with this version, or this path without one", argument="version"
        )
    if not path.is_dir():
        raise EmoconfError(f"{path}: no such model directory; export one with `emoconf export RUN_DIR --out {path}`")
    if path.name.isdigit() and ((path / "variables").is_dir() or (path / "assets").is_dir()):
        raise missing_saved_model(path)  # a version directory given, whose saved_model.pb is gone
    versions = model_versions(path, exported=True)
    if version is None:
        if not versions:
            numbered = model_versions(path)
            if numbered:  # versions there, none complete: name the newest one's missing file
                raise missing_saved_model(path / str(numbered[-1]))
            raise EmoconfError(
                f"{path}: no version directory with a saved_model.pb (expected {path}/1/saved_model.pb)")
        return path / str(versions[-1])
    if version not in versions and (path / str(version)).is_dir():
        raise missing_saved_model(path / str(version))
    if version not in versions:
        have = ", ".join(map(str, versions)) if versions else "none"
        raise EmoconfError(f"{path}: no version {version} (versions: {have})")
    return path / str(version)
