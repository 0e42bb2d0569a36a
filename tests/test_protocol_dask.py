"""`run_protocol(..., backend="dask")`: units on the workers of a dask.distributed cluster, with the serial run's
tables and its resume.

The corpus is tiny (240 rows, 12 features, five sessions gathered into three folds) and every network trains 2
epochs on the filtered training set: three units, checked for where they run and what comes back, not for what they
learn. The cluster is a `LocalCluster` of two processes reached through its scheduler's address, as a remote one
would be.
"""

import shutil
import socket

import pandas as pd
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.evaluation.protocol import ProtocolConfig, run_protocol, write_tables
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.training import TrainingConfig

import distributed  # noqa: E402  the `dask` extra, in `dev` too: CI always runs these

CONFIG = ProtocolConfig(cv="group", folds=3, trainings=("filtered",), methods=("emoconfidnet", "top2_margin"),
                        training=TrainingConfig(max_epochs=2, batch_size=64))
TABLES = ("results", "per_class", "runs", "selective", "choices", "predictions", "filter_counts")
WRITTEN = ("results", "per_class", "runs", "selective", "choices", "predictions")
UNITS = 3  # 3 folds x 1 seed x 1 training


@pytest.fixture(scope="module")
def corpus():
    return make_synthetic_corpus(n_utterances=240, num_features=12)


@pytest.fixture(scope="module")
def serial(corpus, tmp_path_factory):
    """`(outputs, out_dir)` of the serial run (jobs=1, loky's default), its tables written."""
    out_dir = tmp_path_factory.mktemp("serial")
    outputs = run_protocol(corpus, CONFIG, out_dir, progress=False)
    write_tables(outputs, out_dir)
    return outputs, out_dir


@pytest.fixture(scope="module")
def scheduler():
    """The address of a two-worker cluster, one thread and one process each (what `dask worker --nthreads 1`
    starts)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cluster_gives_the_serial_runs_tables_and_parts_exactly(serial, corpus, scheduler, tmp_path):
    serial_outputs, serial_dir = serial
    calls = []
    outputs = run_protocol(corpus, CONFIG, tmp_path, progress=False, backend="dask", scheduler=scheduler,
                           on_unit=lambda summary, resumed: calls.append((summary, resumed)))
    write_tables(outputs, tmp_path)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(outputs, name), getattr(serial_outputs, name), check_exact=True,
                                      obj=name)
    for name in WRITTEN:
        assert (tmp_path / f"{name}.csv").read_bytes() == (serial_dir / f"{name}.csv").read_bytes(), name
    names = sorted(path.name for path in (serial_dir / "parts").iterdir())
    assert len(names) == 2 * UNITS and sorted(path.name for path in (tmp_path / "parts").iterdir()) == names
    for name in names:
        assert (tmp_path / "parts" / name).read_bytes() == (serial_dir / "parts" / name).read_bytes(), name
    assert sorted(summary["fold"] for summary, _ in calls) == [0, 1, 2]  # on_unit once per unit, as they arrive
    assert not any(resumed for _, resumed in calls) and outputs.skipped_units == 0
    assert not list(tmp_path.glob(".*.tmp"))  # no memory-mapped copy: the corpus went to the workers by scatter


def test_resume_on_the_cluster_trains_only_the_missing_unit(serial, corpus, scheduler, tmp_path):
    # a serial run's out_dir resumed on the cluster: the backend is not one of the settings protocol.json records
    _, serial_dir = serial
    out_dir = tmp_path / "resumed"
    shutil.copytree(serial_dir, out_dir)
    (out_dir / "parts" / "fold1_seed0_filtered.json").unlink()
    calls = []
    outputs = run_protocol(corpus, CONFIG, out_dir, progress=False, backend="dask", scheduler=scheduler,
                           on_unit=lambda summary, resumed: calls.append((summary["fold"], resumed)))
    assert outputs.skipped_units == UNITS - 1
    assert sorted(calls) == [(0, True), (1, False), (2, True)]
    write_tables(outputs, out_dir)
    for name in WRITTEN:  # compared as written: predictions read back from parts/ are float64, as in any resume
        assert (out_dir / f"{name}.csv").read_bytes() == (serial_dir / f"{name}.csv").read_bytes(), name


def test_a_malformed_scheduler_address_is_refused_without_waiting(corpus, tmp_path):
    # one that does not answer: test_cli_with_a_scheduler_that_does_not_answer_prints_one_error_line (5 s)
    with pytest.raises(EmoconfError, match=r"scheduler 'nonsense://x': not a scheduler address"):
        run_protocol(corpus, CONFIG, tmp_path, progress=False, backend="dask", scheduler="nonsense://x")


@pytest.mark.parametrize(("threads", "message"), [
    (2, r"runs 2 threads, and two units in one process would disturb"),  # they share process-wide seeds
    (1, r"its cluster has 1 worker, and joblib would run the units in this process"),
])
def test_a_cluster_of_one_worker_or_of_a_worker_of_two_threads_is_refused(corpus, tmp_path, threads, message):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=threads, processes=False,
                                  dashboard_address=":0") as cluster:
        with pytest.raises(EmoconfError, match=rf"{message}.*`dask worker .* --nthreads 1`"):
            run_protocol(corpus, CONFIG, tmp_path, progress=False, backend="dask",
                         scheduler=cluster.scheduler_address)


@pytest.mark.parametrize(("options", "message"), [
    ({"backend": "ray"}, r"backend 'ray': choose 'loky' .* or 'dask'"),
    ({"scheduler": "tcp://127.0.0.1:8786"}, r"scheduler 'tcp://127.0.0.1:8786': .* for `backend` 'dask', not 'loky'"),
    ({"backend": "dask", "jobs": 1}, r"jobs 1: `backend` 'dask' without a `scheduler` starts a LocalCluster"),
    ({"backend": "dask", "jobs": 4, "scheduler": "tcp://127.0.0.1:8786"}, r"jobs 4: with a dask `scheduler`"),
])
def test_backend_options_are_checked_before_anything_is_written(corpus, tmp_path, options, message):
    with pytest.raises(EmoconfError, match=message) as caught:
        run_protocol(corpus, CONFIG, tmp_path / "out", progress=False, **options)
    assert caught.value.argument == next(iter(options)) if len(options) == 1 else caught.value.argument == "jobs"
    assert not (tmp_path / "out").exists()


def test_dask_without_distributed_installed_names_the_extra(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(EmoconfError, match=r'pip install "emoconf-tf\[dask\]"'):
        run_protocol(corpus, CONFIG, tmp_path, progress=False, backend="dask", jobs=2)


def test_cli_accepts_backend_dask_with_a_scheduler():
    from emoconf_tf.cli import build_parser

    args = build_parser().parse_args(["reproduce", "--table", "features.csv", "--backend", "dask",
                                      "--scheduler", "tcp://10.0.0.5:8786"])
    assert (args.backend, args.scheduler, args.jobs) == ("dask", "tcp://10.0.0.5:8786", 1)
    args = build_parser().parse_args(["demo", "--backend", "dask", "--jobs", "2"])
    assert (args.backend, args.scheduler, args.jobs) == ("dask", None, 2)
    assert build_parser().parse_args(["demo"]).backend == "loky"


@pytest.mark.parametrize(("options", "message"), [
    (["--backend", "dask"], "--jobs 1: --backend 'dask' without a --scheduler starts a LocalCluster of --jobs worker"),
    (["--scheduler", "tcp://127.0.0.1:8786"],
     "--scheduler 'tcp://127.0.0.1:8786': a scheduler address is for --backend 'dask', not 'loky'"),
    (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--jobs", "3"],
     "--jobs 3: with a dask --scheduler, its cluster's worker threads decide how many units run at once; leave "
     "--jobs at 1"),
])
def test_cli_refuses_backend_options_that_do_not_fit_in_one_line(tmp_path, capsys, options, message):
    from emoconf_tf.cli import main

    assert main(["demo", "--out", str(tmp_path / "demo"), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "demo").exists()


def test_cli_with_a_scheduler_that_does_not_answer_prints_one_error_line(tmp_path, capsys):
    # run_protocol raises EmoconfError after 5 s, which main prints in one line (any other exception: a traceback)
    from emoconf_tf.cli import main

    address = f"tcp://127.0.0.1:{_free_port()}"
    assert main(["demo", "--out", str(tmp_path / "demo"), "--size", "240", "--num-features", "12",
                 "--backend", "dask", "--scheduler", address]) == 2
    err = capsys.readouterr().err
    # the progress bar, still at 0 units, stays above the error (it is drawn before the cluster is reached)
    assert "Traceback" not in err and err.count("emoconf demo: error: ") == 1
    assert err.strip().splitlines()[-1].startswith(f"emoconf demo: error: --scheduler '{address}': no dask scheduler "
                                                   "answered (Timed out trying to connect")
