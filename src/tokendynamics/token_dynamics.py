"""``TokenDynamics``: a video's tokens in, a handful of fused tokens out.

tokens ``[B, T, H, W, D]`` -> hash (no gradient) -> table rows as masked means of the tokens (gradients
reach whatever produced them) -> motion features from the key map -> cross-dynamics attention ->
``CompactVideo`` with ``tokens [B, K_max, D or out_dim]`` and ``mask [B, K_max]``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ._tensors import one_hot
from .cluster import cudagraphs
from .cluster.backend import Backend
from .compact import CompactVideo
from ._checks import check_choice, check_length_mode, check_positive_int, read_safetensors, video_tokens
from .dynamics import ATTEND, IMPLS, POSITIONS, CrossDynamicsAttention, MotionFeatures, TrajectoryCode
from .hashing import TokenHashTable, hash_video
from .cluster.kmeans import METRICS

CONFIG_NAME = "tokendynamics_config.json"
WEIGHTS_NAME = "tokendynamics.safetensors"


@dataclass
class TokenDynamicsConfig:
    """Settings of a :class:`TokenDynamics` module.

    dim: token width. Fixed length: ``num_tokens``. Adaptive length: ``max_distortion`` with
    ``min_tokens``/``max_tokens`` (then set ``num_tokens=None``). Clustering: ``metric``, ``max_iters``,
    ``tol``, ``seed`` (see ``hash_video``). Attention: ``heads``, ``layers``, ``attend`` (``"own"`` cells or
    ``"all"``), ``position`` (``"sincos"`` or ``"none"``), ``mlp_ratio``, ``impl`` (``"factorized"`` or
    ``"dense"``: the same function, see ``dynamics``), ``identity_init`` (zero-initialise the attention's
    residual branches so that an untrained module returns the table rows, and training starts from them;
    False: the default PyTorch initialisation throughout), ``width`` (the attention's inner width: queries,
    keys, values and MLP work at ``width`` and project back to ``dim``; None: ``dim``; a narrow width keeps
    the module small on wide LLMs, ~12 dim^2 parameters per layer at full width), ``trajectory`` (add each
    row's explicit trajectory code, :class:`~tokendynamics.dynamics.TrajectoryCode`, before the attention;
    beyond the paper). ``out_dim``: width of the output tokens when the host LLM's differs (a linear
    projection; None keeps ``dim``).
    """

    dim: int
    num_tokens: int | None = 8
    max_distortion: float | None = None
    min_tokens: int = 1
    max_tokens: int = 64
    metric: str = "cosine"
    max_iters: int = 100
    tol: float = 1e-4
    seed: int = 0
    heads: int = 8
    layers: int = 1
    attend: str = "own"
    position: str = "sincos"
    mlp_ratio: float = 2.0
    impl: str = "factorized"
    identity_init: bool = True
    width: int | None = None
    trajectory: bool = False
    out_dim: int | None = None

    def __post_init__(self):
        check_positive_int(self.dim, "dim")
        check_length_mode(self.num_tokens, self.max_distortion)
        for name in ("min_tokens", "max_tokens", "max_iters", "heads", "layers"):
            check_positive_int(getattr(self, name), name)
        check_choice(self.metric, "metric", METRICS)
        check_choice(self.attend, "attend", ATTEND)
        check_choice(self.position, "position", POSITIONS)
        check_choice(self.impl, "impl", IMPLS)
        if self.width is not None:
            check_positive_int(self.width, "width")
        if (self.width or self.dim) % self.heads:
            raise ValueError(f"the attention width ({self.width or self.dim}) must be divisible by heads "
                             f"({self.heads})")
        if self.out_dim is not None:
            check_positive_int(self.out_dim, "out_dim")

    @property
    def hash_kwargs(self) -> dict:
        """Arguments of ``hash_video`` for this configuration."""
        size = (dict(num_tokens=self.num_tokens) if self.num_tokens is not None else
                dict(max_distortion=self.max_distortion, min_tokens=self.min_tokens, max_tokens=self.max_tokens))
        return dict(size, metric=self.metric, max_iters=self.max_iters, tol=self.tol, seed=self.seed)

    @classmethod
    def from_dict(cls, values: dict) -> "TokenDynamicsConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"config has unknown keys {sorted(unknown)}")
        return cls(**values)


def masked_means(tokens: torch.Tensor, key_map: torch.Tensor, k: int) -> torch.Tensor:
    """Differentiable table rows: mean of the tokens whose key is k.

    tokens ``[B, N, D]``, key_map ``[B, N]`` in ``[0, k)`` -> ``[B, k, D]`` (empty rows are zero).
    """
    members = one_hot(key_map, k, tokens.dtype)  # [B, N, k]
    counts = members.sum(1).clamp_min(1).unsqueeze(-1)
    return torch.bmm(members.transpose(1, 2), tokens) / counts


def table_rows(x: torch.Tensor, h: TokenHashTable, dtype: torch.dtype) -> torch.Tensor:
    """The table ``[B, K_max, D]`` of ``h`` in ``dtype``: differentiable means of the tokens ``x``
    ``[B, T, H, W, D]`` where a gradient is wanted (the clustering itself takes none), else the hash
    table's own rows (the same means, computed in float64 by the hashing)."""
    if torch.is_grad_enabled() and x.requires_grad:
        b, d = x.shape[0], x.shape[-1]
        return masked_means(x.reshape(b, -1, d).to(dtype), h.key_map.reshape(b, -1), h.table.shape[1])
    return h.table.to(dtype)


class TokenDynamics(nn.Module):
    """Token Dynamics: ``TokenDynamics(dim=D, num_tokens=8)(tokens) -> CompactVideo``.

    Accepts a :class:`TokenDynamicsConfig` or its fields as keyword arguments.
    """

    def __init__(self, config: TokenDynamicsConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = TokenDynamicsConfig(**kwargs)
        elif kwargs:
            raise ValueError("give either a config or keyword arguments, not both")
        self.config = config
        self.motion = MotionFeatures(config.dim, config.position, width=config.width)
        self.attention = CrossDynamicsAttention(config.dim, config.heads, config.layers, config.attend,
                                                config.mlp_ratio, config.impl, config.width)
        self.trajectory = TrajectoryCode(config.dim, config.width) if config.trajectory else None
        if config.identity_init:
            self.attention.zero_residuals()
            if self.trajectory is not None:
                self.trajectory.zero_output()
        self.out_proj = nn.Linear(config.dim, config.out_dim) if config.out_dim else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> CompactVideo:
        """tokens ``[T, H, W, D]`` or ``[B, T, H, W, D]`` -> ``CompactVideo`` of ``[B, K_max, out_dim]``."""
        x = video_tokens(tokens)  # hash_video checks the values
        if x.shape[-1] != self.config.dim:
            raise ValueError(f"tokens must have width {self.config.dim} (the config's dim), got {x.shape[-1]}")
        backend = Backend.choose(x.device)  # once, for the hashing and the attention
        with torch.no_grad():
            h = hash_video(x.detach(), **self.config.hash_kwargs, backend=backend)
        table = table_rows(x, h, next(self.parameters()).dtype)
        return CompactVideo(self.fuse(table, h.key_map, h.mask, backend), h.mask, h)

    def from_table(self, h: TokenHashTable) -> CompactVideo:
        """The fused tokens of a hash table already built (a :class:`~tokendynamics.stream.HashStream`'s
        ``table()``, or ``hash_video``'s): only the learned half runs. -> ``CompactVideo``."""
        if h.table.shape[-1] != self.config.dim:
            raise ValueError(f"the table must have width {self.config.dim} (the config's dim), got {h.table.shape[-1]}")
        table = h.table.to(next(self.parameters()).dtype)
        return CompactVideo(self.fuse(table, h.key_map, h.mask), h.mask, h)

    def fuse(self, table: torch.Tensor, key_map: torch.Tensor, row_mask: torch.Tensor,
             backend: Backend | None = None) -> torch.Tensor:
        """The learned half: motion from ``key_map`` ``[B, T, H, W]`` written into ``table`` ``[B, K, D]``
        by cross-dynamics attention; ``row_mask`` ``[B, K]`` -> ``[B, K, out_dim]``.

        Without gradients on CUDA it is replayed as one CUDA graph per shape (the eager kernels, launched
        at once; the graph reads the parameters in place, so it follows in-place updates of them), unless
        ``backend`` (default :meth:`~tokendynamics.cluster.backend.Backend.choose`) has graphs off."""
        backend = Backend.choose(table.device) if backend is None else backend
        if torch.is_grad_enabled() or not backend.graphs:
            return _fuse(table, key_map, row_mask, owner=self)
        weights = tuple((p.data_ptr(), p.dtype, p.shape) for p in self.parameters())  # new storage: new graph
        return cudagraphs.replay(_fuse, table, key_map, row_mask, owner=self, weights=weights)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the config (JSON) and the weights (safetensors) to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(directory / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "TokenDynamics":
        """Load a module written by :meth:`save_pretrained`."""
        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"directory {str(directory)!r} has no {name}")
        try:
            config = TokenDynamicsConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
        except (ValueError, TypeError) as e:  # not JSON, or not this config's fields
            raise ValueError(f"file {str(directory / CONFIG_NAME)!r} is not a TokenDynamics config: {e}") from None
        model = cls(config)
        state = read_safetensors(directory / WEIGHTS_NAME)[0]
        try:
            model.to(next(iter(state.values())).dtype).load_state_dict(state)
        except (RuntimeError, StopIteration) as e:
            raise ValueError(f"file {str(directory / WEIGHTS_NAME)!r} does not hold this config's weights: "
                             f"{str(e).splitlines()[0] if str(e) else 'no tensors'}") from None
        return model.to(device)


def _fuse(table, key_map, row_mask, *, owner: TokenDynamics, weights=None):
    """:meth:`TokenDynamics.fuse`'s computation by the module ``owner`` (``weights`` only keys its CUDA
    graphs, which are kept with the module)."""
    if owner.trajectory is not None:
        table = table + owner.trajectory(key_map, table.shape[1], table.dtype)
    fused = owner.attention(table, owner.motion(table, tuple(key_map.shape[1:])), key_map, row_mask)
    return owner.out_proj(fused) * row_mask.unsqueeze(-1).to(fused.dtype)
