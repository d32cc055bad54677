"""tokendynamics: extremely short video token representations for video LLMs (Token Dynamics,
arXiv 2503.16980).

    import tokendynamics as td
    h = td.hash_video(tokens, num_tokens=8)   # tokens [T, H, W, D] or [B, T, H, W, D]
    h.table, h.key_map, h.reconstruct(), h.distortion()
    out = td.TokenDynamics(dim=D, num_tokens=8)(tokens)   # out.tokens [B, 8, D], out.mask, out.hash
    out = td.reducers["tome"](tokens, num_tokens=8)        # any reducer, the same call
    out = td.encode_videos("clip.mp4", model="builtin", reducer="token_dynamics")   # files to compact tokens

Layers, each importing only from those below it: ``cluster`` (k-means, its kernels and graph replay) ->
the method (``hashing``, ``stream``, ``dynamics``, ``token_dynamics``) -> ``reducers`` -> ``models`` (hosts) and
``data`` -> the applications (``train``, ``evaluate``, ``cli``, ``demo``, ``viz``, ``integrations``).
"""

from ._deprecated import renamed
from .compact import CompactVideo
from .dynamics import CrossDynamicsAttention, MotionFeatures, axis_code
from .hashing import TokenHashTable, hash_video
from .reducers import Reducer, reducers
from .stream import HashStream
from .token_dynamics import TokenDynamics, TokenDynamicsConfig

__version__ = "0.3.0"
__all__ = [
    "CompactVideo", "CrossDynamicsAttention", "HashStream", "MotionFeatures", "Reducer", "TokenDynamics",
    "TokenDynamicsConfig",
    "TokenHashTable", "axis_code", "hash_video", "reducers", "__version__",
]


SUBPACKAGES = ("cluster", "data", "models", "integrations", "train", "evaluate", "encode", "pretrain", "viz", "demo")


def __getattr__(name: str):
    """The subpackages (``td.data``, ``td.models``, ...) and ``td.encode_videos``, imported when first
    used, so that ``import tokendynamics`` stays light."""
    import importlib

    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name == "encode_videos":
        return importlib.import_module(".encode", __name__).encode_videos
    if name == "compressors":  # the registry's name before 0.3
        return renamed(__name__, "compressors", "reducers", reducers)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
