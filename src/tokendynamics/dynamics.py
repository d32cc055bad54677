"""Motion from the key map, and the cross-dynamics attention that writes it into the table rows.

Shapes: ``B`` videos, ``K`` table rows of width ``D``, a ``T x H x W`` grid of ``N = T * H * W`` cells,
``h`` heads.

The motion feature of cell ``n = (t, h, w)`` is a projection of its own (layer-normed) table row plus learned
projections of a factorised sinusoidal code of its position:

    motion_n = R[key_n] + P_t[t] + P_h[h] + P_w[w]

Cross-dynamics attention lets the K rows (queries) read the N motion features (keys and values, linear in
the motion) and adds what they read to the rows, so motion enters the table without adding tokens.

Because keys and values are sums of a per-row part and three per-axis parts, the attention never needs the
N x D motion tensor: scores are ``q.k_row[key_n] + q.k_t[t] + q.k_h[h] + q.k_w[w]`` (K x N per head, built by
broadcasting), and the output is ``A_row @ v_row + a_t @ v_t + a_h @ v_h + a_w @ v_w`` with ``A_row`` the
attention summed per key and ``a_t``, ``a_h``, ``a_w`` its marginals. ``impl="dense"`` computes the same
attention by materialising the motion and calling ``scaled_dot_product_attention``; the two agree (tested).

The trajectory code (:class:`TrajectoryCode`, an option beyond the paper) gives each row its motion
explicitly: where the row's cells are centred in each frame, from the key map alone, coded and added to the
row before the attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice
from ._tensors import one_hot, take

ATTEND = ("own", "all")
POSITIONS = ("sincos", "none")
IMPLS = ("factorized", "dense")


def axis_code(n: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal code ``[n, dim]`` of ``n`` positions spread over ``[0, 1]`` (a single position sits at 0).

    Coordinates are normalised, so an axis of any length (64 frames where 32 were trained) covers the
    same range: the code interpolates. Frequencies from pi to 64 pi, geometrically spaced.
    """
    half = dim // 2
    freqs = math.pi * torch.exp2(torch.arange(half, device=device, dtype=torch.float32) * (6 / max(half - 1, 1)))
    angles = _coords(n, device).unsqueeze(1) * freqs
    return torch.cat([angles.sin(), angles.cos()], 1)


class MotionFeatures(nn.Module):
    """The parts of the motion features: a projection of each layer-normed table row, and one projection
    per grid axis of its sinusoidal code (``position="none"``: no position part, the ablation)."""

    def __init__(self, dim: int, position: str = "sincos", axis_dim: int = 32, width: int | None = None):
        super().__init__()
        width = width or dim
        self.norm = nn.LayerNorm(dim)
        self.row_proj = nn.Linear(dim, width)
        self.axis_dim = axis_dim
        self.axis_proj = nn.ModuleList(nn.Linear(axis_dim, width, bias=False) for _ in range(3)) \
            if position == "sincos" else None

    def forward(self, table: torch.Tensor, grid: tuple[int, int, int]):
        """table ``[B, K, D]`` and the grid ``(T, H, W)`` -> row part ``[B, K, D]`` and axis parts
        ``[T, D]``, ``[H, D]``, ``[W, D]`` (None without positions)."""
        rows = self.row_proj(self.norm(table))
        if self.axis_proj is None:
            return rows, None
        axes = tuple(proj(axis_code(n, self.axis_dim, table.device).to(rows.dtype))
                     for n, proj in zip(grid, self.axis_proj))
        return rows, axes

    @staticmethod
    def dense(rows: torch.Tensor, axes, key_map: torch.Tensor) -> torch.Tensor:
        """Materialised motion ``[B, N, D]`` from the parts and ``key_map`` ``[B, T, H, W]``."""
        b, t, h, w = key_map.shape
        motion = take(rows, key_map.reshape(b, -1))
        if axes is not None:
            pos = axes[0].view(t, 1, 1, -1) + axes[1].view(1, h, 1, -1) + axes[2].view(1, 1, w, -1)
            motion = motion + pos.reshape(1, t * h * w, -1)
        return motion


def row_trajectories(key_map: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's explicit trajectory in the key map: per row and frame, whether it holds any cell of the
    frame, the share of the frame's cells it holds, and the mean row and column of those cells on the
    grid's normalised coordinates (``[0, 1]``, as :func:`axis_code`; 0 where the row is absent).

    key_map ``[B, T, H, W]`` with values in ``[0, k)`` -> ``[B, k, T, 4]`` float32.
    """
    b, t, h, w = key_map.shape
    owner = one_hot(key_map.reshape(b * t, h * w), k, torch.float32)  # [B*T, HW, k]
    count = owner.sum(1)  # [B*T, k]
    ys, xs = torch.meshgrid(_coords(h, key_map.device), _coords(w, key_map.device), indexing="ij")
    centre = owner.transpose(1, 2) @ torch.stack([ys.flatten(), xs.flatten()], 1)  # [B*T, k, 2]
    centre = centre / count.clamp_min(1).unsqueeze(-1)
    parts = torch.cat([(count > 0).float().unsqueeze(-1), (count / (h * w)).unsqueeze(-1), centre], -1)
    return parts.view(b, t, k, 4).transpose(1, 2)


def _coords(n: int, device) -> torch.Tensor:
    """``n`` positions spread over ``[0, 1]`` (a single one sits at 0), as :func:`axis_code` places them."""
    return torch.linspace(0, 1, n, device=device) if n > 1 else torch.zeros(1, device=device)


class TrajectoryCode(nn.Module):
    """A code of each row's trajectory (:func:`row_trajectories`), added to its table row: every frame
    where the row is present gives ``phi(presence, share, centre, time code)``, their mean goes through one
    more layer to the row's width. The time code makes the mean order-aware (where the row is early and
    where late), so a direction is one linear read of it; any number of frames gives a code.
    Zero-initialised output (:meth:`zero_output`): an untrained code adds nothing."""

    def __init__(self, dim: int, width: int | None = None, time_dim: int = 16):
        super().__init__()
        width = width or dim
        self.time_dim = time_dim
        self.point = nn.Sequential(nn.Linear(4 + time_dim, width), nn.GELU(), nn.Linear(width, width))
        self.out = nn.Sequential(nn.GELU(), nn.Linear(width, dim))

    def zero_output(self) -> None:
        """Zero the last layer: the code adds nothing until trained (its gradient still reaches every weight)."""
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, key_map: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
        """key_map ``[B, T, H, W]`` -> the rows' codes ``[B, k, D]`` in ``dtype``."""
        traj = row_trajectories(key_map, k)  # [B, k, T, 4]
        time = axis_code(traj.shape[2], self.time_dim, key_map.device).expand(*traj.shape[:2], -1, -1)
        present = traj[..., :1].to(dtype)
        points = self.point(torch.cat([traj, time], -1).to(dtype))  # [B, k, T, width]
        return self.out((points * present).sum(2) / present.sum(2).clamp_min(1))


class CrossDynamicsLayer(nn.Module):
    """One pre-norm block: ``rows += Attn(LN(rows), motion)``, then ``rows += MLP(LN(rows))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, width: int | None = None):
        super().__init__()
        width = width or dim
        self.heads = heads
        self.norm_q, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.out = nn.Linear(dim, width), nn.Linear(width, 2 * width), nn.Linear(width, dim)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., M, D]`` -> ``[..., h, M, D / h]``."""
        return x.unflatten(-1, (self.heads, -1)).transpose(-3, -2)

    def forward(self, rows, parts, key_map, owner, allowed, impl):
        """rows ``[B, K, D]``; parts from :class:`MotionFeatures`; key_map ``[B, T, H, W]`` and its one-hot
        ``owner`` ``[B, N, K]`` in the rows' dtype; allowed ``[B, K, N]`` bool (every row sees at least one
        cell)."""
        q = self._heads(self.q(self.norm_q(rows)))  # [B, h, K, d]
        if impl == "dense":
            att = self._dense(q, parts, key_map, allowed)
        else:
            att = self._factorized(q, parts, key_map, owner, allowed)
        rows = rows + self.out(att.transpose(1, 2).flatten(2))
        return rows + self.mlp(self.norm_mlp(rows))

    def _dense(self, q, parts, key_map, allowed):
        kv = self.kv(MotionFeatures.dense(*parts, key_map))  # [B, N, 2D]
        k, v = (self._heads(z) for z in kv.chunk(2, -1))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1))

    def _factorized(self, q, parts, key_map, owner, allowed):
        rows, axes = parts
        b, nh, k, d = q.shape
        t, h, w = key_map.shape[1:]
        q = q * d ** -0.5
        k_row, v_row = (self._heads(z) for z in self.kv(rows).chunk(2, -1))  # [B, h, K, d]
        keys = key_map.reshape(b, 1, 1, -1).expand(b, nh, k, -1)
        scores = (q @ k_row.transpose(-1, -2)).gather(3, keys)  # [B, h, K, N]: q_k . k_row[key_n]
        if axes is not None:
            weight = self.kv.weight  # axis parts carry no bias: it is in the row part
            kv_axes = [tuple(self._heads(z) for z in F.linear(a, weight).chunk(2, -1)) for a in axes]  # [h, n, d]
            s_t, s_h, s_w = (q @ ka.transpose(-1, -2) for ka, _ in kv_axes)  # [B, h, K, T|H|W]
            scores = (scores.view(b, nh, k, t, h, w) + s_t[..., :, None, None] + s_h[..., None, :, None]
                      + s_w[..., None, None, :]).flatten(3)
        att = scores.masked_fill(~allowed.unsqueeze(1), float("-inf")).softmax(-1)  # [B, h, K, N]
        per_key = torch.bmm(att.flatten(1, 2), owner.to(att.dtype)).view(b, nh, k, k)  # attention summed per key
        out = per_key @ v_row
        if axes is not None:
            grid = att.view(b, nh, k, t, h, w)
            marginals = (grid.sum((4, 5)), grid.sum((3, 5)), grid.sum((3, 4)))
            out = out + sum(m @ va for m, (_, va) in zip(marginals, kv_axes))
        return out


class CrossDynamicsAttention(nn.Module):
    """Table rows attend to motion features; the output has exactly as many rows as the table.

    attend: ``"own"`` (row k sees only the cells whose key is k: its trajectory) or ``"all"`` (every cell).
    Rows outside ``row_mask`` (padding of adaptive-length tables) see nothing and come out zero.
    impl: ``"factorized"`` (default, never builds the N x D motion) or ``"dense"`` (SDPA on the
    materialised motion).
    """

    def __init__(self, dim: int, heads: int = 8, layers: int = 1, attend: str = "own", mlp_ratio: float = 2.0,
                 impl: str = "factorized", width: int | None = None):
        super().__init__()
        check_choice(attend, "attend", ATTEND)
        check_choice(impl, "impl", IMPLS)
        if (width or dim) % heads:
            raise ValueError(f"the attention width ({width or dim}) must be divisible by heads ({heads})")
        self.attend, self.impl = attend, impl
        self.layers = nn.ModuleList(CrossDynamicsLayer(dim, heads, mlp_ratio, width) for _ in range(layers))

    def zero_residuals(self) -> None:
        """Zero the last projection of every residual branch: the attention becomes the identity (on valid
        rows) until trained; gradients still reach every weight once those projections move."""
        for layer in self.layers:
            for linear in (layer.out, layer.mlp[-1]):
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)

    def forward(self, table: torch.Tensor, parts, key_map: torch.Tensor, row_mask: torch.Tensor) -> torch.Tensor:
        """table ``[B, K, D]``, motion parts, key_map ``[B, T, H, W]``, row_mask ``[B, K]`` -> ``[B, K, D]``."""
        b, k, _ = table.shape
        owner = one_hot(key_map.reshape(b, -1), k, table.dtype)  # [B, N, K]: which row owns each cell
        if self.attend == "own":
            allowed = owner.transpose(1, 2).bool()  # [B, K, N]
        else:
            allowed = torch.ones(b, k, owner.shape[1], dtype=torch.bool, device=table.device)
        allowed = allowed | ~row_mask.unsqueeze(-1)  # padding rows attend to everything, then are zeroed
        keep = row_mask.unsqueeze(-1).to(table.dtype)
        rows = table
        for layer in self.layers:
            rows = layer(rows, parts, key_map, owner, allowed, self.impl) * keep
        return rows
