"""Replaying a function's CUDA kernels as one CUDA graph.

k-means on a GPU is launch-bound: each seeding step and each Lloyd iteration is a few dozen small
kernels. :func:`replay` captures a pure tensor function once per input signature (shapes, dtypes, device,
constants) and afterwards launches it as a single graph: the inputs are copied into the graph's static
buffers (skipped for an input that is the very tensor copied last time, unmodified since: the large
points of a Lloyd loop are copied once per clustering, not once per replay), the graph is replayed, the
outputs are cloned out. The kernels are the same as the eager ones,
so the results are identical (tested).

Large inputs shared by several graphs (a video's tokens, read by the seeding, the Lloyd loop and the table)
can be staged (:func:`stage`): one persistent copy that graphs captured with it read in place, so the
tokens are copied once per call instead of once per graph.

A loop whose state lives in a graph's buffers can hand them back for its next run (:func:`keep`,
:func:`take`): refilled in place, they are not copied again.

Captures are kept for the most recent signatures (:data:`CACHE_SIZE`), keyed also by PyTorch's float32
matmul precision (TF32 or not); :func:`clear` frees them. A function that reads an object besides its
tensors (a module's weights) passes it as ``owner``: its graphs are kept with that object, weakly, and go
when it goes. Whether graphs are used at all is the caller's :class:`~tokendynamics.cluster.backend.Backend`
(``TOKENDYNAMICS_CUDA_GRAPHS=0`` runs eagerly).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch

CACHE_SIZE = 8
_cache: OrderedDict = OrderedDict()
_staged: OrderedDict = OrderedDict()
_kept: OrderedDict = OrderedDict()
_owned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # owner -> its own OrderedDict of captures


def clear() -> None:
    """Drop every captured graph and its buffers, the staged inputs and the kept states."""
    _cache.clear()
    _owned.clear()
    _staged.clear()
    _kept.clear()


def _recent(cache: OrderedDict, key, make: Callable):
    """``cache[key]``, made by ``make()`` where absent; the cache keeps its :data:`CACHE_SIZE` most recently
    used entries."""
    value = cache.get(key)
    if value is None:
        value = cache[key] = make()
        _trim(cache)
    else:
        cache.move_to_end(key)
    return value


def _trim(cache: OrderedDict) -> None:
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def keep(key, state: tuple) -> None:
    """Hold a loop's ``state`` (the buffers a ``carry`` replay returned) for the next loop of this ``key``:
    handed back by :func:`take`, filled in place and passed again, it is copied into nothing."""
    _kept[key] = state
    _kept.move_to_end(key)
    _trim(_kept)


def take(key) -> tuple | None:
    """The state kept for ``key`` (removed from the keep), or None."""
    return _kept.pop(key, None)


def stage(x: torch.Tensor) -> torch.Tensor:
    """A persistent copy of ``x`` to pass to :func:`replay`: a graph captured with it reads it in place (no
    copy per replay). It holds ``x`` until the next ``stage`` of a tensor of the same shape, dtype and device;
    staging the staged tensor itself copies nothing."""
    buffer = _recent(_staged, (x.shape, x.dtype, x.device),
                     lambda: torch.empty(x.shape, dtype=x.dtype, device=x.device))
    if x is not buffer:
        buffer.copy_(x)
    return buffer


def run(graphs: bool, fn: Callable, *args, carry: bool = False, **constants):
    """:func:`replay` with ``graphs`` (a backend's choice), else ``fn(*args, **constants)`` eagerly (with
    ``carry``, the eager outputs are the new state, freshly allocated)."""
    if graphs:
        return replay(fn, *args, carry=carry, **constants)
    return fn(*args, **constants)


def replay(fn: Callable, *args, carry: bool = False, owner=None, **constants):
    """``fn(*args, **constants)`` through a CUDA graph; ``args`` are tensors, ``constants`` hashable.
    Returns ``fn``'s tensor outputs (a tensor or a tuple of them), freshly allocated.

    ``owner``: an object ``fn`` also reads (called as ``fn(*args, owner=owner, **constants)``), such as a
    module whose weights the graph reads in place; its captures are cached with it, not in the module-level
    cache, so no capture keeps it alive.

    ``carry=True`` is for loops: ``fn`` returns new values of its last ``len(outputs)`` arguments (a
    state), the graph writes them back into those arguments' buffers, and ``replay`` returns the buffers
    themselves. Passing them back in as the state of the next call copies nothing; they are overwritten
    by the next replay of this signature, so clone what must outlive it."""
    key = (fn, tuple((a.shape, a.dtype, a.device) for a in args), tuple(sorted(constants.items())), carry,
           torch.get_float32_matmul_precision())
    cache, call = _cache, constants
    if owner is not None:
        cache, call = _owned.setdefault(owner, OrderedDict()), dict(constants, owner=owner)
    graph, static_in, static_out, sources = _recent(cache, key, lambda: _capture(fn, args, call, carry))
    for i, (buffer, a) in enumerate(zip(static_in, args)):
        ref, version = sources[i]
        if a is not buffer and (ref is None or ref() is not a or version != a._version):
            buffer.copy_(a)
            sources[i] = (weakref.ref(a), a._version)
    graph.replay()
    if carry:
        return static_out
    if isinstance(static_out, torch.Tensor):
        return static_out.clone()
    return tuple(o.clone() for o in static_out)


def _capture(fn, args, constants, carry):
    staged = {id(buffer) for buffer in _staged.values()}
    static_in = [a if id(a) in staged else a.clone() for a in args]
    side = torch.cuda.Stream(args[0].device)
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture: lazy initialisations happen here
        fn(*static_in, **constants)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(*static_in, **constants)
        if carry:
            state = static_in[len(static_in) - len(static_out):]
            for buffer, new in zip(state, static_out):
                buffer.copy_(new)
            static_out = tuple(state)
    return graph, static_in, static_out, [(None, -1)] * len(args)
