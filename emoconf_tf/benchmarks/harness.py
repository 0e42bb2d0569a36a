"""Performance figures on this machine: training, serving, feature extraction and the paper's protocol.

`run_bench` measures, `bench_table` prints; `emoconf bench` is the command. Timings depend on the machine
and on what else runs on it, so every figure that has a target is a *ratio* against a reference measured
in the same run, on the same cores, a moment apart. Each part is a module that says what it measures and
against what:

- training (`training`, `early_stopped_fit`): Keras `model.fit` against the matmul roofline (`roofline`) and
  scikit-learn's `MLPClassifier`; the protocol's early-stopped fit against Keras's `model.fit`;
- serving (`serving`): batch-1 latency and batch-256 throughput of the exported `serving_default` signature, the
  paper export beside the default export;
- extraction (`extraction`): openSMILE ComParE-2016 real-time factor with one worker, and the speed-up with two;
- protocol and protocol_small (`protocol`): the paper's protocol at MSP-Podcast size (wall time, peak memory,
  scaling), and with every confidence score at IEMOCAP-development size, serially and with worker processes.
  protocol_small only when asked for (`parts=PARTS`, `--parts protocol_small`): it is not one of
  `DEFAULT_PARTS`.

The sizes are `sizes.SIZES`, the targets and the table's rows `figures.TARGETS` and `figures.TABLE_ROWS`. A part
that needs a fresh process runs one of `_CHILDREN` in `python -m emoconf_tf.benchmarks.harness --child`
(`child_process.Child`).

On a shared machine every timing is the best of a few repeats (other work only ever slows a run down),
and a rate and its reference are measured alternately.

Example:

```python
from emoconf_tf.benchmarks.harness import bench_table, run_bench

results = run_bench("quick")
print(bench_table(results))
```
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from emoconf_tf.benchmarks.early_stopped_fit import early_stopped_fit_figures
from emoconf_tf.benchmarks.extraction import extraction_child, extraction_figures
from emoconf_tf.benchmarks.figures import TABLE_ROWS, TARGETS
from emoconf_tf.benchmarks.protocol import (
    protocol_child,
    protocol_process,
    protocol_small_child,
    protocol_small_figures,
)
from emoconf_tf.benchmarks.serving import serving_child, serving_figures
from emoconf_tf.benchmarks.sizes import SIZES, BenchSize
from emoconf_tf.benchmarks.training import keras_fit_rate, sklearn_fit_rate
from emoconf_tf.errors import EmoconfError

PARTS = ("training", "serving", "extraction", "protocol", "protocol_small")
# protocol_small only when asked for: every method, twice, at IEMOCAP size is longer than the rest together
DEFAULT_PARTS = ("training", "serving", "extraction", "protocol")


def run_bench(size: str | BenchSize = "full", *, max_epochs: int | None = None, parts: tuple[str, ...] | None = None,
              jobs: int = 2, log: Callable[[str], None] | None = None) -> dict[str, float | str]:
    """Measures every figure of `emoconf bench`.

    Args:
        size: `"full"` (the MSP-Podcast-sized protocol; docs/performance.md), `"quick"` (a tenth of it), `"tiny"`
            (seconds; for tests) or a `BenchSize`.
        max_epochs: upper bound on the epochs of `protocol` and `protocol_small` (early stopping, patience 10,
            usually ends sooner); default the size's (200, the paper's setting, except for `"tiny"`).
        parts: subset of `PARTS`, `("training", "serving", "extraction", "protocol", "protocol_small")`; default
            `DEFAULT_PARTS`, all but `protocol_small`.
        jobs: worker processes of `protocol_small`'s second run (2 or more, or -1: joblib's CPU count); its first
            run, the baseline, is serial. Default 2.
        log: called with progress lines (default: silent).

    Returns:
        dict of figure name -> number (see `TABLE_ROWS`; `bench_full_size` is 1 for the full size), and
        `serving_default_export_score`, the text of what the default export serves (`ExportResult.score`).
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise EmoconfError(f"bench size {size!r}: choose from {', '.join(SIZES)}")
        size = SIZES[size]
    max_epochs = size.max_epochs if max_epochs is None else int(max_epochs)
    if max_epochs < 1:
        raise EmoconfError("--max-epochs must be at least 1")
    parts = tuple(parts or DEFAULT_PARTS)
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise EmoconfError(f"bench parts {list(parts)}: choose from {', '.join(PARTS)}")
    if jobs != -1 and jobs < 2:
        raise EmoconfError(f"--jobs {jobs}: protocol_small compares a serial run with one of 2 or more worker "
                           "processes; give 2 or more, or -1 for one per CPU core")
    if jobs == -1:
        import joblib

        jobs = joblib.cpu_count()  # as run_protocol counts them
    log = log or (lambda line: None)
    results: dict[str, float | str] = {"bench_full_size": int(size == SIZES["full"]), "bench_rounds": size.rounds,
                                       "bench_cpu_count": os.cpu_count() or 0}
    protocol = None
    if "protocol" in parts and size.overlap_protocol:
        log("protocol: started alongside the other parts (timings of this size mean nothing)")
        protocol = protocol_process(size, max_epochs=max_epochs, log=log)
    try:
        with tempfile.TemporaryDirectory(prefix="emoconf-bench-") as tmp:
            work_dir = Path(tmp)
            if "training" in parts:
                log("training: Keras fit vs matmul roofline")
                results.update(keras_fit_rate(size, log))
                log("training: scikit-learn MLPClassifier")
                results.update(sklearn_fit_rate(size))
                results["train_vs_sklearn"] = results["train_samples_per_s"] / results["sklearn_samples_per_s"]
                log("training: the protocol's early-stopped fit, epoch_loop vs Keras model.fit")
                results.update(early_stopped_fit_figures(size, log))
            if "serving" in parts:
                log("serving: train a small run, export, time the signatures")
                results.update(serving_figures(size, work_dir, log))
        if "extraction" in parts:
            log("extraction: openSMILE ComParE-2016 on generated audio, in a separate process")
            results.update(extraction_figures(size, log))
        if "protocol" in parts:
            log(f"protocol: {size.utterances:,} synthetic utterances ({size.train:,} / {size.validation:,} / "
                f"{size.test:,}), {size.num_features} features, in a separate process")
            if protocol is None:
                protocol = protocol_process(size, max_epochs=max_epochs, log=log)
            results.update(protocol.result())
        if "protocol_small" in parts:
            log(f"protocol_small: {size.small_utterances:,} synthetic utterances, {size.small_features} features, "
                f"{size.small_folds or 5} group folds, serially and then with {jobs} worker processes")
            results.update(protocol_small_figures(size, max_epochs=max_epochs, jobs=jobs, log=log))
    finally:
        if protocol is not None:
            protocol.stop()
    return results


def bench_table(results: dict) -> str:
    """The figures as a fixed-width table, each beside its target and whether it is met.

    A figure shown again further down (as the baseline of another) has its target beside its first row only;
    a text figure (what the default export serves) is written after its label, not in the value column; a
    check (format `"yes/no"`, a 1 or 0 in `results`) is written as yes or no.
    """
    targets = {t.key: t for t in TARGETS}
    width = 56
    lines = [f"{'figure':<{width}} {'value':>20}  {'target':<22} met", "-" * (width + 50)]
    shown = set()
    for key, label, fmt in TABLE_ROWS:
        if key not in results:
            continue
        if isinstance(results[key], str):
            lines.append(f"{label:<{width}} {results[key]}")
            continue
        target = targets.get(key) if key not in shown else None
        shown.add(key)
        met = target.met(results) if target else None
        verdict = "" if target is None else ("n/a" if met is None else ("yes" if met else "NO"))
        text = target.text if target else ""
        value = ("yes" if results[key] else "no") if fmt == "yes/no" else fmt.format(results[key])
        lines.append(f"{label:<{width}} {value:>20}  {text:<22} {verdict}".rstrip())
    checked = [t.met(results) for t in TARGETS if t.key in results]
    applicable = [m for m in checked if m is not None]
    lines.append("-" * (width + 50))
    lines.append(f"targets met: {sum(applicable)} of {len(applicable)}")
    return "\n".join(lines)


# what `python -m emoconf_tf.benchmarks.harness --child KIND JSON` runs (`child_process.Child` starts it): each
# takes the decoded JSON arguments and returns its figures
_CHILDREN = {"protocol": protocol_child, "extraction": extraction_child, "serving": serving_child,
             "protocol_small": protocol_small_child}

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child" and sys.argv[2] in _CHILDREN:
        print(json.dumps(_CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))), flush=True)
    else:
        sys.exit(f"usage: python -m emoconf_tf.benchmarks.harness --child {'|'.join(_CHILDREN)} JSON "
                 "(internal; use `emoconf bench`)")
