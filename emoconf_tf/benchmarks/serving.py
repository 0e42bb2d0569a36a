"""Bench, part `serving`: batch-1 latency (p50, p99) of the exported `serving_default` signature (serialized
`tf.Example` in), in process; batch-256 throughput against a forward-only matmul chain (`roofline`);
`model.predict` on one sample.

One run trained as `emoconf train` trains it (the default score, `recommended`, with its ensemble members) is
exported as the paper's single network (`--score emoconfidnet`, the figures with targets; also with `--no-fold`,
their baseline) and as the default export (what `recommended` chose, usually `macro_gain_ensemble`: three
classifiers in one graph), timed in turns so that the ratio default / paper is of one moment of the machine. The
same batch-1 latencies with TensorFlow on one thread are measured in a fresh process (`serving_child`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emoconf_tf.benchmarks.child_process import run_child
from emoconf_tf.benchmarks.roofline import MatmulRoofline, forward_flops, layer_shapes
from emoconf_tf.benchmarks.sizes import BATCH_SIZE, HEAD_SHAPES, BenchSize


def _percentiles_ms(call: Callable[[int], object], calls: int, warmup: int = 20) -> tuple[float, float]:
    """p50 and p99 in ms of `call(i)` for i in range(calls)."""
    return _interleaved_percentiles_ms({"call": call}, calls, warmup)["call"]


def _interleaved_percentiles_ms(calls: dict[str, Callable[[int], object]], count: int, warmup: int = 20,
                                block: int = 50) -> dict[str, tuple[float, float]]:
    """p50 and p99 in ms of each call, the calls taking turns in blocks of `block` so that they see the same
    machine (one call at a time would let each disturb the next one's caches and threads)."""
    for i in range(warmup):
        for call in calls.values():
            call(i)
    times = {name: [] for name in calls}
    for first in range(0, count, block):
        for name, call in calls.items():
            for i in range(first, min(first + block, count)):
                start = time.perf_counter()
                call(i)
                times[name].append(time.perf_counter() - start)
    return {name: (float(np.percentile(t, 50) * 1e3), float(np.percentile(t, 99) * 1e3)) for name, t in times.items()}


def batch1_latency(model_dir: str | os.PathLike, rows: np.ndarray, calls: int,
                   others: dict[str, str | os.PathLike] | None = None,
                   ensemble_classifiers: int = 1) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of batch-1 calls, taking turns: `serving` (the exported `serving_default`, one serialized
    `tf.Example`), `empty` (an empty signature: what any in-process call costs), `chain` (the bare forward matmul
    chain of the model's six kernels, classifier and head, with float32 `[1, D]` in), for each entry of
    `others`, the `serving_default` of that export under its name (e.g. `baseline`, the unfolded Keras graph)
    and, with `ensemble_classifiers` > 1, `ensemble_chain` (the bare chains of that many classifiers, each with
    its own kernels, and the head: the matmuls of a `macro_gain_ensemble` export).

    Args:
        model_dir: an exported version directory.
        rows: float32 `[n, D]` raw features; call i sends row `i % n`.
        calls: timed calls of each (after 20 untimed ones).
        others: name -> another exported version directory to time alongside (default: none).
        ensemble_classifiers: classifiers in the `ensemble_chain` floor (default 1: not timed).
    """
    import tensorflow as tf

    from emoconf_tf.serving.export import serialize_examples

    loaded = tf.saved_model.load(os.fspath(model_dir))
    serving_default = loaded.signatures["serving_default"]
    examples = serialize_examples(rows)
    count, num_features = len(examples), rows.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def empty(examples):  # named as the spec: a keyword call under another name is slower (docs/performance.md)
        return {"class_ids": tf.zeros(tf.shape(examples), tf.int64)}

    shapes = layer_shapes(num_features) + list(HEAD_SHAPES)
    kernels = [tf.Variable(np.random.default_rng(2).standard_normal(s, dtype=np.float32) * 0.01) for s in shapes]

    @tf.function(input_signature=[tf.TensorSpec([None, num_features], tf.float32, name="features")])
    def matmul_chain(features):
        h = tf.matmul(tf.matmul(features, kernels[0]), kernels[1])
        g = tf.matmul(tf.matmul(h, kernels[3]), kernels[4])
        return {"probabilities": tf.matmul(h, kernels[2]), "p_hat": tf.matmul(g, kernels[5])}

    empty_call, chain_call = empty.get_concrete_function(), matmul_chain.get_concrete_function()
    calls_by_name = {
        "serving": lambda i: serving_default(examples=tf.constant([examples[i % count]]))["class_ids"].numpy(),
        "empty": lambda i: empty_call(examples=tf.constant([examples[i % count]]))["class_ids"].numpy(),
        "chain": lambda i: chain_call(features=tf.constant(rows[i % count][None]))["probabilities"].numpy(),
    }
    if ensemble_classifiers > 1:
        # Each member reads its own 6.5 MB first-layer kernel, as in the export: at batch 1 that read is the cost.
        member_kernels = [[tf.Variable(np.random.default_rng(3 + j).standard_normal(s, dtype=np.float32) * 0.01)
                           for s in layer_shapes(num_features)] for j in range(ensemble_classifiers - 1)]

        @tf.function(input_signature=[tf.TensorSpec([None, num_features], tf.float32, name="features")])
        def ensemble_chain(features):
            out = matmul_chain(features)
            for first, second, last in member_kernels:
                out["probabilities"] += tf.matmul(tf.matmul(tf.matmul(features, first), second), last)
            return out

        ensemble_call = ensemble_chain.get_concrete_function()
        calls_by_name["ensemble_chain"] = lambda i: ensemble_call(
            features=tf.constant(rows[i % count][None]))["probabilities"].numpy()
    for name, other_dir in (others or {}).items():
        other = tf.saved_model.load(os.fspath(other_dir)).signatures["serving_default"]
        calls_by_name[name] = lambda i, signature=other: signature(  # bound now: `other` changes with the loop
            examples=tf.constant([examples[i % count]]))["class_ids"].numpy()
    return _interleaved_percentiles_ms(calls_by_name, calls)


def serving_child(arguments: dict) -> dict:
    """`batch1_latency` with TensorFlow on one thread (inter- and intra-op), as a latency-bound server runs it."""
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    latency = batch1_latency(arguments["model_dir"], np.load(arguments["rows"]), arguments["calls"],
                             others={"default_export": arguments["default_export_dir"]},
                             ensemble_classifiers=arguments["default_export_classifiers"])
    return {"serving_1thread_p50_ms": latency["serving"][0], "serving_1thread_p99_ms": latency["serving"][1],
            "signature_call_floor_1thread_ms": latency["empty"][0],
            "matmul_chain_b1_1thread_p50_ms": latency["chain"][0],
            "serving_default_export_1thread_p50_ms": latency["default_export"][0],
            "serving_default_export_1thread_p99_ms": latency["default_export"][1],
            "serving_default_export_vs_paper_1thread_p50": latency["default_export"][0] / latency["serving"][0],
            **({"ensemble_chain_b1_1thread_p50_ms": latency["ensemble_chain"][0]} if "ensemble_chain" in latency
               else {})}


def serving_figures(size: BenchSize, work_dir: Path, log: Callable[[str], None]) -> dict:
    """Trains one small run (2 epochs) with the default score, exports it three times, loads the SavedModels in
    process and times their signatures, taking turns.

    The exports: the paper's (`score="emoconfidnet"`: the classifier and EmoConfidNet's head; the `serving_*`
    figures and their targets), the same unfolded (`fold=False`, its baseline) and the default
    (`score=None`: the run's `recommended`, whatever validation chose; `serving_default_export_*`).
    """
    import tensorflow as tf

    from emoconf_tf.evaluation.protocol import PAPER_METHODS, ProtocolConfig
    from emoconf_tf.serving.export import export_run, serialize_examples
    from emoconf_tf.serving.rundir import load_run, train_run
    from emoconf_tf.serving.served_score import SCORE_ASSET
    from emoconf_tf.settings import TrainingConfig
    from emoconf_tf.synthetic import make_synthetic_corpus

    corpus = make_synthetic_corpus(n_utterances=size.serving_utterances, num_features=size.num_features, seed=0)
    config = ProtocolConfig(methods=PAPER_METHODS, training=TrainingConfig(max_epochs=2))
    # train_run's default score (recommended), as `emoconf train` trains a run: the ensemble members exist, so
    # the same classifier can be served both ways.
    run_dir = train_run(corpus, work_dir / "run", config, training="raw")
    exported = export_run(run_dir, work_dir / "savedmodels" / "bench", score="emoconfidnet")
    unfolded = export_run(run_dir, work_dir / "savedmodels" / "bench_unfolded", score="emoconfidnet", fold=False)
    default = export_run(run_dir, work_dir / "savedmodels" / "bench_default")
    classifiers = json.loads((default.path / "assets" / SCORE_ASSET).read_text(encoding="utf-8"))["ensemble_members"]
    log(f"  exported the paper's model {exported.path} (baseline, not folded: {unfolded.path}) and the default "
        f"export {default.path}, serving {default.score} ({classifiers} classifier(s) in the graph)")
    loaded = tf.saved_model.load(str(exported.path))
    serving_default = loaded.signatures["serving_default"]
    predict_signature = loaded.signatures["predict"]
    unfolded_default = tf.saved_model.load(str(unfolded.path)).signatures["serving_default"]
    default_export = tf.saved_model.load(str(default.path)).signatures["serving_default"]
    rows = corpus.features[:BATCH_SIZE]
    count = len(rows)

    latency = batch1_latency(exported.path, rows, size.serving_calls,
                             others={"baseline": unfolded.path, "default_export": default.path},
                             ensemble_classifiers=classifiers)
    np.save(work_dir / "rows.npy", rows)
    latency_1thread = run_child("serving", {"model_dir": str(exported.path), "rows": str(work_dir / "rows.npy"),
                                             "calls": size.serving_calls,
                                             "default_export_dir": str(default.path),
                                             "default_export_classifiers": classifiers}, log)

    batch = np.resize(rows, (BATCH_SIZE, rows.shape[1])).astype(np.float32)
    batch_examples = serialize_examples(batch)
    roofline = MatmulRoofline(layer_shapes(size.num_features), head_shapes=HEAD_SHAPES)
    steps = max(2, size.fit_batches // 4)

    def rate(call) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            call()
        return steps * BATCH_SIZE / (time.perf_counter() - start)

    # Inputs made once, as the roofline's are: the figure is the signature's own cost.
    examples_tensor, batch_tensor = tf.constant(batch_examples), tf.constant(batch)
    serving_rates, predict_rates, unfolded_rates, default_rates, roof_rates = [], [], [], [], []
    for round_ in range(3 * size.rounds):
        roof_rates.append(roofline.samples_per_s(backward=False, steps=steps))
        serving_rates.append(rate(lambda: serving_default(examples=examples_tensor)["class_ids"].numpy()))
        predict_rates.append(rate(lambda: predict_signature(features=batch_tensor)["class_ids"].numpy()))
        unfolded_rates.append(rate(lambda: unfolded_default(examples=examples_tensor)["class_ids"].numpy()))
        default_rates.append(rate(lambda: default_export(examples=examples_tensor)["class_ids"].numpy()))
        log(f"  round {round_ + 1}: batch 256 serving_default {serving_rates[-1]:,.0f} samples/s, predict "
            f"{predict_rates[-1]:,.0f}, not folded {unfolded_rates[-1]:,.0f}, default export "
            f"{default_rates[-1]:,.0f}, forward roofline {roof_rates[-1]:,.0f}")

    run = load_run(run_dir)
    predict_p50, _ = _percentiles_ms(
        lambda i: run.emoconfidnet.predict(corpus.features[i % count: i % count + 1], verbose=0),
        max(10, size.serving_calls // 20), warmup=2)
    forward_rate = max(roof_rates)
    classifier_flops = forward_flops(layer_shapes(size.num_features))
    paper_flops = classifier_flops + forward_flops(list(HEAD_SHAPES))
    return {
        "serving_p50_ms": latency["serving"][0],
        "serving_p99_ms": latency["serving"][1],
        "serving_unfolded_p50_ms": latency["baseline"][0],
        "serving_unfolded_batch256_samples_per_s": max(unfolded_rates),
        "signature_call_floor_ms": latency["empty"][0],
        "matmul_chain_b1_p50_ms": latency["chain"][0],
        "serving_batch256_samples_per_s": max(serving_rates),
        "predict_batch256_samples_per_s": max(predict_rates),
        "forward_roofline_samples_per_s": forward_rate,
        "serving_vs_roofline": max(serving_rates) / forward_rate,
        "keras_predict_p50_ms": predict_p50,
        "serving_default_export_score": default.score,
        "serving_default_export_classifiers": classifiers,
        "serving_default_export_p50_ms": latency["default_export"][0],
        "serving_default_export_p99_ms": latency["default_export"][1],
        "serving_default_export_vs_paper_p50": latency["default_export"][0] / latency["serving"][0],
        "serving_default_export_vs_paper_p99": latency["default_export"][1] / latency["serving"][1],
        "serving_default_export_flops_vs_paper": (paper_flops + (classifiers - 1) * classifier_flops) / paper_flops,
        **({"ensemble_chain_b1_p50_ms": latency["ensemble_chain"][0]} if "ensemble_chain" in latency else {}),
        "serving_default_export_batch256_samples_per_s": max(default_rates),
        "serving_default_export_vs_paper_batch256": max(default_rates) / max(serving_rates),
        **latency_1thread,
    }
