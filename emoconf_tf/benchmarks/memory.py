"""Memory readers of the bench's protocol parts: this process's resident memory and its peak (`memory_status`,
`PeakRss`: Linux `/proc`, psutil where that is not readable) and the peak RSS summed over a process tree
(`ProcessTreeRss`). Every figure is in GB (1e9 bytes).
"""

from __future__ import annotations

import threading

RSS_POLL_S = 0.2  # protocol_small: seconds between two readings of its process tree's RSS


def memory_status(key: str) -> float | None:
    """`VmRSS` / `VmHWM` of this process in GB (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory from now on: the kernel's high-water mark reset through `/proc/self/clear_refs`,
    or, where that is not allowed, psutil polled every 10 ms."""

    def __enter__(self):
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = None
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
            self.exact = memory_status("VmHWM") is not None
        except OSError:
            self.exact = False
        if not self.exact:
            import psutil

            process = psutil.Process()

            def poll():
                while not self._stop.wait(0.01):
                    self.peak = max(self.peak, process.memory_info().rss / 1e9)

            self._thread = threading.Thread(target=poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.exact:
            self.peak = memory_status("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
        return False


class ProcessTreeRss:
    """Peak of the RSS summed over a process and all its descendants (e.g. the protocol's loky workers), read with
    psutil every `interval` seconds from a thread of this process until the `with` block ends.

    Attributes (after the block): `peak_gb`, the peak sum in GB (1e9 bytes); `processes`, the most processes seen
    in the tree at once. A process that starts and ends between two readings is missed, as is a peak shorter
    than `interval`.
    """

    def __init__(self, pid: int, interval: float = RSS_POLL_S):
        self.pid, self.interval = pid, interval
        self.peak_gb, self.processes = 0.0, 0

    def _read(self, root) -> None:
        import psutil

        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:  # the process has ended
            return
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:  # a worker that ended since the listing
                pass
        self.peak_gb = max(self.peak_gb, total / 1e9)
        self.processes = max(self.processes, len(tree))

    def __enter__(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            root = None
        self._stop = threading.Event()

        def poll():
            while root is not None and not self._stop.wait(self.interval):
                self._read(root)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False
