"""`run_protocol(..., jobs=2)`: units in worker processes, with the serial run's tables and its resume.

The corpus is tiny (240 rows, 12 features, five sessions: five folds) and every network trains 2 epochs: what is
checked is where the units run and what comes back, not what they learn.
"""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.evaluation import protocol, workers
from emoconf_tf.evaluation.protocol import ProtocolConfig, run_protocol, write_tables
from emoconf_tf.folds import make_folds
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.training import TrainingConfig

CONFIG = ProtocolConfig(cv="group", methods=("emoconfidnet", "top2_margin", "msp"),
                        training=TrainingConfig(max_epochs=2, batch_size=64))
TABLES = ("results", "per_class", "runs", "selective", "choices", "predictions", "filter_counts")
UNITS = 10  # 5 folds x 1 seed x 2 trainings


@pytest.fixture(scope="module")
def corpus():
    return make_synthetic_corpus(n_utterances=240, num_features=12)


@pytest.fixture(scope="module")
def serial(corpus, tmp_path_factory):
    """`(outputs, out_dir)` of the serial run (jobs=1), its tables written."""
    out_dir = tmp_path_factory.mktemp("serial")
    outputs = run_protocol(corpus, CONFIG, out_dir, progress=False)
    write_tables(outputs, out_dir)
    return outputs, out_dir


@pytest.fixture(scope="module")
def two_workers(corpus, tmp_path_factory):
    """`(outputs, out_dir, calls)` of the same protocol with jobs=2; `calls`: what `on_unit` was given."""
    out_dir = tmp_path_factory.mktemp("two_workers")
    calls = []
    outputs = run_protocol(corpus, CONFIG, out_dir, progress=False, jobs=2,
                           on_unit=lambda summary, resumed: calls.append((summary, resumed)))
    write_tables(outputs, out_dir)
    return outputs, out_dir, calls


def _loky_workers() -> list[psutil.Process]:
    """This process's loky worker processes (not loky's resource tracker)."""
    return [child for child in psutil.Process().children(recursive=True)
            if "loky" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())]


def test_two_workers_give_the_serial_runs_tables_exactly(serial, two_workers):
    (serial_outputs, serial_dir), (outputs, out_dir, _) = serial, two_workers
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(outputs, name), getattr(serial_outputs, name), check_exact=True,
                                      obj=name)
    for name in ("results", "per_class", "runs", "selective", "choices", "predictions"):
        assert (out_dir / f"{name}.csv").read_bytes() == (serial_dir / f"{name}.csv").read_bytes(), name


def test_two_workers_keep_every_unit_in_parts_as_the_serial_run_does(serial, two_workers):
    (_, serial_dir), (_, out_dir, _) = serial, two_workers
    names = sorted(path.name for path in (serial_dir / "parts").iterdir())
    assert len(names) == 2 * UNITS  # a JSON and a predictions CSV per unit
    assert sorted(path.name for path in (out_dir / "parts").iterdir()) == names
    for name in names:
        assert (out_dir / "parts" / name).read_bytes() == (serial_dir / "parts" / name).read_bytes(), name
    assert not list(out_dir.glob(".*.tmp"))  # the memory-mapped copy of the features is gone


def test_two_workers_report_every_unit_once_and_none_resumed(two_workers):
    outputs, _, calls = two_workers
    assert sorted((s["fold"], s["training"]) for s, _ in calls) == sorted(
        (fold, training) for fold in range(5) for training in ("raw", "filtered"))
    assert not any(resumed for _, resumed in calls) and outputs.skipped_units == 0


def test_resume_with_two_workers_trains_only_the_missing_units(serial, corpus, tmp_path):
    # a serial run's --out, resumed with jobs=2: jobs is not one of the settings protocol.json records
    serial_outputs, serial_dir = serial
    out_dir = tmp_path / "resumed"
    shutil.copytree(serial_dir, out_dir)
    missing = ("fold1_seed0_filtered", "fold3_seed0_raw", "fold4_seed0_raw")
    for stem in missing:
        (out_dir / "parts" / f"{stem}.json").unlink()
    kept = {path: path.stat().st_mtime_ns for path in (out_dir / "parts").glob("*.json")}
    calls = []
    outputs = run_protocol(corpus, CONFIG, out_dir, progress=False, jobs=2,
                           on_unit=lambda summary, resumed: calls.append((summary, resumed)))
    assert outputs.skipped_units == UNITS - len(missing)
    assert sorted(f"fold{s['fold']}_seed{s['seed']}_{s['training']}" for s, resumed in calls if not resumed) == sorted(
        missing)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())  # finished parts untouched
    for stem in missing:
        assert (out_dir / "parts" / f"{stem}.json").exists()
    # As in any resume, serial too: predictions read back from parts/ are float64 (compared as written, at %.7g),
    # and a unit's filter counts come back in the JSON's sorted rule order.
    for name in ("results", "per_class", "runs", "selective", "choices"):
        pd.testing.assert_frame_equal(getattr(outputs, name), getattr(serial_outputs, name), check_exact=True,
                                      obj=name)
    key = ["fold", "seed", "rule"]
    pd.testing.assert_frame_equal(outputs.filter_counts.sort_values(key, ignore_index=True),
                                  serial_outputs.filter_counts.sort_values(key, ignore_index=True), check_exact=True)
    write_tables(outputs, out_dir)
    for name in ("results", "per_class", "runs", "selective", "choices", "predictions"):
        assert (out_dir / f"{name}.csv").read_bytes() == (serial_dir / f"{name}.csv").read_bytes(), name


def test_interrupt_keeps_the_finished_units_and_stops_the_workers(corpus, tmp_path):
    def interrupt(summary, resumed):
        raise KeyboardInterrupt  # as Ctrl-C would, in this process, once the first unit has arrived

    with pytest.raises(KeyboardInterrupt):
        run_protocol(corpus, CONFIG, tmp_path, progress=False, jobs=2, on_unit=interrupt)
    assert len(list((tmp_path / "parts").glob("*.json"))) == 1  # the one that arrived; the other was cancelled
    assert not list(tmp_path.glob(".*.tmp"))
    psutil.wait_procs(_loky_workers(), timeout=30)
    assert not _loky_workers()


def _unit_in_worker(corpus, config):
    """Runs in a loky worker: one unit, then what the worker's TensorFlow and feature matrix were."""
    import tensorflow as tf

    fold = make_folds(corpus, config.cv, config.folds)[0]
    index, unit = workers._run_unit_in_worker(7, corpus, fold, 0, "raw", config)
    return {"index": index, "models": len(unit.models), "scores": len(unit.scores),
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "memmap": isinstance(corpus.features, np.memmap), "pid": os.getpid()}


def test_a_worker_runs_tensorflow_on_one_thread_on_memory_mapped_features(corpus, tmp_path):
    from joblib import Parallel, delayed

    with workers._memory_mapped_features(corpus, tmp_path) as shared:
        assert isinstance(shared.features, np.memmap) and np.array_equal(shared.features, corpus.features)
        [report] = Parallel(n_jobs=2, backend="loky")([delayed(_unit_in_worker)(shared, CONFIG)])
    assert not list(tmp_path.iterdir())  # the copy is deleted on exit
    assert report["pid"] != os.getpid() and report["index"] == 7
    assert (report["models"], report["scores"]) == (0, 0)  # no Keras model is sent back
    assert (report["intra_op"], report["inter_op"]) == (1, 1)
    assert report["memmap"]


_BALLAST = []  # in a worker process: what `_grow_and_report` keeps alive


def _grow_and_report(megabytes: int) -> int:
    """A task that leaves its worker `megabytes` larger and returns the worker's pid (loky checks a worker's memory
    after a task at most once a second, hence the sleep)."""
    workers.recycle_worker_when_grown(2**20)
    _BALLAST.append(np.ones(megabytes * 2**20, dtype=np.uint8))
    time.sleep(1.1)
    return os.getpid()


@pytest.mark.filterwarnings("ignore:A worker stopped while some jobs were given to the executor")
def test_a_worker_that_grew_past_the_bound_is_replaced_and_no_task_is_lost():
    from joblib import Parallel, delayed

    pids = Parallel(n_jobs=2, backend="loky", batch_size=1)(delayed(_grow_and_report)(20) for _ in range(6))
    assert len(pids) == 6 and os.getpid() not in pids
    # two workers at a time; each grows 20 MB a task against a bound of 1 MB, so it leaves after its second task at
    # the latest: six tasks need at least three processes (without the guard, two would run them all)
    assert len(set(pids)) >= 3


def test_the_process_that_dispatches_units_to_workers_never_loads_tensorflow(tmp_path):
    # A fresh interpreter: this one has TensorFlow loaded by other tests. The workers train; the parent (the
    # command line, then run_protocol) only sends units and writes what comes back: it holds no TensorFlow runtime
    # (about 0.76 GB RSS), with the library as with the command line.
    script = (
        "import sys\n"
        "from emoconf_tf.cli import main\n"
        f"code = main(['demo', '--size', '240', '--num-features', '12', '--cv', 'group',\n"
        f"             '--trainings', 'raw', '--methods', 'emoconfidnet,top2_margin', '--max-epochs', '1',\n"
        f"             '--jobs', '2', '--out', {str(tmp_path / 'demo')!r}])\n"
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["0", "False", "False"]
    assert len(pd.read_csv(tmp_path / "demo" / "runs.csv")) == 5  # five sessions, raw training
    assert "oneDNN" not in done.stderr  # the workers' TensorFlow start-up lines are muted too


@pytest.mark.parametrize("jobs", [0, -2])
def test_jobs_zero_or_below_minus_one_is_refused_before_anything_is_written(corpus, tmp_path, jobs):
    with pytest.raises(EmoconfError, match=rf"jobs {jobs}: give 1 or more worker processes, or -1 for one per CPU"):
        run_protocol(corpus, CONFIG, tmp_path / "out", progress=False, jobs=jobs)
    assert not (tmp_path / "out").exists()



def test_demo_passes_jobs_to_the_protocol_and_records_it_in_the_manifest(tmp_path, monkeypatch):
    import json

    from emoconf_tf.cli import main

    given = []

    def recording_run_protocol(*args, **kwargs):
        given.append(kwargs.get("jobs"))
        return run_protocol(*args, **kwargs)

    monkeypatch.setattr(protocol, "run_protocol", recording_run_protocol)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "300", "--num-features", "16", "--trainings", "raw",
                 "--jobs", "2", "--max-epochs", "2", "--batch-size", "64"]) == 0
    assert given == [2]
    assert json.loads((out / "manifest.json").read_text())["jobs"] == 2
    assert (out / "parts" / "fold0_seed0_raw.json").exists() and not list(out.glob(".*.tmp"))
