"""`python -m emoconf_tf.cli`: the `emoconf` command line."""

import sys

from emoconf_tf.cli import main

if __name__ == "__main__":
    sys.exit(main())
