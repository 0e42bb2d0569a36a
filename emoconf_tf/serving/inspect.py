"""What an exported SavedModel offers: its signatures as TF Serving sees them, its rejection mode, its model card.

Reads `saved_model.pb` directly (as `saved_model_cli show` does): no variables are restored, so it
is quick and shows exactly the `SignatureDef`s a model server exposes. The rejection mode is one
string read from the variables' checkpoint. An export of a run without AVD ratings (`assets/score.json`'s
`has_avd` false) gets a line saying so: it has no EmoConfidNet head and no `emoconfidnet_confidence` output.
`describe` checks the version first (`model_dir.check_model_dir`), so a damaged part is named in one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.model_dir import check_model_dir, serve_meta_graph
from emoconf_tf.serving.served_score import SCORE_ASSET
from emoconf_tf.serving.versions import version_dir

# The checkpoint key of `EmoconfServingModule`'s `rejection_mode` variable (an attribute of the saved tf.Module).
REJECTION_MODE_KEY = "rejection_mode/.ATTRIBUTES/VARIABLE_VALUE"
_MODE_LINES = {
    "global": "global (accept = confidence >= one threshold from all validation confidences)",
    "per_class": "per_class (accept = confidence >= the threshold of the predicted class)",
}


@dataclasses.dataclass(frozen=True)
class TensorSpecInfo:
    """One input or output of a signature: `dtype` name (`"float32"`) and `shape` (None = any size)."""

    dtype: str
    shape: tuple[int | None, ...] | None

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype} <unknown rank>"
        return f"{self.dtype} [{', '.join('None' if d is None else str(d) for d in self.shape)}]"


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """One signature: `inputs` and `outputs` map keys to `TensorSpecInfo`, `method` is the method name."""

    name: str
    inputs: dict[str, TensorSpecInfo]
    outputs: dict[str, TensorSpecInfo]
    method: str


def signatures(path: str | os.PathLike) -> dict[str, SignatureInfo]:
    """The signatures of the `serve` graph of a SavedModel (a version dir or a model base path), by name."""
    from tensorflow import dtypes

    directory = version_dir(path)
    graphs = [serve_meta_graph(directory)]  # EmoconfError naming saved_model.pb when it is missing or damaged

    def spec(info) -> TensorSpecInfo:
        dtype = dtypes.as_dtype(info.dtype).name
        if info.tensor_shape.unknown_rank:
            return TensorSpecInfo(dtype, None)
        return TensorSpecInfo(dtype, tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim))

    found = {}
    signature_defs = sorted(graphs[0].signature_def.items(), key=lambda item: (item[0] != "serving_default", item[0]))
    for name, signature in signature_defs:
        if name.startswith("__"):  # __saved_model_init_op: TF's own, not a serving endpoint
            continue
        found[name] = SignatureInfo(
            name=name,
            inputs={key: spec(value) for key, value in sorted(signature.inputs.items())},
            outputs={key: spec(value) for key, value in sorted(signature.outputs.items())},
            method=signature.method_name,
        )
    return found


def rejection_mode(path: str | os.PathLike) -> str:
    """The export's rejection mode, `"global"` or `"per_class"`, read from `variables/` without loading the model.

    `"global"` for an export written before the mode existed (no such variable); `"unknown"` when the
    variables cannot be read.
    """
    import tensorflow as tf

    directory = version_dir(path)
    try:
        reader = tf.train.load_checkpoint(str(directory / "variables" / "variables"))
    except (tf.errors.OpError, ValueError):
        return "unknown"
    if not reader.has_tensor(REJECTION_MODE_KEY):
        return "global"
    value = reader.get_tensor(REJECTION_MODE_KEY)
    return value.decode() if isinstance(value, bytes) else str(value)


def score_line(directory: Path) -> str:
    """What the export's `confidence` is and what validation chose it on, from `assets/score.json` (EmoConfidNet's
    `p_hat[c]` for an export written before scores could be chosen)."""
    path = directory / "assets" / SCORE_ASSET
    if not path.is_file():
        return "emoconfidnet (EmoConfidNet's p_hat[c]; exported before the served score could be chosen)"
    try:
        score = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EmoconfError(f"{path}: not valid JSON ({error}); re-export the run with `emoconf export`") from None
    chosen = score.get("chosen_on") or {}
    how = (f"chosen on validation by {chosen.get('criterion')} = {float(chosen.get('validation_value')):.4f}"
           + (f", switch rate {100 * chosen['switch_rate']:.0f} %" if chosen.get("switch_rate") is not None else "")
           if chosen else "asked for by --score")
    return f"{score.get('served', score.get('score'))}: {how}"


def has_avd(directory: Path) -> bool:
    """`assets/score.json`'s `has_avd`: False for an export of a run without AVD ratings (no EmoConfidNet head);
    True when absent (exports of runs with AVD ratings, and exports written before the key existed)."""
    path = directory / "assets" / SCORE_ASSET
    if not path.is_file():
        return True
    try:
        score = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EmoconfError(f"{path}: not valid JSON ({error}); re-export the run with `emoconf export`") from None
    return not (isinstance(score, dict) and score.get("has_avd") is False)


def describe(path: str | os.PathLike) -> str:
    """Text for `emoconf inspect`: the version directory, its rejection mode (and `AVD: no AVD ratings ...` for an
    export of a run without them), every signature's inputs and outputs, the model card.

    Raises:
        EmoconfError: no such version, or a damaged part of it, named (`model_dir.check_model_dir`).
    """
    directory = check_model_dir(version_dir(path))
    mode = rejection_mode(directory)
    lines = [f"SavedModel {directory}", f"confidence: {score_line(directory)}",
             f"rejection mode: {_MODE_LINES.get(mode, mode)}"]
    if not has_avd(directory):
        from emoconf_tf.corpus import NO_AVD_RATINGS

        lines.append(f"AVD: {NO_AVD_RATINGS}; no emoconfidnet_confidence output")
    lines += ["", "signatures (tag 'serve'):"]
    for info in signatures(directory).values():
        lines.append(f"  {info.name}:")
        lines += [f"    input  {key}: {spec}" for key, spec in info.inputs.items()]
        lines += [f"    output {key}: {spec}" for key, spec in info.outputs.items()]
    assets = directory / "assets"
    names = sorted(p.name for p in assets.iterdir()) if assets.is_dir() else []
    lines += ["", f"assets: {', '.join(names) if names else '(none)'}"]
    card = assets / "model_card.md"
    if card.is_file():
        lines += ["", card.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"
