"""Moved to :mod:`tokendynamics.reducers` (one name for every reducer); this path works until 0.4."""

from ._deprecated import moved

moved(__name__, "tokendynamics.reducers", submodules={
    "common": "common", "dycoke": "dycoke", "pooling": "pooling", "pruning": "pruning", "registry": "registry",
    "tome": "tome", "visionzip": "visionzip", "hashed": "method", "reducer": "module"})
