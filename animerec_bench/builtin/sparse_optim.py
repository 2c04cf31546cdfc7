"""Optimizers whose embedding updates touch only the rows in the batch.

Keras 3's ``Adam`` updates every row of every embedding table on every step (its moment
estimates decay everywhere), so a step costs time in proportion to the table, not the batch:
at the real data's size (325k users x 64 factors) that dominates training. ``LazyAdam`` is
Adam where the gradient is sparse (an embedding's gradient: the rows a batch touched) and plain
Keras Adam where it is dense (Dense kernels, biases). On a sparse gradient it

1. sums the gradient rows of repeated indices (a popular anime appears many times per batch),
2. gathers the first and second moments of those rows only, updates them with Adam's rule,
3. writes back the moments and the variable's new rows only (one ``scatter_update`` each:
   on CPU it is ~10x faster than ``scatter_sub``; measured 0.9 vs 9 ms for 32k rows x 64).

Rows not in the batch keep their moments and values (the "lazy" part, as in TF Addons'
``LazyAdam`` and PyTorch's ``SparseAdam``); the bias correction uses the global step.

The arithmetic is ``keras.ops``; only "is this gradient sparse, and which rows" and "write
these rows" depend on the backend (``keras_backend.sparse_rows`` / ``row_update``). On
TensorFlow an embedding's gradient arrives as ``tf.IndexedSlices`` and the row writes are
``scatter_update`` / ``scatter_sub``; on JAX and PyTorch gradients arrive dense and the
optimizer is exactly Keras' Adam.
"""

from __future__ import annotations

import functools

from animerec_bench.builtin.keras_backend import gather_rows, keras, row_update, sparse_rows


@functools.cache
def _classes():
    k = keras()
    ops = k.ops

    class LazyAdam(k.optimizers.Adam):
        """Adam that, on sparse (embedding) gradients, updates only the rows in the batch."""

        def update_step(self, gradient, variable, learning_rate):
            rows = sparse_rows(gradient)
            if rows is None:
                return super().update_step(gradient, variable, learning_rate)
            index, grad = rows
            dtype = variable.dtype
            lr = ops.cast(learning_rate, dtype)
            grad = ops.cast(grad, dtype)
            step = ops.cast(self.iterations + 1, dtype)
            b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
            alpha = lr * ops.sqrt(1 - ops.power(b2, step)) / (1 - ops.power(b1, step))
            slot = self._get_variable_index(variable)
            m, v = self._momentums[slot], self._velocities[slot]
            m_rows = gather_rows(m, index)
            v_rows = gather_rows(v, index)
            m_rows = m_rows + (grad - m_rows) * (1 - b1)
            v_rows = v_rows + (ops.square(grad) - v_rows) * (1 - b2)
            self.assign(m, row_update(m_rows, index, m.shape))
            self.assign(v, row_update(v_rows, index, v.shape))
            # New rows written whole: TF's scatter_update is ~10x faster than scatter_sub on CPU.
            var_rows = gather_rows(variable, index) - m_rows * alpha / (ops.sqrt(v_rows) + self.epsilon)
            self.assign(variable, row_update(var_rows, index, variable.shape))

    return {"LazyAdam": LazyAdam}


def LazyAdam(**kwargs):
    """A :class:`LazyAdam` optimizer (built on first use, so importing this module stays instant)."""
    return _classes()["LazyAdam"](**kwargs)
