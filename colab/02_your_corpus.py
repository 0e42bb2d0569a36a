# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/emoconf/emoconf-tf/blob/main/colab/02_your_corpus.ipynb)
#
# # EmoConfidNet on your corpus
#
# Bring your own data: a **features table** (one row per utterance with `id`, `label`,
# `arousal`, `valence`, `dominance`, optional `speaker`, `group`, `split`, and numeric
# feature columns) or a licensed copy of **IEMOCAP** or **MSP-Podcast**, from which a
# TFDS dataset of openSMILE features is built. Then run the paper's protocol, look at the
# per-class results at 20 % rejection, and list the utterances that were rejected.
#
# > **SYNTHETIC DATA unless you set `TABLE` or `MANUAL_DIR`.** Left as it is, the notebook
# > writes a synthetic, IEMOCAP-like features table (five recording sessions in the
# > `group` column, no `split` column) and runs leave-one-session-out folds on it. Those
# > numbers test the pipeline; they say nothing about real speech.
#
# Run time: about 3 minutes on a 2-core CPU with the synthetic
# table at the default parameters (5 session folds). A real corpus with 6,373 ComParE
# features takes longer: extracting the features from the audio is the slow part.
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
SIZE = int(os.environ.get("EMOCONF_NB_SIZE", 3000))  # synthetic utterances
NUM_FEATURES = int(os.environ.get("EMOCONF_NB_NUM_FEATURES", 88))  # 6373 = ComParE 2016, 88 = eGeMAPS v02
SEEDS = int(os.environ.get("EMOCONF_NB_SEEDS", 1))  # every fold runs with seeds 0 .. SEEDS - 1
MAX_EPOCHS = int(os.environ.get("EMOCONF_NB_MAX_EPOCHS", 200))  # early stopping usually ends sooner

TRAININGS = ("filtered",)  # add "raw" to compare with the unfiltered training set (twice the time)
REJECTION = 0.2  # the rejection rate analysed per class and per utterance (the paper's t20%)

# Your data. Leave both None to use the SYNTHETIC table.
# a features table (.csv, .csv.gz or .parquet), e.g. "/content/drive/MyDrive/msp_compare.parquet"
TABLE = None
MANUAL_DIR = None  # or your licensed corpus copy, e.g. "/content/drive/MyDrive/IEMOCAP"
# with MANUAL_DIR: "iemocap" (AVD 1-5, session folds) or "msp_podcast" (AVD 1-7, splits)
DATASET = "iemocap"
FEATURE_SET = "egemaps_v02"  # with MANUAL_DIR: "egemaps_v02" (88 features) or "compare_2016" (6,373)
SCALE = None  # AVD scale of TABLE if it records none: "1,5" for IEMOCAP, "1,7" for MSP-Podcast
CV = "group"  # "group": leave-one-group-out (IEMOCAP sessions); "split": the table's split column
MOUNT_DRIVE = False  # in Colab: mount Google Drive to read TABLE or MANUAL_DIR from it
UPLOAD_TABLE = False  # in Colab: upload a features table from your computer

# %%
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from IPython.display import Image, display

from emoconf_tf import (
    ProtocolConfig, TrainingConfig, make_synthetic_corpus, read_features_table, run_protocol,
)
from emoconf_tf.evaluation import markdown, tables
from emoconf_tf.corpus import corpus_frame
from emoconf_tf.evaluation.protocol import PAPER_METHODS, write_tables
from emoconf_tf.thresholds import PAPER_REJECTIONS

# Each fold builds new Keras models, which TensorFlow reports as "retracing": expected here.
tf.get_logger().setLevel("ERROR")
# Outside Colab, tqdm warns when ipywidgets is missing; this notebook shows no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found")

try:
    import google.colab  # noqa: F401

    IN_COLAB = True
except ImportError:
    IN_COLAB = False
print("running in Colab" if IN_COLAB else "not in Colab: the Google Drive and upload cells do nothing")

# %% [markdown]
# ## Getting your data into the notebook
#
# In Colab, either mount Google Drive (set `MOUNT_DRIVE = True`; your files are then under
# `/content/drive/MyDrive/`) or upload a features table (set `UPLOAD_TABLE = True`).
# Corpora are large: keep IEMOCAP or MSP-Podcast on Drive rather than uploading them.

# %%
if IN_COLAB and MOUNT_DRIVE:
    from google.colab import drive

    drive.mount("/content/drive")

# %%
if IN_COLAB and UPLOAD_TABLE:
    from google.colab import files

    uploaded = files.upload()  # opens a file chooser; the file lands in the working directory
    TABLE = next(iter(uploaded))
    print(f"uploaded {TABLE}")

# %% [markdown]
# ## Option A: build a TFDS dataset from your licensed corpus
#
# The builders in `tfds_builders/` read your copy (nothing is downloaded: both corpora are
# licensed), extract openSMILE functionals from every utterance and write a TFDS dataset;
# `export_features_table` turns it into a features table. For IEMOCAP, `MANUAL_DIR` holds
# `IEMOCAP_full_release/`; for MSP-Podcast it is the release folder with `Labels/` and
# `Audios/` (see `tfds_builders/README.md`). Extraction caches each file's features, so an
# interrupted build resumes where it stopped.

# %%
if MANUAL_DIR is not None:
    from tfds_builders.build import build_dataset, export_features_table

    builder = build_dataset(DATASET, MANUAL_DIR, "tensorflow_datasets", config=FEATURE_SET, num_workers=2)
    print(builder.info.splits)
    TABLE = export_features_table(builder, "tensorflow_datasets", f"{DATASET}_{FEATURE_SET}.parquet")
    CV = "group" if DATASET == "iemocap" else "split"  # the table records its AVD scale
else:
    print("MANUAL_DIR is not set: no TFDS build")

# %% [markdown]
# ## Option B: a features table, or the SYNTHETIC fallback
#
# Without `TABLE` (and without `MANUAL_DIR`), write a synthetic table shaped like an
# IEMOCAP export: the recording session in `group`, no `split` column. Like every table
# `emoconf` writes, it records its AVD scale in a `scale` column (`1,7` here; `1,5` in an
# IEMOCAP export), and its `synthetic` column says it is generated, which the report reads
# as "synthetic data" and labels so. A table of your own without a `scale` column needs
# `SCALE`; one that has it needs nothing (`SCALE` overrides it when set).

# %%
if TABLE is None:
    synthetic = make_synthetic_corpus(n_utterances=SIZE, num_features=NUM_FEATURES, seed=0)
    TABLE = "synthetic_sessions.csv"
    corpus_frame(synthetic).drop(columns="split").to_csv(TABLE, index=False)
    CV = "group"
    print(f"wrote a SYNTHETIC features table {TABLE} (generated, not real speech)")

corpus, dropped = read_features_table(TABLE, scale=SCALE)
print(f"{TABLE}: {len(corpus)} utterances, {corpus.num_features} features, "
      f"classes {', '.join(corpus.class_names)}")
merged = "".join(f"; {category} counted as {name}" for category, name in corpus.merged_labels)
print(f"AVD scale {corpus.scale[0]:g}-{corpus.scale[1]:g}"
      + (", SYNTHETIC data" if corpus.synthetic else "") + merged)
if dropped:
    print("rows dropped (other labels):", dropped)
corpus_frame(corpus).iloc[:5, :10]

# %%
pd.crosstab(
    np.asarray(corpus.class_names)[corpus.labels], corpus.group,
    rownames=["category"], colnames=["group"], margins=True,
)

# %% [markdown]
# ## Run the protocol
#
# With `CV = "group"` each group (session) is the test set once, the next one is the
# validation set and the others are the training set: five folds for five sessions. In
# each fold the classifier and EmoConfidNet are trained, the thresholds are set on the
# validation set and the test predictions are scored. `emoconf reproduce --table ... --cv
# group` does the same from a terminal.

# %%
# %%time
config = ProtocolConfig(
    cv=CV,
    seeds=tuple(range(SEEDS)),
    trainings=TRAININGS,
    rejections=tuple(sorted(set(PAPER_REJECTIONS) | {REJECTION})),
    methods=PAPER_METHODS,  # EmoConfidNet and the top-2 margin baseline
    training=TrainingConfig(max_epochs=MAX_EPOCHS),
)


def one_line(run, resumed):
    print(f"fold {run['fold']}, seed {run['seed']}, {run['training']}: train {run['n_train']}, "
          f"test {run['n_test']}, epochs {run['classifier_epochs']}/{run['confidence_epochs']}")


outputs = run_protocol(corpus, config, on_unit=one_line, progress=False)

# %% [markdown]
# ## Curves and their numbers (the paper's Fig. 2)

# %%
OUT_DIR = Path(f"emoconf_{corpus.name}")
write_tables(outputs, OUT_DIR)
markdown.write_report(
    OUT_DIR, outputs,
    markdown.ReportOptions.for_corpus(corpus, settings=config.fingerprint(), rejection=REJECTION),
)
display(Image(filename=str(OUT_DIR / "curves.png")))
tables.fig2_table(outputs.results).round(3)

# %% [markdown]
# ## Per class after rejection (the paper's Table 2)
#
# Precision, recall and F1 of each category without rejection and after rejecting
# `REJECTION` (by default 20 %) of the predictions, the least confident first; means over folds
# and seeds. Rejection rarely helps every class alike.

# %%
table2_training = "filtered" if "filtered" in TRAININGS else TRAININGS[0]
tables.table2(outputs.results, outputs.per_class, rejection=REJECTION, training=table2_training,
              class_names=corpus.class_names).round(3)

# %% [markdown]
# ## Which utterances were rejected
#
# `outputs.predictions` holds every test prediction with its confidences; every utterance
# was a test utterance in exactly one fold. Comparing its EmoConfidNet confidence with
# that fold's threshold (set on its validation set, in `outputs.results`) says whether it
# was rejected. The least confident come first; `correct` says whether the classifier
# was right.

# %%
keys = ["fold", "seed", "training"]
thresholds = outputs.results[
    (outputs.results["method"] == "emoconfidnet") & np.isclose(outputs.results["rejection"], REJECTION)
    & (outputs.results["rejection_mode"] == "global")  # the paper's one threshold per fold
    & (outputs.results["threshold_source"] == "validation")  # set on the fold's validation set
][keys + ["threshold"]]
shown = outputs.predictions.merge(thresholds, on=keys)
shown = shown[(shown["seed"] == config.seeds[0]) & (shown["training"] == table2_training)]
names = np.asarray(corpus.class_names)
shown = shown.assign(
    group=shown["id"].map(dict(zip(corpus.ids, corpus.group))),
    label=names[shown["label"]],
    predicted=names[shown["predicted"]],
    confidence=shown["emoconfidnet"],
    rejected=shown["emoconfidnet"] < shown["threshold"],
    correct=shown["label"] == shown["predicted"],
)
rejected, kept = shown[shown["rejected"]], shown[~shown["rejected"]]
print(
    f"{len(rejected)} of {len(shown)} predictions rejected ({len(rejected) / len(shown):.1%}); "
    f"{rejected['correct'].mean():.1%} of the rejected were correct, "
    f"{kept['correct'].mean():.1%} of the kept"
)
rejected.sort_values("confidence")[["id", "group", "label", "predicted", "confidence", "correct"]].head(10)

# %% [markdown]
# How often each true category was rejected:

# %%
shown.groupby("label").agg(utterances=("id", "size"), rejected=("rejected", "mean")).round(3)

# %% [markdown]
# ## Your table as a `tf.data` pipeline
#
# To train your own models on the table with `model.fit`, the `ser_features` builder turns
# it into a TFDS dataset, and `emoconf_tf.datasets.from_tfds` maps it to batches of
# `(features, one_hot)` (see also `examples/train_classifier.py`). TFDS prints
# "Downloading and preparing": nothing is downloaded, the table is read from disk.

# %%
import tensorflow_datasets as tfds

from emoconf_tf.datasets import from_tfds
from tfds_builders.build import build_dataset

tfds.disable_progress_bar()
table_builder = build_dataset("ser_features", TABLE, "tensorflow_datasets", config="custom", overwrite=True)
print({name: split.num_examples for name, split in table_builder.info.splits.items()})
train_ds = from_tfds(table_builder, "train", batch_size=128, shuffle=True)
features, one_hot = next(iter(train_ds))
print("one batch:", features.shape, features.dtype.name, "->", one_hot.shape, one_hot.dtype.name)

# %% [markdown]
# ## Next steps
#
# - `emoconf_<name>/report.md` holds every table of this run, and `predictions.csv` every
#   test prediction with its confidences.
# - To deploy a model trained on your table: `emoconf train --table ... --cv group` and
#   `03_deploy.ipynb`.
