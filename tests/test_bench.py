"""`emoconf bench`: the figures it reports, their arithmetic and the table (timings are not checked)."""

import json
import math

from emoconf_tf.benchmarks.harness import TARGETS, bench_table, forward_flops, layer_shapes, train_flops
from emoconf_tf.cli import main

ISSUE_KEYS = (
    "train_samples_per_s", "roofline_samples_per_s", "train_vs_roofline", "sklearn_samples_per_s",
    "serving_p50_ms", "serving_p99_ms", "serving_batch256_samples_per_s", "serving_vs_roofline",
    "keras_predict_p50_ms", "extract_rtf_1", "extract_speedup_2", "protocol_s", "protocol_utterances",
    "peak_rss_gb", "features_gb", "scaling_exponent",
)


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
    assert lines["serving_default batch 1, p50"].endswith("NO")
    assert lines["protocol peak RSS"].endswith("yes")  # 2.9 <= 1.5 * 2.0
    assert lines["protocol wall time (PAPER_METHODS)"].endswith("n/a")  # a full-size target on a smaller run
    assert table.splitlines()[-1] == "targets met: 2 of 3"


def test_bench_tiny_writes_every_figure_as_a_number(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--json", str(path)]) == 0
    results = json.loads(path.read_text())
    missing = [key for key in ISSUE_KEYS if key not in results]
    assert not missing
    assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in results.values())
    assert results["protocol_utterances"] == 510  # the tiny corpus: 340 / 70 / 100
    out = capsys.readouterr().out
    for target in TARGETS:
        assert target.text in out
