"""What `demo` and `reproduce` print while the library runs the protocol into an output directory: a line per
finished unit, then the reuse count, the relative gains at t20 and the files written."""

from __future__ import annotations

from pathlib import Path


def run_and_report(corpus, config, out: Path, *, jobs: int = 1, backend: str = "loky",
                   scheduler: str | None = None) -> int:
    from tqdm.auto import tqdm

    from emoconf_tf.evaluation import markdown
    from emoconf_tf.evaluation.run_outputs import run_and_write, unit_line

    finished = run_and_write(corpus, config, out, jobs=jobs, backend=backend, scheduler=scheduler,
                             on_unit=lambda summary, resumed: tqdm.write(unit_line(summary, resumed)))
    if finished.outputs.skipped_units:
        print(f"{out}: reused {finished.outputs.skipped_units} finished fold/seed/training unit(s) from an earlier run")
    print()
    print("\n".join(markdown.summary_lines(finished.outputs.results)))
    print(f"\nwrote {out}/results.csv, per_class.csv, runs.csv, report.md, curves.png in {finished.seconds:.0f} s")
    return 0
