"""`emoconf inspect`: an exported model's signatures and model card."""

from __future__ import annotations

import argparse


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    inspect = parsers.add_parser(
        "inspect", help="print an exported model's signatures and model card",
        description="Prints the signatures (inputs and outputs with dtypes and shapes, as TF Serving sees them) and "
        "the model card of a SavedModel: the latest version of a model base path, or a given version directory.",
        epilog="Serving: savedmodels/README.md.",
    )
    inspect.add_argument("path", help="model base path (savedmodels/NAME) or a version directory (savedmodels/NAME/3)")
    inspect.set_defaults(run=run)


def run(args) -> int:
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug)
    from emoconf_tf.serving.inspect import describe

    print(describe(args.path), end="")
    return 0
