"""The one exception family the library raises for problems a user can fix."""


class EmoconfError(ValueError):
    """Bad input or an unusable state, with a message that names the file, row or field.

    The CLI prints these in one line (no traceback unless `--debug`). It subclasses
    `ValueError` so that library callers can catch the usual type.
    """
