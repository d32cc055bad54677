"""How the clustering runs: one choice per call, made from explicit arguments.

A :class:`Backend` says whether k-means uses the Triton kernels (``kernels``: the seeding and the Lloyd
loop, where their limits allow) and whether its work is replayed as CUDA graphs (``cudagraphs``). Entry
points (``kmeans``, ``hash_video``, ``TokenDynamics``) choose it once, with :meth:`Backend.choose`, and
pass it down; nothing below them reads the environment again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

ENV_TRITON = "TOKENDYNAMICS_TRITON"
ENV_GRAPHS = "TOKENDYNAMICS_CUDA_GRAPHS"


@dataclass(frozen=True)
class Backend:
    """triton: the Triton kernels where they apply (bfloat16 points for the Lloyd loop, samples and trials
    within their limits for the seeding); graphs: CUDA-graph replay. Both need CUDA; a backend made by hand
    (``Backend(triton=True, graphs=False)``) is taken as given, e.g. for Triton's CPU interpreter."""

    triton: bool = False
    graphs: bool = False

    @classmethod
    def choose(cls, device: str | torch.device, *, triton: bool | None = None,
               graphs: bool | None = None) -> "Backend":
        """The backend for work on ``device``: on CUDA, Triton (where installed) and graphs unless switched
        off by the argument or, where it is None, by the environment (``TOKENDYNAMICS_TRITON=0``,
        ``TOKENDYNAMICS_CUDA_GRAPHS=0``); on any other device, PyTorch operations run eagerly."""
        if torch.device(device).type != "cuda":
            return cls()
        triton = _switch(ENV_TRITON) if triton is None else triton
        graphs = _switch(ENV_GRAPHS) if graphs is None else graphs
        return cls(triton=bool(triton) and _triton_installed(), graphs=bool(graphs))


def _switch(name: str) -> bool:
    return os.environ.get(name, "1") != "0"


def _triton_installed() -> bool:
    from . import kernels  # imported on first CUDA use: CPU work never imports Triton

    return kernels.triton is not None
