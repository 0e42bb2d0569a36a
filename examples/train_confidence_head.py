"""
Title: Training EmoConfidNet's confidence head with model.fit
Author: emoconf-tf contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Attach EmoConfidNet to a trained classifier, fit it with the pairwise loss, reject unsure predictions.
Accelerator: None
"""

"""
## Introduction

A speech emotion classifier always answers, even when the utterance is ambiguous or the
annotation it learnt from was doubtful. EmoConfidNet (Li et al., "Confidence Estimation for Speech
Emotion Recognition Based on the Relationship Between Emotion Categories and Primitives", ICASSP
2022) gives each prediction a confidence, so that an application can *reject* the least confident ones and pass
only the others on.

Its training targets come from the annotations themselves. Each utterance has a category and an
arousal/valence/dominance ("AVD") rating. The AVD centroid of each category is computed on the
training set; the Manhattan distance `d_k` of an utterance's AVD to the centroid of category k
says how typical of k it sounds, and `p = softmax(-d)` turns the distances into a target vector
of K confidences. A small network on the classifier's penultimate layer learns to predict `p`
from the acoustic features, with a loss that keeps the ranking and the margins of the targets
(the pairwise loss, Eq. 1 of the paper). At test time, the confidence of a prediction `c` is the
predicted `p_hat[c]`.

This example:

1. gets a trained classifier (from `examples/train_classifier.py --out`, or trains one),
2. computes the targets with `confidence_targets`,
3. attaches the head with `build_emoconfidnet` and fits it with `PairwiseConfidenceLoss`,
4. picks the threshold that rejects 20 % of the validation predictions and applies it to the
   test set, against the top-2 margin baseline.

Without `--table` the data is the built-in **synthetic** corpus (invented, MSP-Podcast-like
utterances): its numbers test the code, not the method on real speech.

```
python examples/train_confidence_head.py                               # synthetic, trains a classifier
python examples/train_classifier.py --table t.parquet --out classifier.keras
python examples/train_confidence_head.py --table t.parquet --classifier classifier.keras
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
import pandas as pd
import tensorflow as tf

from emoconf_tf.corpus import read_features_table
from emoconf_tf.datasets import classifier_dataset, confidence_dataset
from emoconf_tf.filtering import conflict_mask
from emoconf_tf.losses import PairwiseConfidenceLoss
from emoconf_tf.metrics import selective_scores
from emoconf_tf.models import build_classifier, build_emoconfidnet
from emoconf_tf.scores import emoconfidnet_confidence, top2_margin
from emoconf_tf.synthetic import make_synthetic_corpus
from emoconf_tf.targets import confidence_targets
from emoconf_tf.thresholds import rejection_threshold

parser = argparse.ArgumentParser(description="Fit EmoConfidNet on a trained classifier and reject at a threshold.")
parser.add_argument("--table", default=None, help="features table (.csv or .parquet); default: the SYNTHETIC corpus")
parser.add_argument("--scale", default=None,
                    help="AVD scale of the table, LO,HI: 1,5 for IEMOCAP, 1,7 for MSP-Podcast (default: the scale "
                    "the table records in its 'scale' column)")
parser.add_argument("--size", type=int, default=4000, help="synthetic utterances (default: 4000)")
parser.add_argument("--num-features", type=int, default=6373, help="synthetic feature dimension (default: 6373)")
parser.add_argument(
    "--classifier", default=None, help="a classifier saved by train_classifier.py --out (default: train one)"
)
parser.add_argument("--epochs", type=int, default=200, help="maximum epochs per network (default: 200)")
parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
parser.add_argument("--rejection", type=float, default=0.2, help="fraction of predictions to reject (default: 0.2)")
parser.add_argument("--raw", action="store_true", help="skip the conflict filter on the training set")
parser.add_argument("--seed", type=int, default=0, help="seed of the weights, dropout and shuffling (default: 0)")
args = parser.parse_args()
if not 0.0 <= args.rejection < 1.0:
    raise ValueError(f"--rejection {args.rejection}: expected a fraction in [0, 1), e.g. 0.2")

"""
## Loading the features

The same data as `train_classifier.py`: a features table, or the synthetic corpus, split into
train / validation / test by its `split` column, with the paper's conflict filter on the
training set (utterances whose category contradicts their AVD are dropped).
"""

if args.table:
    corpus, _ = read_features_table(args.table, scale=args.scale)
    print(f"{args.table}: {len(corpus)} utterances, {corpus.num_features} features")
else:
    corpus = make_synthetic_corpus(n_utterances=args.size, num_features=args.num_features, seed=0)
    print(f"SYNTHETIC corpus (generated, not real speech): {len(corpus)} utterances, {corpus.num_features} features")

splits = {name: corpus.subset(corpus.split == name) for name in ("train", "validation", "test")}
for name, part in splits.items():
    if len(part) == 0:
        raise ValueError(
            f"{args.table or 'the corpus'} has no '{name}' rows in its split column; "
            "the example needs train, validation and test rows"
        )
train, validation, test = splits["train"], splits["validation"], splits["test"]
if not args.raw:
    names = np.asarray(corpus.class_names)[train.labels]
    train = train.subset(~conflict_mask(names, train.avd[:, 0], train.avd[:, 1], scale=corpus.scale))
print(f"train {len(train)}, validation {len(validation)}, test {len(test)} utterances")

early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)

"""
## The emotion classifier

Load the classifier saved by `train_classifier.py --out` (it must have been trained on the same
features), or train one here exactly as that example does.
"""

keras.utils.set_random_seed(args.seed)
if args.classifier:
    classifier = keras.saving.load_model(args.classifier)
    if classifier.input_shape[-1] != corpus.num_features or classifier.output_shape[-1] != corpus.num_classes:
        raise ValueError(
            f"{args.classifier}: takes {classifier.input_shape[-1]} features and predicts "
            f"{classifier.output_shape[-1]} classes, but the data has {corpus.num_features} features and "
            f"{corpus.num_classes} classes; train it on the same table (and --size/--num-features)"
        )
    print(f"loaded the classifier from {args.classifier}")
else:
    classifier = build_classifier(
        train.features.mean(axis=0), train.features.var(axis=0), corpus.num_classes, seed=args.seed
    )
    classifier_history = classifier.fit(
        classifier_dataset(train, batch_size=args.batch_size, seed=args.seed),
        validation_data=classifier_dataset(validation, batch_size=args.batch_size, shuffle=False),
        epochs=args.epochs,
        callbacks=[early_stopping],
        verbose=0,
    )
    print(f"trained the classifier for {len(classifier_history.history['loss'])} epoch(s)")

"""
## Confidence targets

`confidence_targets` computes the category centroids in AVD space from the *training* rows, then
`softmax(-d)` of each row's Manhattan distances to them: float32 `[N, K]`, rows summing to 1.
Validation targets use the same (training) centroids.
"""

targets_train = confidence_targets(train.labels, train.avd, train.avd, corpus.class_names)
targets_val = confidence_targets(train.labels, train.avd, validation.avd, corpus.class_names)
example = pd.DataFrame(
    targets_train[:3].round(3),
    columns=corpus.class_names,
    index=[f"{i} ({corpus.class_names[k]}, AVD {a[0]:.1f}/{a[1]:.1f}/{a[2]:.1f})"
           for i, k, a in zip(train.ids[:3], train.labels[:3], train.avd[:3])],
)
print("targets of the first training utterances:")
print(example.to_string())

"""
## Attaching EmoConfidNet

`build_emoconfidnet` freezes the classifier and puts the head (two blocks of
`Dense(256) -> BatchNormalization -> ReLU -> Dropout(0.5)` and a softmax, named `p_hat`) on its
layer named `penultimate`. The combined model has two outputs: the classifier's `probabilities`,
which stay as they are, and `p_hat`. Only `p_hat` gets a loss, so only the head learns.

The classifier follows Keras's frozen-base idiom: it always runs in inference mode, also inside
`fit` (its BatchNormalization layers use their moving statistics and its dropout is off), so the
head learns from the same embeddings it will see at test time. The library's
`emoconf_tf.training.fit_emoconfidnet` trains the head the same way, on embeddings computed once
instead of in every epoch, which is faster on 6,373 features.
"""

model = build_emoconfidnet(classifier, seed=args.seed)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=1e-4),
    loss={"p_hat": PairwiseConfidenceLoss()},
)

"""
## Training the head

`confidence_dataset` gives batches of `(features, targets)`; the targets are mapped to the
`p_hat` output by name.
"""


def to_p_hat(features, targets):
    return features, {"p_hat": targets}


train_ds = confidence_dataset(train.features, targets_train, batch_size=args.batch_size, seed=args.seed)
val_ds = confidence_dataset(validation.features, targets_val, batch_size=args.batch_size, shuffle=False)
train_ds = train_ds.map(to_p_hat, num_parallel_calls=tf.data.AUTOTUNE)
val_ds = val_ds.map(to_p_hat, num_parallel_calls=tf.data.AUTOTUNE)

history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[early_stopping], verbose=2)
print(f"trained the head for {len(history.history['loss'])} epoch(s), "
      f"best validation pairwise loss {min(history.history['val_loss']):.4f}")

"""
## Confidence of each prediction

The prediction is the classifier's `argmax`; its confidence is `p_hat` at that class. The
baseline from the literature is the margin between the two largest softmax probabilities.
"""


def predict_with_confidence(features):
    outputs = model.predict(features, batch_size=1024, verbose=0)
    predicted = outputs["probabilities"].argmax(axis=1)
    return predicted, {
        "EmoConfidNet": emoconfidnet_confidence(outputs["probabilities"], outputs["p_hat"]),
        "top-2 margin": top2_margin(outputs["probabilities"]),
    }


_, val_confidence = predict_with_confidence(validation.features)
test_predicted, test_confidence = predict_with_confidence(test.features)

"""
## Rejecting at a threshold

The threshold comes from the validation set (paper, Section 5.1): sort the validation
confidences in descending order and take the one that keeps `1 - rejection` of them. On the test
set, predictions below the threshold are rejected; F1 and UAR are computed on the rest.
"""

k = corpus.num_classes
everything = selective_scores(test.labels, test_predicted, np.ones(len(test)), 0.0, k)
print(f"no rejection: F1 {everything.f1:.3f}, UAR {everything.uar:.3f} on {everything.n_test} test utterances")
for method, confidence in test_confidence.items():
    threshold = rejection_threshold(val_confidence[method], args.rejection)
    scores = selective_scores(test.labels, test_predicted, confidence, threshold, k)
    print(
        f"{method:>12} at {args.rejection:.0%} rejection: threshold {threshold:.4f}, F1 {scores.f1:.3f}, "
        f"UAR {scores.uar:.3f}, coverage {scores.coverage:.3f} "
        f"(rejected {scores.removed}, of which {scores.removed_correct} were correct)"
    )

"""
The least confident test predictions, which EmoConfidNet rejects first:
"""

threshold = rejection_threshold(val_confidence["EmoConfidNet"], args.rejection)
confidence = test_confidence["EmoConfidNet"]
names = np.asarray(corpus.class_names)
rejected = pd.DataFrame({
    "id": test.ids,
    "label": names[test.labels],
    "predicted": names[test_predicted],
    "confidence": confidence.round(4),
})[confidence < threshold].sort_values("confidence")
print(rejected.head(8).to_string(index=False))

"""
## Conclusions

- EmoConfidNet is an ordinary Keras head on the classifier's `penultimate` layer: its targets
  are NumPy (`confidence_targets`), its loss a `keras.losses.Loss` (`PairwiseConfidenceLoss`),
  and `model.fit` trains it with the classifier frozen.
- A rejection rate becomes a threshold on the *validation* confidences; the test set only ever
  sees the threshold.
- One run on one split says little about which confidence is better: on the synthetic corpus the
  gains of EmoConfidNet and of the top-2 margin change from seed to seed, and either can come out
  ahead. `emoconf demo --seeds 5` runs the whole protocol (raw and filtered training, every
  rejection rate, several seeds) to compare them properly.
"""
