"""The training options of `demo`, `reproduce` and `train` (`TrainingConfig`'s fields, its defaults the paper's)."""

from __future__ import annotations

import argparse
import math

from emoconf_tf.errors import EmoconfError
from emoconf_tf.settings import TrainingConfig

DEFAULTS = TrainingConfig()


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (paper defaults)")
    group.add_argument(
        "--max-epochs", type=int, default=DEFAULTS.max_epochs,
        help=f"upper bound on epochs; early stopping (patience {DEFAULTS.patience}) usually ends sooner "
        "(default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                       help="mini-batch size (default: %(default)s)")
    group.add_argument(
        "--patience", type=int, default=DEFAULTS.patience,
        help="early-stopping patience on validation loss (default: %(default)s)")
    group.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate,
                       help="Adam learning rate (default: %(default)s)")
    group.add_argument(
        "--keras-verbose", type=int, choices=(0, 1, 2), default=DEFAULTS.verbose,
        help="Keras fit verbosity: 0 silent (the fast epoch loop), 1 progress bars, 2 a line per epoch (both in "
        "Keras's model.fit, the same weights; default: %(default)s)")
    group.add_argument(
        "--no-reshuffle", action="store_true",
        help="feed the training rows in one seeded order, the same in every epoch (what Keras 3 does once a global "
        "seed is set); default: a new seeded order each epoch")
    group.add_argument(
        "--no-input-clipping", action="store_true",
        help="feed features to the classifier as they are (the paper's network); default: each feature is clipped to "
        "the range it had on the training rows, so that a heavy-tailed value on an unseen speaker (eGeMAPS's "
        "*_stddevNorm, say) cannot drive the network where training never went")


def check_training_options(args) -> None:
    for name in ("max_epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            raise EmoconfError(f"--{name.replace('_', '-')} must be at least 1")
    if not (args.learning_rate > 0 and math.isfinite(args.learning_rate)):
        raise EmoconfError(f"--learning-rate {args.learning_rate}: must be a positive number, e.g. 1e-4")


def training_config(args) -> TrainingConfig:
    check_training_options(args)
    return TrainingConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, patience=args.patience,
        learning_rate=args.learning_rate, verbose=args.keras_verbose,
        reshuffle_each_epoch=not getattr(args, "no_reshuffle", False),
        clip_inputs=not getattr(args, "no_input_clipping", False),
    )
