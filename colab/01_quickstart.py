# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/emoconf/emoconf-tf/blob/main/colab/01_quickstart.ipynb)
#
# # EmoConfidNet quickstart: rejecting low-confidence emotion predictions
#
# This notebook runs the paper's protocol end to end on the built-in **synthetic corpus**:
# it trains a speech emotion classifier, trains EmoConfidNet to estimate the confidence of
# each prediction, rejects the least confident test predictions and plots F1 and UAR
# against the rejection threshold, for EmoConfidNet and for the top-2 margin baseline.
#
# > **SYNTHETIC DATA.** The corpus is generated (invented utterances that behave like
# > MSP-Podcast features). Its numbers test the pipeline; they say nothing about the
# > method on real speech. `02_your_corpus.ipynb` runs the same on your data.
#
# Run time: about 2 minutes on a 2-core CPU at the default
# parameters; no GPU needed.
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
SEEDS = int(os.environ.get("EMOCONF_NB_SEEDS", 1))  # every fold runs with seeds 0 .. SEEDS - 1
MAX_EPOCHS = int(os.environ.get("EMOCONF_NB_MAX_EPOCHS", 200))  # early stopping usually ends sooner

# %%
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from IPython.display import Image, display

from emoconf_tf import ProtocolConfig, TrainingConfig, make_synthetic_corpus, run_protocol
from emoconf_tf.evaluation import markdown, tables
from emoconf_tf.evaluation.protocol import PAPER_METHODS

# Each run builds new Keras models, which TensorFlow reports as "retracing": expected here.
tf.get_logger().setLevel("ERROR")
# Outside Colab, tqdm warns when ipywidgets is missing; this notebook shows no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found")

# %% [markdown]
# ## A synthetic corpus
#
# Every utterance has acoustic features (`NUM_FEATURES` numbers, as many as the openSMILE
# ComParE-2016 functionals by default), an emotion category, and arousal, valence and
# dominance ratings (AVD, on a 1-7 scale). Some categories are deliberately mislabelled,
# as happens with real annotations. The speakers of the train, validation and test splits
# do not overlap.

# %%
corpus = make_synthetic_corpus(n_utterances=SIZE, num_features=NUM_FEATURES, seed=0)
print(f"SYNTHETIC corpus: {len(corpus)} utterances x {corpus.num_features} features "
      "(generated, not real speech)")
pd.crosstab(
    np.asarray(corpus.class_names)[corpus.labels], corpus.split,
    rownames=["category"], colnames=["split"], margins=True,
)

# %% [markdown]
# ## The protocol
#
# For each training set (`raw`, and `filtered`, where the utterances whose category
# contradicts their AVD ratings are dropped) and each seed, `run_protocol`:
#
# 1. trains the classifier (two dense blocks and a softmax) with early stopping;
# 2. computes EmoConfidNet's targets: the distance of each training utterance's AVD to the
#    AVD centroid of every category, turned into K confidences by `softmax(-distance)`;
# 3. trains EmoConfidNet on the classifier's penultimate layer to predict those targets;
# 4. sets the thresholds that reject 0, 10, ..., 50 % of the *validation* predictions
#    (lowest confidence first), applies them to the test predictions, and scores the
#    predictions that are kept.

# %%
# %%time
config = ProtocolConfig(
    cv="split",
    seeds=tuple(range(SEEDS)),
    trainings=("raw", "filtered"),
    methods=PAPER_METHODS,  # EmoConfidNet and the top-2 margin baseline
    training=TrainingConfig(max_epochs=MAX_EPOCHS),
)


def one_line(run, resumed):
    print(
        f"seed {run['seed']} {run['training']:>8}: {run['n_train']} training utterances "
        f"({run['n_filtered_out']} filtered out), {run['classifier_epochs']} classifier and "
        f"{run['confidence_epochs']} EmoConfidNet epochs"
    )


outputs = run_protocol(corpus, config, on_unit=one_line, progress=False)

# %% [markdown]
# ## F1 and UAR against the rejection threshold
#
# `write_report` saves the curves (`curves.png`) and a `report.md` with every table.

# %%
OUT_DIR = Path("quickstart_synthetic")
markdown.write_report(
    OUT_DIR, outputs, markdown.ReportOptions.for_corpus(corpus, settings=config.fingerprint())
)
display(Image(filename=str(OUT_DIR / "curves.png")))

# %% [markdown]
# ### How to read the curves
#
# - **What the confidence is.** The classifier predicts a category c. EmoConfidNet's
#   confidence is its output `p_hat[c]`: how typical of c the utterance sounds, learnt
#   from where annotators placed similar utterances in the arousal/valence/dominance
#   space relative to each category's centroid. It ranks predictions from most to least
#   trustworthy; it is not a calibrated probability of being right. The baseline's
#   confidence is the gap between the classifier's two largest softmax probabilities.
# - **The x axis** is the threshold level: t20% is the confidence below which 20 % of the
#   *validation* predictions fall. Applied to the test set, it rejects about 20 % of the
#   test predictions (the coverage, about 0.8, is in `report.md`).
# - **The y axis** is F1 (a) or UAR (b) of the predictions that are *kept*. At t0 nothing
#   is rejected, so every method starts from the same point. A curve that rises means the
#   rejected predictions were more often wrong than the kept ones; the steeper, the better
#   the confidence separates right from wrong.
# - Solid lines are the raw training set, dashed lines the filtered one (`-pre`).
# - With one seed the curves are noisy; raise `SEEDS` for a band of ±1 standard deviation.

# %% [markdown]
# ## The numbers behind the curves (the paper's Fig. 2)
#
# Mean over seeds of F1 and UAR at each threshold, per method and training set, then the
# relative gain at t20% compared with t0.

# %%
tables.fig2_table(outputs.results).round(3)

# %%
gains = tables.relative_gains(outputs.results, rejection=0.2)
gains.round(3)

# %% [markdown]
# ## Next steps
#
# - `02_your_corpus.ipynb`: the same protocol on your features table or on a TFDS dataset
#   built from your copy of MSP-Podcast or IEMOCAP, with per-class results and the list of
#   rejected utterances.
# - `03_deploy.ipynb`: export a trained model as a SavedModel for TF Serving and choose its
#   operating point.
# - From a terminal, `emoconf demo` runs this notebook's protocol and writes the same report.
