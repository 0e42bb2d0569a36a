"""A bench part in a fresh Python process: `python -m emoconf_tf.benchmarks.harness --child KIND JSON` runs the
part's child function (`harness._CHILDREN[KIND]`, e.g. `protocol.protocol_child`) on the JSON arguments and
prints its figures as one JSON line; `Child` starts it and reads that line, its other lines being progress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable

from emoconf_tf.errors import EmoconfError


def run_child(kind: str, arguments: dict, log: Callable[[str], None]) -> dict:
    """Runs `harness._CHILDREN[kind](arguments)` in a fresh process (`Child`) and returns its figures."""
    return Child(kind, arguments, log).result()


class Child:
    """`harness._CHILDREN[kind](arguments)` running in `python -m emoconf_tf.benchmarks.harness`; its progress
    lines go to `log`."""

    def __init__(self, kind: str, arguments: dict, log: Callable[[str], None]):
        self.kind, self._result, self._stderr = kind, None, []
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-m", "emoconf_tf.benchmarks.harness", "--child", kind, json.dumps(arguments)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

        def read_stdout():
            for line in self._process.stdout:
                if line.startswith("{"):
                    self._result = json.loads(line)
                elif line.strip():
                    log("  " + line.rstrip())

        self._readers = [threading.Thread(target=read_stdout, daemon=True),
                         threading.Thread(target=lambda: self._stderr.extend(self._process.stderr), daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        """The process id (for watching its memory)."""
        return self._process.pid

    def stop(self) -> None:
        """Ends the process if it still runs (after an error or an interrupt in the caller)."""
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait()

    def result(self) -> dict:
        """Waits for the process; its figures, or `EmoconfError` with the end of its stderr."""
        self._process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        if self._process.returncode != 0 or self._result is None:
            tail = "".join(self._stderr[-15:]).rstrip()
            raise EmoconfError(
                f"the {self.kind} benchmark process failed (exit status {self._process.returncode}): {tail}")
        return self._result
