"""How the clustering runs: one choice per call, made from explicit arguments.

A :class:`Backend` says whether k-means uses the Triton kernels (``kernels``: the seeding and the Lloyd
loop, where their limits allow), whether its work is replayed as CUDA graphs (``cudagraphs``) and whether
a live stream's per-frame update is fused by ``torch.compile`` before its graph is captured. Entry
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
    within their limits for the seeding); graphs: CUDA-graph replay; compiled: ``HashStream``'s per-frame
    update through ``torch.compile`` (inductor fuses its small kernels; needs Triton). All need CUDA; a
    backend made by hand (``Backend(triton=True, graphs=False)``) is taken as given, e.g. for Triton's CPU
    interpreter."""

    triton: bool = False
    graphs: bool = False
    compiled: bool = False

    @classmethod
    def choose(cls, device: str | torch.device, *, triton: bool | None = None, graphs: bool | None = None,
               compiled: bool = False) -> "Backend":
        """The backend for work on ``device``: on CUDA, Triton (where installed) and graphs unless switched
        off by the argument or, where it is None, by the environment (``TOKENDYNAMICS_TRITON=0``,
        ``TOKENDYNAMICS_CUDA_GRAPHS=0``), and the compiled stream update where asked for (and Triton is
        installed); on any other device, PyTorch operations run eagerly."""
        if torch.device(device).type != "cuda":
            return cls()
        triton = _switch(ENV_TRITON) if triton is None else triton
        graphs = _switch(ENV_GRAPHS) if graphs is None else graphs
        installed = _triton_installed()
        return cls(triton=bool(triton) and installed, graphs=bool(graphs), compiled=bool(compiled) and installed)


def _switch(name: str) -> bool:
    return os.environ.get(name, "1") != "0"


def _triton_installed() -> bool:
    from . import kernels  # imported on first CUDA use: CPU work never imports Triton

    return kernels.triton is not None
