"""What an exported SavedModel says about its inputs and outputs, read from its `assets/` without TensorFlow: the
class names, the feature names, the openSMILE feature set and the served score."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.model_card import FEATURE_SET_ASSET, UNKNOWN_FEATURE_SET
from emoconf_tf.serving.served_score import SCORE_ASSET

# What an export written before score.json existed serves: EmoConfidNet's p_hat[c].
LEGACY_SCORE = {"score": "emoconfidnet", "served": "emoconfidnet", "components": [["emoconfidnet", 1.0]],
                "chosen_on": {}, "legacy": True}


@dataclasses.dataclass(frozen=True)
class ModelAssets:
    """What an export says about its inputs and outputs (read from `assets/`, without TensorFlow).

    Attributes:
        path: the SavedModel version directory.
        class_names: `labels.txt`, in class-id order.
        feature_names: `feature_names.txt`, the D inputs in order.
        feature_set: `feature_set.txt`; `"unknown"` for an export that has none.
        score: `score.json` (the served score: `score`, `served`, `components`, `rejection_mode`, `chosen_on`,
            ...); for an export written before scores could be chosen, EmoConfidNet's (`legacy` True).
    """

    path: Path
    class_names: list[str]
    feature_names: list[str]
    feature_set: str
    score: dict = dataclasses.field(default_factory=lambda: dict(LEGACY_SCORE))

    @property
    def score_description(self) -> str:
        """What `confidence` is, e.g. `recommended (macro_gain_ensemble)`."""
        return str(self.score.get("served") or self.score.get("score") or "emoconfidnet")

    @property
    def has_avd(self) -> bool:
        """False for an export of a run without AVD ratings (`score.json`'s `has_avd`; no EmoConfidNet head, no
        `emoconfidnet_confidence` output); True when absent (exports with AVD ratings, older exports)."""
        return self.score.get("has_avd") is not False

    @property
    def feature_set_description(self) -> str:
        """`feature_set` for messages: `"unknown"` says what it means."""
        if self.feature_set == UNKNOWN_FEATURE_SET:
            return "unknown (a features table trained without --feature-set)"
        return self.feature_set


def read_model_assets(directory: str | os.PathLike) -> ModelAssets:
    """Reads `labels.txt`, `feature_names.txt` and `feature_set.txt` of a SavedModel version directory."""
    directory = Path(directory)
    assets = directory / "assets"

    def lines(name: str) -> list[str]:
        path = assets / name
        if not path.is_file():
            raise EmoconfError(f"{path}: missing; the model was not written by `emoconf export`")
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]

    feature_set_path = assets / FEATURE_SET_ASSET
    # Exports written before feature_set.txt existed record no feature set.
    feature_set = (feature_set_path.read_text(encoding="utf-8").strip() if feature_set_path.is_file()
                   else UNKNOWN_FEATURE_SET)
    score_path = assets / SCORE_ASSET
    score = dict(LEGACY_SCORE)
    if score_path.is_file():
        try:
            score = json.loads(score_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EmoconfError(f"{score_path}: not valid JSON ({error}); re-export the run with `emoconf export`"
                               ) from None
    return ModelAssets(directory, lines("labels.txt"), lines("feature_names.txt"), feature_set or UNKNOWN_FEATURE_SET,
                       score)
