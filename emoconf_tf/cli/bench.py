"""`emoconf bench`: performance figures on this machine, each beside a reference measured in the same run."""

from __future__ import annotations

import argparse
import sys
import time

from emoconf_tf.benchmarks.harness import DEFAULT_PARTS, PARTS  # TensorFlow-free until a part runs
from emoconf_tf.benchmarks.sizes import SIZES
from emoconf_tf.cli.options import comma_list
from emoconf_tf.errors import EmoconfError
from emoconf_tf.settings import TrainingConfig


def register_subparser(parsers: argparse._SubParsersAction) -> None:
    bench = parsers.add_parser(
        "bench", help="performance figures on this machine, each against a reference measured in the same run",
        description="Measures Keras training against a matmul roofline and scikit-learn, the exported serving_default "
        "signature (batch-1 latency, batch-256 throughput), openSMILE extraction with 1 and 2 workers, and the paper's "
        "protocol on an MSP-Podcast-sized synthetic corpus (34,000 / 7,000 / 10,000 utterances, 6,373 features; its "
        "run time on 2 cores is in docs/performance.md; --quick runs a tenth of it), and the protocol with every "
        "confidence score on an IEMOCAP-development-sized one (protocol_small: 7,000 utterances, 47 features, 5 group "
        "folds) run serially and with --jobs worker processes, one after the other. Prints one table, each figure "
        "beside its target, and "
        "writes the figures as JSON.",
        epilog="See docs/performance.md.",
    )
    bench.add_argument("--quick", action="store_true", help="a tenth of the protocol and fewer repeats (a few minutes)")
    bench.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # seconds; for the test suite
    bench.add_argument(
        "--json", default="emoconf_bench.json", metavar="PATH",
        help="where to write the figures (default: %(default)s)")
    bench.add_argument(
        "--max-epochs", type=int, default=None,
        help="upper bound on the epochs of protocol and protocol_small; early stopping (patience "
        f"{TrainingConfig().patience}) usually ends sooner (default: {SIZES['full'].max_epochs})")
    bench.add_argument(
        "--parts", default=",".join(DEFAULT_PARTS),
        help=f"which parts to run, of {','.join(PARTS)} (default: all but "
        "protocol_small, which runs every confidence score twice and takes longer than the rest together)")
    bench.add_argument(
        "--jobs", type=int, default=2, metavar="N",
        help="worker processes of protocol_small's second run, timed against its serial first run (default: "
        "%(default)s; -1: one per CPU core)")
    bench.set_defaults(run=run)


def run(args) -> int:
    parts = comma_list(args.parts)
    if not parts or any(part not in PARTS for part in parts):
        raise EmoconfError(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    if args.max_epochs is not None and args.max_epochs < 1:
        raise EmoconfError("--max-epochs must be at least 1")
    if args.jobs != -1 and args.jobs < 2:
        raise EmoconfError(f"--jobs {args.jobs}: protocol_small compares a serial run with one of 2 or more worker "
                           "processes; give 2 or more, or -1 for one per CPU core")
    from emoconf_tf.tensorflow_import import import_tensorflow_quietly

    import_tensorflow_quietly(args.debug)
    from emoconf_tf.atomic import write_json
    from emoconf_tf.benchmarks.harness import bench_table, run_bench

    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    start = time.perf_counter()
    results = run_bench(size, max_epochs=args.max_epochs, parts=parts, jobs=args.jobs,
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    print(bench_table(results))
    write_json(args.json, results)
    print(f"\nwrote {args.json} ({size} size) in {time.perf_counter() - start:.0f} s")
    return 0
