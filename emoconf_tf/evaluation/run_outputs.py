"""A finished protocol run's output directory: the protocol, then its tables, its report and, written last, its
`manifest.json`; and the one line each (fold, seed, training) unit is summarised in as it finishes.

`emoconf demo` and `emoconf reproduce` are `run_and_write` with `unit_line` printed for every unit; a notebook can
make the same call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from emoconf_tf import __version__
from emoconf_tf.atomic import write_json

if TYPE_CHECKING:
    from emoconf_tf.corpus import Corpus
    from emoconf_tf.evaluation.protocol import ProtocolOutputs
    from emoconf_tf.settings import ProtocolConfig

OUTPUT_FILES = ("results.csv", "per_class.csv", "runs.csv", "selective.csv", "choices.csv", "predictions.csv",
                "folds.csv", "report.md", "curves.png")
"""What every finished output directory holds (besides `parts/` and `protocol.json`), as `manifest.json` lists
it; `risk_coverage.png` follows when the report drew it."""
MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """What `run_and_write` returns.

    Attributes:
        outputs: the protocol's tables (`protocol.ProtocolOutputs`; `skipped_units` counts the units resumed from
            an earlier run).
        seconds: wall time from the start of the protocol to the report written.
    """

    outputs: ProtocolOutputs
    seconds: float


def run_and_write(corpus: Corpus, config: ProtocolConfig, out_dir: str | Path, *,
                  on_unit: Callable[[dict, bool], None] | None = None, progress: bool = True, jobs: int = 1,
                  backend: str = "loky", scheduler: str | None = None) -> FinishedRun:
    """Runs the protocol into `out_dir` (resuming the units finished there) and writes its tables
    (`protocol.write_tables`), its report (`markdown.write_report`: report.md, curves.png, ...) and then
    `manifest.json` (`write_manifest`).

    Args:
        corpus, config, on_unit, progress, jobs, backend, scheduler: as for `protocol.run_protocol`.
        out_dir: the output directory.

    Raises:
        EmoconfError: as `run_protocol`; nothing but `parts/` and `folds.csv` is written then.
    """
    from emoconf_tf.evaluation import markdown, protocol

    out_dir = Path(out_dir)
    start = time.perf_counter()
    outputs = protocol.run_protocol(corpus, config, out_dir, on_unit=on_unit, progress=progress, jobs=jobs,
                                    backend=backend, scheduler=scheduler)
    protocol.write_tables(outputs, out_dir)
    markdown.write_report(out_dir, outputs, markdown.ReportOptions.for_corpus(corpus, settings=config.fingerprint()))
    seconds = time.perf_counter() - start
    write_manifest(out_dir, corpus, seconds=seconds, jobs=jobs, backend=backend)
    return FinishedRun(outputs, seconds)


def write_manifest(out_dir: str | Path, corpus: Corpus, *, seconds: float, jobs: int = 1,
                   backend: str = "loky") -> dict:
    """Writes `out_dir/manifest.json`, the last file of a finished run, and returns what it holds: the version, the
    corpus (name, synthetic, AVD scale, has_avd, merged labels), the files (`OUTPUT_FILES`, and `risk_coverage.png`
    when it exists), the run's `seconds` (rounded to 0.1), and the `jobs` and `backend` it ran with."""
    out_dir = Path(out_dir)
    manifest = {
        "version": __version__, "corpus": corpus.name, "synthetic": corpus.synthetic,
        "scale": list(corpus.scale) if corpus.scale is not None else None, "has_avd": corpus.has_avd,
        "merged_labels": dict(corpus.merged_labels),
        "files": list(OUTPUT_FILES) + (["risk_coverage.png"] if (out_dir / "risk_coverage.png").exists() else []),
        "seconds": round(seconds, 1), "jobs": jobs, "backend": backend,
    }
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def unit_line(summary: dict, resumed: bool) -> str:
    """One line on a finished unit, from its summary (`parts.unit_summary`: its `runs.csv` row and each method's
    test F1 at rejection 0 and 0.2 as `"<method>@<rejection>"`, shown as `<method> t0` / `<method> t20`).

    Example:
    >>> unit_line({"fold": 0, "seed": 1, "training": "raw", "n_train": 900, "n_filtered_out": 0,
    ...            "classifier_epochs": 31, "confidence_epochs": 12, "top2_margin@0.2": 0.61234}, resumed=False)
    'done: fold 0 seed 1      raw: train 900 (filtered out 0), epochs 31/12  top2_margin t20 F1 0.612'
    """
    scores = "  ".join(f"{_rate_label(key)} F1 {value:.3f}" for key, value in summary.items() if "@" in key)
    return (f"{'resumed' if resumed else 'done'}: fold {summary['fold']} seed {summary['seed']} "
            f"{summary['training']:>8}: train {summary['n_train']} (filtered out {summary['n_filtered_out']}), "
            f"epochs {summary['classifier_epochs']}/{summary['confidence_epochs']}  {scores}")


def _rate_label(key: str) -> str:
    """`"emoconfidnet@0.2"` -> `"emoconfidnet t20"`: the rejection rate as the paper's t-percent."""
    method, _, rejection = key.rpartition("@")
    return f"{method} t{float(rejection) * 100:g}"
