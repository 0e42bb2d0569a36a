"""The paper's protocol: raw vs filtered training, EmoConfidNet vs the baseline, thresholds on
validation, metrics on test, for every fold and seed.

`run_protocol` runs every (fold, seed, training) unit (`evaluation.unit.run_unit`), keeps each finished unit in
`out_dir/parts/` (`evaluation.parts`; a rerun skips it), and returns the output tables, which `write_tables` writes.
Units are independent: `run_protocol(..., jobs=N)` trains N at a time in worker processes (`evaluation.workers`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Callable

import pandas as pd

from emoconf_tf.atomic import atomic_path
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.parts import (
    check_same_settings, part_path, read_part, remove_stale_temporaries, unit_summary, write_part,
)
from emoconf_tf.evaluation.tables import (  # the tables' columns, under the names this module has always exported
    CHOICE_COLUMNS, PER_CLASS_COLUMNS, RESULTS_COLUMNS as RESULT_COLUMNS, RUNS_COLUMNS as RUN_COLUMNS,
    SELECTIVE_COLUMNS, ReportTables,
)
from emoconf_tf.evaluation.unit import UnitResult, check_training_rows, run_unit
from emoconf_tf.evaluation.workers import run_units_in_workers, worker_count
from emoconf_tf.folds import fold_assignment, make_folds
from emoconf_tf.scores import METHODS, NO_AVD_REASON, avd_methods, check_methods
from emoconf_tf.settings import PAPER_METHODS, ProtocolConfig

FILTER_COUNT_COLUMNS = ("fold", "seed", "rule", "removed")


def config_for_corpus(config: ProtocolConfig, corpus: Corpus) -> tuple[ProtocolConfig, str]:
    """`config` as it can run on `corpus`, and one line saying what was left out ("" when nothing was).

    A corpus with AVD ratings runs `config` unchanged. Without them (`Corpus.has_avd` False; most public corpora
    have categories only), the conflict filter (the `filtered` training) and the methods trained on AVD
    (`scores.avd_methods()`: EmoConfidNet and its variants) cannot run: they are dropped, and every
    other score runs as asked (`recommended` chooses among them). A config left with no training is refused.

    Raises:
        EmoconfError: a method not in the score registry; `trainings` is `("filtered",)` on a corpus without AVD
            ratings.
    """
    check_methods(config.methods)
    if corpus.has_avd:
        return config, ""
    trainings = tuple(t for t in config.trainings if t != "filtered")
    if not trainings:
        raise EmoconfError(f"trainings {list(config.trainings)}: the conflict filter needs AVD ratings, which "
                           f"{corpus.name} has none of; train on the raw training set", argument="trainings")
    needing = avd_methods()
    dropped_methods = [m for m in (*PAPER_METHODS, *config.methods) if m in needing]
    dropped = (["the conflict filter (filtered training)"] if trainings != config.trainings else []) + [
        METHODS[m].display_name for m in dict.fromkeys(dropped_methods)]
    adapted = dataclasses.replace(config, trainings=trainings,
                                  methods=tuple(m for m in config.methods if m not in needing))
    note = (f"{corpus.name} has no AVD ratings: left out {', '.join(dropped)} ({NO_AVD_REASON}); every other score "
            "runs") if dropped else ""
    return adapted, note


@dataclasses.dataclass
class ProtocolOutputs(ReportTables):
    """The protocol's tables, a `ReportTables` (see `RESULT_COLUMNS`, `PER_CLASS_COLUMNS`, `RUN_COLUMNS`,
    `SELECTIVE_COLUMNS`, `CHOICE_COLUMNS`; `predictions` holds every test prediction with each method's
    confidence) and filter counts.

    `filter_counts` (`FILTER_COUNT_COLUMNS`): the rows each conflict rule removed from each fold's training set,
    one row per (fold, rule), from the first seed's filtered unit of the fold. The filter does not depend on the
    seed, so a sum over seeds would count every row once per seed; folds are kept apart since a row is in the
    training set of several folds under `cv="group"`. Empty when no unit trained on the filtered set.
    """

    skipped_units: int = 0


def run_protocol(
    corpus: Corpus,
    config: ProtocolConfig,
    out_dir: str | Path | None = None,
    *,
    on_unit: Callable[[dict, bool], None] | None = None,
    progress: bool = True,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
) -> ProtocolOutputs:
    """Runs every (fold, seed, training) unit; with `out_dir`, keeps finished units and resumes.

    Args:
        corpus: the corpus (with a split column, or groups for `cv="group"`).
        config: `ProtocolConfig`.
        out_dir: where `parts/` (finished units) and `protocol.json` live; a rerun with the same settings
            skips finished units. None keeps everything in memory.
        on_unit: called with each unit's `run` row and whether it was resumed (for one-line summaries).
        progress: show a tqdm bar over units.
        jobs: units trained at once. 1 (default): one after the other, in this process. N >= 2: in N worker
            processes (joblib, loky backend), each running TensorFlow on one intra-op and one inter-op thread and
            reading the feature matrix from one memory-mapped copy (written beside `parts/`, or to the temporary
            directory without `out_dir`, and deleted at the end); -1: one worker per CPU core. A worker is replaced
            by a fresh process once it has grown `WORKER_MEMORY_GROWTH` beyond its size after its first unit
            (TensorFlow keeps some memory of every network it trained), and this process, which only dispatches
            units and writes what comes back, does not load TensorFlow. Finished units are
            kept as they arrive, and the tables are in the same (fold, seed, training) order whatever `jobs` is.
            An execution setting, not part of `config`: a run may resume with another `jobs`.
        backend: where the units run. "loky" (default): worker processes on this machine, as `jobs` says.
            "dask": the worker processes of a `dask.distributed` cluster, through joblib's dask backend (same
            seeds per unit, so the same tables as the serial run). The corpus is sent once to every worker
            (`scatter`), not with each unit, and the workers send back each unit's tables; `out_dir` stays on this
            machine, where the parts are written as units arrive, so resuming works as with loky. Each worker must
            run one thread (`dask worker ADDRESS --nthreads 1`): a unit sets TensorFlow's and Keras's process-wide
            seeds, which two units in one process would disturb. Needs `pip install "emoconf-tf[dask]"`.
        scheduler: with `backend="dask"`, the address of a running scheduler (`tcp://host:8786`, as printed by
            `dask scheduler`); units run one per worker thread of that cluster, so `jobs` stays 1 (the default).
            Workers must have emoconf-tf installed. None: a `distributed.LocalCluster` of `jobs` (2 or more, or -1)
            worker processes of one thread each is started on this machine and closed at the end.

    Raises:
        EmoconfError: for `jobs` 0 or below -1, an unknown `backend`, `scheduler` without `backend="dask"`,
            `backend="dask"` without `distributed` installed, `jobs` 1 without a scheduler or other than 1 with one,
            a malformed scheduler address, a scheduler that does not answer within 5 s, has no worker after 10 s,
            fewer than 2 workers or a worker of several threads, a fold whose training set lacks a class, or an
            `out_dir` holding a run with other settings.
    """
    from tqdm.auto import tqdm

    workers = worker_count(jobs, backend, scheduler)
    adapted, note = config_for_corpus(config, corpus)
    if adapted != config:  # not when the caller adapted it already (and said so)
        warnings.warn(note, stacklevel=2)
    config = adapted
    folds = make_folds(corpus, config.cv, config.folds)
    for fold in folds:  # fail before any training (and before writing anything), not after hours of it
        for training in config.trainings:
            check_training_rows(corpus, fold, training, config)
    parts_dir = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        parts_dir = out_dir / "parts"
        check_same_settings(out_dir, corpus, config)
        remove_stale_temporaries(out_dir, parts_dir)
        with atomic_path(out_dir / "folds.csv") as tmp:  # which utterance is in which part of each fold
            fold_assignment(corpus, folds).to_csv(tmp, index=False)
    units = [(fold, seed, training) for fold in folds for seed in config.seeds for training in config.trainings]
    if workers > 1 or backend == "dask":
        bar = tqdm(total=len(units), desc=f"{corpus.name}: folds x seeds x trainings", unit="run",
                   disable=not progress)
        with bar:
            done, skipped = run_units_in_workers(corpus, config, units, parts_dir, workers, bar, on_unit,
                                                  backend=backend, scheduler=scheduler)
        return _protocol_outputs(done, config, skipped)
    done: list[UnitResult] = []
    skipped = 0
    bar = tqdm(units, desc=f"{corpus.name}: folds x seeds x trainings", unit="run", disable=not progress)
    for fold, seed, training in bar:
        part = part_path(parts_dir, fold, seed, training)
        if part is not None and part.exists():
            unit = read_part(part)
            skipped += 1
            resumed = True
        else:
            unit = run_unit(corpus, fold, seed, training, config)
            if part is not None:
                write_part(part, unit)
            resumed = False
        unit.models.clear()
        unit.scores.clear()
        done.append(unit)
        if on_unit is not None:
            on_unit(unit_summary(unit), resumed)
    return _protocol_outputs(done, config, skipped)


def _protocol_outputs(done: list[UnitResult], config: ProtocolConfig, skipped: int) -> ProtocolOutputs:
    """The tables of the finished units `done`, in their order (the canonical (fold, seed, training) order)."""
    counts = [{"fold": unit.run["fold"], "seed": unit.run["seed"], "rule": rule, "removed": int(n)}
              for unit in done if unit.run["training"] == "filtered" and unit.run["seed"] == config.seeds[0]
              for rule, n in unit.filter_counts.items()]
    return ProtocolOutputs(
        results=pd.DataFrame([r for u in done for r in u.results], columns=list(RESULT_COLUMNS)),
        per_class=pd.DataFrame([r for u in done for r in u.per_class], columns=list(PER_CLASS_COLUMNS)),
        runs=pd.DataFrame([u.run for u in done], columns=list(RUN_COLUMNS)),
        selective=pd.DataFrame([r for u in done for r in u.selective], columns=list(SELECTIVE_COLUMNS)),
        choices=pd.DataFrame([r for u in done for r in u.choices], columns=list(CHOICE_COLUMNS)),
        predictions=pd.concat([u.predictions for u in done], ignore_index=True),
        filter_counts=pd.DataFrame(counts, columns=list(FILTER_COUNT_COLUMNS)),
        skipped_units=skipped,
    )


def write_tables(outputs: ProtocolOutputs, out_dir: str | Path) -> None:
    """Writes `results.csv`, `per_class.csv`, `runs.csv`, `selective.csv`, `choices.csv` and `predictions.csv`
    atomically."""
    out_dir = Path(out_dir)
    for name in ("results", "per_class", "runs", "selective", "choices", "predictions"):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            getattr(outputs, name).to_csv(tmp, index=False, float_format="%.6f" if name != "predictions" else "%.7g")
