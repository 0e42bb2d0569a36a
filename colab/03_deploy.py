# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/emoconf/emoconf-tf/blob/main/colab/03_deploy.ipynb)
#
# # Deploying EmoConfidNet: SavedModel, operating point, TF Serving
#
# Train the classifier, EmoConfidNet and a small ensemble, see which confidence score
# validation chose to serve, pick the rejection rate (the operating point) from its
# validation curve, export it as a SavedModel for TF Serving, call its signatures from
# Python (validation thresholds, thresholds from the batch itself, and an adaptive rate for
# a stream), and write the REST requests that do the same against a model server.
#
# > **SYNTHETIC DATA.** The model is trained on the built-in synthetic corpus (generated
# > utterances, not real speech); its model card says so. Use `emoconf train --table` on
# > your features table for a real model.
#
# Run time: about 3 minutes on a 2-core CPU at the default
# parameters.
#
# The method and protocol are those of Y. Li, C. Papayiannis, V. Rozgic, E. Shriberg and C. Wang, *Confidence Estimation for Speech Emotion Recognition Based on the Relationship Between Emotion Categories and Primitives*, ICASSP 2022 ([doi:10.1109/ICASSP43922.2022.9746930](https://doi.org/10.1109/ICASSP43922.2022.9746930)).
#
# _Outputs: none stored in this copy._

# %% [markdown]
# ## Setup

# %% active="ipynb"
# # Installs emoconf-tf from GitHub unless it is importable already (a local checkout, CI).
# # If Colab asks to restart the runtime after the install, restart it and run all cells again.
# import importlib.util
#
# if importlib.util.find_spec("emoconf_tf") is None:
#     %pip install -q "git+https://github.com/emoconf/emoconf-tf"

# %% tags=["parameters"]
import os

# Parameters. The tests set the EMOCONF_NB_* environment variables to run the notebook tiny.
SIZE = int(os.environ.get("EMOCONF_NB_SIZE", 4000))  # synthetic utterances
NUM_FEATURES = int(os.environ.get("EMOCONF_NB_NUM_FEATURES", 6373))  # 6373 = ComParE 2016, 88 = eGeMAPS v02
SEED = int(os.environ.get("EMOCONF_NB_SEED", 0))  # the seed of the one run that is exported
MAX_EPOCHS = int(os.environ.get("EMOCONF_NB_MAX_EPOCHS", 200))  # early stopping usually ends sooner

REJECTION = 0.2  # the operating point: fraction of predictions to reject (the paper's t20%)
RUN_DIR = "runs/synthetic"
MODEL_NAME = "emoconf_synthetic"
MODEL_DIR = f"savedmodels/{MODEL_NAME}"  # TF Serving's model base path: versions 1, 2, ... inside

# %%
import base64
import importlib.util
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from emoconf_tf import make_synthetic_corpus
from emoconf_tf.adaptive import AdaptiveRejection
from emoconf_tf.corpus import write_features_table
from emoconf_tf.serving.export import serialize_examples
from emoconf_tf.serving.versions import model_versions
from emoconf_tf.metrics import selective_scores
from emoconf_tf.thresholds import class_thresholds, rejection_threshold

# %% [markdown]
# ## Train a run
#
# `emoconf train` trains on the filtered training set and writes a *run directory*: the
# models as `.keras` files and the validation scores that set the thresholds. By default
# (`--score recommended`) it also trains two more classifiers (a deep ensemble) and chooses
# on validation the confidence score and rejection mode to serve, by the rule of
# `emoconf reproduce`: `macro_gain_ensemble` with per-class thresholds unless another
# candidate is clearly better. `--score emoconfidnet` would train the paper's model alone.
# A finished run is reused when the notebook runs again.

# %%
if not (Path(RUN_DIR) / "manifest.json").exists():
    ARGS = f"--synthetic --size {SIZE} --num-features {NUM_FEATURES} --max-epochs {MAX_EPOCHS}"
    ARGS += f" --seed {SEED}"
    # !emoconf train {ARGS} --out {RUN_DIR}
info = json.loads((Path(RUN_DIR) / "run.json").read_text())
class_names = info["class_names"]
MODE = info["rejection_mode"]  # the served score's rejection mode (validation's choice for recommended)
SERVED = f"{info['score']['name']} ({' + '.join(m for m, _ in info['score']['components'])})"
print(f"{RUN_DIR}: corpus {info['corpus']} (synthetic: {info['synthetic']}), "
      f"{info['num_features']} features, classes {', '.join(class_names)}, {info['training']} training, "
      f"seed {info['seed']}")
print(f"served confidence: {SERVED}, {MODE} thresholds")

# %% [markdown]
# ## Pick the operating point on the validation set
#
# For each rejection rate, the thresholds are set on the validation scores (one for all
# predictions in `global` mode, one per predicted class in `per_class` mode); the curve
# shows F1 of the kept validation predictions against the coverage (the fraction kept),
# for the served score and for the paper's two (EmoConfidNet and the top-two margin,
# global thresholds). A useful confidence makes F1 rise as the coverage falls; where the
# curve stops rising, rejecting more only loses predictions (and with few predictions
# left, the curve gets noisy). The served score was chosen on these validation
# predictions, so its curve here flatters it a little; the test set stays out of every
# choice, and its figures are in the run's `results.csv` and the model card.

# %%
validation = pd.read_csv(Path(RUN_DIR) / "validation.csv")
y_true = validation["label"].map(class_names.index).to_numpy()
y_pred = validation["predicted"].map(class_names.index).to_numpy()
METHODS = (  # (name, validation.csv column, rejection mode)
    (f"served: {SERVED}, {MODE}", "confidence", MODE),
    ("EmoConfidNet (the paper's)", "emoconfidnet", "global"),
    ("top-2 margin (the paper's baseline)", "baseline_confidence", "global"),
)
rows = []
for method, column, mode in METHODS:
    confidence = validation[column].to_numpy()
    for rejection in np.round(np.arange(0.0, 0.91, 0.05), 2):
        thresholds = class_thresholds(confidence, y_pred, rejection, len(class_names), mode)
        scores = selective_scores(y_true, y_pred, confidence, thresholds, len(class_names))
        rows.append({"method": method, "rejection": rejection, "coverage": scores.coverage,
                     "f1": scores.f1, "uar": scores.uar})
curve = pd.DataFrame(rows)
served_curve = curve[curve["method"] == METHODS[0][0]].drop(columns="method").set_index("rejection")


def plot_operating_point(rejection=REJECTION):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = ("tab:blue", "tab:red", "tab:green")
    for (method, group), color in zip(curve.groupby("method", sort=False), colors):
        ax.plot(group["coverage"], group["f1"], marker=".", color=color, label=method)
    point = served_curve.loc[served_curve.index[np.isclose(served_curve.index, rejection)][0]]
    ax.scatter([point["coverage"]], [point["f1"]], s=120, facecolors="none", edgecolors="black", zorder=3,
               label=f"served, rejection {rejection:.0%}")
    ax.set_xlabel("coverage (fraction of validation predictions kept)")
    ax.set_ylabel("F1 of the kept predictions")
    ax.set_title(f"Validation curve, {info['corpus']} (SYNTHETIC data)" if info["synthetic"] else
                 f"Validation curve, {info['corpus']}")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    plt.show()


plot_operating_point(REJECTION)
served_curve.round(3).iloc[::2]

# %% [markdown]
# With `ipywidgets` (as in Colab), a slider moves the operating point:

# %%
if importlib.util.find_spec("ipywidgets") is not None:
    import ipywidgets

    ipywidgets.interact(
        plot_operating_point, rejection=ipywidgets.FloatSlider(value=REJECTION, min=0.0, max=0.9, step=0.05)
    )
else:
    print("ipywidgets is not installed: change REJECTION in the parameter cell instead")

# %% [markdown]
# ## Export the SavedModel
#
# `emoconf export` writes the next version of the model under `MODEL_DIR` (the layout TF
# Serving polls), serving the run's score as `confidence` (the ensemble members folded into
# the one graph), with `REJECTION` as the operating point of its default signature. The
# model takes raw features: the standardisation is inside it. The sorted validation scores
# are stored too, so the `threshold` signature works for any rejection rate.
# `emoconf inspect` names the served score on its `confidence:` line.

# %%
# !emoconf export {RUN_DIR} --out {MODEL_DIR} --default-rejection {REJECTION}

# %%
# !emoconf inspect {MODEL_DIR}

# %% [markdown]
# `assets/score.json` in the version folder records the served score for clients and tools
# (`emoconf inspect` and `emoconf predict` read it): what it resolved to, the rejection
# mode, the number of classifiers in the graph and how validation chose it.

# %%
version_dir = Path(MODEL_DIR) / str(model_versions(MODEL_DIR)[-1])
score = json.loads((version_dir / "assets" / "score.json").read_text())
print(f"served: {score['served']}; rejection mode {score['rejection_mode']}; "
      f"{score['ensemble_members']} classifier(s) in the graph")
print("chosen on validation:", json.dumps(score["chosen_on"]))

# %% [markdown]
# ## Call the signatures from Python
#
# A few test utterances of the same synthetic corpus (`emoconf train --synthetic` uses
# corpus seed 0). `threshold` takes features and a rejection rate and returns the
# thresholds (the global one, and one per predicted class in `per_class` mode), each
# prediction's served confidence, the threshold applied to it and whether it is accepted,
# with the paper's two scores beside it.

# %%
loaded = tf.saved_model.load(str(version_dir))
print(f"{version_dir}: signatures {', '.join(loaded.signatures)}")

corpus = make_synthetic_corpus(n_utterances=SIZE, num_features=NUM_FEATURES, seed=0)
test = corpus.subset(corpus.split == "test")
features = test.features[:6]
out = loaded.signatures["threshold"](features=tf.constant(features), rejection=tf.constant(REJECTION))
expected = class_thresholds(validation["confidence"], y_pred, REJECTION, len(class_names), MODE)
print(f"global threshold at {REJECTION:.0%} rejection: {float(out['threshold']):.6f} "
      f"(from validation.csv: {rejection_threshold(validation['confidence'], REJECTION):.6f})")
by_class = {c: round(float(t), 6) for c, t in zip(class_names, out["class_thresholds"])}
print(f"per predicted class ({MODE}):", by_class)
print("    from validation.csv:", {c: round(float(t), 6) for c, t in zip(class_names, expected)})
pd.DataFrame({
    "id": test.ids[:6],
    "label": np.asarray(corpus.class_names)[test.labels[:6]],
    "predicted": np.asarray(class_names)[loaded.signatures["predict"](features=tf.constant(features))[
        "class_ids"].numpy()],
    "confidence": out["confidence"].numpy().round(6),
    "applied_threshold": out["applied_threshold"].numpy().round(6),
    "accept": out["accept"].numpy(),
    "emoconfidnet_confidence": out["emoconfidnet_confidence"].numpy().round(4),
})

# %% [markdown]
# `serving_default` is what a client calls without naming a signature: serialized
# `tf.Example`s in (one float list named `features` per utterance), the predicted class,
# probabilities, confidence and `accept` at the exported operating point out.

# %%
examples = serialize_examples(features)
out = loaded.signatures["serving_default"](examples=tf.constant(examples))
pd.DataFrame({
    "id": test.ids[:6],
    "label": np.asarray(corpus.class_names)[test.labels[:6]],
    "predicted": [c.decode() for c in out["classes"].numpy()],
    "confidence": out["confidence"].numpy().round(6),
    "accept": out["accept"].numpy(),
})

# %% [markdown]
# ## An operating point that holds on new data
#
# Validation thresholds reject `REJECTION` of the *validation* predictions; on new
# speakers or a new session the confidences shift and the same thresholds reject more or
# less. `batch_threshold` takes the same inputs as `threshold` but sets the thresholds on
# the request's own confidences, so it rejects the fraction `rejection` of the batch
# (within each predicted class in `per_class` mode), without labels. Send a whole session,
# or a day of calls, in one request: here every test utterance at once. (A class with
# fewer than `1 / rejection` rows in the batch loses none of them, and a batch of one row
# is always accepted.)

# %%
session = tf.constant(test.features)
rate = tf.constant(REJECTION)
from_validation = loaded.signatures["threshold"](features=session, rejection=rate)
from_batch = loaded.signatures["batch_threshold"](features=session, rejection=rate)
print(f"{len(test)} test utterances in one request, rejection {REJECTION:.0%}: rejected "
      f"{1 - from_validation['accept'].numpy().mean():.1%} with the validation thresholds (threshold), "
      f"{1 - from_batch['accept'].numpy().mean():.1%} with their own (batch_threshold)")
pd.DataFrame({"validation thresholds": from_validation["class_thresholds"].numpy(),
              "this batch's": from_batch["class_thresholds"].numpy()}, index=class_names).round(6)

# %% [markdown]
# `emoconf predict --per-batch` applies the same rule to all the rows of a table (or all the
# audio files) given at once; the last line, on stderr, says where the thresholds came from:

# %%
write_features_table(test, "session.parquet")
# !emoconf predict --model {MODEL_DIR} --rejection {REJECTION} --per-batch session.parquet | tail -n 3

# %% [markdown]
# Utterances that arrive one at a time cannot be thresholded on their own batch.
# `AdaptiveRejection` (adaptive conformal inference, Gibbs & Candès 2021) keeps one float
# on the client, the rate `r_t` sent to `threshold`, and moves it after each request so that
# the long-run rejection rate of the stream tends to `REJECTION`: here the test utterances,
# one request each, in order.

# %%
aci = AdaptiveRejection(REJECTION)  # the client's state: r_t, one float, kept between requests
kept = []
for row in test.features:
    out = loaded.signatures["threshold"](features=tf.constant(row[np.newaxis]),
                                         rejection=tf.constant(aci.rejection, tf.float32))
    keep = bool(out["accept"].numpy()[0]) and not aci.rejects_all
    aci.update(not keep)
    kept.append(keep)
print(f"{len(kept)} requests of one utterance: rejected {1 - np.mean(kept):.1%} with AdaptiveRejection "
      f"(r_t ended at {aci.state:.4f}; the validation thresholds alone rejected "
      f"{1 - from_validation['accept'].numpy().mean():.1%})")

# %% [markdown]
# ## The same requests through TF Serving's REST API
#
# Start a model server on the exported folder (not run here):
#
# ```
# docker run -p 8501:8501 \
#   --mount type=bind,source=$PWD/savedmodels/emoconf_synthetic,target=/models/emoconf_synthetic \
#   -e MODEL_NAME=emoconf_synthetic -t tensorflow/serving:2.21.0
# ```
#
# The `threshold` signature has a scalar input, so its request uses the columnar
# `inputs` format (`batch_threshold` takes the same body with its own `signature_name`);
# `serving_default` takes one serialized example per instance, sent as base64
# (`{"b64": ...}`). Both bodies are written to files for `curl -d @FILE`:

# %%
threshold_request = {
    "signature_name": "threshold",
    "inputs": {"features": features[:2].tolist(), "rejection": REJECTION},
}
default_request = {
    "signature_name": "serving_default",
    "instances": [{"b64": base64.b64encode(example).decode("ascii")} for example in examples[:2]],
}
Path("request_threshold.json").write_text(json.dumps(threshold_request))
Path("request_serving_default.json").write_text(json.dumps(default_request))


# Thousands of numbers per utterance do not fit on a page: print the first three of each row.
rows = [row[:3] + ["..."] for row in threshold_request["inputs"]["features"]]
print(f"curl -d @request_threshold.json http://localhost:8501/v1/models/{MODEL_NAME}:predict")
print(json.dumps({**threshold_request, "inputs": {**threshold_request["inputs"], "features": rows}}))
print(f"curl -d @request_serving_default.json http://localhost:8501/v1/models/{MODEL_NAME}:predict")
print(json.dumps(default_request)[:160] + " ...")

# %% [markdown]
# The server answers the `threshold` request with `{"outputs": {...}}` and the
# `serving_default` request with `{"predictions": [...]}`, one object per instance. The
# same bodies, decoded and run through the loaded model, give what it would return:

# %%
request = json.loads(Path("request_threshold.json").read_text())
outputs = loaded.signatures["threshold"](
    features=tf.constant(request["inputs"]["features"], tf.float32),
    rejection=tf.constant(request["inputs"]["rejection"], tf.float32),
)
print(json.dumps({"outputs": {name: value.numpy().tolist() for name, value in outputs.items()}}))

request = json.loads(Path("request_serving_default.json").read_text())
examples = [base64.b64decode(instance["b64"]) for instance in request["instances"]]
outputs = loaded.signatures["serving_default"](examples=tf.constant(examples))
predictions = [
    {name: (value[i].decode() if isinstance(value[i], bytes) else value[i].tolist())
     for name, value in ((n, v.numpy()) for n, v in outputs.items())}
    for i in range(len(examples))
]
print(json.dumps({"predictions": predictions}, indent=1)[:1200])

# %% [markdown]
# ## Next steps
#
# - `assets/model_card.md` inside the version folder records the corpus (SYNTHETIC here),
#   the features, the classes, the served score and the test figures at each rejection rate.
# - `emoconf export runs/synthetic --out savedmodels/emoconf_paper --score emoconfidnet`
#   exports exactly the paper's model (EmoConfidNet's confidence, global thresholds) from
#   the same run.
# - A new `emoconf export` writes version 2, 3, ...: TF Serving switches to the newest.
# - For a real model: `emoconf train --table your_table.parquet` (see `02_your_corpus`).
# - `savedmodels/README.md`: the signatures, REST and gRPC clients, and a stream client
#   that keeps `AdaptiveRejection` between requests.
