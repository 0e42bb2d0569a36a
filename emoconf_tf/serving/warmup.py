"""TF Serving's warm-up requests of an export: `assets.extra/tf_serving_warmup_requests`, a TFRecord file of
`PredictionLog`s, one request per signature (`warmup_records`), written field by field in the protobuf wire format.

A request that fails stops the version from loading: a server with `--enable_batching` refuses the scalar
`rejection` of `threshold` and `batch_threshold`, so an export for such a server has requests for
`BATCHABLE_SIGNATURES` only (`export_run(..., warmup_signatures=BATCHABLE_SIGNATURES)`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoconf_tf.errors import EmoconfError
from emoconf_tf.serving.examples import EXAMPLE_FEATURE_KEY, serialize_examples
from emoconf_tf.serving.serving_module import (
    BATCHABLE_SIGNATURES,
    DEFAULT_REJECTION,
    SIGNATURE_NAMES,
)

# TF Serving replays this file when it loads a version, before it reports the version AVAILABLE.
WARMUP_REQUESTS = Path("assets.extra") / "tf_serving_warmup_requests"
WARMUP_SIGNATURES = SIGNATURE_NAMES


def warmup_features(emoconfidnet) -> np.ndarray:
    """The row the warm-up requests send: float32 `[1, D]`, the training mean of each feature (the
    `standardize` layer's, found in the EmoConfidNet model or in the classifier alone), an ordinary utterance for
    the model rather than zeros far from every real one."""
    from emoconf_tf.models import find_layer

    mean = np.asarray(find_layer(emoconfidnet, "standardize").mean, dtype=np.float32)
    return mean.reshape(1, -1)


def check_warmup_signatures(signatures: Sequence[str] | str, option: str = "warmup_signatures") -> tuple[str, ...]:
    """The signature names (a sequence or a comma list), checked: known, not repeated, at least one; else
    `EmoconfError` naming them as `option`, the Python argument that held them (default `"warmup_signatures"`, as
    `export_run`'s), which is also the error's `argument`."""
    names = tuple(n.strip() for n in signatures.split(",")) if isinstance(signatures, str) else tuple(signatures)
    unknown = [n for n in names if n not in SIGNATURE_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        raise EmoconfError(f"{option} {','.join(names)!r}: give distinct signatures among {', '.join(SIGNATURE_NAMES)} "
                           f"(with --enable_batching: {','.join(BATCHABLE_SIGNATURES)})", argument=option)
    return names


def warmup_records(features: np.ndarray, rejection: float = DEFAULT_REJECTION,
                   signatures: Sequence[str] = WARMUP_SIGNATURES) -> list[bytes]:
    """TF Serving's warm-up requests, one for each of `signatures` (default every signature, `WARMUP_SIGNATURES`):
    serialized `PredictionLog`s.

    TF Serving runs the requests of `assets.extra/tf_serving_warmup_requests` (a TFRecord file of
    `tensorflow.serving.PredictionLog`) when it loads a version, before the version is AVAILABLE, so that
    TensorFlow's lazy initialisation is not paid by the first client; a request that fails stops the
    version from loading. The model name of each request is left empty (the server does not read it).

    The protos are written field by field in the protobuf wire format (each field: its number and wire
    type, the length, the bytes): `tensorflow-serving-api`, which defines them, requires a TensorFlow at
    least as new as itself and is not a dependency of this package. `tests/test_export.py` parses the
    records with `tensorflow_serving.apis` and checks them against the protos built there.

    Args:
        features: float `[N, D]` raw features in the order of `feature_names.txt`; each request carries
            these N rows.
        rejection: the rejection rate the `threshold` and `batch_threshold` requests send (default 0.2).
        signatures: the signatures to write a request for, in this order.

    Returns:
        One serialized `PredictionLog` per signature, with a `predict_log.request` each: for `serving_default`,
        input `examples` string `[N]` (`serialize_examples(features)`); for `predict` and `confidence`, input
        `features` float32 `[N, D]`; for `threshold` and `batch_threshold`, `features` and `rejection` float32 `[]`.
    """
    import tensorflow as tf

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] < 1:
        raise EmoconfError(f"warm-up features: expected a [N, D] array with N >= 1, got shape {features.shape}")
    rows = {EXAMPLE_FEATURE_KEY: tf.make_tensor_proto(features, dtype=tf.float32)}
    at_rate = dict(rows, rejection=tf.make_tensor_proto(np.float32(rejection), dtype=tf.float32))
    inputs = {
        "serving_default": {"examples": tf.make_tensor_proto(serialize_examples(features), dtype=tf.string)},
        "predict": rows, "confidence": rows, "threshold": at_rate, "batch_threshold": at_rate,
    }
    return [_prediction_log(name, inputs[name]) for name in check_warmup_signatures(signatures, "signatures")]


def write_warmup_requests(model_dir: str | os.PathLike, features: np.ndarray,
                          rejection: float = DEFAULT_REJECTION, signatures: Sequence[str] = WARMUP_SIGNATURES) -> Path:
    """Writes `warmup_records(features, rejection, signatures)` as `model_dir/assets.extra/tf_serving_warmup_requests`
    (a TFRecord file) and returns its path."""
    import tensorflow as tf

    path = Path(model_dir) / WARMUP_REQUESTS
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(features, rejection, signatures):
            writer.write(record)
    return path


def _prediction_log(signature_name: str, inputs: dict) -> bytes:
    """`PredictionLog{predict_log: PredictLog{request: PredictRequest}}` in the protobuf wire format.

    Field numbers of tensorflow_serving/apis: PredictionLog.predict_log = 6; PredictLog.request = 1;
    PredictRequest.model_spec = 1, .inputs = 2 (a map: each entry a message with key = 1, value = 2);
    ModelSpec.signature_name = 3. `inputs` maps input names to `TensorProto`s, written in sorted order.
    """
    model_spec = _message_field(3, signature_name.encode("utf-8"))
    request = _message_field(1, model_spec) + b"".join(
        _message_field(2, _message_field(1, key.encode("utf-8")) + _message_field(2, tensor.SerializeToString()))
        for key, tensor in sorted(inputs.items())
    )
    return _message_field(6, _message_field(1, request))


def _message_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2: strings, bytes, messages): key, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    """A non-negative int as a protobuf base-128 varint: 7 bits a byte, low bits first, high bit = more."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
