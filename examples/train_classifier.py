"""
Title: Training the speech emotion classifier with model.fit
Author: emoconf-tf contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Fit EmoConfidNet's emotion classifier on utterance-level acoustic features with a tf.data pipeline.
Accelerator: None
"""

"""
## Introduction

EmoConfidNet (Li et al., "Confidence Estimation for Speech Emotion Recognition Based on the Relationship
Between Emotion Categories and Primitives", ICASSP 2022) attaches a confidence estimator to an ordinary
speech emotion classifier. This example trains that classifier on its own, with nothing but
`model.fit`: utterance-level acoustic features in, one emotion category out.

The classifier is the paper's (Section 4.3): the features are standardised with training-set
statistics inside the model, then go through two blocks of
`Dense(256) -> BatchNormalization -> ReLU -> Dropout(0.5)` and a softmax over the K categories.
It is trained with Adam (learning rate 1e-4) and categorical cross-entropy, with early stopping
on the validation loss.

### The data

The input is a *features table*: one row per utterance with `id`, `label` (the category),
`arousal`, `valence`, `dominance` (the annotated emotion primitives, "AVD"), a `split` column
(`train` / `validation` / `test`), a `scale` column recording the AVD scale (`1,7` for MSP-Podcast,
`1,5` for IEMOCAP; or give `--scale`) and one numeric column per acoustic feature (for instance the
6,373 openSMILE ComParE-2016 functionals). `emoconf build ... --table` writes one from a licensed
copy of MSP-Podcast or IEMOCAP.

Without `--table`, the example uses the built-in **synthetic** corpus: invented utterances that
behave like MSP-Podcast features (five categories, 1-7 AVD scale, speaker-disjoint splits). Its
numbers test the code; they say nothing about real speech.

Run it with, for example:

```
python examples/train_classifier.py                        # synthetic corpus, 4,000 utterances
python examples/train_classifier.py --table msp_compare.parquet --out classifier.keras
```
"""

"""
## Setup
"""

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `fit` warns that its default shuffle=True does not apply to a tf.data.Dataset: ours shuffle themselves.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed")

import keras
import numpy as np
from sklearn.metrics import f1_score, recall_score

from emoconf_tf.corpus import read_features_table
from emoconf_tf.datasets import classifier_dataset
from emoconf_tf.filtering import conflict_mask
from emoconf_tf.models import build_classifier
from emoconf_tf.synthetic import make_synthetic_corpus

parser = argparse.ArgumentParser(description="Train the emotion classifier with model.fit.")
parser.add_argument("--table", default=None, help="features table (.csv or .parquet); default: the SYNTHETIC corpus")
parser.add_argument("--scale", default=None,
                    help="AVD scale of the table, LO,HI: 1,5 for IEMOCAP, 1,7 for MSP-Podcast (default: the scale "
                    "the table records in its 'scale' column)")
parser.add_argument("--size", type=int, default=4000, help="synthetic utterances (default: 4000)")
parser.add_argument("--num-features", type=int, default=6373, help="synthetic feature dimension (default: 6373)")
parser.add_argument("--epochs", type=int, default=200, help="maximum epochs; early stopping ends sooner (default: 200)")
parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
parser.add_argument("--raw", action="store_true", help="skip the conflict filter on the training set")
parser.add_argument("--seed", type=int, default=0, help="seed of the weights, dropout and shuffling (default: 0)")
parser.add_argument("--out", default=None, help="save the trained classifier to this .keras file")
args = parser.parse_args()

"""
## Loading the features

A features table is read and checked by `read_features_table`; the synthetic corpus is generated
in memory. Both give a `Corpus`: `features` float32 `[N, D]`, `labels` int `[N]` into
`class_names`, `avd` `[N, 3]` and `split`.
"""

if args.table:
    corpus, _ = read_features_table(args.table, scale=args.scale)
    print(f"{args.table}: {len(corpus)} utterances, {corpus.num_features} features")
else:
    corpus = make_synthetic_corpus(n_utterances=args.size, num_features=args.num_features, seed=0)
    print(f"SYNTHETIC corpus (generated, not real speech): {len(corpus)} utterances, {corpus.num_features} features")
print("classes:", ", ".join(corpus.class_names))

splits = {name: corpus.subset(corpus.split == name) for name in ("train", "validation", "test")}
for name, part in splits.items():
    if len(part) == 0:
        raise ValueError(
            f"{args.table or 'the corpus'} has no '{name}' rows in its split column; "
            "the example needs train, validation and test rows"
        )
train, validation, test = splits["train"], splits["validation"], splits["test"]

"""
## Filtering conflicting training samples

The paper drops training utterances whose category contradicts their AVD annotation (a "happy"
utterance with low valence, a "sad" one with high valence, ...): they are likely mislabelled.
`conflict_mask` applies the paper's rules, with "low" and "high" meaning below and above the
middle of the AVD scale. Validation and test rows are never filtered.
"""

if not args.raw:
    names = np.asarray(corpus.class_names)[train.labels]
    conflicts = conflict_mask(names, train.avd[:, 0], train.avd[:, 1], scale=corpus.scale)
    print(f"conflict filter: dropping {int(conflicts.sum())} of {len(train)} training utterances")
    train = train.subset(~conflicts)
print(f"train {len(train)}, validation {len(validation)}, test {len(test)} utterances")

"""
## Building the `tf.data` pipelines

`classifier_dataset` turns a corpus into batches of `(features [B, D], one_hot [B, K])`. The
training set is reshuffled every epoch; validation and test keep their order.
"""

train_ds = classifier_dataset(train, batch_size=args.batch_size, shuffle=True, seed=args.seed)
val_ds = classifier_dataset(validation, batch_size=args.batch_size, shuffle=False)
test_ds = classifier_dataset(test, batch_size=args.batch_size, shuffle=False)

for features, one_hot in train_ds.take(1):
    print("one batch:", features.shape, features.dtype.name, "->", one_hot.shape, one_hot.dtype.name)

"""
## Building the model

The standardisation statistics are part of the model (a `Normalization` layer), so the saved
model takes raw features. They come from the training set only.
"""

keras.utils.set_random_seed(args.seed)
model = build_classifier(
    mean=train.features.mean(axis=0),
    variance=train.features.var(axis=0),
    num_classes=corpus.num_classes,
    seed=args.seed,
)
model.summary()

"""
## Training

Early stopping watches the validation loss and restores the weights of the best epoch.
"""

history = model.fit(
    train_ds,
    validation_data=val_ds,
    epochs=args.epochs,
    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)],
    verbose=2,
)
print(f"trained for {len(history.history['loss'])} epoch(s)")

"""
## Evaluation

Emotion corpora are imbalanced (MSP-Podcast is mostly neutral), so besides accuracy we report the
unweighted average recall (UAR, the mean of the per-class recalls) and the macro F1.
"""

test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)
probabilities = model.predict(test_ds, verbose=0)
predicted = probabilities.argmax(axis=1)
uar = recall_score(test.labels, predicted, average="macro", zero_division=0)
macro_f1 = f1_score(test.labels, predicted, average="macro", zero_division=0)
print(f"test accuracy {test_accuracy:.3f}, test UAR {uar:.3f}, test macro F1 {macro_f1:.3f}")

if args.out:
    model.save(args.out)
    print(f"saved the classifier to {args.out}")

"""
## Conclusions

- The classifier is a plain Keras functional model: `model.fit` on a `tf.data` pipeline, early
  stopping from `keras.callbacks`, and the standardisation inside the model.
- Its layer named `penultimate` (the second block's 256-d ReLU output) is where EmoConfidNet
  attaches: see `examples/train_confidence_head.py`, which can start from the `.keras` file
  saved with `--out`.
- On the synthetic corpus, expect a UAR of roughly 0.5: the classes overlap on purpose.
"""
