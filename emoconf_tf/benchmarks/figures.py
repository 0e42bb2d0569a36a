"""The figures of `emoconf bench`: their targets (`TARGETS`) and the rows of the printed table (`TABLE_ROWS`),
both read by `harness.bench_table`. What each figure measures and why its target is what it is:
docs/performance.md.
"""

from __future__ import annotations

import dataclasses

from emoconf_tf.benchmarks.early_stopped_fit import TABLE_ROWS as EARLY_STOPPED_FIT_ROWS

FULL_PROTOCOL_SECONDS = 600.0


@dataclasses.dataclass(frozen=True)
class Target:
    """A target on one figure: `value <op> bound`, e.g. `train_vs_roofline >= 0.7`."""

    key: str
    op: str  # ">=" or "<="
    bound: float
    text: str
    full_size_only: bool = False
    relative_to: str | None = None  # the bound is `bound * results[relative_to]`

    def met(self, results: dict) -> bool | None:
        """True/False, or None when the target does not apply (e.g. a full-size target on a smaller run)."""
        if self.full_size_only and results.get("bench_full_size") != 1:
            return None
        bound = self.bound * (results[self.relative_to] if self.relative_to else 1.0)
        return results[self.key] >= bound if self.op == ">=" else results[self.key] <= bound


TARGETS = (
    Target("train_vs_roofline", ">=", 0.7, ">= 0.7"),
    Target("serving_p50_ms", "<=", 0.5, "<= 0.5 ms"),
    Target("serving_vs_roofline", ">=", 0.8, ">= 0.8"),
    Target("extract_speedup_2", ">=", 1.9, ">= 1.9"),
    Target("protocol_s", "<=", FULL_PROTOCOL_SECONDS, "< 600 s (full size)", full_size_only=True),
    Target("peak_rss_gb", "<=", 1.5, "<= 1.5 x features_gb", relative_to="features_gb"),
    Target("scaling_exponent", "<=", 1.1, "<= 1.1"),
)

# (key, label, format) in table order; keys without a target are context for the ones with one.
TABLE_ROWS = (
    ("train_samples_per_s", "training: Keras model.fit, batch 256", "{:,.0f} samples/s"),
    ("roofline_samples_per_s", "training: matmul-chain roofline (fwd + bwd)", "{:,.0f} samples/s"),
    ("roofline_gflops", "  measured matmul FLOP/s (fwd + bwd)", "{:,.1f} GFLOP/s"),
    ("train_vs_roofline", "training: fit / roofline", "{:.2f}"),
    ("train_steps1_vs_roofline", "  baseline: Keras default, steps_per_execution=1", "{:.2f}"),
    ("sklearn_samples_per_s", "training: scikit-learn MLPClassifier", "{:,.0f} samples/s"),
    ("train_vs_sklearn", "training: fit / scikit-learn", "{:.1f}x"),
    *EARLY_STOPPED_FIT_ROWS,
    # serving_*: the paper export (--score emoconfidnet: the classifier and EmoConfidNet's head, as before
    # scores could be served); serving_default_export_*: the default export of the same run (recommended).
    ("serving_p50_ms", "serving_default batch 1, p50, paper export", "{:.3f} ms"),
    ("serving_p99_ms", "serving_default batch 1, p99, paper export", "{:.3f} ms"),
    ("serving_unfolded_p50_ms", "  baseline: not folded (--no-fold), p50", "{:.3f} ms"),
    ("signature_call_floor_ms", "  empty signature call, p50 (TF floor)", "{:.3f} ms"),
    ("matmul_chain_b1_p50_ms", "  bare 6-matmul chain batch 1, p50 (floor)", "{:.3f} ms"),
    ("serving_default_export_score", "default export serves", "{}"),
    ("serving_default_export_classifiers", "  classifiers in its graph (1 + ensemble members)", "{:.0f}"),
    ("serving_default_export_p50_ms", "serving_default batch 1, p50, default export", "{:.3f} ms"),
    ("serving_p50_ms", "  baseline: paper export (--score emoconfidnet)", "{:.3f} ms"),
    ("serving_default_export_vs_paper_p50", "  default / paper, p50", "{:.2f}x"),
    ("serving_default_export_p99_ms", "serving_default batch 1, p99, default export", "{:.3f} ms"),
    ("serving_p99_ms", "  baseline: paper export (--score emoconfidnet)", "{:.3f} ms"),
    ("serving_default_export_vs_paper_p99", "  default / paper, p99", "{:.2f}x"),
    ("serving_default_export_flops_vs_paper", "  forward matmul FLOPs per sample, default / paper", "{:.2f}x"),
    ("ensemble_chain_b1_p50_ms", "  bare matmul chains of its classifiers + head, p50", "{:.3f} ms"),
    ("serving_1thread_p50_ms", "serving_default batch 1, p50, 1 thread, paper export", "{:.3f} ms"),
    ("serving_1thread_p99_ms", "serving_default batch 1, p99, 1 thread, paper export", "{:.3f} ms"),
    ("signature_call_floor_1thread_ms", "  empty signature call, p50, 1 thread", "{:.3f} ms"),
    ("matmul_chain_b1_1thread_p50_ms", "  bare 6-matmul chain batch 1, p50, 1 thread", "{:.3f} ms"),
    ("serving_default_export_1thread_p50_ms", "serving_default batch 1, p50, 1 thread, default export", "{:.3f} ms"),
    ("serving_default_export_1thread_p99_ms", "serving_default batch 1, p99, 1 thread, default export", "{:.3f} ms"),
    ("serving_default_export_vs_paper_1thread_p50", "  default / paper, p50, 1 thread", "{:.2f}x"),
    ("ensemble_chain_b1_1thread_p50_ms", "  bare matmul chains of its classifiers + head, 1 thread", "{:.3f} ms"),
    ("keras_predict_p50_ms", "Keras model.predict batch 1, p50", "{:.1f} ms"),
    ("serving_batch256_samples_per_s", "serving_default batch 256, paper export", "{:,.0f} samples/s"),
    ("serving_unfolded_batch256_samples_per_s", "  baseline: not folded (--no-fold)", "{:,.0f} samples/s"),
    ("predict_batch256_samples_per_s", "  predict signature (float32 in) batch 256", "{:,.0f} samples/s"),
    ("forward_roofline_samples_per_s", "forward matmul roofline (classifier + head)", "{:,.0f} samples/s"),
    ("serving_vs_roofline", "serving batch 256 / forward roofline", "{:.2f}"),
    ("serving_default_export_batch256_samples_per_s", "serving_default batch 256, default export",
     "{:,.0f} samples/s"),
    ("serving_batch256_samples_per_s", "  baseline: paper export (--score emoconfidnet)", "{:,.0f} samples/s"),
    ("serving_default_export_vs_paper_batch256", "  default / paper", "{:.2f}x"),
    ("extract_rtf_1", "openSMILE ComParE-2016 RTF, 1 worker", "{:.4f}"),
    ("extract_speedup_2", "openSMILE speed-up with 2 workers", "{:.2f}x"),
    ("parallel_reference_speedup_2", "  GIL-free C reference speed-up, 2 threads", "{:.2f}x"),
    ("protocol_utterances", "protocol corpus (train + validation + test)", "{:,.0f} utterances"),
    ("protocol_s", "protocol wall time (PAPER_METHODS)", "{:,.1f} s"),
    ("protocol_classifier_epochs", "  classifier epochs, summed over units", "{:.0f}"),
    ("protocol_head_epochs", "  EmoConfidNet epochs, summed over units", "{:.0f}"),
    ("features_gb", "feature matrix", "{:.3f} GB"),
    ("peak_rss_gb", "protocol peak RSS", "{:.3f} GB"),
    ("runtime_rss_gb", "  of which Python + TF/Keras runtime", "{:.3f} GB"),
    ("protocol_own_rss_gb", "  protocol's own (peak - corpus - runtime)", "{:.3f} GB"),
    ("peak_rss_less_runtime_vs_features", "  (peak - runtime) / features_gb", "{:.2f}x"),
    ("generator_peak_rss_gb", "synthetic generator peak RSS", "{:.3f} GB"),
    ("scaling_exponent", "protocol time exponent vs corpus size", "{:.2f}"),
    # protocol_small: the jobs run (ours) beside the serial run (the baseline), one after the other, same bench run
    ("protocol_small_utterances", "protocol_small corpus (IEMOCAP dev size, cv group)", "{:,.0f} utterances"),
    ("protocol_small_features", "  features", "{:.0f}"),
    ("protocol_small_methods", "  confidence methods (ALL_METHODS unless tiny)", "{:.0f}"),
    ("protocol_small_units", "  units (folds x seeds x trainings)", "{:.0f}"),
    ("protocol_small_jobs", "  worker processes of the jobs run (--jobs)", "{:.0f}"),
    ("protocol_small_jobs_s", "protocol_small wall time, jobs run", "{:,.1f} s"),
    ("protocol_small_serial_s", "  baseline: serial run (jobs=1)", "{:,.1f} s"),
    ("protocol_small_jobs_vs_serial", "  jobs / serial wall time", "{:.2f}x"),
    ("protocol_small_jobs_peak_rss_gb", "protocol_small peak RSS, jobs run (process tree)", "{:.3f} GB"),
    ("protocol_small_serial_peak_rss_gb", "  baseline: serial run", "{:.3f} GB"),
    ("protocol_small_jobs_vs_serial_rss", "  jobs / serial peak RSS", "{:.2f}x"),
    ("protocol_small_results_equal", "protocol_small results.csv identical, jobs vs serial", "yes/no"),
)
