"""The ``tokendynamics`` model for lmms-eval's plugin hook (see :mod:`tokendynamics.integrations.lmms_eval`)."""

from ..lmms_eval import TokenDynamicsLMM

__all__ = ["TokenDynamicsLMM"]
