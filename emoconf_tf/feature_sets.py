"""The openSMILE feature sets by name: ComParE 2016 (6,373 functionals, the paper's) and eGeMAPS v02 (88, our light
option). Imports neither openSMILE nor TensorFlow, so the CLI, the SavedModel export and the TFDS builders can name
a set without loading them.

Example:
>>> FeatureSet.EGEMAPS_V02.value, FeatureSet.EGEMAPS_V02.dimension, FeatureSet.EGEMAPS_V02.title
('egemaps_v02', 88, 'eGeMAPSv02 functionals')
>>> feature_set_from_name("ComParE_2016") is FeatureSet.COMPARE_2016
True
"""

from __future__ import annotations

import enum

from emoconf_tf.errors import EmoconfError


class FeatureSet(enum.Enum):
    """The openSMILE feature sets; the values are the names used in configs, run.json and on the CLI."""

    COMPARE_2016 = "compare_2016"
    EGEMAPS_V02 = "egemaps_v02"

    @property
    def dimension(self) -> int:
        """The documented number of functionals per utterance."""
        return FEATURE_DIMENSIONS[self]

    @property
    def opensmile_name(self) -> str:
        """The member of `opensmile.FeatureSet`."""
        return _OPENSMILE_NAMES[self]

    @property
    def title(self) -> str:
        """How the model card and reports name it."""
        return _TITLES[self]


FEATURE_SET_NAMES = tuple(member.value for member in FeatureSet)
"""`("compare_2016", "egemaps_v02")`: the names the CLI and configs accept."""

# The documented size of each feature set (functionals per utterance); `extract_features` checks it.
FEATURE_DIMENSIONS = {
    FeatureSet.COMPARE_2016: 6373,
    FeatureSet.EGEMAPS_V02: 88,
}

_OPENSMILE_NAMES = {
    FeatureSet.COMPARE_2016: "ComParE_2016",
    FeatureSet.EGEMAPS_V02: "eGeMAPSv02",
}

_TITLES = {
    FeatureSet.COMPARE_2016: "ComParE 2016 functionals",
    FeatureSet.EGEMAPS_V02: "eGeMAPSv02 functionals",
}


def feature_set_from_name(feature_set: FeatureSet | str) -> FeatureSet:
    """`FeatureSet` from a member or its name (`"compare_2016"`, `"egemaps_v02"`, `"eGeMAPSv02"`; case-insensitive)."""
    if isinstance(feature_set, FeatureSet):
        return feature_set
    key = str(feature_set).strip().lower()
    for member in FeatureSet:
        if key in (member.value, member.name.lower(), _OPENSMILE_NAMES[member].lower()):
            return member
    raise EmoconfError(f"feature set {feature_set!r} is not available; choose one of {', '.join(FEATURE_SET_NAMES)}")
