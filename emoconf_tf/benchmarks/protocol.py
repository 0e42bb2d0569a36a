"""Bench, parts `protocol` and `protocol_small`, each run in a fresh process (`protocol_child`,
`protocol_small_child`) so that its memory is its own.

- protocol: wall time of the paper's protocol (raw + filtered training, EmoConfidNet and the top-two margin) on
  an MSP-Podcast-sized synthetic corpus (34,000 / 7,000 / 10,000 utterances, 6,373 features), its peak resident
  memory against the size of the feature matrix, and the exponent of its time against the corpus size;
- protocol_small: the protocol with every confidence score (`ALL_METHODS`) on an IEMOCAP-development-sized
  synthetic corpus (7,000 utterances, 47 features, five session groups: `cv="group"`, 5 folds), run serially
  (`jobs=1`, the baseline) and then with worker processes (`jobs=2`, or `--jobs`), each in its own process:
  the wall time of each and their ratio, the peak of the RSS summed over each run's process tree (the
  protocol's process and its workers) and whether the two runs' `results.csv` are identical. Only when asked
  for (`parts=PARTS`, `--parts protocol_small`): it is not one of `DEFAULT_PARTS`.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emoconf_tf.benchmarks.child_process import Child
from emoconf_tf.benchmarks.memory import PeakRss, ProcessTreeRss, memory_status
from emoconf_tf.benchmarks.sizes import BenchSize
from emoconf_tf.errors import EmoconfError


def protocol_process(size: BenchSize, *, max_epochs: int, log: Callable[[str], None]) -> Child:
    """The protocol in a fresh Python process (so that its peak memory is its own); `.result()` gives its figures."""
    return Child("protocol", {
        "train": size.train, "validation": size.validation, "test": size.test, "num_features": size.num_features,
        "max_epochs": max_epochs, "scaling_divisor": size.scaling_divisor, "scaling_epochs": size.scaling_epochs,
    }, log)


def protocol_small_figures(size: BenchSize, *, max_epochs: int, jobs: int, log: Callable[[str], None]) -> dict:
    """The protocol on an IEMOCAP-development-sized corpus, serially and then with `jobs` worker processes.

    Each run is a fresh process (`protocol_small_child`: the synthetic corpus of `size.small_utterances` rows x
    `size.small_features` features, five session groups, `cv="group"`: 5 folds x 1 seed x raw and filtered
    training, or `size.small_folds` x `size.small_trainings`; `size.small_methods`, default every method),
    started after the other has ended, so that the two see the same machine a moment apart and neither shares
    the cores with the other. Each is timed once (a run of many units is long enough that a repeat would tell
    more about the machine's other work than about the protocol). While each runs, this process sums the RSS
    of its process tree (the protocol's process, its loky workers and loky's resource tracker) every
    `memory.RSS_POLL_S` seconds (`ProcessTreeRss`) and keeps the peak. Both runs write `results.csv` at full
    precision; `protocol_small_results_equal` is 1 when the two frames are equal, value for value.

    Args:
        size: the bench size.
        max_epochs: upper bound on every network's epochs (early stopping, patience 10, usually ends sooner).
        jobs: worker processes of the second run, 2 or more (`run_protocol(..., jobs=jobs)`).
        log: called with progress lines.

    Returns:
        dict of `protocol_small_*` figures: `_serial_s`, `_jobs_s` (wall seconds of `run_protocol` in each run,
        from the corpus in memory to the tables; the jobs run's includes starting its workers), their ratio
        `_jobs_vs_serial`, `_serial_peak_rss_gb`, `_jobs_peak_rss_gb` (GB, 1e9 bytes; RSS summed over the tree,
        so pages shared between the processes are counted once per process), their ratio, `_results_equal`
        (1 or 0), and the run's size (`_utterances`, `_features`, `_methods`, `_units`, `_jobs`).
    """
    import pandas as pd

    from emoconf_tf.settings import ALL_METHODS

    methods = list(size.small_methods or ALL_METHODS)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="emoconf-bench-small-") as tmp:
        results_csv = {}
        for name, run_jobs in (("serial", 1), ("jobs", jobs)):
            results_csv[name] = Path(tmp) / name / "results.csv"
            results_csv[name].parent.mkdir()
            log(f"protocol_small: {name} run (jobs={run_jobs}) in a separate process")
            child = Child("protocol_small", {
                "utterances": size.small_utterances, "num_features": size.small_features, "methods": methods,
                "folds": size.small_folds, "trainings": list(size.small_trainings), "max_epochs": max_epochs,
                "jobs": run_jobs, "results_csv": str(results_csv[name]),
            }, log)
            try:
                with ProcessTreeRss(child.pid) as rss:
                    run = child.result()
            finally:
                child.stop()
            figures[f"protocol_small_{name}_s"] = run["seconds"]
            figures[f"protocol_small_{name}_peak_rss_gb"] = rss.peak_gb
            log(f"  {name}: {run['seconds']:.1f} s, peak RSS {rss.peak_gb:.3f} GB over up to {rss.processes} "
                "process(es)")
        serial, parallel = (pd.read_csv(results_csv[name], float_precision="round_trip")
                            for name in ("serial", "jobs"))
    figures.update({
        "protocol_small_utterances": run["utterances"],
        "protocol_small_features": size.small_features,
        "protocol_small_methods": len(methods),
        "protocol_small_units": run["units"],
        "protocol_small_jobs": jobs,
        "protocol_small_jobs_vs_serial": figures["protocol_small_jobs_s"] / figures["protocol_small_serial_s"],
        "protocol_small_jobs_vs_serial_rss": (figures["protocol_small_jobs_peak_rss_gb"]
                                              / figures["protocol_small_serial_peak_rss_gb"]),
        "protocol_small_results_equal": int(serial.equals(parallel)),
    })
    return figures


def _synthetic_corpus(train: int, validation: int, test: int, num_features: int, seed: int = 0):
    """The synthetic corpus with exactly `train / validation / test` rows: speakers of `gcd` rows each."""
    from emoconf_tf.synthetic import make_synthetic_corpus

    total = train + validation + test
    rows_per_speaker = math.gcd(train, math.gcd(validation, test))
    speakers = total // rows_per_speaker
    if speakers > 5000:
        raise EmoconfError(f"split sizes {train}/{validation}/{test}: choose sizes with a larger common divisor")
    return make_synthetic_corpus(n_utterances=total, num_features=num_features, seed=seed, num_speakers=speakers,
                                 split_fractions=(train / total, validation / total, test / total))


def _first_rows_of_each_split(corpus, divisor: int):
    """The first 1/divisor of every split's rows (speakers stay split-disjoint)."""
    keep = np.zeros(len(corpus), dtype=bool)
    for split in ("train", "validation", "test"):
        rows = np.flatnonzero(corpus.split == split)
        keep[rows[: max(1, len(rows) // divisor)]] = True
    return corpus.subset(keep)


def protocol_child(arguments: dict) -> dict:
    """The `protocol` part in its own process: the synthetic corpus of `arguments["train"]` / `["validation"]` /
    `["test"]` rows x `["num_features"]` features, `run_protocol` with `PAPER_METHODS` (timed, its peak RSS) and the
    two scaling runs of `["scaling_epochs"]` fixed epochs, on 1/`["scaling_divisor"]` of the corpus and on all of
    it. Returns the figures of the part: seconds, GB (1e9 bytes), epochs and the scaling exponent."""
    start = time.perf_counter()
    corpus = _synthetic_corpus(arguments["train"], arguments["validation"], arguments["test"],
                               arguments["num_features"])
    generator_s = time.perf_counter() - start
    generator_peak = memory_status("VmHWM") or 0.0
    print(f"generated the corpus in {generator_s:.0f} s", flush=True)

    from emoconf_tf.evaluation.protocol import (
        PAPER_METHODS,
        ProtocolConfig,
        run_protocol,
    )
    from emoconf_tf.settings import TrainingConfig

    def on_unit(summary, resumed):
        print(f"{time.perf_counter() - start:.0f} s: {summary['training']} done, epochs "
              f"{summary['classifier_epochs']} / {summary['confidence_epochs']}", flush=True)

    config = ProtocolConfig(methods=PAPER_METHODS, training=TrainingConfig(max_epochs=arguments["max_epochs"]))
    runtime_and_corpus = memory_status("VmRSS") or 0.0
    with PeakRss() as peak:
        start = time.perf_counter()
        outputs = run_protocol(corpus, config, None, progress=False, on_unit=on_unit)
        protocol_s = time.perf_counter() - start
    features_gb = corpus.features.nbytes / 1e9
    figures = {
        "protocol_s": protocol_s,
        "protocol_utterances": len(corpus),
        "protocol_classifier_epochs": int(outputs.runs["classifier_epochs"].sum()),
        "protocol_head_epochs": int(outputs.runs["confidence_epochs"].sum()),
        "protocol_units": len(outputs.runs),
        "features_gb": features_gb,
        "peak_rss_gb": peak.peak,
        "runtime_rss_gb": runtime_and_corpus - features_gb,
        "protocol_own_rss_gb": peak.peak - runtime_and_corpus,
        "peak_rss_less_runtime_vs_features": (peak.peak - (runtime_and_corpus - features_gb)) / features_gb,
        "generator_s": generator_s,
        "generator_peak_rss_gb": generator_peak,
        "peak_rss_exact": int(peak.exact),
    }
    # Scaling: the same protocol with a fixed number of epochs (no early stopping), on the corpus and on
    # 1/divisor of it, so that the time ratio is the implementation's, not a change in epochs.
    epochs = arguments["scaling_epochs"]
    fixed = dataclasses.replace(config, training=TrainingConfig(max_epochs=epochs, patience=epochs))
    small = _first_rows_of_each_split(corpus, arguments["scaling_divisor"])
    seconds = {}
    sizes = (("small", small), ("large", corpus))
    if arguments["max_epochs"] == epochs and epochs <= config.training.patience:
        seconds["large"] = protocol_s  # the run above had these fixed epochs already
        sizes = sizes[:1]
    for name, part in sizes:
        start = time.perf_counter()
        run_protocol(part, fixed, None, progress=False)
        seconds[name] = time.perf_counter() - start
        print(f"scaling: {len(part):,} utterances, {epochs} epochs: {seconds[name]:.1f} s", flush=True)
    figures.update({
        "scaling_small_s": seconds["small"],
        "scaling_large_s": seconds["large"],
        "scaling_exponent": math.log(seconds["large"] / seconds["small"]) / math.log(len(corpus) / len(small)),
    })
    return figures


def protocol_small_child(arguments: dict) -> dict:
    """One run of `protocol_small_figures`: the corpus, `run_protocol` with `arguments["jobs"]` (timed), and its
    results table written to `arguments["results_csv"]` at full precision (pandas' shortest round-trip floats)."""
    from emoconf_tf.evaluation.protocol import ProtocolConfig, run_protocol
    from emoconf_tf.settings import TrainingConfig
    from emoconf_tf.synthetic import make_synthetic_corpus

    # five session groups (make_synthetic_corpus's default), one fold each, as IEMOCAP's five sessions
    corpus = make_synthetic_corpus(n_utterances=arguments["utterances"], num_features=arguments["num_features"],
                                   seed=0)
    config = ProtocolConfig(cv="group", folds=arguments["folds"], trainings=tuple(arguments["trainings"]),
                            methods=tuple(arguments["methods"]),
                            training=TrainingConfig(max_epochs=arguments["max_epochs"]))
    start = time.perf_counter()

    def on_unit(summary, resumed):
        print(f"{time.perf_counter() - start:.0f} s: fold {summary['fold']} {summary['training']} done, epochs "
              f"{summary['classifier_epochs']} / {summary['confidence_epochs']}", flush=True)

    outputs = run_protocol(corpus, config, None, progress=False, on_unit=on_unit, jobs=arguments["jobs"])
    seconds = time.perf_counter() - start
    outputs.results.to_csv(arguments["results_csv"], index=False)
    return {"seconds": seconds, "utterances": len(corpus), "units": len(outputs.runs)}
