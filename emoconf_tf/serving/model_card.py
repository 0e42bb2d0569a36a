"""The model card (`assets/model_card.md`) of an exported run: what the model predicts, from which features, the
rejection mode and thresholds it applies, the figures its run measured, and how to call it. Written by
`serving.export.export_run`; `emoconf inspect` prints it back. The card of a run without AVD ratings says so
(`corpus.NO_AVD_RATINGS`) and lists no `emoconfidnet_confidence` output: the run has no EmoConfidNet head.
"""

from __future__ import annotations

import datetime

import numpy as np

from emoconf_tf import __version__
from emoconf_tf.feature_sets import FEATURE_SET_NAMES, FeatureSet
from emoconf_tf.thresholds import PAPER_REJECTIONS, accept, check_rejection_mode, class_thresholds
FEATURE_SET_ASSET = "feature_set.txt"
# What feature_set.txt holds when run.json records no openSMILE set (a table trained without --feature-set).
UNKNOWN_FEATURE_SET = "unknown"
_KNOWN_FEATURE_SETS = {6373: "ComParE 2016 functionals", 88: "eGeMAPSv02 functionals"}
_MODE_DESCRIPTIONS = {
    "global": "one threshold from all validation confidences (the paper's)",
    "per_class": "one threshold per predicted class, from the validation predictions of that class",
}


def recorded_feature_set(info: dict) -> str:
    """What `feature_set.txt` records for a run's `run.json` contents: `"compare_2016"`, `"egemaps_v02"`,
    `"synthetic"` or `"unknown"` (no openSMILE set recorded, e.g. a run trained before the field existed)."""
    if info.get("synthetic"):
        return "synthetic"
    value = info.get("feature_set")
    return value if value in FEATURE_SET_NAMES else UNKNOWN_FEATURE_SET


def model_card(run, *, default_rejection: float, default_threshold: float, date: str | None = None,
               rejection_mode: str = "global", default_class_thresholds: np.ndarray | None = None,
               served=None, validation_confidence: np.ndarray | None = None) -> str:
    """The Markdown model card of an export (`assets/model_card.md`).

    Args:
        run: the loaded run directory (`emoconf_tf.serving.rundir.Run`).
        default_rejection: the rate of `serving_default`'s `accept`.
        default_threshold: its global threshold `t_r`.
        date: `YYYY-MM-DD` of the export; default None, today (UTC).
        rejection_mode: `"global"` (default) or `"per_class"`.
        default_class_thresholds: float `[K]`, the per-class thresholds at `default_rejection`; default
            None, computed from the run's validation.csv (used in per-class mode only).
        served: the `served_score.ServedScore` exported; default None, EmoConfidNet's `p_hat[c]`.
        validation_confidence: float `[n]`, its validation scores; default None, validation.csv's `confidence`.
    """
    from emoconf_tf.corpus import NO_AVD_RATINGS
    from emoconf_tf.scores import METHODS
    from emoconf_tf.serving.served_score import ServedScore

    rejection_mode = check_rejection_mode(rejection_mode)
    served = served or ServedScore("emoconfidnet", (("emoconfidnet", 1.0),), rejection_mode)
    if validation_confidence is None:
        validation_confidence = run.validation_confidence()
    info = run.info
    synthetic = bool(info.get("synthetic"))
    num_features = len(run.feature_names)
    recorded = recorded_feature_set(info)
    if recorded in FEATURE_SET_NAMES:
        feature_set = (f"openSMILE {FeatureSet(recorded).title} (`{FEATURE_SET_ASSET}`: {recorded}; "
                       "`emoconf predict` extracts them from audio)")
    elif synthetic:
        feature_set = f"synthetic features (`{FEATURE_SET_ASSET}`: synthetic; predict from a features table)"
    else:
        feature_set = _KNOWN_FEATURE_SETS.get(num_features, "custom table (see feature_names.txt)")
        if num_features in _KNOWN_FEATURE_SETS:
            feature_set += " (inferred from the dimension)"
        feature_set += (f"; the run records no feature set (`{FEATURE_SET_ASSET}`: {UNKNOWN_FEATURE_SET}), "
                        "so predict from a features table")
    per_class = rejection_mode == "per_class"
    if per_class:
        if default_class_thresholds is None:
            default_class_thresholds = class_thresholds(validation_confidence, run.validation_predicted(),
                                                        default_rejection, len(run.class_names), rejection_mode)
        absent = _absent_classes(run)
        operating_point = "per-class thresholds " + ", ".join(
            f"{name} {value:.6f}{' (global)' if c in absent else ''}"
            for c, (name, value) in enumerate(zip(run.class_names, default_class_thresholds)))
    else:
        operating_point = f"threshold {default_threshold:.6f}"
    has_avd = run.has_avd
    scale = info.get("scale") or ["?", "?"]
    avd_row = (f"| AVD scale | {_number(scale[0])} to {_number(scale[1])} |" if has_avd
               else f"| AVD | {NO_AVD_RATINGS} |")
    ensemble = (f" and {served.members - 1} more classifiers (a deep ensemble)" if served.uses_ensemble else "")
    paper_scores = ("`emoconfidnet_confidence` (the paper's EmoConfidNet), " if has_avd else "") + (
        "`baseline_confidence` (the paper's top-two softmax margin)")
    merged = "".join(f"; {category} counted as {name}" for category, name in (info.get("merged_labels") or {}).items())
    counts = info.get("filter_counts") or {}
    removed = sum(counts.values())
    run_info = info.get("run", {})
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = []
    title = ("# EmoConfidNet model card" if has_avd
             else "# Emotion classifier model card (no EmoConfidNet: no AVD ratings)")
    if synthetic:
        lines += [
            f"{title} — SYNTHETIC",
            "",
            "> **SYNTHETIC DATA.** This model was trained on the built-in synthetic corpus (generated "
            "numbers, not real speech). Its figures below say nothing about emotion recognition; use it "
            "only to try the serving set-up.",
        ]
    else:
        lines += [title]
    lines += [
        "",
        (f"Confidence-aware speech emotion recognition: an emotion classifier, its EmoConfidNet confidence head"
         f"{ensemble}, exported by `emoconf export`." if has_avd else
         f"Confidence-aware speech emotion recognition: an emotion classifier{ensemble}, exported by `emoconf "
         "export`; no EmoConfidNet confidence head: the corpus has no AVD ratings, which its targets come from."),
        "",
        "| | |",
        "|---|---|",
        f"| corpus | {info.get('corpus', '?')}{' (**SYNTHETIC**)' if synthetic else ''} |",
        f"| features | {num_features} per utterance, {feature_set}; raw values in the order of "
        "`feature_names.txt` (standardisation is inside the model) |",
        f"| masked features | {_masked(run, num_features)} |",
        f"| input clipping | {_clipping(run)} |",
        f"| classes | {', '.join(run.class_names)} (`labels.txt`, in class-id order){merged} |",
        avd_row,
        f"| conflict filter | {'on' if info.get('filter') else 'off'} (training set: {info.get('training', '?')}"
        f"{f', {removed} utterances removed' if info.get('filter') else ''}) |",
        f"| data | train {run_info.get('n_train', '?')}, validation {run_info.get('n_validation', '?')}, "
        f"test {run_info.get('n_test', '?')} utterances; fold {info.get('fold_name', '?')} "
        f"{info.get('fold', '?')}, seed {info.get('seed', '?')} |",
        f"| epochs | classifier {run_info.get('classifier_epochs', '?')}, "
        + (f"EmoConfidNet {run_info.get('confidence_epochs', '?')} |" if has_avd
           else "no EmoConfidNet (no AVD ratings) |"),
        f"| confidence | **{served.description}**: {METHODS[served.name].display_name}; "
        f"{_served_how(served)} |",
        f"| chosen on | {_chosen_on(served)} |",
        f"| rejection mode | {rejection_mode}: {_MODE_DESCRIPTIONS[rejection_mode]}"
        f"{'; a class never predicted on validation takes the global threshold' if per_class else ''} |",
        f"| default operating point | rejection {default_rejection:g} -> {operating_point} "
        "(`serving_default`'s `accept`) |",
        f"| exported | {date}, emoconf-tf {__version__} (run trained with emoconf-tf {info.get('version', '?')}) |",
        "",
        "## Signatures",
        "",
        "- `serving_default`: `examples` (serialized `tf.Example`, float_list `features`) -> `class_ids`, "
        "`classes`, `probabilities`, `confidence`, `accept`",
        "- `predict`: `features` -> `class_ids`, `classes`, `probabilities`",
        f"- `confidence`: `features` -> `class_ids`, `confidence` ({served.description}), {paper_scores}",
        "- `threshold`: `features`, `rejection` -> `threshold` (global t_r), `class_thresholds` (one per class, "
        f"{rejection_mode} mode), `applied_threshold` (that of each row's predicted class), `confidence`, `accept`, "
        f"{'`emoconfidnet_confidence`, ' if has_avd else ''}`baseline_confidence`; thresholds from the validation "
        "confidences",
        "- `batch_threshold`: the same outputs, with thresholds from the request's own confidences: it rejects the "
        "fraction `rejection` of the batch (globally or within each predicted class), so an operating point holds "
        "on a new session without labels; send a whole session or day of calls in one request",
        "",
    ]
    if per_class:
        lines += ["## Per-class thresholds", ""]
        lines += _class_threshold_rows(run, default_rejection, validation_confidence)
        lines += [""]
    lines += [
        "## Figures at each rejection rate",
        "",
    ]
    lines += _figures(run, served)
    lines += [
        "",
        "Thresholds are set on the validation split (its confidences sorted in descending order, "
        "t_r = the ceil(n(1 - r))-th, t_0 = 0) and applied to the test split; F1 = 2PR/(P+R) of macro "
        "precision and recall, UAR = macro recall (paper, Section 5.1). Per-class thresholds apply the same rule "
        "to the validation predictions of each predicted class (a class never predicted on validation takes t_r).",
    ]
    return "\n".join(lines) + "\n"


def _absent_classes(run) -> set[int]:
    """Class ids never predicted on validation (their per-class threshold is the global one)."""
    return set(range(len(run.class_names))) - set(run.validation_predicted().tolist())


def _masked(run, num_features: int) -> str:
    """How many features the model masks (constant on the training rows: no influence on any answer)."""
    from emoconf_tf.models import masked_feature_count

    try:
        masked = masked_feature_count(run.classifier)
    except (ValueError, AttributeError):  # not a model from build_classifier
        return "unknown"
    return (f"{masked} of {num_features} (constant on the training rows, so weight 0: they have no influence)" if masked
            else f"none of {num_features}")


def _clipping(run) -> str:
    """Whether the classifier clips each feature to its training range (`models.ClipToRange`)."""
    from emoconf_tf.models import CLIP_NAME

    names = [layer.name for layer in getattr(run.classifier, "layers", [])]
    if CLIP_NAME in names:
        return ("each feature clipped to the range it had on the training rows (a value beyond it counts as the "
                "range's end)")
    return "none (features reach the standardisation as they are)"


def _served_how(served) -> str:
    from emoconf_tf.scores import METHODS

    return "; ".join(f"{m}: {METHODS[m].serving}" for m in served.methods)


def _chosen_on(served) -> str:
    chosen = served.chosen_on
    if not chosen:
        return "asked for by name (`--score`)"
    switch = chosen.get("switch_rate")
    return (f"validation, by `{chosen.get('criterion')}` = {float(chosen.get('validation_value')):.4f} (the "
            "recommended rule of `emoconf reproduce`: the default, macro_gain_ensemble per class, unless another "
            "candidate beats it in >= 90 % of 100 validation bootstraps"
            + (f"; the best other candidate won {100 * switch:.0f} %" if switch is not None else "") + ")")


def _class_threshold_rows(run, default_rejection: float, confidence: np.ndarray) -> list[str]:
    """Markdown rows: per rejection rate, each predicted class's threshold and the validation coverage."""
    predicted = run.validation_predicted()
    num_classes = len(run.class_names)
    absent = _absent_classes(run)
    rows = [
        "| rejection | " + " | ".join(f"{name}{' (global)' if c in absent else ''}"
                                      for c, name in enumerate(run.class_names)) + " | validation coverage |",
        "|---:|" + "---:|" * (num_classes + 1),
    ]
    for rejection in sorted({*PAPER_REJECTIONS, default_rejection}):
        thresholds = class_thresholds(confidence, predicted, rejection, num_classes, "per_class")
        coverage = float(accept(confidence, thresholds, predicted).mean())
        rows.append(f"| {rejection:g} | " + " | ".join(f"{value:.6f}" for value in thresholds)
                    + f" | {coverage:.3f} |")
    counts = ", ".join(f"{name} {int((predicted == c).sum())}" for c, name in enumerate(run.class_names))
    rows += ["", f"Validation predictions per class: {counts}; a class never predicted on validation (marked "
                 "global) takes the global threshold."]
    return rows


def _figures(run, served) -> list[str]:
    from emoconf_tf.metrics import selective_scores

    if run.results is None or run.results.empty:
        return ["The run has no results.csv: no figures."]
    index = {name: i for i, name in enumerate(run.class_names)}
    validation = run.validation
    y_true = validation["label"].map(index)
    y_pred = validation["predicted"].map(index)
    known = bool(y_true.notna().all() and y_pred.notna().all())
    shown = (served.name, *(m for m in ("emoconfidnet", "top2_margin") if m != served.name))
    columns = {m: run.score_column(m) for m in shown}
    if served.name == run.score["name"]:
        columns[served.name] = "confidence"
    num_classes = len(run.class_names)
    results = run.results
    if "threshold_source" in results:
        results = results[results["threshold_source"] == "validation"]
    results = results[results["method"].isin(shown)]
    rows = [
        "| method | rejection | threshold | validation coverage | validation F1 | validation UAR "
        "| test coverage | test F1 | test UAR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.itertuples(index=False):
        column = columns.get(row.method)
        # results.csv rows of per-class thresholds (its rejection_mode column) have one threshold per class.
        per_class = row.rejection_mode == "per_class"
        if known and column is not None and column in validation:
            confidence = validation[column].to_numpy()
            threshold = (class_thresholds(confidence, y_pred.to_numpy(int), row.rejection, num_classes, "per_class")
                         if per_class else row.threshold)
            scores = selective_scores(y_true.to_numpy(int), y_pred.to_numpy(int), confidence, threshold, num_classes)
            val = f"{scores.coverage:.3f} | {scores.f1:.3f} | {scores.uar:.3f}"
        else:
            val = "- | - | -"
        shown = "per class" if per_class else f"{row.threshold:.6f}"
        rows.append(f"| {row.method} | {row.rejection:.2f} | {shown} | {val} "
                    f"| {row.coverage:.3f} | {row.f1:.3f} | {row.uar:.3f} |")
    return rows


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
