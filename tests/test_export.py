"""SavedModel export: signatures, numbers equal to Keras, thresholds, versions, atomicity, assets, CLI, README bodies.

One tiny run (300 synthetic utterances x 16 features, 2 epochs) is trained and exported once per session
(conftest's `tiny_export`, shared with test_predict.py).
No model server runs here: the SavedModel is loaded in-process and the README's REST bodies are decoded
the way TF Serving decodes them.
"""

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emoconf_tf import EmoconfError
from emoconf_tf.cli import main
from emoconf_tf.scores import emoconfidnet_confidence, top2_margin
from emoconf_tf.serving.examples import serialize_examples
from emoconf_tf.serving.export import export_run
from emoconf_tf.serving.serving_module import EmoconfServingModule
from emoconf_tf.serving.warmup import WARMUP_REQUESTS, warmup_features, warmup_records
from emoconf_tf.serving.model_card import model_card, recorded_feature_set
from emoconf_tf.serving.inspect import TensorSpecInfo, signatures
from emoconf_tf.serving.versions import model_versions, version_dir
from emoconf_tf.serving.rundir import MANIFEST, load_run
from emoconf_tf.thresholds import accept as numpy_accept
from emoconf_tf.thresholds import rejection_threshold

D = 16
K = 5
README = Path(__file__).resolve().parents[1] / "savedmodels" / "README.md"


@dataclasses.dataclass
class Exported:
    corpus: object
    run: object
    run_dir: Path
    path: Path
    model: object
    features: np.ndarray


@pytest.fixture(scope="module")
def exported(tiny_export) -> Exported:
    corpus, run_dir, result = tiny_export  # conftest: trained and exported once per session
    return Exported(corpus, load_run(run_dir), run_dir, result.path, tf.saved_model.load(str(result.path)),
                    corpus.features.astype(np.float32))


def _call(model, name, **inputs):
    return {key: value.numpy() for key, value in model.signatures[name](**inputs).items()}


# === Signatures ===

EXPECTED_SIGNATURES = {
    "serving_default": (
        {"examples": ("string", (None,))},
        {"class_ids": ("int64", (None,)), "classes": ("string", (None,)), "probabilities": ("float32", (None, K)),
         "confidence": ("float32", (None,)), "accept": ("bool", (None,))},
    ),
    "predict": (
        {"features": ("float32", (None, D))},
        {"class_ids": ("int64", (None,)), "classes": ("string", (None,)), "probabilities": ("float32", (None, K))},
    ),
    "confidence": (
        {"features": ("float32", (None, D))},
        {"class_ids": ("int64", (None,)), "confidence": ("float32", (None,)),
         "emoconfidnet_confidence": ("float32", (None,)), "baseline_confidence": ("float32", (None,))},
    ),
    "threshold": (
        {"features": ("float32", (None, D)), "rejection": ("float32", ())},
        {"threshold": ("float32", ()), "class_thresholds": ("float32", (K,)), "applied_threshold": ("float32", (None,)),
         "confidence": ("float32", (None,)), "accept": ("bool", (None,)),
         "emoconfidnet_confidence": ("float32", (None,)), "baseline_confidence": ("float32", (None,))},
    ),
}
EXPECTED_SIGNATURES["batch_threshold"] = EXPECTED_SIGNATURES["threshold"]  # the same call, thresholds from the batch


def _as_info(specs):
    return {key: TensorSpecInfo(dtype, shape) for key, (dtype, shape) in specs.items()}


def test_saved_model_pb_has_exactly_the_five_signatures_with_their_dtypes_and_shapes(exported):
    found = signatures(exported.path)
    assert list(found) == ["serving_default", "batch_threshold", "confidence", "predict", "threshold"]
    for name, (inputs, outputs) in EXPECTED_SIGNATURES.items():
        assert found[name].inputs == _as_info(inputs), name
        assert found[name].outputs == _as_info(outputs), name
        assert found[name].method == "tensorflow/serving/predict"


def test_loaded_signatures_agree_with_saved_model_pb(exported):
    for name, (inputs, outputs) in EXPECTED_SIGNATURES.items():
        function = exported.model.signatures[name]
        got_inputs = {k: (s.dtype.name, tuple(s.shape.as_list()))
                      for k, s in function.structured_input_signature[1].items()}
        got_outputs = {k: (s.dtype.name, tuple(s.shape.as_list())) for k, s in function.structured_outputs.items()}
        assert got_inputs == inputs and got_outputs == outputs, name


def _saved_model_cli() -> list[str]:
    """The `saved_model_cli` of the tensorflow wheel: the console script, else the module it runs."""
    found = shutil.which("saved_model_cli")
    return [found] if found else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def test_saved_model_cli_shows_the_five_signatures_and_runs_predict(exported, tmp_path):
    # `run --input_exprs 'features=np.zeros(...)'` is refused by TF 2.21 (literals only), so the input is an .npy.
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros((2, D), np.float32))
    cli, env = _saved_model_cli(), {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    commands = {
        "show": [*cli, "show", "--all", "--dir", str(exported.path)],
        "run": [*cli, "run", "--dir", str(exported.path), "--tag_set", "serve", "--signature_def", "predict",
                "--inputs", f"features={zeros}"],
    }
    # Both at once: each start-up imports TensorFlow (~5-10 s).
    processes = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for name, command in commands.items()}
    outputs = {name: process.communicate(timeout=180) for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, f"saved_model_cli {name}:\n{outputs[name][1][-3000:]}"
    shown = outputs["show"][0]
    for name, (inputs, signature_outputs) in EXPECTED_SIGNATURES.items():
        block = shown.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        assert [f"inputs['{key}']" in block for key in inputs] == [True] * len(inputs), name
        assert [f"outputs['{key}']" in block for key in signature_outputs] == [True] * len(signature_outputs), name
        assert "Method name is: tensorflow/serving/predict" in block, name
    assert f"shape: (-1, {D})" in shown and "dtype: DT_STRING" in shown
    ran = outputs["run"][0]
    expected = _call(exported.model, "predict", features=tf.zeros([2, D]))["class_ids"]
    assert re.search(r"Result for output key class_ids:\s*\[" + r"\s+".join(map(str, expected)) + r"\]", ran), ran


def test_tf1_session_loader_restores_every_variable_the_signatures_read(exported):
    # How TF Serving (C++ LoadSavedModel) and `saved_model_cli run` load a model: a graph + session,
    # variables restored by the saver. tf.saved_model.load would hide variables the saver never restores.
    features = exported.features[:5]
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(exported.path))
        handles = [op for op in graph.get_operations() if op.type == "VarHandleOp"]
        initialized = session.run([tf.raw_ops.VarIsInitializedOp(resource=op.outputs[0]) for op in handles])
        assert all(initialized), [op.name for op, ok in zip(handles, initialized) if not ok]
        got = {}
        for name, inputs in (("predict", {"features": features}),
                             ("threshold", {"features": features, "rejection": np.float32(0.2)})):
            signature = meta_graph.signature_def[name]
            got[name] = session.run({key: info.name for key, info in signature.outputs.items()},
                                    {signature.inputs[key].name: value for key, value in inputs.items()})
    expected = _call(exported.model, "predict", features=tf.constant(features))
    np.testing.assert_allclose(got["predict"]["probabilities"], expected["probabilities"], atol=1e-6)
    at_rate = _call(exported.model, "threshold", features=tf.constant(features), rejection=tf.constant(0.2))
    np.testing.assert_array_equal(got["threshold"]["accept"], at_rate["accept"])
    assert got["threshold"]["threshold"] == at_rate["threshold"]


def _variable_names(path) -> set[str]:
    """Names of the variables in a SavedModel's graph, as a TF1 loader sees them."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        return {op.get_attr("shared_name").decode() for op in graph.get_operations() if op.type == "VarHandleOp"}


# === Numbers equal the Keras models' ===

def test_predict_equals_keras_classifier_and_emoconfidnet(exported):
    out = _call(exported.model, "predict", features=tf.constant(exported.features))
    classifier = exported.run.classifier.predict(exported.features, verbose=0)
    combined = exported.run.emoconfidnet.predict(exported.features, verbose=0)
    np.testing.assert_allclose(out["probabilities"], classifier, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], combined["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(out["class_ids"], classifier.argmax(axis=1))
    assert [c.decode() for c in out["classes"]] == [exported.run.class_names[i] for i in out["class_ids"]]
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-5)


def test_confidence_equals_numpy_scores_of_keras_outputs(exported):
    out = _call(exported.model, "confidence", features=tf.constant(exported.features))
    keras_out = exported.run.emoconfidnet.predict(exported.features, verbose=0)
    np.testing.assert_allclose(out["confidence"],
                               emoconfidnet_confidence(keras_out["probabilities"], keras_out["p_hat"]), atol=1e-5)
    np.testing.assert_allclose(out["baseline_confidence"], top2_margin(keras_out["probabilities"]), atol=1e-5)


def test_confidence_on_validation_rows_reproduces_validation_csv(exported):
    validation = exported.run.validation
    row_of = {utterance: i for i, utterance in enumerate(exported.corpus.ids)}
    rows = [row_of[utterance] for utterance in validation["id"]]
    out = _call(exported.model, "confidence", features=tf.constant(exported.features[rows]))
    np.testing.assert_allclose(out["confidence"], validation["confidence"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["baseline_confidence"], validation["baseline_confidence"], rtol=1e-6, atol=1e-7)
    names = np.asarray(exported.run.class_names)
    assert list(names[out["class_ids"]]) == list(validation["predicted"])


def test_serving_default_on_serialized_examples_equals_predict_and_confidence(exported):
    features = exported.features[:40]
    served = _call(exported.model, "serving_default", examples=tf.constant(serialize_examples(features)))
    predicted = _call(exported.model, "predict", features=tf.constant(features))
    confidence = _call(exported.model, "confidence", features=tf.constant(features))
    np.testing.assert_array_equal(served["probabilities"], predicted["probabilities"])
    np.testing.assert_array_equal(served["class_ids"], predicted["class_ids"])
    np.testing.assert_array_equal(served["classes"], predicted["classes"])
    np.testing.assert_array_equal(served["confidence"], confidence["confidence"])


def test_serving_default_accept_is_the_default_rejection_threshold(exported):
    served = _call(exported.model, "serving_default", examples=tf.constant(serialize_examples(exported.features)))
    t20 = rejection_threshold(exported.run.validation["confidence"].to_numpy(), 0.2)
    np.testing.assert_array_equal(served["accept"], numpy_accept(served["confidence"], t20))
    at_rate = _call(exported.model, "threshold", features=tf.constant(exported.features), rejection=tf.constant(0.2))
    np.testing.assert_array_equal(served["accept"], at_rate["accept"])


# === Thresholds ===

@pytest.mark.parametrize("rejection", [0.0, 0.1, 0.2, 0.35, 0.5])
def test_threshold_equals_rejection_threshold_of_validation_confidences(exported, rejection):
    validation_confidence = exported.run.validation["confidence"].to_numpy()
    expected = rejection_threshold(validation_confidence, rejection)
    out = _call(exported.model, "threshold", features=tf.constant(exported.features),
                rejection=tf.constant(rejection, tf.float32))
    assert out["threshold"].dtype == np.float32 and out["threshold"].shape == ()
    assert out["threshold"] == np.float32(expected)
    np.testing.assert_array_equal(out["accept"], numpy_accept(out["confidence"], expected))


def test_threshold_zero_rejection_accepts_everything(exported):
    out = _call(exported.model, "threshold", features=tf.constant(exported.features), rejection=tf.constant(0.0))
    assert out["threshold"] == 0.0 and out["accept"].all()


def test_accept_is_confidence_at_least_threshold_and_shrinks_with_the_rate(exported):
    kept = []
    for rejection in (0.0, 0.1, 0.2, 0.35, 0.5):
        out = _call(exported.model, "threshold", features=tf.constant(exported.features),
                    rejection=tf.constant(rejection))
        np.testing.assert_array_equal(out["accept"], out["confidence"] >= out["threshold"])
        kept.append(int(out["accept"].sum()))
    assert kept == sorted(kept, reverse=True)


def test_threshold_golden_values_on_a_hundred_scores(exported):
    # Validation scores 0.01, 0.02, ..., 1.00; sorted descending, the k-th is (101 - k) / 100.
    # r = 0.2: ceil(100 * 0.8) = 80th -> 0.21.  r = 0.35: ceil(100 * 0.65) = 65th -> 0.36 (float32(0.35) =
    # 0.34999999 taken literally would give ceil(65.0000006) = 66th -> 0.35).  r = 0.999: ceil(0.1) = 1st -> 1.00.
    scores = np.arange(1, 101) / 100
    module = EmoconfServingModule(exported.run.emoconfidnet, exported.run.class_names, scores,
                                  default_rejection=0.2, default_threshold=rejection_threshold(scores, 0.2))
    features = tf.constant(exported.features[:3])
    for rejection, expected in ((0.2, 0.21), (0.35, 0.36), (0.999, 1.0), (0.0, 0.0)):
        got = module.signatures["threshold"](features, tf.constant(rejection, tf.float32))["threshold"].numpy()
        assert got == np.float32(expected) == np.float32(rejection_threshold(scores, rejection)), rejection


@pytest.mark.parametrize("rejection, printed", [(1.0, "[1]"), (-0.1, "[-0.1]"), (float("nan"), "[nan]")])
def test_rejection_outside_unit_interval_is_a_clear_error(exported, rejection, printed):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rejection rate outside \[0, 1\)") as error:
        exported.model.signatures["threshold"](features=tf.constant(exported.features[:2]),
                                               rejection=tf.constant(rejection, tf.float32))
    assert printed in str(error.value)  # the message names the rate


# === Input errors ===

@pytest.mark.parametrize("name", ["predict", "confidence"])
@pytest.mark.parametrize("num_features", [D + 1, D - 1])
def test_wrong_feature_length_is_a_clear_error(exported, name, num_features):
    features = tf.zeros([2, num_features], tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"expected float32 \[batch, {D}\].*got shape.*{num_features}"):
        exported.model.signatures[name](features=features)


def test_wrong_feature_length_in_a_tf_example_is_a_clear_error(exported):
    examples = tf.constant(serialize_examples(np.zeros([1, D + 1], np.float32)))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Key: features.*Values size: {D + 1} but output shape: \[{D}\]"):
        exported.model.signatures["serving_default"](examples=examples)


def test_tf_example_without_features_is_a_clear_error(exported):
    example = tf.train.Example(features=tf.train.Features(feature={
        "other": tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * D))})).SerializeToString()
    with pytest.raises(tf.errors.InvalidArgumentError, match="features.*required but could not be found"):
        exported.model.signatures["serving_default"](examples=tf.constant([example]))


def test_wrong_dtype_is_a_clear_error(exported):
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a double tensor"):
        exported.model.signatures["predict"](features=tf.zeros([2, D], tf.float64))


# === Versions and atomic writes ===

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folded_export_serves_the_same_outputs_as_the_keras_graph(exported, tmp_path):
    unfolded_path = export_run(exported.run_dir, tmp_path / "m", fold=False).path
    unfolded = tf.saved_model.load(str(unfolded_path))
    variables = _variable_names(exported.path)
    assert {"block1_dense/folded_kernel", "p_hat/folded_bias", "input_mean"} <= variables
    assert not any("batchnorm" in name for name in variables)  # nothing of the Keras graph is saved
    assert "block1_batchnorm/moving_mean" in _variable_names(unfolded_path)
    examples = tf.constant(serialize_examples(exported.features[:64]))
    folded_out = _call(exported.model, "serving_default", examples=examples)
    keras_out = _call(unfolded, "serving_default", examples=examples)
    np.testing.assert_array_equal(folded_out["class_ids"], keras_out["class_ids"])
    np.testing.assert_allclose(folded_out["probabilities"], keras_out["probabilities"], atol=2e-6)
    np.testing.assert_allclose(folded_out["confidence"], keras_out["confidence"], atol=2e-6)


def test_two_exports_are_versions_1_and_2_and_leave_no_temporary_folder(exported, tmp_path):
    base = tmp_path / "savedmodels" / "emoconf"
    first = export_run(exported.run_dir, base, verify=False)
    digest = _sha256(first.path / "saved_model.pb")
    second = export_run(exported.run_dir, base, default_rejection=0.3, verify=False)
    assert (first.version, second.version) == (1, 2)
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert _sha256(base / "1" / "saved_model.pb") == digest
    assert model_versions(base) == [1, 2] and version_dir(base) == base / "2"


def test_export_never_replaces_a_version_that_appeared_meanwhile(exported, tmp_path, monkeypatch):
    import emoconf_tf.serving.export as export_module

    base = tmp_path / "emoconf"
    export_run(exported.run_dir, base, verify=False)
    digest = _sha256(base / "1" / "saved_model.pb")
    real = export_module.model_versions
    stale = iter([[]])  # the first look misses version 1, as if another export had just published it
    monkeypatch.setattr(export_module, "model_versions", lambda path: next(stale, None) or real(path))
    assert export_run(exported.run_dir, base, verify=False).version == 2
    assert _sha256(base / "1" / "saved_model.pb") == digest
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_failed_export_of_unfinished_run_leaves_nothing(exported, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for file in exported.run_dir.iterdir():
        if file.name != MANIFEST:
            (unfinished / file.name).write_bytes(file.read_bytes())
    base = tmp_path / "savedmodels" / "emoconf"
    with pytest.raises(EmoconfError, match="no manifest.json"):
        export_run(unfinished, base)
    assert not (tmp_path / "savedmodels").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_failure_while_saving_leaves_nothing_behind(exported, tmp_path, monkeypatch, existing):
    base = tmp_path / "savedmodels" / "emoconf"
    if existing:
        export_run(exported.run_dir, base, verify=False)

    def half_written(self, path):
        Path(path).mkdir(parents=True)
        (Path(path) / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(EmoconfServingModule, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        export_run(exported.run_dir, base)
    if existing:
        assert sorted(os.listdir(base)) == ["1"]
    else:
        assert not (tmp_path / "savedmodels").exists()


@pytest.mark.parametrize("rejection", [1.0, -0.2, float("inf")])
def test_bad_default_rejection_is_refused_before_writing(exported, tmp_path, rejection):
    with pytest.raises(EmoconfError, match=r"^default_rejection .* is outside \[0, 1\)") as caught:
        export_run(exported.run_dir, tmp_path / "emoconf", default_rejection=rejection)
    assert caught.value.argument == "default_rejection"
    assert not (tmp_path / "emoconf").exists()


def test_out_pointing_at_a_version_directory_is_refused(exported):
    with pytest.raises(EmoconfError, match=r"^out_dir .*: holds a SavedModel itself; give the model base path") as caught:
        export_run(exported.run_dir, exported.path)
    assert caught.value.argument == "out_dir"


# === Assets ===

def test_labels_and_feature_names_assets(exported):
    assets = exported.path / "assets"
    assert (assets / "labels.txt").read_text().splitlines() == exported.run.class_names
    assert (assets / "feature_names.txt").read_text().splitlines() == list(exported.corpus.feature_names)
    assert (assets / "feature_set.txt").read_text() == "synthetic\n"
    assert sorted(os.listdir(assets)) == ["feature_names.txt", "feature_set.txt", "labels.txt", "model_card.md",
                                          "score.json"]
    score = json.loads((assets / "score.json").read_text())
    assert (score["score"], score["served"], score["rejection_mode"]) == ("emoconfidnet", "emoconfidnet", "global")


def test_model_card_says_synthetic_and_lists_the_run(exported):
    card = (exported.path / "assets" / "model_card.md").read_text()
    first = card.splitlines()[0]
    assert first.startswith("# ") and "SYNTHETIC" in first
    assert "**SYNTHETIC DATA.**" in card
    assert "| corpus | synthetic (**SYNTHETIC**) |" in card
    assert "| classes | angry, disgusted, happy, neutral, sad " in card
    assert f"| features | {D} per utterance" in card
    assert "| AVD scale | 1 to 7 |" in card
    assert "| input clipping | each feature clipped to the range it had on the training rows" in card
    assert "| conflict filter | on (training set: filtered" in card
    assert re.search(r"\| exported \| \d{4}-\d{2}-\d{2}, emoconf-tf \d+\.\d+\.\d+", card)
    threshold_20 = rejection_threshold(exported.run.validation["confidence"].to_numpy(), 0.2)
    assert f"rejection 0.2 -> threshold {threshold_20:.6f}" in card


def test_model_card_has_a_row_per_results_row_of_the_paper_scores(exported):
    card = (exported.path / "assets" / "model_card.md").read_text()
    results = exported.run.results
    if "threshold_source" in results:
        results = results[results["threshold_source"] == "validation"]
    assert "| msp | " not in card  # the served score (here EmoConfidNet) and the baseline only
    for row in results[results["method"].isin(["emoconfidnet", "top2_margin"])].itertuples(index=False):
        per_class = getattr(row, "rejection_mode", "global") == "per_class"  # results.csv's per-class rows
        shown = "per class" if per_class else f"{row.threshold:.6f}"
        assert f"| {row.method} | {row.rejection:.2f} | {shown} | " in card
        assert card.count(f"| {row.f1:.3f} | {row.uar:.3f} |") >= 1


def test_model_card_of_a_real_corpus_has_no_synthetic_banner(exported):
    info = {**exported.run.info, "synthetic": False, "corpus": "msp_podcast", "filter": False, "training": "raw"}
    card = model_card(dataclasses.replace(exported.run, info=info), default_rejection=0.2, default_threshold=0.5,
                      date="2025-01-31")
    assert "SYNTHETIC" not in card
    assert card.splitlines()[0] == "# EmoConfidNet model card"
    assert "| conflict filter | off (training set: raw) |" in card
    assert "| exported | 2025-01-31, emoconf-tf" in card
    assert "the run records no feature set (`feature_set.txt`: unknown), so predict from a features table" in card


@pytest.mark.parametrize("info, recorded", [
    ({"synthetic": True}, "synthetic"),
    ({"synthetic": False, "feature_set": "compare_2016"}, "compare_2016"),
    ({"synthetic": False, "feature_set": "egemaps_v02"}, "egemaps_v02"),
    ({"synthetic": False, "feature_set": None}, "unknown"),
    ({"synthetic": False}, "unknown"),  # a run trained before run.json had the field
])
def test_feature_set_asset_records_the_runs_feature_set(info, recorded):
    assert recorded_feature_set(info) == recorded


# === TF Serving warm-up requests ===

def _warmup_logs(path: Path) -> list:
    """The PredictionLog records of a version's assets.extra/tf_serving_warmup_requests, parsed as TF Serving does."""
    prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    dataset = tf.data.TFRecordDataset(str(path / WARMUP_REQUESTS))
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in dataset]


def _warmup_inputs(log) -> tuple[str, dict]:
    request = log.predict_log.request
    return request.model_spec.signature_name, {key: tf.make_ndarray(value) for key, value in request.inputs.items()}


def test_warmup_file_holds_one_predict_request_for_every_signature(exported):
    logs = _warmup_logs(exported.path)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 5
    requests = dict(map(_warmup_inputs, logs))
    assert {name: sorted(inputs) for name, inputs in requests.items()} == {
        "serving_default": ["examples"], "predict": ["features"], "confidence": ["features"],
        "threshold": ["features", "rejection"], "batch_threshold": ["features", "rejection"]}
    assert requests["threshold"]["rejection"] == np.float32(0.2)  # the export's default rate
    default_inputs, predict_inputs = requests["serving_default"], requests["predict"]
    # One utterance: the training mean of each feature, as float32 [1, D] and as one serialized tf.Example.
    mean = warmup_features(exported.run.emoconfidnet)
    assert predict_inputs["features"].dtype == np.float32 and predict_inputs["features"].shape == (1, D)
    np.testing.assert_array_equal(predict_inputs["features"], mean)
    assert default_inputs["examples"].tolist() == serialize_examples(mean)


def test_warmup_requests_run_through_their_signatures_with_the_expected_shapes(exported):
    for log in _warmup_logs(exported.path):
        name, inputs = _warmup_inputs(log)
        out = _call(exported.model, name, **{key: tf.constant(value) for key, value in inputs.items()})
        outputs = EXPECTED_SIGNATURES[name][1]
        assert set(out) == set(outputs), name
        for key, (dtype, shape) in outputs.items():
            got_dtype = "string" if out[key].dtype == object else out[key].dtype.name  # tf.string -> bytes objects
            batch_of_one = tuple(1 if size is None else size for size in shape)
            assert (got_dtype, out[key].shape) == (dtype, batch_of_one), (name, key)


def test_warmup_requests_run_in_a_tf1_session_as_tf_serving_replays_them(exported):
    # TF Serving's warm-up (RunPredict) feeds each request's TensorProtos to the signature_def's tensors.
    logs = _warmup_logs(exported.path)  # read eagerly, outside the TF1 graph
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(exported.path))
        for log in logs:
            name, inputs = _warmup_inputs(log)
            signature = meta_graph.signature_def[name]
            got = session.run({key: info.name for key, info in signature.outputs.items()},
                              {signature.inputs[key].name: value for key, value in inputs.items()})
            assert got["confidence" if "confidence" in got else "class_ids"].shape == (1,), name


@pytest.mark.parametrize("shape", [(1, D), (3, 300)])  # 300 features: messages longer than a one-byte varint
def test_warmup_records_equal_the_tensorflow_serving_protos(shape):
    pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    features = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    rows = {"features": tf.make_tensor_proto(features, dtype=tf.float32)}
    at_rate = dict(rows, rejection=tf.make_tensor_proto(np.float32(0.2), dtype=tf.float32))
    inputs = {"serving_default": {"examples": tf.make_tensor_proto(serialize_examples(features), dtype=tf.string)},
              "predict": rows, "confidence": rows, "threshold": at_rate, "batch_threshold": at_rate}
    expected = [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(signature_name=name), inputs=inputs[name])))
        for name in ("serving_default", "predict", "confidence", "threshold", "batch_threshold")
    ]
    records = warmup_records(features)
    assert [prediction_log_pb2.PredictionLog.FromString(record) for record in records] == expected
    assert records == [log.SerializeToString(deterministic=True) for log in expected]


def test_a_batching_server_gets_warmup_requests_for_the_batchable_signatures_only(exported, tmp_path):
    from emoconf_tf.cli import build_parser
    from emoconf_tf.serving.serving_module import BATCHABLE_SIGNATURES, SIGNATURE_NAMES

    default = build_parser().parse_args(["export", "run"]).warmup
    assert tuple(default.split(",")) == SIGNATURE_NAMES  # every signature unless --warmup says otherwise
    assert main(["export", str(exported.run_dir), "--out", str(tmp_path / "m"), "--warmup",
                 ",".join(BATCHABLE_SIGNATURES)]) == 0
    logs = _warmup_logs(tmp_path / "m" / "1")
    assert [_warmup_inputs(log)[0] for log in logs] == ["serving_default", "predict", "confidence"]
    for log in logs:  # every input has a batch dimension, as TF Serving's batching session requires
        assert all(value.ndim >= 1 for value in _warmup_inputs(log)[1].values())


@pytest.mark.parametrize("value", ["threshold,threshold", "predict,scores", ""])
def test_bad_warmup_signatures_are_refused_before_tensorflow(value, capsys):
    assert main(["export", "no_run", "--warmup", value]) == 2
    assert "--warmup" in capsys.readouterr().err


def test_bad_warmup_signatures_name_the_python_argument():
    from emoconf_tf.serving.warmup import check_warmup_signatures

    with pytest.raises(EmoconfError, match=r"^warmup_signatures 'predict,scores': give distinct signatures") as caught:
        check_warmup_signatures("predict,scores")
    assert caught.value.argument == "warmup_signatures"


@pytest.mark.parametrize("shape", [(0, D), (D,)])
def test_warmup_records_refuse_anything_but_rows(shape):
    with pytest.raises(EmoconfError, match="warm-up features: expected a"):
        warmup_records(np.zeros(shape, np.float32))


# === CLI ===

def test_cli_no_fold_exports_the_keras_graph(exported, tmp_path):
    base = tmp_path / "savedmodels" / "keras_graph"
    assert main(["export", str(exported.run_dir), "--out", str(base), "--no-fold"]) == 0
    names = _variable_names(base / "1")
    assert "block2_batchnorm/moving_variance" in names and not any("folded" in name for name in names)


def test_cli_export_then_inspect_print_the_signatures(exported, tmp_path, capsys):
    base = tmp_path / "savedmodels" / "emoconf"
    assert main(["export", str(exported.run_dir), "--out", str(base), "--default-rejection", "0.1"]) == 0
    printed = capsys.readouterr().out
    assert f"as {base / '1'} (version 1)" in printed
    assert "signatures: serving_default, predict, confidence, threshold" in printed
    assert main(["inspect", str(base)]) == 0
    printed = capsys.readouterr().out
    for name in ("serving_default:", "predict:", "confidence:", "threshold:"):
        assert f"\n  {name}\n" in printed
    assert "input  examples: string [None]" in printed
    assert f"input  features: float32 [None, {D}]" in printed
    assert "output threshold: float32 []" in printed
    assert "SYNTHETIC" in printed and "rejection 0.1 -> threshold" in printed
    assert main(["inspect", str(base / "1")]) == 0


def test_cli_export_error_is_one_line(exported, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emoconf export: error: ") and "no such run directory" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_inspect_of_an_empty_folder_is_one_line(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no version directory with a saved_model.pb" in capsys.readouterr().err


# === README: REST bodies as TF Serving decodes them, gRPC tensors ===

def _decode_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _rest_inputs(body: dict, function) -> dict:
    """A `:predict` JSON body -> the signature's input tensors, by TF Serving's row/columnar rules."""
    specs = function.structured_input_signature[1]
    names = list(specs)
    if "instances" in body:
        rows = body["instances"]
        named = isinstance(rows[0], dict) and set(rows[0]) != {"b64"}
        columns = {n: [row[n] for row in rows] for n in names} if named else {names[0]: rows}
    else:
        inputs = body["inputs"]
        named = isinstance(inputs, dict) and set(inputs) != {"b64"}
        columns = inputs if named else {names[0]: inputs}
    assert set(columns) == set(names), f"inputs {sorted(columns)} != signature inputs {sorted(names)}"
    return {n: tf.constant(_decode_b64(columns[n]), dtype=specs[n].dtype) for n in names}


def _readme_pairs():
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", README.read_text(), re.S)]
    pairs = []
    for i, block in enumerate(blocks):
        if "instances" in block or "inputs" in block:
            response = blocks[i + 1] if i + 1 < len(blocks) else None
            assert response and ("predictions" in response or "outputs" in response), f"request {i} has no response"
            pairs.append((block, response))
    return pairs


def test_readme_has_rest_examples_for_every_signature_in_both_formats():
    pairs = _readme_pairs()
    assert {request.get("signature_name", "serving_default") for request, _ in pairs} == set(EXPECTED_SIGNATURES)
    assert {"instances", "inputs"} <= {key for request, _ in pairs for key in request}
    assert len(pairs) == 6  # predict (row, columnar), confidence, threshold, batch_threshold, serving_default


@pytest.mark.parametrize("index", range(6))
def test_readme_rest_body_runs_through_the_signature_and_response_has_its_shape(exported, index):
    request, response = _readme_pairs()[index]
    name = request.get("signature_name", "serving_default")
    function = exported.model.signatures[name]
    out = {k: v.numpy() for k, v in function(**_rest_inputs(request, function)).items()}
    if "instances" in request:  # row format: one object per instance, every output batched
        rows = response["predictions"]
        assert len(rows) == len(request["instances"])
        for row in rows:
            assert set(row) == set(out)
            assert np.shape(row["probabilities"] if "probabilities" in row else 0) == (
                out["probabilities"].shape[1:] if "probabilities" in out else ())
    else:  # columnar: one tensor per output
        outputs = response["outputs"]
        assert set(outputs) == set(out)
        for key, value in outputs.items():
            assert np.shape(value) == out[key].shape, key


def test_readme_curl_bodies_run_through_serving_default_and_threshold(exported):
    bodies = [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", README.read_text(), re.S)]
    assert sorted(body.get("signature_name", "serving_default") for body in bodies) == ["serving_default", "threshold"]
    for body in bodies:
        function = exported.model.signatures[body.get("signature_name", "serving_default")]
        out = function(**_rest_inputs(body, function))
        assert out["accept"].shape == (1,) and out["confidence"].shape == (1,)


def test_readme_b64_example_holds_the_first_readme_row(exported):
    pairs = _readme_pairs()
    (b64_request, _), = [(r, _) for r, _ in pairs if "signature_name" not in r]
    predict_request = next(r for r, _ in pairs if r.get("signature_name") == "predict" and "instances" in r)
    parsed = tf.io.parse_example(_decode_b64([b64_request["instances"][0]]),
                                 {"features": tf.io.FixedLenFeature([D], tf.float32)})
    np.testing.assert_array_equal(parsed["features"].numpy()[0], np.float32(predict_request["instances"][0]))
    served = _call(exported.model, "serving_default", examples=tf.constant(_decode_b64(b64_request["instances"])))
    predicted = _call(exported.model, "predict", features=tf.constant([predict_request["instances"][0]], tf.float32))
    np.testing.assert_array_equal(served["probabilities"], predicted["probabilities"])


def test_grpc_tensor_protos_run_through_the_signatures(exported):
    # What the README's gRPC client sends: tf.make_tensor_proto per input (PredictRequest.inputs holds these).
    features = exported.features[:3]
    protos = {"features": tf.make_tensor_proto(features, dtype=tf.float32),
              "rejection": tf.make_tensor_proto(0.2, dtype=tf.float32)}
    out = exported.model.signatures["threshold"](**{k: tf.constant(tf.make_ndarray(v)) for k, v in protos.items()})
    assert tf.make_ndarray(tf.make_tensor_proto(out["threshold"])).shape == ()
    examples = tf.make_tensor_proto(serialize_examples(features), dtype=tf.string)
    served = exported.model.signatures["serving_default"](examples=tf.constant(tf.make_ndarray(examples)))
    np.testing.assert_array_equal(served["confidence"].numpy(), out["confidence"].numpy())


def test_grpc_predict_request_of_the_readme_is_well_formed(exported):
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "emoconf"
    request.model_spec.signature_name = "threshold"
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(exported.features[:2], dtype=tf.float32))
    request.inputs["rejection"].CopyFrom(tf.make_tensor_proto(0.2, dtype=tf.float32))
    decoded = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in decoded.inputs.items()}
    out = exported.model.signatures[decoded.model_spec.signature_name](**inputs)
    assert out["accept"].shape == (2,)
