"""The command-line flag of a library argument. A library error whose cause is one argument names it in Python
(`EmoconfError.argument`, its message starting with that name: `"folds 2: need at least 3 ..."`), and a message
names any argument it mentions in backticks ("use another `out_dir`"); the CLI prints the command's flags in those
places (`"--folds 2: need at least 3 ..."`, "use another --out"), found from the parser's actions."""

from __future__ import annotations

import argparse
import re

from emoconf_tf.errors import EmoconfError

ARGUMENT_DESTS = {
    "mc_dropout_passes": "mc_passes",  # ProtocolConfig
    "threshold_sources": "threshold_source",  # ProtocolConfig, thresholds.check_threshold_sources
    "trainings": "training",  # ProtocolConfig, of `train`, which has one --training
    "fold_index": "fold",  # serving.rundir.train_run
    "out_dir": "out",  # train_run, export_run
    "warmup_signatures": "warmup",  # export_run, serving.warmup.check_warmup_signatures
    "num_workers": "workers",  # serving.prediction.predict, tfds_builders.build.build_dataset
}
"""The library's argument names that differ from the `dest` of the flag that gives them; any other argument is
its flag's `dest` (`default_rejection` -> `--default-rejection`). A name is looked up as itself first."""


def flag_of(parser: argparse.ArgumentParser, argument: str) -> str | None:
    """The long option of `parser` (one command's) that gives the library's `argument`, or None (no such flag, or a
    positional argument, which keeps its Python name as argparse's own messages do)."""
    options = {action.dest: action.option_strings for action in parser._actions if action.option_strings}
    for dest in (argument, ARGUMENT_DESTS.get(argument)):
        if dest in options:
            return next((o for o in options[dest] if o.startswith("--")), options[dest][0])
    return None


def with_flag(error: EmoconfError, parser: argparse.ArgumentParser) -> str:
    """`error`'s message with `parser`'s flags for the library's argument names: the error's own argument where it
    leads the message, and every argument name in backticks (`` `out_dir` ``) that the command has a flag for.
    Names without a flag in this command stay as they are."""
    message, argument = str(error), getattr(error, "argument", None)
    flag = flag_of(parser, argument) if argument else None
    rest = message[len(argument):] if flag else ""
    if flag and message.startswith(argument) and not (rest[:1].isalnum() or rest[:1] == "_"):  # not a longer name
        message = flag + rest
    return re.sub(r"`([a-z_][a-z0-9_]*)`", lambda name: flag_of(parser, name.group(1)) or name.group(0), message)


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The subparser of `command` in the `emoconf` parser."""
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices[command]
