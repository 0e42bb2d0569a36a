"""Checks of an exported SavedModel version directory, before `emoconf predict` or `emoconf inspect` reads it.

A version directory written by `emoconf export` (`savedmodels/NAME/<version>/`) holds::

    saved_model.pb     the graph and its signatures (the `SignatureDef`s TF Serving exposes)
    variables/         variables.index + variables.data-NNNNN-of-MMMMM: the weights and the validation thresholds
    assets/            labels.txt, feature_names.txt, model_card.md (and feature_set.txt, absent in older exports)
    assets.extra/      tf_serving_warmup_requests (read by TF Serving only)

`check_model_dir` reads each part without building the model: the graph is parsed, every variable is read
once (which verifies its checksum), the text assets are decoded and their lengths compared with the
graph's. A damaged part is an `EmoconfError` in one line naming its path and saying what to do (export
the run again), instead of the traceback `tf.saved_model.load` gives (an `OSError` "Cannot parse file" for
a damaged saved_model.pb, `OpError`s such as "not an sstable (bad magic number)" or "Checksum does not
match" for damaged variables, an `IndexError` "Read less bytes than requested" for a truncated shard).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from emoconf_tf.errors import EmoconfError

SERVE_TAG = "serve"
# Every asset `emoconf export` writes and a command reads; feature_set.txt is optional (older exports lack it).
REQUIRED_ASSETS = ("labels.txt", "feature_names.txt", "model_card.md")
# The signatures `emoconf predict` calls, which every export has had (newer ones, e.g. batch_threshold, are
# checked where they are called, so that older exports stay usable).
REQUIRED_SIGNATURES = ("serving_default", "predict", "confidence", "threshold")
VARIABLES_PREFIX = Path("variables") / "variables"
_SHARD = re.compile(r"^variables\.data-(\d{5})-of-(\d{5})$")


def check_model_dir(directory: str | os.PathLike, *, signatures: Sequence[str] = REQUIRED_SIGNATURES) -> Path:
    """Checks a SavedModel version directory written by `emoconf export`, part by part.

    Args:
        directory: the version directory (`emoconf_tf.serving.versions.version_dir` finds it).
        signatures: the signatures saved_model.pb must have; default `REQUIRED_SIGNATURES`
            (`serving_default`, `predict`, `confidence`, `threshold`).

    Returns:
        `directory` as a `Path`.

    Raises:
        EmoconfError: naming the path of the first damaged part: saved_model.pb missing, not a SavedModel,
            without a `serve` graph or without a signature; variables/ missing, or its index or a data shard
            missing, truncated or corrupt; an asset missing, empty, not UTF-8, cut short, or with a number of
            lines that does not match the graph (labels.txt vs the classes, feature_names.txt vs the inputs).
    """
    directory = Path(directory)
    graph = serve_meta_graph(directory)
    missing = [name for name in signatures if name not in graph.signature_def]
    if missing:
        have = ", ".join(name for name in graph.signature_def if not name.startswith("__")) or "none"
        raise EmoconfError(f"{directory / 'saved_model.pb'}: no signature {', '.join(missing)} (it has {have}), "
                           f"which `emoconf predict` and clients call; {reexport(directory)}")
    _check_variables(directory)
    _check_assets(directory, graph)
    return directory


def reexport(directory: Path) -> str:
    """What to do about a damaged version: export the run again (the next version) and delete this one."""
    return f"export the run again (`emoconf export RUN_DIR --out {directory.parent}`) and delete {directory}"


def missing_saved_model(directory: Path) -> EmoconfError:
    """The error for a version directory without saved_model.pb (an export that was cut short or damaged)."""
    return EmoconfError(f"{directory / 'saved_model.pb'}: missing, so {directory} is not a complete SavedModel; "
                        f"{reexport(directory)}")


def serve_meta_graph(directory: str | os.PathLike):
    """The `MetaGraphDef` tagged `serve` of `directory/saved_model.pb`, parsed without loading the model."""
    from tensorflow.core.protobuf import saved_model_pb2

    directory = Path(directory)
    path = directory / "saved_model.pb"
    if not path.is_file():
        raise missing_saved_model(directory)
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf's DecodeError has no stable import path
        raise EmoconfError(f"{path}: not a SavedModel ({type(error).__name__}: {error}), so it is truncated or "
                           f"overwritten; {reexport(directory)}") from error
    graphs = [g for g in saved_model.meta_graphs if SERVE_TAG in g.meta_info_def.tags]
    if not graphs:
        raise EmoconfError(f"{path}: no meta graph tagged '{SERVE_TAG}' ({path.stat().st_size} bytes), so TF Serving "
                           f"cannot load it; {reexport(directory)}")
    return graphs[0]


def _check_variables(directory: Path) -> None:
    """variables.index and every data shard present, and every variable readable (checksums verified)."""
    import tensorflow as tf

    variables = directory / "variables"
    if not variables.is_dir():
        raise EmoconfError(f"{variables}: missing (the weights and thresholds); {reexport(directory)}")
    index = variables / "variables.index"
    if not index.is_file():
        raise EmoconfError(f"{index}: missing (the index of the weights); {reexport(directory)}")
    shards = sorted(variables.glob("variables.data-*"))
    counts = {int(match.group(2)) for match in map(_SHARD.match, (p.name for p in shards)) if match}
    total = max(counts, default=1)
    expected = [variables / f"variables.data-{i:05d}-of-{total:05d}" for i in range(total)]
    for shard in expected:
        if not shard.is_file():
            raise EmoconfError(f"{shard}: missing (the weights); {reexport(directory)}")
    errors = (tf.errors.OpError, OSError, ValueError, IndexError, RuntimeError)
    try:
        reader = tf.train.load_checkpoint(str(directory / VARIABLES_PREFIX))
    except errors as error:
        raise EmoconfError(f"{index}: not a readable checkpoint index ({_one_line(error)}); "
                           f"{reexport(directory)}") from error
    try:
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except errors as error:
        # "Read less bytes than requested" (IndexError) or "Checksum does not match" (DataLossError).
        where = expected[0] if len(expected) == 1 else variables / "variables.data-*"
        raise EmoconfError(f"{where}: truncated or corrupt ({_one_line(error)}); {reexport(directory)}") from error


def _check_assets(directory: Path, graph) -> None:
    """The text assets present, UTF-8, ending in a line break, and as long as the graph's classes and inputs."""
    predict = graph.signature_def.get("predict")
    sizes = {}
    if predict is not None:  # `predict`: features [None, D] -> probabilities [None, K]
        for name, info, key in (("labels.txt", predict.outputs.get("probabilities"), "the classes"),
                                ("feature_names.txt", predict.inputs.get("features"), "the inputs")):
            dims = [d.size for d in info.tensor_shape.dim] if info is not None else []
            if len(dims) == 2 and dims[1] > 0:
                sizes[name] = (dims[1], key)
    for name in REQUIRED_ASSETS:
        path = directory / "assets" / name
        if not path.is_file():
            raise EmoconfError(f"{path}: missing; {reexport(directory)}")
        data = path.read_bytes()
        if not data.strip():
            raise EmoconfError(f"{path}: empty ({len(data)} bytes); {reexport(directory)}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise EmoconfError(f"{path}: not UTF-8 text ({_one_line(error)}), so it is damaged; "
                               f"{reexport(directory)}") from error
        if not text.endswith("\n"):  # `emoconf export` ends every asset with a line break
            raise EmoconfError(f"{path}: truncated (its last line is incomplete); {reexport(directory)}")
        if name in sizes:
            lines = [line for line in text.splitlines() if line]
            expected, what = sizes[name]
            if len(lines) != expected:
                raise EmoconfError(f"{path}: {len(lines)} line(s), but saved_model.pb's predict signature has "
                                   f"{expected} for {what}; {reexport(directory)}")


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
