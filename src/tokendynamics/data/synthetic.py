"""Token videos with planted structure: object prototypes moving over a background, plus noise.

They stand in for a vision encoder's output where a known answer is needed (tests, the demo, benchmarks):
every grid cell carries exactly one prototype's vector, so the planted key map is the clustering a
perfect token hash table would find.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive_int


@dataclass
class PlantedVideo:
    """tokens: ``[T, H, W, D]`` float32; key_map: ``[T, H, W]`` int64 prototype index per cell
    (0 is the background); prototypes: ``[P, D]``; positions: ``[num_objects, T, 2]`` float (row, col)
    of each object's top-left corner; velocities: ``[num_objects, 2]`` cells per frame."""

    tokens: torch.Tensor
    key_map: torch.Tensor
    prototypes: torch.Tensor
    positions: torch.Tensor
    velocities: torch.Tensor


def planted_token_video(
    num_frames: int = 16,
    height: int = 14,
    width: int = 14,
    dim: int = 64,
    num_objects: int = 3,
    object_size: int = 3,
    noise: float = 0.05,
    seed: int = 0,
) -> PlantedVideo:
    """Generate a token video of ``num_objects`` square objects bouncing over a one-prototype background.

    Prototypes are random unit vectors (nearly orthogonal in high ``dim``); each object moves at a
    constant random velocity and bounces off the walls; a later object covers an earlier one where they
    overlap. ``noise`` is the standard deviation of Gaussian noise per feature, relative to a unit-norm
    token (so the noise's share of variance is about ``noise**2 * dim``).
    """
    for name, value in [("num_frames", num_frames), ("height", height), ("width", width), ("dim", dim),
                        ("object_size", object_size)]:
        check_positive_int(value, name)
    if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects < 0:
        raise ValueError(f"num_objects must be an int >= 0, got {num_objects!r}")
    if object_size > min(height, width):
        raise ValueError(f"object_size must fit the grid ({height}x{width}), got {object_size}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.nn.functional.normalize(torch.randn(num_objects + 1, dim, generator=gen), dim=-1)
    limit = torch.tensor([height - object_size, width - object_size], dtype=torch.float32)
    start = torch.rand(num_objects, 2, generator=gen) * limit
    speed = 0.5 + torch.rand(num_objects, 1, generator=gen)
    angle = torch.rand(num_objects, 1, generator=gen) * 2 * torch.pi
    velocities = speed * torch.cat([angle.sin(), angle.cos()], 1)
    t = torch.arange(num_frames, dtype=torch.float32).view(1, -1, 1)
    positions = _bounce(start.unsqueeze(1) + velocities.unsqueeze(1) * t, limit)  # [O, T, 2]

    key_map = torch.zeros(num_frames, height, width, dtype=torch.long)
    rows = torch.arange(height).view(1, -1, 1)
    cols = torch.arange(width).view(1, 1, -1)
    for o in range(num_objects):
        r0 = positions[o, :, 0].round().long().view(-1, 1, 1)
        c0 = positions[o, :, 1].round().long().view(-1, 1, 1)
        inside = (rows >= r0) & (rows < r0 + object_size) & (cols >= c0) & (cols < c0 + object_size)
        key_map[inside] = o + 1
    tokens = prototypes[key_map] + noise * torch.randn(num_frames, height, width, dim, generator=gen)
    return PlantedVideo(tokens, key_map, prototypes, positions, velocities)


def _bounce(free: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """Reflect free-flight positions into ``[0, limit]`` per axis (a triangle wave of period 2*limit)."""
    period = 2 * limit.clamp_min(1e-6)
    phase = torch.remainder(free, period)
    return torch.where(phase > limit, period - phase, phase).minimum(limit)
