"""`emoconf`: a thin command line over the library (argument parsing, progress, printing).

One module per command, each with `register_subparser(parsers)`, which adds the command's parser and sets its
`run(args) -> int`; this module only wires them (a new command is a new module, listed in `COMMANDS`). Errors a
user can fix are printed in one line and exit with status 2, a library error's Python argument replaced by the
command's flag (`flags.with_flag`); `--debug` shows the traceback. Nothing here imports TensorFlow: each command
loads it when it needs it, after checking its arguments.
"""

from __future__ import annotations

import argparse
import sys

from emoconf_tf import __version__
from emoconf_tf.cli import bench, build, demo, export, export_table, inspect, predict, reproduce, train
from emoconf_tf.cli.flags import command_parser, with_flag
from emoconf_tf.cli.options import EPILOG
from emoconf_tf.errors import EmoconfError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = (demo, reproduce, train, build, export_table, export, inspect, predict, bench)
"""The commands' modules, in the order `emoconf --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoconf",
        description="Confidence-aware speech emotion recognition: EmoConfidNet and the paper's rejection protocol.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"emoconf-tf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register_subparser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except EmoconfError as error:
        if args.debug:
            raise
        print(f"emoconf {args.command}: error: {with_flag(error, command_parser(parser, args.command))}",
              file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emoconf ... | head` closed the pipe: not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"emoconf {args.command}: interrupted; finished parts are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130
