"""Writes the Colab notebooks of this folder from the cells below.

    python colab/make_notebooks.py             # write the notebooks without outputs
    python colab/make_notebooks.py --execute   # write them, run each in a scratch folder, keep the outputs

The committed notebooks are the `--execute` versions, so that they show real outputs on GitHub and
in Colab before anyone runs them. Edit the cells here, never in the .ipynb files, and regenerate:
`tests/test_notebooks.py` checks that the committed notebooks match this script.

Every notebook starts with an "Open in Colab" badge, installs the package only when it is not
importable, and reads its size parameters from `EMOCONF_NB_*` environment variables (with the
defaults below) so that the tests run them tiny.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPOSITORY = "emoconf/emoconf-tf"
RUN_NOTE_PREFIX = "_Outputs:"
# Minutes each notebook takes at its default parameters on a 2-core CPU (measured with --execute).
# TensorFlow's C++ start-up lines (oneDNN, "no CUDA drivers") go to the kernel's own stderr, as in Colab,
# instead of into the notebook's outputs.
KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]
RUN_MINUTES = {"01_quickstart": 2, "02_your_corpus": 3, "03_deploy": 3}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str, *, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(textwrap.dedent(text).strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


PAPER = (
    "The method and protocol are those of Y. Li, C. Papayiannis, V. Rozgic, E. Shriberg and C. Wang, *Confidence "
    "Estimation for Speech Emotion Recognition Based on the Relationship Between Emotion Categories and "
    "Primitives*, ICASSP 2022 "
    "([doi:10.1109/ICASSP43922.2022.9746930](https://doi.org/10.1109/ICASSP43922.2022.9746930))."
)


def header(name: str, title: str, body: str) -> nbformat.NotebookNode:
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{REPOSITORY}/blob/main/colab/{name}.ipynb)"
    )
    text = (f"{badge}\n\n# {title}\n\n{textwrap.dedent(body).strip()}\n\n{PAPER}\n\n"
            f"{RUN_NOTE_PREFIX} none stored in this copy._")
    return nbformat.v4.new_markdown_cell(text)


INSTALL = code(
    """
    # Installs emoconf-tf from GitHub unless it is importable already (a local checkout, CI).
    # If Colab asks to restart the runtime after the install, restart it and run all cells again.
    import importlib.util

    if importlib.util.find_spec("emoconf_tf") is None:
        %pip install -q "git+https://github.com/emoconf/emoconf-tf"
    """
)


def parameters(size: int, num_features: int, *, seeds: bool = True, extra: str = "") -> nbformat.NotebookNode:
    seeds_line = (
        'SEEDS = int(os.environ.get("EMOCONF_NB_SEEDS", 1))  # every fold runs with seeds 0 .. SEEDS - 1\n'
        if seeds
        else 'SEED = int(os.environ.get("EMOCONF_NB_SEED", 0))  # the seed of the one run that is exported\n'
    )
    source = (
        "import os\n\n"
        "# Parameters. The tests set the EMOCONF_NB_* environment variables to run the notebook tiny.\n"
        f'SIZE = int(os.environ.get("EMOCONF_NB_SIZE", {size}))  # synthetic utterances\n'
        f'NUM_FEATURES = int(os.environ.get("EMOCONF_NB_NUM_FEATURES", {num_features}))'
        "  # 6373 = ComParE 2016, 88 = eGeMAPS v02\n"
        + seeds_line
        + 'MAX_EPOCHS = int(os.environ.get("EMOCONF_NB_MAX_EPOCHS", 200))  # early stopping usually ends sooner\n'
        + textwrap.dedent(extra)
    )
    return code(source, tags=("parameters",))


# ---------------------------------------------------------------------------------------------
# 01 quickstart
# ---------------------------------------------------------------------------------------------


def quickstart() -> list[nbformat.NotebookNode]:
    return [
        header(
            "01_quickstart",
            "EmoConfidNet quickstart: rejecting low-confidence emotion predictions",
            f"""
            This notebook runs the paper's protocol end to end on the built-in **synthetic corpus**:
            it trains a speech emotion classifier, trains EmoConfidNet to estimate the confidence of
            each prediction, rejects the least confident test predictions and plots F1 and UAR
            against the rejection threshold, for EmoConfidNet and for the top-2 margin baseline.

            > **SYNTHETIC DATA.** The corpus is generated (invented utterances that behave like
            > MSP-Podcast features). Its numbers test the pipeline; they say nothing about the
            > method on real speech. `02_your_corpus.ipynb` runs the same on your data.

            Run time: about {RUN_MINUTES["01_quickstart"]} minutes on a 2-core CPU at the default
            parameters; no GPU needed.
            """,
        ),
        md("## Setup"),
        INSTALL,
        parameters(4000, 6373),
        code(
            """
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
            """
        ),
        md(
            """
            ## A synthetic corpus

            Every utterance has acoustic features (`NUM_FEATURES` numbers, as many as the openSMILE
            ComParE-2016 functionals by default), an emotion category, and arousal, valence and
            dominance ratings (AVD, on a 1-7 scale). Some categories are deliberately mislabelled,
            as happens with real annotations. The speakers of the train, validation and test splits
            do not overlap.
            """
        ),
        code(
            """
            corpus = make_synthetic_corpus(n_utterances=SIZE, num_features=NUM_FEATURES, seed=0)
            print(f"SYNTHETIC corpus: {len(corpus)} utterances x {corpus.num_features} features "
                  "(generated, not real speech)")
            pd.crosstab(
                np.asarray(corpus.class_names)[corpus.labels], corpus.split,
                rownames=["category"], colnames=["split"], margins=True,
            )
            """
        ),
        md(
            """
            ## The protocol

            For each training set (`raw`, and `filtered`, where the utterances whose category
            contradicts their AVD ratings are dropped) and each seed, `run_protocol`:

            1. trains the classifier (two dense blocks and a softmax) with early stopping;
            2. computes EmoConfidNet's targets: the distance of each training utterance's AVD to the
               AVD centroid of every category, turned into K confidences by `softmax(-distance)`;
            3. trains EmoConfidNet on the classifier's penultimate layer to predict those targets;
            4. sets the thresholds that reject 0, 10, ..., 50 % of the *validation* predictions
               (lowest confidence first), applies them to the test predictions, and scores the
               predictions that are kept.
            """
        ),
        code(
            """
            %%time
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
            """
        ),
        md(
            """
            ## F1 and UAR against the rejection threshold

            `write_report` saves the curves (`curves.png`) and a `report.md` with every table.
            """
        ),
        code(
            """
            OUT_DIR = Path("quickstart_synthetic")
            markdown.write_report(
                OUT_DIR, outputs, markdown.ReportOptions.for_corpus(corpus, settings=config.fingerprint())
            )
            display(Image(filename=str(OUT_DIR / "curves.png")))
            """
        ),
        md(
            """
            ### How to read the curves

            - **What the confidence is.** The classifier predicts a category c. EmoConfidNet's
              confidence is its output `p_hat[c]`: how typical of c the utterance sounds, learnt
              from where annotators placed similar utterances in the arousal/valence/dominance
              space relative to each category's centroid. It ranks predictions from most to least
              trustworthy; it is not a calibrated probability of being right. The baseline's
              confidence is the gap between the classifier's two largest softmax probabilities.
            - **The x axis** is the threshold level: t20% is the confidence below which 20 % of the
              *validation* predictions fall. Applied to the test set, it rejects about 20 % of the
              test predictions (the coverage, about 0.8, is in `report.md`).
            - **The y axis** is F1 (a) or UAR (b) of the predictions that are *kept*. At t0 nothing
              is rejected, so every method starts from the same point. A curve that rises means the
              rejected predictions were more often wrong than the kept ones; the steeper, the better
              the confidence separates right from wrong.
            - Solid lines are the raw training set, dashed lines the filtered one (`-pre`).
            - With one seed the curves are noisy; raise `SEEDS` for a band of ±1 standard deviation.
            """
        ),
        md(
            """
            ## The numbers behind the curves (the paper's Fig. 2)

            Mean over seeds of F1 and UAR at each threshold, per method and training set, then the
            relative gain at t20% compared with t0.
            """
        ),
        code("tables.fig2_table(outputs.results).round(3)"),
        code(
            """
            gains = tables.relative_gains(outputs.results, rejection=0.2)
            gains.round(3)
            """
        ),
        md(
            """
            ## Next steps

            - `02_your_corpus.ipynb`: the same protocol on your features table or on a TFDS dataset
              built from your copy of MSP-Podcast or IEMOCAP, with per-class results and the list of
              rejected utterances.
            - `03_deploy.ipynb`: export a trained model as a SavedModel for TF Serving and choose its
              operating point.
            - From a terminal, `emoconf demo` runs this notebook's protocol and writes the same report.
            """
        ),
    ]


# ---------------------------------------------------------------------------------------------
# 02 your corpus
# ---------------------------------------------------------------------------------------------


def your_corpus() -> list[nbformat.NotebookNode]:
    return [
        header(
            "02_your_corpus",
            "EmoConfidNet on your corpus",
            f"""
            Bring your own data: a **features table** (one row per utterance with `id`, `label`,
            `arousal`, `valence`, `dominance`, optional `speaker`, `group`, `split`, and numeric
            feature columns) or a licensed copy of **IEMOCAP** or **MSP-Podcast**, from which a
            TFDS dataset of openSMILE features is built. Then run the paper's protocol, look at the
            per-class results at 20 % rejection, and list the utterances that were rejected.

            > **SYNTHETIC DATA unless you set `TABLE` or `MANUAL_DIR`.** Left as it is, the notebook
            > writes a synthetic, IEMOCAP-like features table (five recording sessions in the
            > `group` column, no `split` column) and runs leave-one-session-out folds on it. Those
            > numbers test the pipeline; they say nothing about real speech.

            Run time: about {RUN_MINUTES["02_your_corpus"]} minutes on a 2-core CPU with the synthetic
            table at the default parameters (5 session folds). A real corpus with 6,373 ComParE
            features takes longer: extracting the features from the audio is the slow part.
            """,
        ),
        md("## Setup"),
        INSTALL,
        parameters(
            3000,
            88,
            extra="""
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
            """,
        ),
        code(
            """
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
            """
        ),
        md(
            """
            ## Getting your data into the notebook

            In Colab, either mount Google Drive (set `MOUNT_DRIVE = True`; your files are then under
            `/content/drive/MyDrive/`) or upload a features table (set `UPLOAD_TABLE = True`).
            Corpora are large: keep IEMOCAP or MSP-Podcast on Drive rather than uploading them.
            """
        ),
        code(
            """
            if IN_COLAB and MOUNT_DRIVE:
                from google.colab import drive

                drive.mount("/content/drive")
            """
        ),
        code(
            """
            if IN_COLAB and UPLOAD_TABLE:
                from google.colab import files

                uploaded = files.upload()  # opens a file chooser; the file lands in the working directory
                TABLE = next(iter(uploaded))
                print(f"uploaded {TABLE}")
            """
        ),
        md(
            """
            ## Option A: build a TFDS dataset from your licensed corpus

            The builders in `tfds_builders/` read your copy (nothing is downloaded: both corpora are
            licensed), extract openSMILE functionals from every utterance and write a TFDS dataset;
            `export_features_table` turns it into a features table. For IEMOCAP, `MANUAL_DIR` holds
            `IEMOCAP_full_release/`; for MSP-Podcast it is the release folder with `Labels/` and
            `Audios/` (see `tfds_builders/README.md`). Extraction caches each file's features, so an
            interrupted build resumes where it stopped.
            """
        ),
        code(
            """
            if MANUAL_DIR is not None:
                from tfds_builders.build import build_dataset, export_features_table

                builder = build_dataset(DATASET, MANUAL_DIR, "tensorflow_datasets", config=FEATURE_SET, num_workers=2)
                print(builder.info.splits)
                TABLE = export_features_table(builder, "tensorflow_datasets", f"{DATASET}_{FEATURE_SET}.parquet")
                CV = "group" if DATASET == "iemocap" else "split"  # the table records its AVD scale
            else:
                print("MANUAL_DIR is not set: no TFDS build")
            """
        ),
        md(
            """
            ## Option B: a features table, or the SYNTHETIC fallback

            Without `TABLE` (and without `MANUAL_DIR`), write a synthetic table shaped like an
            IEMOCAP export: the recording session in `group`, no `split` column. Like every table
            `emoconf` writes, it records its AVD scale in a `scale` column (`1,7` here; `1,5` in an
            IEMOCAP export), and its `synthetic` column says it is generated, which the report reads
            as "synthetic data" and labels so. A table of your own without a `scale` column needs
            `SCALE`; one that has it needs nothing (`SCALE` overrides it when set).
            """
        ),
        code(
            """
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
            """
        ),
        code(
            """
            pd.crosstab(
                np.asarray(corpus.class_names)[corpus.labels], corpus.group,
                rownames=["category"], colnames=["group"], margins=True,
            )
            """
        ),
        md(
            """
            ## Run the protocol

            With `CV = "group"` each group (session) is the test set once, the next one is the
            validation set and the others are the training set: five folds for five sessions. In
            each fold the classifier and EmoConfidNet are trained, the thresholds are set on the
            validation set and the test predictions are scored. `emoconf reproduce --table ... --cv
            group` does the same from a terminal.
            """
        ),
        code(
            """
            %%time
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
            """
        ),
        md("## Curves and their numbers (the paper's Fig. 2)"),
        code(
            """
            OUT_DIR = Path(f"emoconf_{corpus.name}")
            write_tables(outputs, OUT_DIR)
            markdown.write_report(
                OUT_DIR, outputs,
                markdown.ReportOptions.for_corpus(corpus, settings=config.fingerprint(), rejection=REJECTION),
            )
            display(Image(filename=str(OUT_DIR / "curves.png")))
            tables.fig2_table(outputs.results).round(3)
            """
        ),
        md(
            """
            ## Per class after rejection (the paper's Table 2)

            Precision, recall and F1 of each category without rejection and after rejecting
            `REJECTION` (by default 20 %) of the predictions, the least confident first; means over folds
            and seeds. Rejection rarely helps every class alike.
            """
        ),
        code(
            """
            table2_training = "filtered" if "filtered" in TRAININGS else TRAININGS[0]
            tables.table2(outputs.results, outputs.per_class, rejection=REJECTION, training=table2_training,
                          class_names=corpus.class_names).round(3)
            """
        ),
        md(
            """
            ## Which utterances were rejected

            `outputs.predictions` holds every test prediction with its confidences; every utterance
            was a test utterance in exactly one fold. Comparing its EmoConfidNet confidence with
            that fold's threshold (set on its validation set, in `outputs.results`) says whether it
            was rejected. The least confident come first; `correct` says whether the classifier
            was right.
            """
        ),
        code(
            """
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
            """
        ),
        md("How often each true category was rejected:"),
        code(
            """
            shown.groupby("label").agg(utterances=("id", "size"), rejected=("rejected", "mean")).round(3)
            """
        ),
        md(
            """
            ## Your table as a `tf.data` pipeline

            To train your own models on the table with `model.fit`, the `ser_features` builder turns
            it into a TFDS dataset, and `emoconf_tf.datasets.from_tfds` maps it to batches of
            `(features, one_hot)` (see also `examples/train_classifier.py`). TFDS prints
            "Downloading and preparing": nothing is downloaded, the table is read from disk.
            """
        ),
        code(
            """
            import tensorflow_datasets as tfds

            from emoconf_tf.datasets import from_tfds
            from tfds_builders.build import build_dataset

            tfds.disable_progress_bar()
            table_builder = build_dataset("ser_features", TABLE, "tensorflow_datasets", config="custom", overwrite=True)
            print({name: split.num_examples for name, split in table_builder.info.splits.items()})
            train_ds = from_tfds(table_builder, "train", batch_size=128, shuffle=True)
            features, one_hot = next(iter(train_ds))
            print("one batch:", features.shape, features.dtype.name, "->", one_hot.shape, one_hot.dtype.name)
            """
        ),
        md(
            """
            ## Next steps

            - `emoconf_<name>/report.md` holds every table of this run, and `predictions.csv` every
              test prediction with its confidences.
            - To deploy a model trained on your table: `emoconf train --table ... --cv group` and
              `03_deploy.ipynb`.
            """
        ),
    ]


# ---------------------------------------------------------------------------------------------
# 03 deploy
# ---------------------------------------------------------------------------------------------


def deploy() -> list[nbformat.NotebookNode]:
    return [
        header(
            "03_deploy",
            "Deploying EmoConfidNet: SavedModel, operating point, TF Serving",
            f"""
            Train the classifier, EmoConfidNet and a small ensemble, see which confidence score
            validation chose to serve, pick the rejection rate (the operating point) from its
            validation curve, export it as a SavedModel for TF Serving, call its signatures from
            Python (validation thresholds, thresholds from the batch itself, and an adaptive rate for
            a stream), and write the REST requests that do the same against a model server.

            > **SYNTHETIC DATA.** The model is trained on the built-in synthetic corpus (generated
            > utterances, not real speech); its model card says so. Use `emoconf train --table` on
            > your features table for a real model.

            Run time: about {RUN_MINUTES["03_deploy"]} minutes on a 2-core CPU at the default
            parameters.
            """,
        ),
        md("## Setup"),
        INSTALL,
        parameters(
            4000,
            6373,
            seeds=False,
            extra="""
            REJECTION = 0.2  # the operating point: fraction of predictions to reject (the paper's t20%)
            RUN_DIR = "runs/synthetic"
            MODEL_NAME = "emoconf_synthetic"
            MODEL_DIR = f"savedmodels/{MODEL_NAME}"  # TF Serving's model base path: versions 1, 2, ... inside
            """,
        ),
        code(
            """
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
            """
        ),
        md(
            """
            ## Train a run

            `emoconf train` trains on the filtered training set and writes a *run directory*: the
            models as `.keras` files and the validation scores that set the thresholds. By default
            (`--score recommended`) it also trains two more classifiers (a deep ensemble) and chooses
            on validation the confidence score and rejection mode to serve, by the rule of
            `emoconf reproduce`: `macro_gain_ensemble` with per-class thresholds unless another
            candidate is clearly better. `--score emoconfidnet` would train the paper's model alone.
            A finished run is reused when the notebook runs again.
            """
        ),
        code(
            """
            if not (Path(RUN_DIR) / "manifest.json").exists():
                ARGS = f"--synthetic --size {SIZE} --num-features {NUM_FEATURES} --max-epochs {MAX_EPOCHS}"
                ARGS += f" --seed {SEED}"
                !emoconf train {ARGS} --out {RUN_DIR}
            info = json.loads((Path(RUN_DIR) / "run.json").read_text())
            class_names = info["class_names"]
            MODE = info["rejection_mode"]  # the served score's rejection mode (validation's choice for recommended)
            SERVED = f"{info['score']['name']} ({' + '.join(m for m, _ in info['score']['components'])})"
            print(f"{RUN_DIR}: corpus {info['corpus']} (synthetic: {info['synthetic']}), "
                  f"{info['num_features']} features, classes {', '.join(class_names)}, {info['training']} training, "
                  f"seed {info['seed']}")
            print(f"served confidence: {SERVED}, {MODE} thresholds")
            """
        ),
        md(
            """
            ## Pick the operating point on the validation set

            For each rejection rate, the thresholds are set on the validation scores (one for all
            predictions in `global` mode, one per predicted class in `per_class` mode); the curve
            shows F1 of the kept validation predictions against the coverage (the fraction kept),
            for the served score and for the paper's two (EmoConfidNet and the top-two margin,
            global thresholds). A useful confidence makes F1 rise as the coverage falls; where the
            curve stops rising, rejecting more only loses predictions (and with few predictions
            left, the curve gets noisy). The served score was chosen on these validation
            predictions, so its curve here flatters it a little; the test set stays out of every
            choice, and its figures are in the run's `results.csv` and the model card.
            """
        ),
        code(
            """
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
            """
        ),
        md("With `ipywidgets` (as in Colab), a slider moves the operating point:"),
        code(
            """
            if importlib.util.find_spec("ipywidgets") is not None:
                import ipywidgets

                ipywidgets.interact(
                    plot_operating_point, rejection=ipywidgets.FloatSlider(value=REJECTION, min=0.0, max=0.9, step=0.05)
                )
            else:
                print("ipywidgets is not installed: change REJECTION in the parameter cell instead")
            """
        ),
        md(
            """
            ## Export the SavedModel

            `emoconf export` writes the next version of the model under `MODEL_DIR` (the layout TF
            Serving polls), serving the run's score as `confidence` (the ensemble members folded into
            the one graph), with `REJECTION` as the operating point of its default signature. The
            model takes raw features: the standardisation is inside it. The sorted validation scores
            are stored too, so the `threshold` signature works for any rejection rate.
            `emoconf inspect` names the served score on its `confidence:` line.
            """
        ),
        code("!emoconf export {RUN_DIR} --out {MODEL_DIR} --default-rejection {REJECTION}"),
        code("!emoconf inspect {MODEL_DIR}"),
        md(
            """
            `assets/score.json` in the version folder records the served score for clients and tools
            (`emoconf inspect` and `emoconf predict` read it): what it resolved to, the rejection
            mode, the number of classifiers in the graph and how validation chose it.
            """
        ),
        code(
            """
            version_dir = Path(MODEL_DIR) / str(model_versions(MODEL_DIR)[-1])
            score = json.loads((version_dir / "assets" / "score.json").read_text())
            print(f"served: {score['served']}; rejection mode {score['rejection_mode']}; "
                  f"{score['ensemble_members']} classifier(s) in the graph")
            print("chosen on validation:", json.dumps(score["chosen_on"]))
            """
        ),
        md(
            """
            ## Call the signatures from Python

            A few test utterances of the same synthetic corpus (`emoconf train --synthetic` uses
            corpus seed 0). `threshold` takes features and a rejection rate and returns the
            thresholds (the global one, and one per predicted class in `per_class` mode), each
            prediction's served confidence, the threshold applied to it and whether it is accepted,
            with the paper's two scores beside it.
            """
        ),
        code(
            """
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
            """
        ),
        md(
            """
            `serving_default` is what a client calls without naming a signature: serialized
            `tf.Example`s in (one float list named `features` per utterance), the predicted class,
            probabilities, confidence and `accept` at the exported operating point out.
            """
        ),
        code(
            """
            examples = serialize_examples(features)
            out = loaded.signatures["serving_default"](examples=tf.constant(examples))
            pd.DataFrame({
                "id": test.ids[:6],
                "label": np.asarray(corpus.class_names)[test.labels[:6]],
                "predicted": [c.decode() for c in out["classes"].numpy()],
                "confidence": out["confidence"].numpy().round(6),
                "accept": out["accept"].numpy(),
            })
            """
        ),
        md(
            """
            ## An operating point that holds on new data

            Validation thresholds reject `REJECTION` of the *validation* predictions; on new
            speakers or a new session the confidences shift and the same thresholds reject more or
            less. `batch_threshold` takes the same inputs as `threshold` but sets the thresholds on
            the request's own confidences, so it rejects the fraction `rejection` of the batch
            (within each predicted class in `per_class` mode), without labels. Send a whole session,
            or a day of calls, in one request: here every test utterance at once. (A class with
            fewer than `1 / rejection` rows in the batch loses none of them, and a batch of one row
            is always accepted.)
            """
        ),
        code(
            """
            session = tf.constant(test.features)
            rate = tf.constant(REJECTION)
            from_validation = loaded.signatures["threshold"](features=session, rejection=rate)
            from_batch = loaded.signatures["batch_threshold"](features=session, rejection=rate)
            print(f"{len(test)} test utterances in one request, rejection {REJECTION:.0%}: rejected "
                  f"{1 - from_validation['accept'].numpy().mean():.1%} with the validation thresholds (threshold), "
                  f"{1 - from_batch['accept'].numpy().mean():.1%} with their own (batch_threshold)")
            pd.DataFrame({"validation thresholds": from_validation["class_thresholds"].numpy(),
                          "this batch's": from_batch["class_thresholds"].numpy()}, index=class_names).round(6)
            """
        ),
        md(
            """
            `emoconf predict --per-batch` applies the same rule to all the rows of a table (or all the
            audio files) given at once; the last line, on stderr, says where the thresholds came from:
            """
        ),
        code(
            """
            write_features_table(test, "session.parquet")
            !emoconf predict --model {MODEL_DIR} --rejection {REJECTION} --per-batch session.parquet | tail -n 3
            """
        ),
        md(
            """
            Utterances that arrive one at a time cannot be thresholded on their own batch.
            `AdaptiveRejection` (adaptive conformal inference, Gibbs & Candès 2021) keeps one float
            on the client, the rate `r_t` sent to `threshold`, and moves it after each request so that
            the long-run rejection rate of the stream tends to `REJECTION`: here the test utterances,
            one request each, in order.
            """
        ),
        code(
            """
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
            """
        ),
        md(
            """
            ## The same requests through TF Serving's REST API

            Start a model server on the exported folder (not run here):

            ```
            docker run -p 8501:8501 \\
              --mount type=bind,source=$PWD/savedmodels/emoconf_synthetic,target=/models/emoconf_synthetic \\
              -e MODEL_NAME=emoconf_synthetic -t tensorflow/serving:2.21.0
            ```

            The `threshold` signature has a scalar input, so its request uses the columnar
            `inputs` format (`batch_threshold` takes the same body with its own `signature_name`);
            `serving_default` takes one serialized example per instance, sent as base64
            (`{"b64": ...}`). Both bodies are written to files for `curl -d @FILE`:
            """
        ),
        code(
            """
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
            """
        ),
        md(
            """
            The server answers the `threshold` request with `{"outputs": {...}}` and the
            `serving_default` request with `{"predictions": [...]}`, one object per instance. The
            same bodies, decoded and run through the loaded model, give what it would return:
            """
        ),
        code(
            """
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
            """
        ),
        md(
            """
            ## Next steps

            - `assets/model_card.md` inside the version folder records the corpus (SYNTHETIC here),
              the features, the classes, the served score and the test figures at each rejection rate.
            - `emoconf export runs/synthetic --out savedmodels/emoconf_paper --score emoconfidnet`
              exports exactly the paper's model (EmoConfidNet's confidence, global thresholds) from
              the same run.
            - A new `emoconf export` writes version 2, 3, ...: TF Serving switches to the newest.
            - For a real model: `emoconf train --table your_table.parquet` (see `02_your_corpus`).
            - `savedmodels/README.md`: the signatures, REST and gRPC clients, and a stream client
              that keeps `AdaptiveRejection` between requests.
            """
        ),
    ]


NOTEBOOKS = {"01_quickstart": quickstart, "02_your_corpus": your_corpus, "03_deploy": deploy}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook `name` without outputs, with stable cell ids (so regenerating gives no diff)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = NOTEBOOKS[name]()
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    nbformat.validate(notebook)
    return notebook


def run_note() -> str:
    cpus = os.cpu_count() or 1
    today = datetime.date.today().isoformat()
    return f"{RUN_NOTE_PREFIX} from a run on a {cpus}-core CPU machine (no GPU), {today}, at the default parameters._"


def set_run_note(notebook: nbformat.NotebookNode, note: str) -> None:
    first = notebook.cells[0]
    lines = [line for line in first.source.splitlines() if not line.startswith(RUN_NOTE_PREFIX)]
    first.source = "\n".join(lines).rstrip() + "\n\n" + note


def execute(notebook: nbformat.NotebookNode, timeout: int = 1800) -> float:
    """Runs `notebook` in place in a scratch working directory; returns the seconds it took."""
    from nbclient import NotebookClient

    scratch = Path(tempfile.mkdtemp(prefix="emoconf-notebook-"))
    try:
        start = time.perf_counter()
        NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", record_timing=False,
            extra_arguments=KERNEL_ARGUMENTS, resources={"metadata": {"path": str(scratch)}},
        ).execute()
        return time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="notebooks to write (default: all)")
    parser.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        notebook = build(name)
        if args.execute:
            seconds = execute(notebook)
            set_run_note(notebook, run_note())
            print(f"{name}: ran in {seconds:.0f} s")
        path = HERE / f"{name}.ipynb"
        nbformat.write(notebook, path)
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
