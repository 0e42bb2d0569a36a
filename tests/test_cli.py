"""The `emoconf` command line: help, errors in one line, and small real runs."""

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emoconf_tf import EmoconfError, __version__
from emoconf_tf.cli import build_parser, main
from emoconf_tf.cli.protocol_options import protocol_config
from emoconf_tf.corpus import write_features_table
from emoconf_tf.synthetic import make_synthetic_corpus

TINY = ["--max-epochs", "2", "--batch-size", "64"]


# The nine commands, in the order `emoconf --help` lists them, and an option (or argument) each one's help shows.
COMMANDS = {
    "demo": "--out",
    "reproduce": "--table",
    "train": "--synthetic",
    "build": "--manual-dir",
    "export-table": "--data-dir",
    "export": "--default-rejection",
    "inspect": "path",
    "predict": "--model",
    "bench": "--quick",
}


def test_the_parser_has_the_nine_commands():
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert list(commands.choices) == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: emoconf " + command) and COMMANDS[command] in out


def test_console_script_help_runs_without_tensorflow_start_up_cost():
    result = subprocess.run([sys.executable, "-m", "emoconf_tf.cli", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert re.findall(r"^ {4}(\S+)", result.stdout, re.MULTILINE) == list(COMMANDS)  # each at its help line
    code = "import sys, emoconf_tf.cli; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_python_m_emoconf_tf_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "emoconf_tf", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"emoconf-tf {__version__}"


# Each is refused in one line naming the argument, before TensorFlow is imported or a corpus is generated or read.
BAD_ARGUMENTS = [
    (["demo", "--seeds", "0"], "--seeds must be at least 1"),
    (["demo", "--rejection-modes", "x"], "--rejection-modes 'x': choose global (one threshold"),
    (["demo", "--threshold-source", "validation,weekly"], "--threshold-source 'weekly': choose validation (thresholds"),
    (["reproduce", "--table", "t.csv", "--threshold-source", "batch"], "--threshold-source batch: must include "
                                                                         "validation"),
    (["demo", "--trainings", "raw,fitered"], "--trainings 'raw,fitered': choose raw, filtered"),
    (["demo", "--methods", "emoconfidnet,margin"], "--methods 'emoconfidnet,margin': give all, paper or"),
    (["demo", "--mc-passes", "0"], "--mc-passes must be at least 1"),
    (["demo", "--ensemble-members", "0"], "--ensemble-members must be at least 1"),
    (["demo", "--max-epochs", "0"], "--max-epochs must be at least 1"),
    (["demo", "--learning-rate", "0"], "--learning-rate 0.0: must be a positive number"),
    (["demo", "--filter-rules", "happy=low_arousl"], "--filter-rules: conflict rule for 'happy': unknown"),
    (["demo", "--filter-midpoint", "nan"], "--filter-midpoint nan: expected a finite number"),
    (["demo", "--size", "0"], "--size must be at least 1"),
    (["demo", "--jobs", "0"], "--jobs 0: give 1 or more worker processes, or -1 for one per CPU core"),
    (["reproduce", "--table", "t.csv", "--jobs", "-2"], "--jobs -2: give 1 or more worker processes, or -1 for"),
    (["train", "--synthetic", "--rejection-mode", "perclass"], "--rejection-mode 'perclass': choose global"),
    (["train", "--synthetic", "--fold", "-1"], "--fold must be 0 or more"),
    (["train", "--synthetic", "--score", "tcp"], "--score tcp: cannot be served: its head is trained for"),
    (["reproduce", "--table", "t.csv", "--folds", "5"], "--folds 5: folds are made from groups or speakers; add --cv"),
    (["reproduce", "--table", "t.csv", "--cv", "group", "--folds", "2"], "--folds 2: need at least 3"),
    (["predict", "t.csv", "--model", "m", "--per-batch"], "--per-batch needs --rejection"),
    (["reproduce", "--table", "missing.csv"], "missing.csv: no such file"),
    (["reproduce", "--table", "t.csv", "--seeds", "0"], "--seeds must be at least 1"),
    (["reproduce", "--tfds", "iemocap", "--scale", "1-5"], "--scale '1-5': expected two numbers 'LO,HI'"),
    (["reproduce", "--tfds", "iemocap", "--classes", "happy,,sad"], "--classes happy,,sad: class names must be"),
    (["build", "iemocap", "--manual-dir", ".", "--workers", "0"], "--workers must be at least 1"),
    (["export", "run", "--default-rejection", "20"], "--default-rejection 20.0 is outside [0, 1)"),
    (["export", "run", "--default-rejection", "1.0"], "--default-rejection 1.0 is outside [0, 1); give a fraction"),
    (["export", "run", "--default-rejection", "-0.1"], "--default-rejection -0.1 is outside [0, 1); give a fraction"),
    (["predict", "t.csv", "--model", "m", "--rejection", "1"], "--rejection 1.0 is outside [0, 1)"),
    (["bench", "--parts", "serve"], "--parts 'serve': choose from training, serving"),
]


def test_bad_arguments_fail_in_one_line_before_tensorflow_is_imported(tmp_path):
    # One fresh interpreter runs them all: TensorFlow must still be absent from sys.modules after the last.
    script = (
        "import contextlib, io, json, sys, time\n"
        "from emoconf_tf.cli import main\n"
        "results = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    start = time.perf_counter()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n"
        "            status = main(argv)\n"
        "        except SystemExit as exit_:  # argparse refused it\n"
        "            status = f'argparse exit {exit_.code}'\n"
        "    results.append([status, err.getvalue(), time.perf_counter() - start])\n"
        "print(json.dumps({'results': results, 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    argvs = [argv for argv, _ in BAD_ARGUMENTS]
    result = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tensorflow"] is False
    for (argv, needle), (status, err, seconds) in zip(BAD_ARGUMENTS, report["results"]):
        assert status == 2 and err.count("\n") == 1 and needle in err, (argv, err)
        assert err.startswith(f"emoconf {argv[0]}: error: "), (argv, err)
    seeds_seconds = report["results"][0][2]
    assert seeds_seconds < 1.0, f"demo --seeds 0 took {seeds_seconds:.2f} s"  # about a millisecond
    assert not any(tmp_path.iterdir())  # no corpus, no output directory


def test_cli_defaults_and_choices_are_the_settings():
    from emoconf_tf import settings

    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    reproduce = {action.dest: action for action in commands.choices["reproduce"]._actions}
    train = {action.dest: action for action in commands.choices["train"]._actions}
    assert tuple(reproduce["recommend_by"].choices) == settings.CRITERIA
    assert reproduce["recommend_by"].default == settings.DEFAULT_CRITERION
    assert tuple(reproduce["cv"].choices) == settings.CV_MODES and tuple(train["training"].choices) == settings.TRAININGS
    assert reproduce["mc_passes"].default == settings.DEFAULT_MC_DROPOUT_PASSES
    assert reproduce["ensemble_members"].default == train["ensemble_members"].default == settings.DEFAULT_MEMBERS
    assert reproduce["rejection_modes"].default == ",".join(settings.DEFAULT_REJECTION_MODES)
    assert reproduce["threshold_source"].default == ",".join(settings.DEFAULT_THRESHOLD_SOURCES)
    assert train["score"].default == settings.DEFAULT_SERVED_SCORE
    config = protocol_config(build_parser().parse_args(["reproduce", "--table", "x.csv"]), cv="split", seeds=(0,),
                             trainings=settings.TRAININGS)
    assert config == settings.ProtocolConfig(methods=settings.ALL_METHODS)  # every default is the library's


def test_build_workers_default_to_the_cpu_count_and_help_says_so(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default: the CPU count, os.cpu_count(), {os.cpu_count() or 1} here)" in help_text
    assert build_parser().parse_args(["build", "iemocap", "--manual-dir", "x"]).workers is None


@pytest.mark.parametrize("given, expected", [([], os.cpu_count() or 1), (["--workers", "1"], 1)])
def test_build_passes_the_cpu_count_or_the_given_workers_to_build_dataset(given, expected, tmp_path, monkeypatch,
                                                                           capsys):
    import tfds_builders.build

    seen = {}

    def record_workers(*args, num_workers, **kwargs):
        seen["num_workers"] = num_workers
        raise EmoconfError("recorded")

    monkeypatch.setattr(tfds_builders.build, "build_dataset", record_workers)
    assert main(["build", "iemocap", "--manual-dir", str(tmp_path), "--data-dir", str(tmp_path / "d"), *given]) == 2
    assert seen == {"num_workers": expected} and "recorded" in capsys.readouterr().err


def test_table_without_a_recorded_scale_needs_scale(tmp_path, capsys):
    from emoconf_tf.corpus import corpus_frame

    path = tmp_path / "iemocap_compare.csv"
    frame = corpus_frame(make_synthetic_corpus(n_utterances=60, num_features=8))
    frame.drop(columns=["scale"]).to_csv(path, index=False)
    assert main(["reproduce", "--table", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"emoconf reproduce: error: {path}: the table does not record its AVD scale (no column 'scale'); "
                   "give it (--scale 1,5 for IEMOCAP, --scale 1,7 for MSP-Podcast; scale=(1, 5) in Python), or add a "
                   "column 'scale' holding 'LO,HI' on every row")
    # With --scale the table is read (then its single group stops --cv group before any training).
    frame.drop(columns=["scale"]).assign(group="session1").to_csv(path, index=False)
    argv = ["reproduce", "--table", str(path), "--scale", "1,7", "--cv", "group", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "AVD scale 1-7 (--scale); SYNTHETIC data" in captured.out and "at least 3 groups" in captured.err


def test_train_records_the_tables_merged_categories_and_scale_in_run_json(tmp_path):
    import dataclasses

    from emoconf_tf.serving.rundir import load_run

    corpus = make_synthetic_corpus(n_utterances=300, num_features=16, seed=3)
    corpus = dataclasses.replace(corpus, merged_labels=(("excited", "happy"),))
    table = write_features_table(corpus, tmp_path / "t.parquet")
    assert main(["train", "--table", str(table), "--out", str(tmp_path / "run"), *TINY]) == 0
    info = load_run(tmp_path / "run").info
    assert info["merged_labels"] == {"excited": "happy"} and info["scale"] == [1.0, 7.0]
    assert info["synthetic"] is True  # from the table's synthetic column, not its name


def test_reproduce_with_group_folds_runs_every_fold(tmp_path, capsys):
    corpus = make_synthetic_corpus(n_utterances=400, num_features=24, seed=2)
    # three sessions -> three folds (the synthetic corpus has five; every fold is checked, not their number)
    corpus = dataclasses.replace(corpus, group=np.array([f"session{i % 3 + 1}" for i in range(len(corpus))],
                                                        dtype=object))
    table = write_features_table(corpus, tmp_path / "mine.parquet")
    out = tmp_path / "out"
    # the paper's two methods: every method through the CLI is test_demo_labels_everything_synthetic's run
    argv = ["reproduce", "--table", str(table), "--cv", "group", "--trainings", "filtered", "--methods", "paper",
            "--out", str(out), *TINY]
    assert main(argv) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.fold) == [0, 1, 2]
    for name in ("results.csv", "per_class.csv", "runs.csv", "selective.csv", "choices.csv", "predictions.csv",
                 "report.md", "curves.png", "manifest.json"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "t20" in printed and "fold 2" in printed
    # a rerun reuses every finished fold
    assert main(argv) == 0
    assert "reused 3 finished" in capsys.readouterr().out


def test_demo_labels_everything_synthetic(tmp_path, capsys):
    out = tmp_path / "demo"
    # every method (the default), on the raw training set only: what is checked is the SYNTHETIC label
    assert main(["demo", "--out", str(out), "--size", "300", "--num-features", "16", "--trainings", "raw", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC corpus" in printed
    report = (out / "report.md").read_text()
    assert "SYNTHETIC" in report.upper()
    assert json.loads((out / "manifest.json").read_text())["synthetic"] is True


def test_train_writes_a_loadable_run_directory(tmp_path):
    from emoconf_tf.serving.rundir import load_run

    out = tmp_path / "run"
    assert main(["train", "--synthetic", "--size", "300", "--num-features", "16", "--out", str(out), *TINY]) == 0
    run = load_run(out)
    assert run.class_names == ["angry", "disgusted", "happy", "neutral", "sad"]
    assert run.info["synthetic"] and run.info["training"] == "filtered" and run.info["num_features"] == 16
    assert len(run.feature_names) == 16 and list(run.validation.columns)[:3] == ["id", "label", "predicted"]
    # a second train into the same directory is refused rather than overwriting
    assert main(["train", "--synthetic", "--size", "300", "--num-features", "16", "--out", str(out), *TINY]) == 2


def test_threshold_source_reaches_the_protocol_config():
    def sources(argv):
        return protocol_config(build_parser().parse_args(argv), cv="split", seeds=(0,),
                               trainings=("raw",)).threshold_sources

    assert sources(["demo"]) == ("validation", "batch")  # the default
    assert sources(["reproduce", "--table", "x.csv", "--threshold-source", "validation, online"]) == (
        "validation", "online")
    # `train` has no such option: its run directory's results.csv keeps the validation rows
    assert sources(["train", "--synthetic"]) == ("validation",)


def test_parser_defaults_are_the_papers():
    args = build_parser().parse_args(["reproduce", "--table", "x.csv"])
    assert (args.patience, args.learning_rate, args.cv, args.seeds) == (10, 1e-4, "split", 1)
    assert args.scale is None  # the table's recorded scale; a --scale given overrides it
    assert not args.filter_inclusive  # the strict midpoint comparison


# === A library error names its Python argument; main prints the command's flag in its place ===

@pytest.mark.parametrize("command, error, printed", [
    # the argument is the flag's dest
    ("export", EmoconfError("default_rejection 2.0 is outside [0, 1)", argument="default_rejection"),
     "--default-rejection 2.0 is outside [0, 1)"),
    ("reproduce", EmoconfError("folds 2: need at least 3", argument="folds"), "--folds 2: need at least 3"),
    # the library's name differs from the dest: the small map in cli/flags.py
    ("demo", EmoconfError("mc_dropout_passes 0: must be at least 1", argument="mc_dropout_passes"),
     "--mc-passes 0: must be at least 1"),
    ("train", EmoconfError("out_dir runs/x: already holds a finished run", argument="out_dir"),
     "--out runs/x: already holds a finished run"),
    ("train", EmoconfError("fold_index 7: the corpus has 5 fold(s)", argument="fold_index"),
     "--fold 7: the corpus has 5 fold(s)"),
    ("reproduce", EmoconfError("threshold_sources batch: must include validation", argument="threshold_sources"),
     "--threshold-source batch: must include validation"),
    ("train", EmoconfError("trainings ['filtered']: no AVD", argument="trainings"), "--training ['filtered']: no AVD"),
    # a later mention in backticks too
    ("demo", EmoconfError("jobs 1: a LocalCluster of `jobs` workers; leave `jobs`", argument="jobs"),
     "--jobs 1: a LocalCluster of --jobs workers; leave --jobs"),
    ("reproduce", EmoconfError("out: written by 0.0.1; use another `out_dir`", argument="out_dir"),
     "out: written by 0.0.1; use another --out"),
    # any argument in backticks that the command has a flag for, not only the error's own
    ("demo", EmoconfError("jobs 1: `backend` 'dask' without a `scheduler`; `nonesuch`", argument="jobs"),
     "--jobs 1: --backend 'dask' without a --scheduler; `nonesuch`"),
    # unchanged: no argument, no flag for it in this command, a positional, or a message not starting with it
    ("reproduce", EmoconfError("t.csv: no such file"), "t.csv: no such file"),
    ("reproduce", EmoconfError("taus [-1.0]: every temperature must be positive", argument="taus"),
     "taus [-1.0]: every temperature must be positive"),
    ("export", EmoconfError("run_dir x: missing", argument="run_dir"), "run_dir x: missing"),
    ("train", EmoconfError("seeds is empty", argument="seed"), "seeds is empty"),  # a longer name than --seed's
])
def test_main_prints_a_library_errors_argument_as_the_commands_flag(command, error, printed, capsys, monkeypatch):
    from emoconf_tf import cli

    def fail(args):
        raise error

    module = {"export-table": cli.export_table}.get(command) or getattr(cli, command)
    monkeypatch.setattr(module, "run", fail)  # what register_subparser sets as the command's run
    argv = {"demo": ["demo"], "reproduce": ["reproduce", "--table", "t.csv"], "train": ["train", "--synthetic"],
            "export": ["export", "run"]}[command]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"emoconf {command}: error: {printed}\n"


def test_a_real_library_error_reaches_the_user_with_the_flag(tmp_path, capsys):
    # folds.check_fold_count raises "folds 2: ..." with argument="folds"; the user reads --folds
    from emoconf_tf.folds import check_fold_count

    with pytest.raises(EmoconfError, match=r"^folds 2: need at least 3") as raised:
        check_fold_count(2)
    assert raised.value.argument == "folds"
    assert main(["reproduce", "--table", str(tmp_path / "t.csv"), "--cv", "group", "--folds", "2"]) == 2
    assert capsys.readouterr().err == ("emoconf reproduce: error: --folds 2: need at least 3 (a test, a validation "
                                       "and a training fold)\n")
