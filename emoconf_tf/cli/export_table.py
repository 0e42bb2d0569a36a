"""`emoconf export-table`: a dataset built with `emoconf build`, written as a features table."""

from __future__ import annotations

import argparse

from emoconf_tf.cli.options import DATA_DIR_DEFAULT, DATASET_NAMES, one_of, tfds_data_dir
from emoconf_tf.feature_sets import FeatureSet


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    export_table = parsers.add_parser(
        "export-table", help="write a dataset built with `emoconf build` as a features table",
        description=f"Writes a prepared {one_of(DATASET_NAMES)} dataset as a features table "
        "(id, label, arousal, valence, dominance unless the dataset has no AVD ratings, speaker, group, split when "
        "the dataset has train/validation/test splits, then one column per openSMILE feature) that `emoconf "
        "reproduce --table` reads. Written atomically.",
        epilog="See tfds_builders/README.md.",
    )
    export_table.add_argument("name", help="dataset, optionally with its config: iemocap or iemocap/egemaps_v02")
    export_table.add_argument(
        "--config", default=None,
        help=f"config when NAME has none (default: the dataset's default, {FeatureSet.COMPARE_2016.value})")
    export_table.add_argument("--data-dir", default=None, help=f"TFDS data directory ({DATA_DIR_DEFAULT})")
    export_table.add_argument("--out", required=True, help="table to write (.parquet, .csv or .csv.gz)")
    export_table.set_defaults(run=run)


def run(args) -> int:
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug)
    from tfds_builders.build import export_features_table

    data_dir = tfds_data_dir(args.data_dir)
    path = export_features_table(args.name, data_dir, args.out, config=args.config)
    print(f"wrote features table {path} from {args.name} in {data_dir}")
    return 0
