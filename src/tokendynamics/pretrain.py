"""Stage 0 of the built-in model's recipe: the vision tower trained alone on MotionQA frames, before any
LLM reads its tokens. Targets come from the generator's scene records: which colours and shapes are on each
frame and where each colour's object is (always); the colour and the shape of the object on every patch
(``dense``), with the patches an object covers weighted as much as all the background ones together
(``balanced``); every patch's own row and column (``position``, so that the tokens say where they are).

    from tokendynamics.pretrain import pretrain_vision
    pretrain_vision(host_dir, motionqa_dir, steps=1000, dense=True, balanced=True, position=True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data.motionqa import COLOURS, SHAPES, SceneObject, shape_mask
from .models.frames import FrameTransform
from .models.recipe import load_recipe, save_recipe


def frame_targets(scene: dict, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame of a MotionQA scene: which colours and shapes are on screen ``[T, C + S]`` (0/1), and each
    colour's object centre ``[T, C, 2]`` in ``[0, 1]`` (meaningful where present)."""
    colours, shapes = list(COLOURS), list(SHAPES)
    present = torch.zeros(num_frames, len(colours) + len(shapes))
    centre = torch.zeros(num_frames, len(colours), 2)
    side = scene["size"]
    for obj in (SceneObject(**o) for o in scene["objects"]):
        visible = torch.as_tensor(obj.visible(side))
        c, s = colours.index(obj.colour), len(colours) + shapes.index(obj.shape)
        present[visible, c] = 1
        present[visible, s] = 1
        centre[:, c] = (torch.as_tensor(obj.track, dtype=torch.float32) / side).clamp(0, 1)
    return present, centre


def patch_labels(scene: dict, num_frames: int, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame and patch of a MotionQA scene (a ``grid x grid`` patch grid, raster order): the colour and
    the shape of the object covering the patch's centre, ``[T, grid * grid]`` each, with ``len(COLOURS)``
    and ``len(SHAPES)`` for the background (the dense stage-0 targets)."""
    colours, shapes, side = list(COLOURS), list(SHAPES), scene["size"]
    colour = torch.full((num_frames, grid * grid), len(colours))
    shape = torch.full((num_frames, grid * grid), len(shapes))
    centres = (np.arange(grid) + 0.5) * side / grid
    xs, ys = np.meshgrid(centres, centres)
    for obj in (SceneObject(**o) for o in scene["objects"]):
        for t, (x, y) in enumerate(obj.track[:num_frames]):
            inside = torch.from_numpy(shape_mask(obj.shape, xs - x, ys - y, obj.radius).reshape(-1))
            colour[t, inside] = colours.index(obj.colour)
            shape[t, inside] = shapes.index(obj.shape)
    return colour, shape


class FrameProbe(torch.nn.Module):
    """A per-patch head on the vision tower for stage 0: colour and shape logits per patch; presence is
    the log-sum-exp over patches, a colour's position the softmax-weighted mean of the patch centres."""

    def __init__(self, width: int, grid: int, num_colours: int, num_shapes: int):
        super().__init__()
        self.head = torch.nn.Linear(width, num_colours + num_shapes)
        self.dense = torch.nn.Linear(width, num_colours + num_shapes + 2)  # per patch, background included
        self.where = torch.nn.Linear(width, 2 * grid)  # per patch: its own row and column
        self.num_colours, self.grid = num_colours, grid
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        self.register_buffer("coords", (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) / grid)

    def forward(self, patches: torch.Tensor):
        """patches ``[F, P, width]`` -> presence logits ``[F, C + S]``, colour centres ``[F, C, 2]``."""
        logits = self.head(patches)  # [F, P, C + S]
        presence = logits.logsumexp(1) - torch.log(torch.tensor(float(logits.shape[1])))
        weights = logits[..., : self.num_colours].softmax(1)  # [F, P, C]
        return presence, torch.einsum("fpc,pd->fcd", weights, self.coords)


def pretrain_vision(host_dir: str | Path, data_dir: str | Path, steps: int = 1500, videos_per_step: int = 8,
                    lr: float = 1e-3, seed: int = 0, log_every: int = 100, dense: bool = False,
                    position: bool = False, balanced: bool = False) -> list[dict]:
    """Stage 0: train the host's vision tower (in place, saved back to ``host_dir``) to see which colours and
    shapes are on each frame of the MotionQA train split and where each colour's object is; with ``dense``,
    also the colour and shape of the object on every patch (:func:`patch_labels`; with ``balanced``, the
    object patches' mean loss and the background's count alike, where most patches are background); with
    ``position``, also every patch's own row and column (so that the tokens the LLM reads say where they
    are). Its settings go to the host's recipe under ``"stage0"``. Returns the loss log (with ``dense``, also
    the share of object patches whose shape the head gets right in the logged step's batch)."""
    import json

    from transformers import LlavaOnevisionForConditionalGeneration

    if balanced and not dense:
        raise ValueError("balanced weighs the dense target's patches: give dense=True (--dense) too")
    torch.manual_seed(seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    host = LlavaOnevisionForConditionalGeneration.from_pretrained(host_dir).to(dev)
    tower, cfg = host.model.vision_tower, host.config.vision_config
    scenes = [json.loads(line) for line in (Path(data_dir) / "train_scenes.jsonl").read_text().splitlines()]
    probe = FrameProbe(cfg.hidden_size, cfg.image_size // cfg.patch_size, len(COLOURS), len(SHAPES)).to(dev)
    params = list(tower.parameters()) + list(probe.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    transform = FrameTransform.from_pretrained(host_dir)
    rng, log = np.random.default_rng(seed), []
    for step in range(1, steps + 1):
        batch = [scenes[i] for i in rng.choice(len(scenes), videos_per_step, replace=False)]
        frames, present, centre, labels = [], [], [], []
        for scene in batch:
            with np.load((Path(data_dir) / scene["video"]).with_suffix(".npz")) as archive:
                video = torch.from_numpy(archive["frames"])
            frames.append(transform(video.to(dev)))
            p, c = frame_targets(scene, len(video))
            present.append(p)
            centre.append(c)
            if dense:
                labels.append(patch_labels(scene, len(video), cfg.image_size // cfg.patch_size))
        present, centre = torch.cat(present).to(dev), torch.cat(centre).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            patches = tower(torch.cat(frames), output_hidden_states=True).hidden_states[-1]
            logits, where = probe(patches.float())
        seen = present[:, : len(COLOURS)].unsqueeze(-1)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), present)
                + ((where - centre).abs() * seen).sum() / seen.sum().clamp_min(1) / 2)
        if dense:
            dense_logits = probe.dense(patches.float())
            colour, shape = _stacked(labels, dev)
            loss = loss + _dense_loss(dense_logits, colour, shape, balanced)
        if position:
            loss = loss + _position_loss(probe.where(patches.float()), probe.grid)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps:
            log.append(dict(step=step, loss=float(loss.detach()),
                            **({"object_shape_accuracy": _shape_accuracy(dense_logits, shape)} if dense else {})))
    host.save_pretrained(host_dir)
    stage0 = dict(steps=steps, videos_per_step=videos_per_step, lr=lr, seed=seed, dense=dense, balanced=balanced,
                  position=position, data=str(data_dir))
    before = load_recipe(host_dir)
    save_recipe(host_dir, dict(stage0=stage0, **({"from": before} if before else {})))
    return log


def _position_loss(logits: torch.Tensor, grid: int) -> torch.Tensor:
    """Cross-entropy of each patch's row and column logits ``[F, P, 2 grid]`` against its place."""
    cells = torch.arange(grid * grid, device=logits.device)
    rows, cols = (cells // grid).expand(len(logits), -1), (cells % grid).expand(len(logits), -1)
    ce = torch.nn.functional.cross_entropy
    return (ce(logits[..., :grid].flatten(0, 1), rows.flatten())
            + ce(logits[..., grid:].flatten(0, 1), cols.flatten()))


def _dense_loss(logits: torch.Tensor, colour: torch.Tensor, shape: torch.Tensor, balanced: bool) -> torch.Tensor:
    """Cross-entropy of the per-patch colour and shape logits ``[F, P, C + 1 + S + 1]`` against
    the patches' ``colour`` and ``shape`` ``[F, P]`` (:func:`_stacked`): the mean over patches, or with
    ``balanced`` the mean of the object patches' mean and the background patches' mean."""
    split = len(COLOURS) + 1
    ce = torch.nn.functional.cross_entropy(logits[..., :split].flatten(0, 1), colour.flatten(), reduction="none")
    ce = ce + torch.nn.functional.cross_entropy(logits[..., split:].flatten(0, 1), shape.flatten(), reduction="none")
    if not balanced:
        return ce.mean()
    on_object = (shape.flatten() < len(SHAPES)).float()
    return sum((ce * w).sum() / w.sum().clamp_min(1) for w in (on_object, 1 - on_object)) / 2


def _stacked(labels, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`patch_labels`' per-video ``(colour, shape)`` pairs as two ``[F, P]`` tensors on ``dev``."""
    return tuple(torch.cat(part).to(dev) for part in zip(*labels))


def _shape_accuracy(logits: torch.Tensor, shape: torch.Tensor) -> float:
    """The share of object patches whose shape ``[F, P]`` the dense head ``[F, P, C + 1 + S + 1]`` gets right."""
    on_object = shape < len(SHAPES)
    guess = logits[..., len(COLOURS) + 1: len(COLOURS) + 1 + len(SHAPES)].argmax(-1)
    return round(float((guess == shape)[on_object].float().mean()), 4)
