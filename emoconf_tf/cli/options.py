"""What several commands' options share: the epilog, the help of `--folds` and `--data-dir`, comma-list values, and
`--data-dir`'s default."""

from __future__ import annotations

EPILOG = "Docs: README.md in the repository. Every command writes its outputs atomically (temporary name, then rename)."
FOLDS_HELP = ("with --cv group: gather the groups (or speakers) into K folds of near-equal size, deterministically "
              "(leave-speakers-out on a corpus without sessions); the assignment is written to folds.csv (default: one "
              "fold per group)")
# --data-dir of build, export-table and reproduce --tfds; resolved by `tfds_data_dir`, with TFDS's own rule.
DATA_DIR_DEFAULT = "default: TFDS's default data directory, $TFDS_DATA_DIR if set, else ~/tensorflow_datasets"
# tfds_builders.build.DATASET_NAMES (what `build` and `export-table` name), spelt out: importing tfds_builders takes
# most of a second (TFDS), too long for `emoconf --help`; tests/test_build_cli.py checks that the two agree.
DATASET_NAMES = ("msp_podcast", "iemocap", "ser_features", "audio_folder")


def comma_list(text: str) -> tuple[str, ...]:
    """`"raw, filtered,"` -> `("raw", "filtered")`: the items of a comma list, stripped, empty ones left out."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def tfds_data_dir(data_dir: str | None) -> str:
    """`--data-dir`, or TFDS's default data directory when it was not given ($TFDS_DATA_DIR, else
    ~/tensorflow_datasets: what `tfds build` and `tfds.load` use)."""
    if data_dir is not None:
        return data_dir
    # Imported here, not when the parser is built: tensorflow_datasets takes most of a second to import.
    from tensorflow_datasets.core import constants

    return constants.get_default_data_dir()


def one_of(names: tuple[str, ...]) -> str:
    """`("a", "b", "c")` -> `"a, b or c"`."""
    return f"{', '.join(names[:-1])} or {names[-1]}"
