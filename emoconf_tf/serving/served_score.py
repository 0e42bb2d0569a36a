"""The confidence score an export serves: what it is made of (`ServedScore`, pure data) and how it is computed,
in NumPy (`reference_confidence`, the library's scores) and in the SavedModel's graph (`score_graph`).

Every score of the registry that says it is servable (`scores.servable_methods()`) is computed from
three network outputs on the same features:

    probabilities  float32 [N, K]  the classifier's softmax (its argmax is the predicted class c)
    p_hat          float32 [N, K]  EmoConfidNet's head on the classifier's penultimate layer (none in a run
                                   without AVD ratings: the head's targets come from them)
    ensemble       float32 [N, K]  the mean softmax of the classifier and the ensemble members

- `emoconfidnet`: `p_hat[c]` (only with AVD ratings); `top2_margin`, `msp`, `entropy`: of `probabilities`
  (`emoconf_tf.scores.functions`);
- `macro_gain`: `macro_gain_from_statistics(probabilities, c, statistics)`, the validation precision, recall and
  counts per class (`MacroGainStatistics`) stored as constants; `macro_gain_ensemble`: the same on `ensemble`;
- `recommended`: the candidate `emoconf train` chose on validation (`scores/recommended.py`): one of the above,
  or a blend `sum_m w_m q_m(score_m)` of validation quantiles `q_m` (`scores.validation_quantile`), whose
  sorted validation scores are stored as constants.

A `ServedScore` is what `emoconf export` records; `score_graph` computes it with TensorFlow in float64 where the
library computes in float64, so the SavedModel's `confidence` equals the library's to float32 rounding of the
networks (checked to 1e-5 before an export is published).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.scores import (
    METHODS, MacroGainStatistics, check_servable, emoconfidnet_confidence, macro_gain_from_statistics,
    macro_gain_statistics, max_probability, negative_entropy, predicted_class, recommended_confidence, top2_margin,
)
from emoconf_tf.thresholds import check_rejection_mode

BASE_SCORES = ("emoconfidnet", "top2_margin", "msp", "entropy", "macro_gain", "macro_gain_ensemble")
"""The servable scores computed directly from the networks' outputs (`recommended` chooses among them)."""
NEEDS_STATISTICS = ("macro_gain", "macro_gain_ensemble")
SCORE_ASSET = "score.json"
"""The export's asset naming the served score, its components, rejection mode and the validation figures it was
chosen on (read by `emoconf inspect` and `predict` without TensorFlow)."""


@dataclasses.dataclass(frozen=True)
class ServedScore:
    """The score a SavedModel serves as `confidence`.

    Attributes:
        name: the registry name asked for (`"recommended"`, `"emoconfidnet"`, ...).
        components: `((base score, weight), ...)`: one pair of weight 1 = that score itself; several = a blend of
            validation quantiles (weights sum to 1).
        rejection_mode: `"global"` or `"per_class"`: how `accept` thresholds are set.
        statistics: the validation `MacroGainStatistics`, when a component is a macro gain; else None.
        quantile_references: for a blend, each component's validation scores, float64 `[n]` sorted ascending.
        members: classifiers whose mean softmax `macro_gain_ensemble` uses (1 = the classifier alone).
        chosen_on: how validation chose it (`criterion`, `validation_value`, `switch_rate`, ...); empty when the
            score was asked for by name.
        has_avd: False for a run trained on a corpus without AVD ratings: no EmoConfidNet head, so no component
            that needs AVD (`ConfidenceMethod.needs_avd`) and no `emoconfidnet_confidence` output (default True).
    """

    name: str
    components: tuple[tuple[str, float], ...]
    rejection_mode: str = "global"
    statistics: MacroGainStatistics | None = None
    quantile_references: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    members: int = 1
    chosen_on: Mapping[str, object] = dataclasses.field(default_factory=dict)
    has_avd: bool = True

    def __post_init__(self):
        check_servable(self.name, "name", has_avd=self.has_avd)
        check_rejection_mode(self.rejection_mode)
        if not self.components or any(m not in BASE_SCORES for m, _ in self.components):
            raise EmoconfError(f"score {self.name}: components {list(self.components)} are not all among "
                               f"{', '.join(BASE_SCORES)}")
        needing = [m for m, _ in self.components if METHODS[m].needs_avd]
        if needing and not self.has_avd:
            raise EmoconfError(f"score {self.name}: components {', '.join(needing)} need AVD ratings, which the run "
                               "has none of")
        if self.name != "recommended" and self.components != ((self.name, 1.0),):
            raise EmoconfError(f"score {self.name}: its components must be ({self.name}, 1.0)")
        if self.needs_statistics and self.statistics is None:
            raise EmoconfError(f"score {self.name}: macro gain needs the validation statistics")
        if self.blended:
            missing = [m for m, _ in self.components if m not in self.quantile_references]
            if missing:
                raise EmoconfError(f"score {self.name}: no validation scores for blend components {missing}")
        if self.uses_ensemble and self.members < 2:
            raise EmoconfError(f"score {self.name}: macro_gain_ensemble needs ensemble members (got {self.members} "
                               "classifier)")

    @property
    def blended(self) -> bool:
        return len(self.components) > 1

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.components)

    @property
    def needs_statistics(self) -> bool:
        return any(m in NEEDS_STATISTICS for m in self.methods)

    @property
    def uses_ensemble(self) -> bool:
        return "macro_gain_ensemble" in self.methods

    @property
    def description(self) -> str:
        """`recommended: 0.50*emoconfidnet + 0.50*top2_margin`-style name of what is served."""
        chosen = (self.components[0][0] if not self.blended
                  else " + ".join(f"{w:.2f}*{m}" for m, w in self.components))
        return chosen if self.name == chosen else f"{self.name} ({chosen})"

    def to_json(self) -> dict:
        """The `score.json` asset / run.json entry (sorted validation references are not included)."""
        return {
            "score": self.name,
            "display_name": METHODS[self.name].display_name,
            "served": self.description,
            "components": [[m, float(w)] for m, w in self.components],
            "rejection_mode": self.rejection_mode,
            "ensemble_members": self.members if self.uses_ensemble else 1,
            "macro_gain_statistics": self.statistics.to_dict() if self.statistics is not None else None,
            "chosen_on": dict(self.chosen_on),
            "has_avd": self.has_avd,
        }


def base_scores(methods: Sequence[str], probabilities: np.ndarray, p_hat: np.ndarray | None = None,
                ensemble: np.ndarray | None = None, statistics: MacroGainStatistics | None = None
                ) -> dict[str, np.ndarray]:
    """The base scores `methods` (float32 `[N]` each) from the networks' outputs, as the library computes them."""
    probabilities = np.asarray(probabilities)
    predicted = predicted_class(probabilities)
    out = {}
    for method in methods:
        if method == "emoconfidnet":
            out[method] = emoconfidnet_confidence(probabilities, p_hat)
        elif method == "top2_margin":
            out[method] = top2_margin(probabilities)
        elif method == "msp":
            out[method] = max_probability(probabilities)
        elif method == "entropy":
            out[method] = negative_entropy(probabilities)
        elif method == "macro_gain":
            out[method] = macro_gain_from_statistics(probabilities, predicted, statistics)
        elif method == "macro_gain_ensemble":
            out[method] = macro_gain_from_statistics(ensemble, predicted, statistics)
        else:
            raise EmoconfError(f"{method!r} is not a base score ({', '.join(BASE_SCORES)})")
    return out


def reference_confidence(served: ServedScore, probabilities: np.ndarray, p_hat: np.ndarray | None = None,
                         ensemble: np.ndarray | None = None) -> np.ndarray:
    """The served score in NumPy, float32 `[N]`: what the SavedModel's `confidence` must equal (to 1e-5).

    Args:
        served: the `ServedScore`.
        probabilities: float32 `[N, K]`, the classifier's softmax.
        p_hat: float32 `[N, K]`, EmoConfidNet's output (needed when a component is `emoconfidnet`).
        ensemble: float32 `[N, K]`, the ensemble's mean softmax (needed for `macro_gain_ensemble`).
    """
    scores = base_scores(served.methods, probabilities, p_hat, ensemble, served.statistics)
    if not served.blended:
        return scores[served.methods[0]]
    return recommended_confidence(served.components, served.quantile_references, scores).astype(np.float32)


def has_head(network) -> bool:
    """True for a Keras model with EmoConfidNet's head (`features` -> `{"probabilities", "p_hat"}`), False for a
    classifier alone (`features` -> `probabilities`: a run without AVD ratings)."""
    return isinstance(network.output, dict) and "p_hat" in network.output


def class_count(network) -> int:
    """K, the classes of `network` (with or without EmoConfidNet's head: `has_head`)."""
    return int((network.output["probabilities"] if has_head(network) else network.output).shape[-1])


def score_graph(served: ServedScore, emoconfidnet, members: Sequence = (), *, fold: bool = True):
    """A `tf.Module` whose call on raw features float32 `[N, D]` returns a dict of float32 / int64 tensors:
    `probabilities` `[N, K]`, `class_ids` `[N]`, `confidence` `[N]` (the served score),
    `emoconfidnet_confidence` `[N]` and `baseline_confidence` `[N]` (the paper's two scores;
    `emoconfidnet_confidence` only when `emoconfidnet` has the head).

    Args:
        served: the `ServedScore`.
        emoconfidnet: the Keras model `features` -> `{"probabilities", "p_hat"}`, or for a run without AVD ratings
            the classifier alone, `features` -> `probabilities` (`has_head` False; no score may need `p_hat`).
        members: the extra Keras classifiers of the ensemble (used only when the score needs them).
        fold: run the folded networks (`folded_network`) instead of the Keras graphs.
    """
    import tensorflow as tf

    from emoconf_tf.serving.folded_network import (
        FoldedClassifierInference, FoldedInference, fold_classifier, fold_emoconfidnet,
    )

    members = list(members) if served.uses_ensemble else []
    if served.uses_ensemble and len(members) != served.members - 1:
        raise EmoconfError(f"score {served.name}: {served.members} ensemble members recorded, {len(members) + 1} given")
    head = has_head(emoconfidnet)
    if not head and "emoconfidnet" in served.methods:
        raise EmoconfError(f"score {served.name}: needs EmoConfidNet's p_hat, but the model is the classifier alone "
                           "(a run without AVD ratings)")
    num_classes = class_count(emoconfidnet)

    class _ScoreModule(tf.Module):
        def __init__(self):
            super().__init__(name="served_score")
            if fold:
                # A run without AVD ratings: the classifier alone, folded as the ensemble members are.
                self.network = (FoldedInference(fold_emoconfidnet(emoconfidnet)) if head else
                                FoldedClassifierInference(fold_classifier(emoconfidnet), name="folded_classifier"))
                self.members = [FoldedClassifierInference(fold_classifier(m), name=f"folded_member_{j + 1}")
                                for j, m in enumerate(members)]
            else:
                self.network = None
                self.members = []
            statistics = served.statistics
            if statistics is not None:
                self.precision = tf.constant(statistics.precision, tf.float64)
                self.recall_weight = tf.constant((statistics.recall / (statistics.n_true + 1))[:, np.newaxis],
                                                 tf.float64)  # [K, 1]
                self.predicted_plus_one = tf.constant(statistics.n_predicted + 1, tf.float64)
                self.true_plus_one = tf.constant(statistics.n_true + 1, tf.float64)
                self.bound = tf.constant(statistics.bound, tf.float64)
            self.references = {m: tf.constant(np.sort(np.asarray(served.quantile_references[m], np.float64)),
                                              tf.float64) for m in served.methods} if served.blended else {}

        def _networks(self, features):
            if fold:
                probabilities, p_hat = self.network(features) if head else (self.network(features), None)
                member_probabilities = [member(features) for member in self.members]
            else:
                outputs = emoconfidnet(features, training=False)
                probabilities, p_hat = (outputs["probabilities"], outputs["p_hat"]) if head else (outputs, None)
                member_probabilities = [m(features, training=False) for m in members]
            return (tf.cast(probabilities, tf.float32), tf.cast(p_hat, tf.float32) if head else None,
                    [tf.cast(p, tf.float32) for p in member_probabilities])

        def _macro_gain(self, q32, class_ids):
            q = tf.cast(q32, tf.float64)
            q_c = tf.gather(q, class_ids, axis=1, batch_dims=1)
            gain_precision = (q_c - tf.gather(self.precision, class_ids)) / tf.gather(self.predicted_plus_one,
                                                                                     class_ids)
            gain_recall = q_c / tf.gather(self.true_plus_one, class_ids) - tf.matmul(q, self.recall_weight)[:, 0]
            return tf.cast((gain_precision + gain_recall + self.bound) / (2.0 * self.bound), tf.float32)

        def __call__(self, features):
            probabilities, p_hat, member_probabilities = self._networks(features)
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
            top2 = tf.math.top_k(probabilities, k=2).values
            # Without the head (no AVD ratings) there is no emoconfidnet score, and no output for it.
            scores = {"emoconfidnet": tf.gather(p_hat, class_ids, axis=1, batch_dims=1)} if head else {}
            scores["top2_margin"] = top2[:, 0] - top2[:, 1]
            for method in served.methods:
                if method == "msp":
                    scores[method] = tf.reduce_max(probabilities, axis=-1)
                elif method == "entropy":
                    p = tf.clip_by_value(tf.cast(probabilities, tf.float64), 1e-12, 1.0)
                    entropy = -tf.reduce_sum(p * tf.math.log(p), axis=-1)
                    scores[method] = tf.cast(tf.clip_by_value(1.0 - entropy / np.log(num_classes), 0.0, 1.0),
                                             tf.float32)
                elif method == "macro_gain":
                    scores[method] = self._macro_gain(probabilities, class_ids)
                elif method == "macro_gain_ensemble":
                    # As ensemble.ensemble_probabilities: the float64 sum of the float32 softmaxes, / M, to float32.
                    total = tf.cast(probabilities, tf.float64)
                    for member in member_probabilities:
                        total = total + tf.cast(member, tf.float64)
                    ensemble = tf.cast(total / float(len(member_probabilities) + 1), tf.float32)
                    scores[method] = self._macro_gain(ensemble, class_ids)
            if served.blended:
                confidence = tf.constant(0.0, tf.float64)
                for method, weight in served.components:
                    reference = self.references[method]
                    position = tf.searchsorted(reference, tf.cast(scores[method], tf.float64), side="right")
                    quantile = tf.cast(position, tf.float64) / float(reference.shape[0])
                    confidence = confidence + weight * quantile
                confidence = tf.cast(confidence, tf.float32)
            else:
                confidence = scores[served.methods[0]]
            return {"probabilities": probabilities, "class_ids": class_ids, "confidence": confidence,
                    **({"emoconfidnet_confidence": scores["emoconfidnet"]} if head else {}),
                    "baseline_confidence": scores["top2_margin"]}

    return _ScoreModule()


def served_score_for_run(run, name: str | None = None, rejection_mode: str | None = None
                         ) -> tuple[ServedScore, np.ndarray, np.ndarray]:
    """The `ServedScore` an export of `run` serves, with its validation scores and predicted classes.

    Args:
        run: a loaded run directory (`emoconf_tf.serving.rundir.Run`).
        name: the score to serve; default None, the run's (`run.json`'s `score`; EmoConfidNet for older runs).
        rejection_mode: `"global"` or `"per_class"`; default None: the run's mode when `name` is the run's score,
            the mode validation chose for `recommended`, else global.

    Returns:
        `(served, validation_confidence float64 [n], validation_predicted int64 [n])`: the thresholds' inputs.

    Raises:
        EmoconfError: `name` cannot be served (`emoconfidnet` for a run without AVD ratings), or the run lacks what
            it needs (one line saying what to do).
    """
    record = run.score
    path = run.path
    # A run without AVD ratings has no EmoConfidNet head: emoconfidnet is refused, naming the run.
    name = check_servable(name or record["name"], "score" if run.has_avd else f"{path}: score",
                          has_avd=run.has_avd)
    if name == "recommended":
        if record["name"] != "recommended":
            raise EmoconfError(
                f"score recommended: the run {path} was trained for {record['name']} and made no choice on "
                f"validation; retrain it with `emoconf train --score recommended`, or export the score it was "
                f"trained for ({record['name']})",
                argument="score")
        components = tuple((str(m), float(w)) for m, w in record["components"])
        chosen_on = dict(record.get("chosen_on") or {})
    else:
        components, chosen_on = ((name, 1.0),), {}
    if rejection_mode is None:
        rejection_mode = record["rejection_mode"] if name == record["name"] else (
            (record.get("chosen_on") or {}).get("rejection_mode", "global") if name == "recommended" else "global")
    rejection_mode = check_rejection_mode(rejection_mode, f"{path / 'run.json'}: rejection_mode")
    own = name == record["name"] and "confidence" in run.validation  # validation.csv's `confidence` is this score
    columns = {}
    for method, _ in (components if not own or len(components) > 1 else ()):
        column = run.score_column(method)
        if column is None:
            hint = (" (it trains the ensemble members)" if method == "macro_gain_ensemble" else "")
            raise EmoconfError(f"{path / 'validation.csv'}: the run did not compute {method}; retrain with "
                               f"`emoconf train --score {name}`{hint}")
        columns[method] = column
    uses_ensemble = any(m == "macro_gain_ensemble" for m, _ in components)
    members = len(run.members) + 1  # the classifier and the members load_run loaded
    if uses_ensemble and members < 2:
        raise EmoconfError(f"{path}: no ensemble members in run.json, so macro_gain_ensemble cannot be served; "
                           f"retrain with `emoconf train --score {name}`")
    predicted = run.validation_predicted()
    statistics = None
    if any(m in NEEDS_STATISTICS for m, _ in components):
        index = {label: i for i, label in enumerate(run.class_names)}
        labels = run.validation["label"].astype(str).map(index)
        if labels.isna().any():
            bad = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise EmoconfError(f"{path / 'validation.csv'}: 'label' in row {bad + 2} is not one of the run's classes")
        statistics = macro_gain_statistics(labels.to_numpy(np.int64), predicted, len(run.class_names))
    # validation.csv holds float32 scores with 9 significant digits: back to float32 they are the scores exactly.
    scores = {m: run.validation_confidence(c).astype(np.float32).astype(np.float64) for m, c in columns.items()}
    served = ServedScore(name, components, rejection_mode, statistics,
                         {m: np.sort(v) for m, v in scores.items()} if len(components) > 1 else {},
                         members if uses_ensemble else 1, chosen_on, has_avd=run.has_avd)
    if own:
        confidence = run.validation_confidence()
    elif len(components) == 1:
        confidence = scores[components[0][0]]
    else:
        confidence = recommended_confidence(components, scores, scores).astype(np.float32).astype(np.float64)
    return served, confidence, predicted
