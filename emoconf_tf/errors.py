"""The one exception family the library raises for problems a user can fix."""

from __future__ import annotations


class EmoconfError(ValueError):
    """Bad input or an unusable state, with a message that names the file, row or field.

    Args:
        message: what is wrong and what to do, in one line. When one argument of the call is at fault, the message
            starts with its Python name and value (`"folds 2: need at least 3 ..."`).
        argument: that argument's Python name (`"folds"`), or None. The CLI prints the message with the argument's
            command-line flag in its place (`"--folds 2: ..."`); from Python the message reads as it is.

    The CLI prints these in one line (no traceback unless `--debug`). It subclasses `ValueError` so that library
    callers can catch the usual type.

    Example:
    >>> error = EmoconfError("folds 2: need at least 3 (a test, a validation and a training fold)", argument="folds")
    >>> error.argument, str(error)
    ('folds', 'folds 2: need at least 3 (a test, a validation and a training fold)')
    """

    def __init__(self, message: str, *, argument: str | None = None):
        super().__init__(message)
        self.argument = argument

    def __reduce__(self):  # keeps `argument` across processes (joblib workers send errors back pickled)
        return type(self), (str(self),), {"argument": self.argument}


def argument_named(name: str) -> str | None:
    """A check's `name` for what it checks as an `EmoconfError.argument`: the name itself when it is a Python
    argument (`"rejection_mode"`), None when it names something else (a field of a file,
    `"run/run.json: rejection_mode"`, or a flag, `"--score"`)."""
    return name if name.isidentifier() else None
