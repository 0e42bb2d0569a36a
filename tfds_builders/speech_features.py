"""What the speech-emotion builders share: the feature-set configs, the example spec and example writing.

Every example is one utterance:

- `id` (text), `features` (float32 `[D]`, openSMILE functionals), `label` (ClassLabel),
- `arousal`, `valence`, `dominance` (float32, on the corpus scale: 1-7 MSP-Podcast, 1-5 IEMOCAP),
- `speaker` (text, "" when unknown), `group` (text: the recording session, or "").

The audio builders extract the features in `_generate_examples` with `emoconf_tf.extraction.iter_features`:
files are processed by `num_workers` threads (a builder argument, default every CPU) and cached per file
under `<data_dir>/downloads/opensmile/`, so an interrupted build resumes without extracting again.

A file that fails (empty, corrupt, unreadable, too short) does not stop the others: every file is tried,
then the build fails with an `EmoconfError` naming the failed files, unless the builder was made with
`skip_failed=True`, which leaves those utterances out and lists them in `info.metadata["failed_files"]`.
A wav that a labels row names but that is not in the manual dir fails the build before any extraction,
naming the labels file, the row and the path (with `skip_failed=True` it is left out like a failed file);
a name that would lead outside the manual dir (`../x.wav`, `/abs/x.wav`) is always refused.

Audio that is not 16 kHz mono is usable: it is downmixed and resampled to 16 kHz (see
`emoconf_tf.extraction`), and each kind of change gives one `UserWarning` per build naming the first files
and counting the others (also kept in `info.metadata["audio_format_notes"]`).

With a Beam runner or Beam options in the `DownloadConfig`, `_generate_examples` returns a Beam
`PTransform` instead (one `extraction.extract_file` per utterance on the Beam workers), so that a corpus
too big for one machine is extracted by DirectRunner, Dataflow, Flink or Spark.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import warnings
from pathlib import Path, PureWindowsPath
from typing import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from emoconf_tf import extraction
from emoconf_tf.errors import EmoconfError
from emoconf_tf.feature_sets import FeatureSet

logger = logging.getLogger(__name__)

# Beam metrics of the files that failed on the workers, read back after the pipeline.
BEAM_METRICS_NAMESPACE = "emoconf"
BEAM_FAILED_FILES = "failed_files"
BEAM_AUDIO_FORMATS = "audio_formats"  # files not 16 kHz mono: a string set of JSON records, and a counter per kind

VERSION = tfds.core.Version("1.0.0")
RELEASE_NOTES = {"1.0.0": "Initial release: openSMILE functionals, category labels and AVD per utterance."}


@dataclasses.dataclass(eq=False)
class SpeechFeaturesConfig(tfds.core.BuilderConfig):
    """A builder config naming the openSMILE feature set.

    Attributes:
        feature_set: `"compare_2016"` or `"egemaps_v02"` (a `emoconf_tf.feature_sets.FeatureSet` value).
        num_features: the feature dimension D the dataset declares; the extracted dimension must match.
            `None` only for tables of any width (`ser_features/custom`).
    """

    feature_set: str = FeatureSet.COMPARE_2016.value
    num_features: int | None = None

    @property
    def merged_labels(self) -> dict[str, str]:
        """Corpus categories this config merges into a class, `{category: class}`; none by default."""
        return {}


def feature_set_configs(config_class=SpeechFeaturesConfig, suffix: str = "", description: str = "", **fields):
    """The two feature-set configs: `compare_2016` (the paper's, default, listed first) and `egemaps_v02` (our light
    option, 88 features; the paper uses ComParE only)."""
    configs = []
    for feature_set in FeatureSet:
        configs.append(
            config_class(
                name=feature_set.value + suffix,
                description=f"openSMILE {feature_set.value} functionals ({feature_set.dimension} per utterance)"
                f"{description}.",
                feature_set=feature_set.value,
                num_features=feature_set.dimension,
                **fields,
            )
        )
    return configs


def info_with_labels_from_data(builder) -> "tfds.core.DatasetInfo":
    """The `DatasetInfo` of a builder whose class names come from its data (a table, a folder), set in
    `_split_generators` and saved in label.labels.txt: features of the builder config's dimension, empty metadata."""
    return builder.dataset_info_from_configs(
        features=example_features(None, builder.builder_config.num_features),
        supervised_keys=("features", "label"),
        metadata=tfds.core.MetadataDict(),
    )


def example_features(class_names: Sequence[str] | None, num_features: int | None) -> tfds.features.FeaturesDict:
    """The example spec; `class_names=None` leaves the ClassLabel names to be set when the data is read."""
    label = tfds.features.ClassLabel(names=list(class_names)) if class_names is not None else tfds.features.ClassLabel()
    return tfds.features.FeaturesDict(
        {
            "id": tfds.features.Text(),
            "features": tfds.features.Tensor(shape=(num_features,), dtype=np.float32),
            "label": label,
            "arousal": np.float32,
            "valence": np.float32,
            "dominance": np.float32,
            "speaker": tfds.features.Text(),
            "group": tfds.features.Text(),
        }
    )


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One labelled utterance of an audio corpus, before its features are extracted."""

    id: str
    wav_path: str
    label: str
    arousal: float
    valence: float
    dominance: float
    speaker: str = ""
    group: str = ""
    source: str = ""  # where the corpus lists it, e.g. "<labels file> line 5 (FileName X.wav)"


class SpeechFeaturesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the audio builders: openSMILE features of `Utterance`s, extracted in parallel.

    Args:
        num_workers: files extracted at once; default every CPU. Pass it with
            `tfds.builder(name, num_workers=4)` or `tfds.load(name, builder_kwargs={"num_workers": 4})`.
            Not used on the Beam path, where the runner decides.
        progress: show a progress bar per split (not on the Beam path).
        skip_failed: leave out the utterances whose audio cannot be processed (counted in
            `info.metadata`) instead of failing the build after trying every file. Default False.
        **kwargs: `data_dir`, `config`, `version`, ... as for any `tfds.core.DatasetBuilder`.
    """

    VERSION = VERSION
    RELEASE_NOTES = RELEASE_NOTES

    def __init__(self, *, num_workers: int | None = None, progress: bool = True, skip_failed: bool = False, **kwargs):
        self._num_workers = num_workers
        self._progress = progress
        self._skip_failed = bool(skip_failed)
        self._use_beam = False
        self._failed_files: list[dict] = []
        self._num_utterances = 0
        self._format_notes = extraction.AudioFormatNotes()
        super().__init__(**kwargs)

    def _download_and_prepare(self, dl_manager, download_config):
        # The Beam path is chosen the way TFDS chooses to run a pipeline: a runner or options were given.
        self._use_beam = download_config.beam_runner is not None or download_config.beam_options is not None
        self._failed_files = []
        self._num_utterances = 0
        self._format_notes = extraction.AudioFormatNotes()
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        self._record_audio_formats()
        self._record_failures()

    def _process_pipeline_result(self, pipeline_result) -> None:
        beam = tfds.core.lazy_imports.apache_beam
        metrics = pipeline_result.metrics().query(
            beam.metrics.MetricsFilter().with_namespace(BEAM_METRICS_NAMESPACE).with_name(BEAM_FAILED_FILES)
        )
        records = set()
        for result in metrics.get("string_sets", []):
            records.update(result.committed or result.attempted or ())
        self._failed_files = [json.loads(record) for record in records]
        self._format_notes = _format_notes_from_beam(pipeline_result)

    def _check_wavs(self, utterances_by_split: dict[str, Sequence[Utterance]]) -> None:
        """Fails before any extraction if a listed wav is missing, unless `skip_failed` (then it fails later)."""
        if self._skip_failed:
            return
        missing = [u for split in utterances_by_split.values() for u in split if not os.path.isfile(u.wav_path)]
        if missing:
            others = ", ".join(u.wav_path for u in missing[1:3])
            unnamed = len(missing) - 3
            more = (
                f" ({len(missing) - 1} more listed wav(s) are missing: {others}"
                + (f" and {unnamed} other(s)" if unnamed > 0 else "") + ")"
                if len(missing) > 1
                else ""
            )
            raise EmoconfError(
                f"{missing_wav_reason(missing[0])}{more}; the {self.name} copy in the manual dir is incomplete: "
                f"copy the missing wav(s) there, or leave these rows out with --skip-failed (skip_failed=True)"
            )

    def _opensmile_cache_dir(self, dl_manager) -> str:
        # Under the download dir (default `<data_dir>/downloads`), which TFDS keeps across builds.
        return os.fspath(dl_manager.download_dir / "opensmile")

    def _generate_examples(self, utterances: Sequence[Utterance], cache_dir: str):
        """Examples `(id, example)` of `utterances`: a generator, or a Beam `PTransform` on the Beam path."""
        self._num_utterances += len(utterances)
        if self._use_beam:
            return self._generate_examples_with_beam(utterances, cache_dir)
        return self._generate_examples_locally(utterances, cache_dir)

    def _generate_examples_locally(self, utterances: Sequence[Utterance], cache_dir: str) -> Iterator[tuple[str, dict]]:
        results = extraction.iter_features(
            [utterance.wav_path for utterance in utterances],
            self.builder_config.feature_set,
            num_workers=self._num_workers,
            cache_dir=cache_dir,
            num_features=self.builder_config.num_features,
            progress=self._progress,
            on_error="report",
            format_notes=self._format_notes,
        )
        written = 0
        # strict: runs `results` to its end, so that its progress bar is closed before any error below
        for utterance, (_, result) in zip(utterances, results, strict=True):
            if isinstance(result, extraction.FailedFile):
                self._failed_files.append(failure_record(utterance, result.reason))
                continue
            written += 1
            yield utterance.id, utterance_example(utterance, result)
        if utterances and not written:
            # TFDS cannot write an empty split: say why it is empty rather than let the writer fail.
            failures = [extraction.FailedFile(f["path"], f["reason"]) for f in self._failed_files[-len(utterances):]]
            raise EmoconfError(
                f"{self.name}: no example left in a split of {len(utterances)} utterance(s): "
                f"{extraction.failure_summary(failures, len(utterances))}. A split cannot be empty, even with "
                f"skip_failed: fix or replace these files and build again"
            )

    def _generate_examples_with_beam(self, utterances: Sequence[Utterance], cache_dir: str):
        beam = tfds.core.lazy_imports.apache_beam
        # The per-file cache is a local folder: used with DirectRunner (or a shared mount), not on gs://.
        local_cache = None if "://" in cache_dir else cache_dir
        return (
            beam.Create(list(utterances))
            | "Reshuffle" >> beam.Reshuffle()  # spread the files over the workers
            | "Extract" >> beam.FlatMap(
                extract_example_with_beam,
                feature_set=self.builder_config.feature_set,
                num_features=self.builder_config.num_features,
                cache_dir=local_cache,
            )
        )

    def _record_audio_formats(self) -> None:
        """Warns once per kind of format change (downmixed, below or above 16 kHz); kept in `info.metadata`."""
        messages = [f"{self.name}: {message}" for message in self._format_notes.messages()]
        self.info.metadata["audio_format_notes"] = messages
        for message in messages:
            warnings.warn(message, UserWarning, stacklevel=2)

    def _record_failures(self) -> None:
        """Counts the failed files in `info.metadata`; fails the build with their names unless `skip_failed`."""
        failures = sorted(self._failed_files, key=lambda record: record["id"])
        metadata = self.info.metadata
        metadata["failed_files"] = failures
        if not failures:
            return
        skipped_other = dict(metadata.get("skipped_other", {}))
        skipped_other["failed extraction"] = len(failures)
        metadata["skipped_other"] = dict(sorted(skipped_other.items()))
        summary = extraction.failure_summary(
            [extraction.FailedFile(f["path"], f["reason"]) for f in failures], self._num_utterances
        )
        if not self._skip_failed:
            raise EmoconfError(
                f"{self.name}: {summary}. Fix or remove these files and build again (the features of the other "
                f"files are cached and are not extracted again), or leave them out with skip_failed=True "
                f"(emoconf build --skip-failed)"
            )
        logger.warning("%s: %s; left out (skip_failed)", self.name, summary)

    def _record_metadata(self, *, scale: tuple[float, float], skipped: dict, skipped_reasons: dict | None = None):
        """Stores the scale, feature names, merged categories (`{category: class}`, from the config) and skipped
        counts in `info.metadata` (`metadata.json`)."""
        metadata = self.info.metadata
        metadata["scale"] = [float(scale[0]), float(scale[1])]
        metadata["merged_labels"] = dict(self.builder_config.merged_labels)
        metadata["feature_set"] = self.builder_config.feature_set
        metadata["feature_names"] = extraction.feature_names(self.builder_config.feature_set)
        metadata["skipped_classes"] = {str(k): int(v) for k, v in sorted(skipped.items())}
        metadata["skipped_other"] = {str(k): int(v) for k, v in sorted((skipped_reasons or {}).items())}
        total = sum(metadata["skipped_classes"].values()) + sum(metadata["skipped_other"].values())
        if total:
            logger.info(
                "%s: skipped %d utterance(s): classes %s, other %s",
                self.name,
                total,
                metadata["skipped_classes"],
                metadata["skipped_other"],
            )


def utterance_example(utterance: Utterance, features: np.ndarray) -> dict:
    """The example of one utterance (see the module docstring), with its features float32 `[D]`."""
    return {
        "id": utterance.id,
        "features": features,
        "label": utterance.label,
        "arousal": np.float32(utterance.arousal),
        "valence": np.float32(utterance.valence),
        "dominance": np.float32(utterance.dominance),
        "speaker": utterance.speaker,
        "group": utterance.group,
    }


def failure_record(utterance: Utterance, reason: str) -> dict:
    """`{"id", "path", "reason"}` of an utterance whose audio failed, as kept in `info.metadata["failed_files"]`.

    A missing wav's reason names where the corpus lists it (`missing_wav_reason`).
    """
    if not os.path.isfile(utterance.wav_path):
        reason = missing_wav_reason(utterance)
    return {"id": utterance.id, "path": utterance.wav_path, "reason": reason}


def missing_wav_reason(utterance: Utterance) -> str:
    """`"<wav>: no such audio file, listed in <labels file> line 5 (FileName X.wav)"`."""
    listed = f", listed in {utterance.source}" if utterance.source else ""
    return f"{utterance.wav_path}: no such audio file{listed}"


# A file name in a labels file must stay inside the manual dir: no absolute path, drive or `..`.
_PARENT_OR_ROOT = re.compile(r"(^|[\\/])\.\.([\\/]|$)")


def path_in_manual_dir(folder: Path, name: str, *, source: str, example: str) -> str:
    """`folder / name` if it stays inside `folder`; an `EmoconfError` naming `source` otherwise.

    Nothing is read outside the manual dir, whatever a labels file says: `name` may hold sub-folders but no
    absolute path, drive letter or `..` (checked on the text, before any file is opened; a symlink the owner
    of the manual dir made is followed).

    Args:
        folder: the folder `name` is relative to (inside the manual dir).
        name: the file name as the labels file gives it.
        source: where the name comes from, e.g. `"<labels file> line 5"`.
        example: a valid name, for the message.
    """
    if (
        not name
        or os.path.isabs(name)
        or PureWindowsPath(name).drive
        or name.startswith(("/", "\\"))
        or _PARENT_OR_ROOT.search(name)
    ):
        raise EmoconfError(
            f"{source}: {name!r} is not a file name inside the manual dir ({folder}); the build reads nothing "
            f"outside it. Give the name of a file in that folder (e.g. {example}) and build again"
        )
    path = os.path.normpath(os.path.join(folder, name))
    if os.path.commonpath([path, os.path.normpath(folder)]) != os.path.normpath(folder):
        raise EmoconfError(
            f"{source}: {name!r} leads outside the manual dir ({folder}); the build reads nothing outside it"
        )
    return path


def extract_example_with_beam(
    utterance: Utterance, *, feature_set: str, num_features: int | None, cache_dir: str | None
) -> Iterator[tuple[str, dict]]:
    """Beam `FlatMap` step: the utterance's example, or nothing if its audio fails (recorded in Beam metrics).

    A module-level function, so that Beam pickles a reference to it and not the builder.
    """
    beam = tfds.core.lazy_imports.apache_beam
    try:
        features = extraction.extract_file(
            utterance.wav_path, feature_set, cache_dir=cache_dir, num_features=num_features
        )
    except EmoconfError as error:
        beam.metrics.Metrics.counter(BEAM_METRICS_NAMESPACE, BEAM_FAILED_FILES).inc()
        record = failure_record(utterance, str(error))
        beam.metrics.Metrics.string_set(BEAM_METRICS_NAMESPACE, BEAM_FAILED_FILES).add(
            json.dumps(record, sort_keys=True)
        )
        return
    notes = extraction.AudioFormatNotes()
    file_format = extraction.audio_format(utterance.wav_path)
    notes.add(utterance.wav_path, file_format)
    if notes:
        for kind, count in notes.counts.items():
            if count:
                beam.metrics.Metrics.counter(BEAM_METRICS_NAMESPACE, f"{BEAM_AUDIO_FORMATS}_{kind}").inc()
        beam.metrics.Metrics.string_set(BEAM_METRICS_NAMESPACE, BEAM_AUDIO_FORMATS).add(
            json.dumps({"path": utterance.wav_path, **dataclasses.asdict(file_format)}, sort_keys=True)
        )
    yield utterance.id, utterance_example(utterance, features)


def _format_notes_from_beam(pipeline_result) -> extraction.AudioFormatNotes:
    """The `AudioFormatNotes` of a Beam build, from the workers' metrics (files sorted by path)."""
    beam = tfds.core.lazy_imports.apache_beam
    metrics = pipeline_result.metrics().query(beam.metrics.MetricsFilter().with_namespace(BEAM_METRICS_NAMESPACE))
    records = set()
    for result in metrics.get("string_sets", []):
        if result.key.metric.name == BEAM_AUDIO_FORMATS:
            records.update(result.committed or result.attempted or ())
    notes = extraction.AudioFormatNotes()
    for fields in sorted((json.loads(text) for text in records), key=lambda fields: fields["path"]):
        path = fields.pop("path")
        notes.add(path, extraction.AudioFormat(**fields))
    # A string set may be capped by the runner; the counters count every file.
    for result in metrics.get("counters", []):
        name = result.key.metric.name
        if name.startswith(f"{BEAM_AUDIO_FORMATS}_"):
            kind = name[len(BEAM_AUDIO_FORMATS) + 1 :]
            notes.counts[kind] = max(notes.counts.get(kind, 0), int(result.committed or result.attempted or 0))
    return notes


