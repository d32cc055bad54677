"""Every token reducer behind one call: Token Dynamics and its table alone (``method``), the baselines it
is compared with (one file each), the registry ``reducers`` and the ``nn.Module`` form ``Reducer``.

Every reducer: ``reducer(tokens [B, T, H, W, D] or [T, H, W, D], num_tokens=K, **options) -> CompactVideo``
with exactly ``K`` rows (``hash_table``/``token_dynamics`` may use fewer where the video has fewer
distinct tokens or in adaptive length; the mask says so), batched, on the tokens' device and in their dtype.
"""

from .common import frame_saliency
from .dycoke import dycoke
from .method import hash_table, token_dynamics
from .pooling import pool_grid, uniform_pool
from .pruning import random_prune
from .module import Reducer
from .registry import Compressors, Reducers, UnknownCompressor, UnknownReducer, reducers
from .tome import tome
from .visionzip import visionzip

__all__ = ["Compressors", "Reducer", "Reducers", "UnknownCompressor", "UnknownReducer", "dycoke", "frame_saliency",
           "hash_table", "pool_grid", "random_prune", "reducers", "token_dynamics", "tome", "uniform_pool",
           "visionzip"]
