"""The protocol's units in worker processes: `run_protocol(..., jobs=N)` trains N units at a time, each in a loky
worker process (joblib) running TensorFlow on one thread and reading the feature matrix from one memory-mapped copy
on disk, or (`backend="dask"`) on the workers of a `dask.distributed` cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.parts import part_path, read_part, unit_summary, write_part
from emoconf_tf.evaluation.unit import UnitResult, run_unit
from emoconf_tf.folds import Fold
from emoconf_tf.settings import WORKER_MEMORY_GROWTH, ProtocolConfig


def worker_count(jobs: int, backend: str = "loky", scheduler: str | None = None) -> int:
    """`jobs` as a number of processes: -1 is joblib's CPU count (which respects CPU affinity and cgroup quotas).

    Checks `backend` and `scheduler` with it, before anything is written: with a dask `scheduler` the cluster's
    workers decide (`jobs` stays 1); without one, `jobs` is the size of the LocalCluster, at least 2, since joblib
    runs the units in this process when its backend has a single worker.
    """
    if backend not in ("loky", "dask"):
        raise EmoconfError(f"backend {backend!r}: choose 'loky' (worker processes on this machine) or 'dask' (the "
                           "workers of a dask.distributed cluster)", argument="backend")
    if jobs == 0 or jobs < -1:
        raise EmoconfError(f"jobs {jobs!r}: give 1 or more worker processes, or -1 for one per CPU core",
                           argument="jobs")
    if scheduler is not None and backend != "dask":
        raise EmoconfError(f"scheduler {scheduler!r}: a scheduler address is for `backend` 'dask', not {backend!r}",
                           argument="scheduler")
    if backend == "dask":
        try:
            import distributed  # noqa: F401 (an optional dependency: checked before anything is written)
        except ImportError:
            raise EmoconfError('backend \'dask\' needs dask.distributed, which is not installed: '
                               'pip install "emoconf-tf[dask]"', argument="backend") from None
        if scheduler is not None and jobs != 1:
            raise EmoconfError(f"jobs {jobs!r}: with a dask `scheduler`, its cluster's worker threads decide how "
                               "many units run at once; leave `jobs` at 1", argument="jobs")
    workers = jobs
    if jobs == -1:
        import joblib

        workers = joblib.cpu_count()
    if backend == "dask" and scheduler is None and workers < 2:
        raise EmoconfError(f"jobs {jobs!r}: `backend` 'dask' without a `scheduler` starts a LocalCluster of `jobs` "
                           "worker processes; give 2 or more, or the address of a running scheduler", argument="jobs")
    return workers


def units_in_this_process(jobs: int, backend: str = "loky", scheduler: str | None = None) -> bool:
    """Whether `run_protocol` with these settings trains the units in the calling process (one loky worker: `jobs`
    1, or -1 on a one-core machine), so that this process loads TensorFlow; checks them as `worker_count` does."""
    return worker_count(jobs, backend, scheduler) == 1 and backend == "loky"


def run_units_in_workers(corpus: Corpus, config: ProtocolConfig, units: list[tuple[Fold, int, str]],
                          parts_dir: Path | None, workers: int, bar,
                          on_unit: Callable[[dict, bool], None] | None, *, backend: str = "loky",
                          scheduler: str | None = None) -> tuple[list[UnitResult], int]:
    """`run_protocol`'s units in `workers` (>= 2) loky processes, or (`backend="dask"`) on the workers of the dask
    cluster at `scheduler` (None: a LocalCluster of `workers` processes); returns the units in `units`' order and the
    number resumed from `parts_dir`.

    This process reads the finished parts, writes each new unit's part as it arrives (in the order units finish),
    advances `bar` and calls `on_unit`, whichever the backend. A KeyboardInterrupt (or any error) leaves the loop,
    and joblib then kills the loky workers (a LocalCluster is closed; a remote cluster finishes the units it has
    started, and their results are dropped); the parts already written stay.
    """
    from joblib import Parallel, delayed, parallel_config

    finished: dict[int, UnitResult] = {}
    pending = []
    for index, (fold, seed, training) in enumerate(units):
        part = part_path(parts_dir, fold, seed, training)
        if part is not None and part.exists():
            finished[index] = read_part(part)
            bar.update()
            if on_unit is not None:
                on_unit(unit_summary(finished[index]), True)
        else:
            pending.append(index)
    skipped = len(finished)
    if pending:
        with contextlib.ExitStack() as stack:
            if backend == "dask":
                client = stack.enter_context(_dask_client(scheduler, workers))
                # A memory-mapped file would not exist on another machine, and a corpus in every task would be sent
                # once per unit: joblib's `scatter` sends it once to every worker, and each task that names this
                # very object gets a reference to the workers' copy instead.
                shared = corpus
                if isinstance(corpus.features, np.memmap):  # sent as the array it maps, read once here
                    shared = dataclasses.replace(corpus, features=np.asarray(corpus.features))
                stack.enter_context(parallel_config(backend="dask", client=client, scatter=[shared]))
                n_jobs = -1  # joblib's dask backend uses every worker thread of the cluster, whatever n_jobs is
                run_in_worker = _run_unit_on_dask_worker
            else:
                run_in_worker = _run_unit_in_worker
                shared = stack.enter_context(_memory_mapped_features(corpus, parts_dir.parent if parts_dir else None))
                # at least 2: joblib runs n_jobs=1 in this process, whose TensorFlow may already use every core
                n_jobs = max(2, min(workers, len(pending)))
                # inner_max_num_threads: OpenMP / BLAS in the workers on one thread too
                stack.enter_context(parallel_config(backend="loky", inner_max_num_threads=1))
            tasks = (delayed(run_in_worker)(index, shared, *units[index], config) for index in pending)
            outputs = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1)(tasks)
            # Closing it early (an error, Ctrl-C) makes joblib kill the loky workers (dask: the client closes, and the
            # scheduler drops the units not yet started); that it cancelled units is no news.
            with warnings.catch_warnings(), contextlib.closing(outputs):
                warnings.filterwarnings("ignore", message=".*still being processed by the workers have been "
                                        "cancelled", category=UserWarning)
                # loky's words when it replaces a worker that grew (recycle_worker_when_grown): expected here
                warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the "
                                        "executor", category=UserWarning)
                for index, unit in outputs:
                    fold, seed, training = units[index]
                    part = part_path(parts_dir, fold, seed, training)
                    if part is not None:
                        write_part(part, unit)
                    finished[index] = unit
                    bar.update()
                    if on_unit is not None:
                        on_unit(unit_summary(unit), False)
    return [finished[index] for index in range(len(units))], skipped


def recycle_worker_when_grown(limit_bytes: int = WORKER_MEMORY_GROWTH) -> None:
    """In a loky worker process: have loky replace this process once its RSS has grown `limit_bytes` beyond its
    size after its first task (checked after each task, at most once a second, with psutil).

    This is loky's own memory-leak guard (`joblib.externals.loky.process_executor`: the worker leaves cleanly and
    the executor starts another; the tasks and their results are not disturbed), whose bound, 300 MB, is a
    module constant read by the worker loop of this very process: lowering it here touches this worker only.
    """
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = int(limit_bytes)


def _run_unit_in_worker(index: int, corpus: Corpus, fold: Fold, seed: int, training: str,
                        config: ProtocolConfig) -> tuple[int, UnitResult]:
    """`run_unit` in a worker process, on one TensorFlow thread; returns `(index, unit)` without models or scores
    (they stay in the worker: Keras models would be pickled back for nothing). The worker is replaced once it has
    grown `WORKER_MEMORY_GROWTH` (`recycle_worker_when_grown`)."""
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(debug=os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0")
    import tensorflow as tf

    recycle_worker_when_grown()
    # Before TensorFlow's first op in this process (setting the same value again is allowed later); several workers
    # share the cores, and TensorFlow's default is a pool of every core's threads in each.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    unit = run_unit(corpus, fold, seed, training, config)
    unit.models.clear()
    unit.scores.clear()
    return index, unit


@contextlib.contextmanager
def _memory_mapped_features(corpus: Corpus, directory: Path | None):
    """`corpus` with its feature matrix read from a memory-mapped `.npy` file in `directory` (None: the temporary
    directory), which joblib passes to the loky workers by file name, not by copying the matrix into each task (the
    dask workers, which may be on other machines, get the corpus by joblib's `scatter` instead). The file is named
    like `atomic_path`'s temporaries (`.features.<random>.tmp`), so a killed run's copy is deleted by the next run
    with the same `out_dir`; it is deleted on exit."""
    if isinstance(corpus.features, np.memmap):
        yield corpus
        return
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".features.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            np.save(file, corpus.features, allow_pickle=False)
        yield dataclasses.replace(corpus, features=np.load(name, mmap_mode="r"))
    finally:
        os.unlink(name)


@contextlib.contextmanager
def _dask_client(scheduler: str | None, workers: int, *, timeout_seconds: float = 5.0):
    """A `distributed.Client` of the cluster at `scheduler` (`tcp://host:port`), or of a `LocalCluster` of `workers`
    processes of one thread each, started here; closed on exit (the LocalCluster too).

    A scheduler's cluster is checked before any unit is sent: it answers within `timeout_seconds`, a worker joins
    within twice that, every worker runs one thread (a unit sets TensorFlow's and Keras's process-wide seeds, which
    two units in one process would disturb) and there are 2 or more (with one, joblib would run the units here).

    Raises:
        EmoconfError: the scheduler does not answer or its cluster fails a check; the message says what to start.
    """
    import asyncio
    import concurrent.futures
    import logging

    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            nanny_log = logging.getLogger("distributed.nanny")
            stack.callback(nanny_log.setLevel, nanny_log.level)
            # processes of one thread: one unit's TensorFlow and seeds per process. The dashboard (served if bokeh is
            # installed) on a free port: the scheduler's HTTP server would otherwise take 8787, which may be taken
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0"))
            # On close, a worker that imported TensorFlow outlives distributed's 4 s grace and its nanny kills it,
            # as wanted here, with a WARNING line per worker: noise at the end of every run
            stack.callback(nanny_log.setLevel, logging.ERROR)
            yield stack.enter_context(Client(cluster, set_as_default=False))
            return
        from distributed.comm import connect

        async def handshake():
            comm = await connect(scheduler, timeout=timeout_seconds)
            await comm.close()

        # A handshake first: a Client that failed to connect hangs for twice the timeout when it is collected, and
        # prints a traceback. In a thread of its own: its own event loop, even under a notebook's running one.
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
                thread.submit(asyncio.run, handshake()).result()
        except (ValueError, TypeError) as error:
            raise EmoconfError(f"scheduler {scheduler!r}: not a scheduler address ({error}); give the one "
                               "`dask scheduler` prints, e.g. tcp://10.0.0.5:8786", argument="scheduler") from None
        except OSError as error:  # "Timed out trying to connect to tcp://... after 5 s"
            raise EmoconfError(f"scheduler {scheduler!r}: no dask scheduler answered ({error}); start one with "
                               "`dask scheduler` and give the address it prints, e.g. tcp://10.0.0.5:8786",
                               argument="scheduler") from None
        client = stack.enter_context(Client(scheduler, timeout=timeout_seconds, set_as_default=False))
        how = f"with `dask worker {scheduler} --nthreads 1` (`--nworkers N` for N on one machine)"
        try:
            client.wait_for_workers(1, timeout=2 * timeout_seconds)
        except TimeoutError:
            raise EmoconfError(f"scheduler {scheduler!r}: no worker joined within {2 * timeout_seconds:g} s; start "
                               f"2 or more {how}", argument="scheduler") from None
        threads = client.nthreads()
        several = {worker: n for worker, n in threads.items() if n > 1}
        if several:
            worker, n = next(iter(several.items()))
            raise EmoconfError(f"scheduler {scheduler!r}: worker {worker} runs {n} threads, and two units in one "
                               f"process would disturb each other's seeds; start the workers {how}",
                               argument="scheduler")
        if sum(threads.values()) < 2:
            raise EmoconfError(f"scheduler {scheduler!r}: its cluster has 1 worker, and joblib would run the units "
                               f"in this process; start 2 or more {how}", argument="scheduler")
        yield client


def _run_unit_on_dask_worker(index: int, corpus: Corpus, fold: Fold, seed: int, training: str,
                             config: ProtocolConfig) -> tuple[int, UnitResult]:
    """`_run_unit_in_worker` on a dask worker, with Python's `random` to itself (`_python_random_of_this_thread`)."""
    with _python_random_of_this_thread():
        return _run_unit_in_worker(index, corpus, fold, seed, training, config)


@contextlib.contextmanager
def _python_random_of_this_thread():
    """Python's module-level `random` functions draw, while inside, from the shared generator in this thread only,
    and from a generator of their own in every other thread.

    Keras draws the seeds of layers built without one (`random.randint` in `keras.random.make_default_seed`) from
    the generator `keras.utils.set_random_seed` seeds. A dask worker's event loop draws from it too, at times that
    depend on the messages it sends (`random.sample` in `dask.sizeof`, sizing each outgoing message), so without
    this a unit's networks would differ from run to run. A loky worker has no other thread: nothing to do there.
    """
    import random
    import threading

    owner = threading.get_ident()
    shared, others = random.random.__self__, random.Random()
    originals = {name: function for name, function in vars(random).items()
                 if getattr(function, "__self__", None) is shared}

    def per_thread(name: str, function: Callable) -> Callable:
        other = getattr(others, name)
        return lambda *args, **kwargs: (function if threading.get_ident() == owner else other)(*args, **kwargs)

    for name, function in originals.items():
        setattr(random, name, per_thread(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(random, name, function)
