"""``reducers``: every reducer by name, all called the same way:
``reducers[name](tokens [B, T, H, W, D], num_tokens=K, **options) -> CompactVideo``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from .dycoke import dycoke
from .method import hash_table, token_dynamics
from .pooling import uniform_pool
from .pruning import random_prune
from .tome import tome
from .visionzip import visionzip


class UnknownReducer(KeyError, ValueError):
    """A reducer name that is not registered (a ``KeyError`` for mapping use, a ``ValueError`` for
    argument checks)."""

    def __str__(self) -> str:
        return self.args[0]


class Reducers(Mapping):
    """Read-only name -> reducer mapping; an unknown name's error lists the known ones."""

    def __init__(self, reducers: dict[str, Callable]):
        self._reducers = dict(reducers)

    def __getitem__(self, name: str) -> Callable:
        if name not in self._reducers:
            raise UnknownReducer(f"unknown reducer {name!r}; choose one of {sorted(self._reducers)}")
        return self._reducers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._reducers)

    def __len__(self) -> int:
        return len(self._reducers)

    def __repr__(self) -> str:
        return f"Reducers({', '.join(self._reducers)})"


reducers = Reducers({
    "token_dynamics": token_dynamics,
    "hash_table": hash_table,
    "uniform_pool": uniform_pool,
    "random_prune": random_prune,
    "tome": tome,
    "visionzip": visionzip,
    "dycoke": dycoke,
})

Compressors, UnknownCompressor = Reducers, UnknownReducer  # the names before 0.3, kept for a release
