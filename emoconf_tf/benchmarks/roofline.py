"""The bench's matmul roofline: the classifier's dense kernels (and EmoConfidNet's head's) as bare `tf.matmul`
chains in `tf.function`s, and their FLOPs per sample.

What the same matmuls reach on this machine, a moment apart, is the reference of a rate: `training` times Keras's
`model.fit` against the forward + backward chain, `serving` the exported signature at batch 256 against the
forward one.
"""

from __future__ import annotations

import time

import numpy as np

from emoconf_tf.benchmarks.sizes import BATCH_SIZE, NUM_CLASSES, UNITS


def layer_shapes(num_features: int, units: int = UNITS, num_classes: int = NUM_CLASSES) -> list[tuple[int, int]]:
    """The classifier's dense kernels `(inputs, outputs)`: D -> 256 -> 256 -> K."""
    return [(num_features, units), (units, units), (units, num_classes)]


def forward_flops(shapes: list[tuple[int, int]]) -> int:
    """Multiply-add FLOPs per sample of the forward pass: 2 * sum(inputs * outputs)."""
    return 2 * sum(a * b for a, b in shapes)


def train_flops(shapes: list[tuple[int, int]]) -> int:
    """FLOPs per sample of one training step: forward, kernel gradients (as many again) and the gradients
    of every layer's input but the first (the features need none)."""
    return 2 * forward_flops(shapes) + 2 * sum(a * b for a, b in shapes[1:])


class MatmulRoofline:
    """Bare `tf.matmul` chains of the model's shapes, forward and forward + backward, in `tf.function`s.

    Args:
        shapes: the classifier's kernel shapes from `layer_shapes`.
        head_shapes: kernels of a head on the penultimate output (EmoConfidNet's, for serving), forward only.
        batch_size: rows per step (256).
        seed: seeds the random operands.
    """

    def __init__(self, shapes, head_shapes=(), batch_size: int = BATCH_SIZE, *, seed: int = 0):
        import tensorflow as tf

        rng = np.random.default_rng(seed)
        self.shapes, self.head_shapes, self.batch_size = list(shapes), list(head_shapes), int(batch_size)
        # Variables, as a model's kernels are: nothing in the chain can be folded into a constant at tracing.
        kernels = [tf.Variable(rng.standard_normal(s, dtype=np.float32) * 0.01) for s in self.shapes]
        head = [tf.Variable(rng.standard_normal(s, dtype=np.float32) * 0.01) for s in self.head_shapes]
        inputs = tf.constant(rng.standard_normal((self.batch_size, self.shapes[0][0]), dtype=np.float32))

        @tf.function
        def forward():
            h = inputs
            for w in kernels[:-1]:
                h = tf.matmul(h, w)
            total = tf.reduce_sum(tf.matmul(h, kernels[-1]))
            for w in head:
                h = tf.matmul(h, w)
            return total + tf.reduce_sum(h)

        @tf.function
        def forward_backward():
            activations, h = [inputs], inputs
            for w in kernels:
                h = tf.matmul(h, w)
                activations.append(h)
            grad, total = tf.ones_like(h), tf.constant(0.0)
            for i in reversed(range(len(kernels))):
                total += tf.reduce_sum(tf.matmul(activations[i], grad, transpose_a=True))  # kernel gradient
                if i > 0:
                    grad = tf.matmul(grad, kernels[i], transpose_b=True)  # input gradient
            return total

        self._forward, self._forward_backward = forward, forward_backward
        forward().numpy(), forward_backward().numpy()  # trace outside the timings

    def samples_per_s(self, *, backward: bool, steps: int) -> float:
        """Rate of `steps` consecutive steps (each waited for, as `fit` does): samples per second."""
        step = self._forward_backward if backward else self._forward
        start = time.perf_counter()
        for _ in range(steps):
            step().numpy()
        return steps * self.batch_size / (time.perf_counter() - start)

    def gflops(self, samples_per_s: float, *, backward: bool) -> float:
        flops = train_flops(self.shapes) if backward else forward_flops(self.shapes + self.head_shapes)
        return samples_per_s * flops / 1e9
