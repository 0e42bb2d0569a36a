"""`python -m emoconf_tf`: the `emoconf` command line (`emoconf_tf.cli`), for environments without the console
script on PATH (a notebook's `!python -m emoconf_tf demo`, a venv that is not activated)."""

import sys

from emoconf_tf.cli import main

if __name__ == "__main__":
    sys.exit(main())
