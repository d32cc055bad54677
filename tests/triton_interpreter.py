"""Two fixes to Triton 3.6's CPU interpreter, imported by the tests that run kernels through it
(``TRITON_INTERPRET=1``); the compiled kernels on a GPU need neither.

- A loop bound that is a runtime value (``range(start, n, step)``) is read with ``int()`` of a one-element
  array, which NumPy >= 2.4 refuses ("only 0-dimensional arrays can be converted to Python scalars").
- ``tl.dot`` multiplies bfloat16 operands as the raw ``uint16`` words the interpreter stores them in; here
  they are widened to float32 first (exact), and the product accumulates in float32 as on tensor cores.
"""

import numpy as np
import triton.language as tl
import triton.runtime.interpreter as interpreter

_patch_lang_tensor = interpreter._patch_lang_tensor


def _patch_tensor(tensor, scope):
    _patch_lang_tensor(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))


def _float32(handle):
    if handle.dtype.scalar == tl.bfloat16:
        return (handle.data.astype(np.uint32) << 16).view(np.float32)
    return handle.data


def _dot(self, a, b, acc, input_precision, max_num_imprecise_acc):
    product = np.matmul(_float32(a), _float32(b), dtype=acc.data.dtype)
    return interpreter.TensorHandle(product + acc.data, acc.dtype.scalar)


interpreter._patch_lang_tensor = _patch_tensor
interpreter.InterpreterBuilder.create_dot = _dot
