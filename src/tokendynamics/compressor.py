"""Moved to :mod:`tokendynamics.token_dynamics` (the module is named for what it holds); this path works until 0.4."""

from ._deprecated import moved

moved(__name__, "tokendynamics.token_dynamics")
