"""tokendynamics: extremely short video token representations for video LLMs (Token Dynamics,
arXiv 2503.16980).

    import tokendynamics as td
    h = td.hash_video(tokens, num_tokens=8)   # tokens [T, H, W, D] or [B, T, H, W, D]
    h.table, h.key_map, h.reconstruct(), h.distortion()
    out = td.TokenDynamics(dim=D, num_tokens=8)(tokens)   # out.tokens [B, 8, D], out.mask, out.hash
    out = td.compressors["tome"](tokens, num_tokens=8)     # any reducer, the same call
"""

from .compressor import CompactVideo, TokenDynamics, TokenDynamicsConfig
from .dynamics import CrossDynamicsAttention, MotionFeatures, axis_code
from .hashing import TokenHashTable, hash_video
from .baselines import Reducer, compressors

__version__ = "0.2.0"
__all__ = [
    "CompactVideo", "CrossDynamicsAttention", "MotionFeatures", "Reducer", "TokenDynamics", "TokenDynamicsConfig",
    "TokenHashTable", "axis_code", "compressors", "hash_video", "__version__",
]
