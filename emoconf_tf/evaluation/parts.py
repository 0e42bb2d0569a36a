"""A protocol run's output directory as it fills: one finished-unit file per (fold, seed, training) in `parts/`
(a rerun with the same settings skips it), and `protocol.json`, the settings that refuse mixing two runs in one
directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from emoconf_tf import __version__
from emoconf_tf.atomic import atomic_path, write_json
from emoconf_tf.corpus import Corpus
from emoconf_tf.errors import EmoconfError
from emoconf_tf.evaluation.unit import UnitResult
from emoconf_tf.folds import Fold
from emoconf_tf.settings import ProtocolConfig

OUTPUT_FORMAT = 3  # bump when parts/ or the tables change incompatibly


def part_path(parts_dir: Path | None, fold: Fold, seed: int, training: str) -> Path | None:
    """The finished-unit file of a unit, None without `out_dir`."""
    return parts_dir / f"fold{fold.index}_seed{seed}_{training}.json" if parts_dir else None


def write_part(part: Path, unit: UnitResult) -> None:
    # predictions first: the JSON, written last, marks the unit finished
    with atomic_path(part.with_suffix(".predictions.csv")) as tmp:
        unit.predictions.to_csv(tmp, index=False, float_format="%.7g")
    write_json(part, {"results": unit.results, "per_class": unit.per_class, "run": unit.run,
                      "filter_counts": unit.filter_counts, "selective": unit.selective,
                      "choices": unit.choices})


def read_part(path: Path) -> UnitResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        predictions = pd.read_csv(path.with_suffix(".predictions.csv"))
        return UnitResult(data["results"], data["per_class"], data["run"], data.get("filter_counts", {}),
                          selective=data["selective"], choices=data["choices"], predictions=predictions)
    except (json.JSONDecodeError, KeyError, OSError, pd.errors.ParserError) as error:
        raise EmoconfError(f"{path}: unreadable finished-unit file ({error}); delete it to rerun that unit") from None


def unit_summary(unit: UnitResult) -> dict:
    summary = dict(unit.run)
    for row in unit.results:
        if row["rejection"] in (0.0, 0.2) and row["rejection_mode"] == "global" \
                and row["threshold_source"] == "validation":
            summary[f"{row['method']}@{row['rejection']:.1f}"] = row["f1"]
    return summary


def remove_stale_temporaries(*directories: Path) -> None:
    """Deletes temporary files an interrupted run left (`atomic_path` names them `.<name>.<random>.tmp`)."""
    for directory in directories:
        if directory.is_dir():
            for stale in directory.glob(".*.tmp"):
                if stale.is_file():
                    stale.unlink()


def check_same_settings(out_dir: Path, corpus: Corpus, config: ProtocolConfig) -> None:
    settings = {
        "corpus": corpus.name,
        "n_rows": len(corpus),
        "num_features": corpus.num_features,
        "class_names": list(corpus.class_names),
        "scale": list(corpus.scale) if corpus.scale is not None else None,
        "protocol": config.fingerprint(),
    }
    path = out_dir / "protocol.json"
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EmoconfError(f"{path}: unreadable ({error}); delete {out_dir} or use another `out_dir`",
                               argument="out_dir") from None
        if previous.get("format") != OUTPUT_FORMAT:
            raise EmoconfError(
                f"{out_dir}: written by emoconf-tf {previous.get('version', '?')} (output format "
                f"{previous.get('format', '?')}); this is emoconf-tf {__version__} (format {OUTPUT_FORMAT}), whose "
                "finished parts are not compatible; use another `out_dir`", argument="out_dir"
            )
        previous_settings = {k: previous.get(k) for k in settings}
        if previous_settings != json.loads(json.dumps(settings)):
            raise EmoconfError(
                f"{out_dir}: holds a run with other settings (see {path}); use another `out_dir` or delete it",
                argument="out_dir"
            )
        return
    write_json(path, dict(settings, version=__version__, format=OUTPUT_FORMAT))
