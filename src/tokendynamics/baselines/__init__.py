"""Other token reducers behind Token Dynamics' call, for side-by-side comparison.

Every reducer: ``reducer(tokens [B, T, H, W, D] or [T, H, W, D], num_tokens=K, **options) -> CompactVideo``
with exactly ``K`` rows (``hash_table``/``token_dynamics`` may use fewer where the video has fewer
distinct tokens or in adaptive length; the mask says so), batched, on the tokens' device and in their dtype.
"""

from .common import frame_saliency
from .dycoke import dycoke
from .hashed import hash_table, token_dynamics
from .pooling import pool_grid, uniform_pool
from .pruning import random_prune
from .reducer import Reducer
from .registry import Compressors, UnknownCompressor, compressors
from .tome import tome
from .visionzip import visionzip

__all__ = ["Compressors", "Reducer", "UnknownCompressor", "compressors", "dycoke", "frame_saliency", "hash_table",
           "pool_grid", "random_prune", "token_dynamics", "tome", "uniform_pool", "visionzip"]
