"""`emoconf bench`: the figures it reports, their arithmetic and the table (timings are not checked)."""

import contextlib
import io
import json
import math

import pytest

from emoconf_tf.benchmarks.figures import TARGETS
from emoconf_tf.benchmarks.harness import PARTS, bench_table
from emoconf_tf.benchmarks.roofline import forward_flops, layer_shapes, train_flops
from emoconf_tf.cli import main

ISSUE_KEYS = (
    "train_samples_per_s", "roofline_samples_per_s", "train_vs_roofline", "sklearn_samples_per_s",
    "serving_p50_ms", "serving_p99_ms", "serving_batch256_samples_per_s", "serving_vs_roofline",
    "keras_predict_p50_ms", "extract_rtf_1", "extract_speedup_2", "protocol_s", "protocol_utterances",
    "peak_rss_gb", "features_gb", "scaling_exponent",
)
# issue 20 item 4: the default export (recommended) beside the paper export (--score emoconfidnet), same run
DEFAULT_EXPORT_KEYS = (
    "serving_default_export_p50_ms", "serving_default_export_p99_ms", "serving_default_export_batch256_samples_per_s",
    "serving_default_export_vs_paper_p50", "serving_default_export_vs_paper_p99",
    "serving_default_export_vs_paper_batch256", "serving_default_export_1thread_p50_ms",
    "serving_default_export_classifiers", "serving_default_export_flops_vs_paper",
)
# the protocol's early-stopped fit, epoch_loop beside Keras's model.fit (part training)
EARLY_STOPPED_FIT_KEYS = ("early_stopped_fit_s", "early_stopped_keras_fit_s", "early_stopped_fit_speedup",
                          "early_stopped_fit_identical")
# issue 22 item 4: protocol_small, the serial run (baseline) beside the --jobs run, one after the other
PROTOCOL_SMALL_KEYS = (
    "protocol_small_serial_s", "protocol_small_jobs_s", "protocol_small_jobs_vs_serial",
    "protocol_small_serial_peak_rss_gb", "protocol_small_jobs_peak_rss_gb", "protocol_small_jobs_vs_serial_rss",
    "protocol_small_results_equal", "protocol_small_utterances", "protocol_small_features", "protocol_small_units",
    "protocol_small_jobs",
)


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """`(figures, printed table)` of one `emoconf bench --tiny` of every part (protocol_small is not in the default
    parts), shared by the tests that read it."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--tiny", "--parts", ",".join(PARTS), "--json", str(path)]) == 0
    return json.loads(path.read_text()), out.getvalue()


def test_flops_per_sample_of_a_small_classifier():
    shapes = layer_shapes(10, units=4, num_classes=2)  # 10 -> 4 -> 4 -> 2
    # forward: 2 * (10*4 + 4*4 + 4*2) = 2 * 64 = 128
    assert forward_flops(shapes) == 128
    # training: forward 128 + kernel gradients 128 + input gradients of layers 2 and 3: 2 * (16 + 8) = 48
    assert train_flops(shapes) == 304


def test_table_marks_each_target_met_missed_or_not_applicable():
    results = {"bench_full_size": 0, "features_gb": 2.0, "train_vs_roofline": 0.75, "serving_p50_ms": 0.9,
               "peak_rss_gb": 2.9, "protocol_s": 900.0}
    table = bench_table(results)
    lines = {line.split("  ")[0].strip(): line for line in table.splitlines()}
    assert lines["training: fit / roofline"].endswith("yes")
    assert lines["serving_default batch 1, p50, paper export"].endswith("NO")
    assert lines["protocol peak RSS"].endswith("yes")  # 2.9 <= 1.5 * 2.0
    assert lines["protocol wall time (PAPER_METHODS)"].endswith("n/a")  # a full-size target on a smaller run
    assert table.splitlines()[-1] == "targets met: 2 of 3"


def test_table_shows_the_default_export_beside_the_paper_export_with_one_target_mark():
    results = {"bench_full_size": 0, "serving_p50_ms": 0.6, "serving_default_export_p50_ms": 1.2,
               "serving_default_export_vs_paper_p50": 2.0, "serving_default_export_score": "recommended (msp)"}
    table = bench_table(results).splitlines()
    paper = [line for line in table if line.split("  ")[0].strip() == "serving_default batch 1, p50, paper export"]
    baseline = [line for line in table if line.strip().startswith("baseline: paper export (--score emoconfidnet)")]
    assert paper[0].endswith("<= 0.5 ms              NO")
    assert baseline[0].endswith("0.600 ms")  # the same figure again, without its target
    assert any(line.startswith("default export serves") and line.endswith("recommended (msp)") for line in table)
    assert any(line.strip().startswith("default / paper, p50") and line.endswith("2.00x") for line in table)
    assert table[-1] == "targets met: 0 of 1"


def test_bench_tiny_writes_every_figure_as_a_number(tiny_bench):
    results, out = dict(tiny_bench[0]), tiny_bench[1]
    missing = [key for key in ISSUE_KEYS + DEFAULT_EXPORT_KEYS + PROTOCOL_SMALL_KEYS + EARLY_STOPPED_FIT_KEYS
               if key not in results]
    assert not missing
    # what the default export serves is text (ExportResult.score); every other figure is a number
    assert results.pop("serving_default_export_score").startswith("recommended")
    assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in results.values())
    assert results["protocol_utterances"] == 510  # the tiny corpus: 340 / 70 / 100
    # the ratios are of the figures beside them
    assert math.isclose(results["serving_default_export_vs_paper_p50"],
                        results["serving_default_export_p50_ms"] / results["serving_p50_ms"])
    assert math.isclose(results["serving_default_export_vs_paper_batch256"],
                        results["serving_default_export_batch256_samples_per_s"]
                        / results["serving_batch256_samples_per_s"])
    # forward FLOPs, D = 6,373: a classifier 2 * (6373*256 + 256*256 + 256*5) = 3,396,608, EmoConfidNet's head
    # 2 * (256*256 + 256*256 + 256*5) = 264,704; the paper export 3,661,312, each ensemble member adds a classifier
    members = results["serving_default_export_classifiers"] - 1
    assert math.isclose(results["serving_default_export_flops_vs_paper"], 1 + members * 3396608 / 3661312)
    for target in TARGETS:
        assert target.text in out
    # the epoch loop trains the weights of Keras's fit, and the ratio is of the two times beside it
    assert results["early_stopped_fit_identical"] is True
    assert math.isclose(results["early_stopped_fit_speedup"],
                        results["early_stopped_keras_fit_s"] / results["early_stopped_fit_s"])


def test_bench_tiny_protocol_small_gives_the_serial_results_with_two_workers(tiny_bench):
    results, out = tiny_bench
    assert results["protocol_small_results_equal"] == 1
    # the tiny size: 300 rows x 47 features, the five sessions in 3 folds, raw training only: 3 units
    assert (results["protocol_small_utterances"], results["protocol_small_features"]) == (300, 47)
    assert (results["protocol_small_units"], results["protocol_small_jobs"]) == (3, 2)
    assert math.isclose(results["protocol_small_jobs_vs_serial"],
                        results["protocol_small_jobs_s"] / results["protocol_small_serial_s"])
    # two workers and the protocol's own process (and loky's resource tracker) hold more than one process does
    assert results["protocol_small_jobs_peak_rss_gb"] > results["protocol_small_serial_peak_rss_gb"] > 0
    rows = {line.strip().split("  ")[0]: line for line in out.splitlines()}
    assert rows["protocol_small results.csv identical, jobs vs serial"].endswith("yes")
    assert rows["protocol_small wall time, jobs run"].endswith(f"{results['protocol_small_jobs_s']:,.1f} s")
    assert rows["baseline: serial run (jobs=1)"].endswith(f"{results['protocol_small_serial_s']:,.1f} s")


def test_table_writes_a_check_as_yes_or_no():
    for equal, word in ((1, "yes"), (0, "no")):
        table = bench_table({"bench_full_size": 0, "protocol_small_results_equal": equal}).splitlines()
        assert table[2] == f"{'protocol_small results.csv identical, jobs vs serial':<56} {word:>20}"
