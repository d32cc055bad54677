"""The built-in model: a small LLaVA-OneVision (SigLIP-style tower, Qwen2-style LM, BPE tokenizer) trained
by this project on MotionQA, shipped with the package so that the demo runs without downloads.

Layout of the shipped files (``tokendynamics/models/builtin/``): ``full/`` is the stage-1 model, trained
on full video tokens; ``token_dynamics-<K>/`` holds what stage 2 trained with Token Dynamics at K tokens,
applied on top of ``full/``: the reducer, the projector, the LLM's LoRA adapters (peft's
``adapter_config.json`` and ``adapter_model.safetensors``, merged in at load) and the recipe. Both load by
name: ``load_builtin("token_dynamics-8")``, or ``--model builtin:token_dynamics-8`` on the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..reducers import Reducer
from ..data.motionqa import COLOURS, SHAPES, MotionQAConfig, SceneObject, make_scene, shape_mask
from .builder import build_llava_onevision
from .frames import FrameTransform
from .llava import CompressedLlavaOnevision
from .prompts import multiple_choice
from .recipe import load_recipe, save_recipe

BUILTIN_DIR = Path(__file__).parent / "builtin"
ARCHITECTURE = dict(image_size=112, patch_size=8, vision_width=192, vision_layers=4, vision_heads=4,
                    text_width=256, text_layers=6, text_heads=4, kv_heads=2, vocab_size=512)
DATA = dict(num_frames=32, size=112, seed=0)  # the MotionQA it is trained on
FRAMES = 8  # frames the shipped model samples from each video (it was trained on 8 of the 32)
PROJECTOR_NAME = "projector.safetensors"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # peft's LoRA adapter format


def corpus(num_scenes: int = 3000) -> list[str]:
    """The multiple-choice prompts of the first MotionQA scenes: what the tokenizer is trained on."""
    config = MotionQAConfig(**DATA)
    return [multiple_choice(item.question, item.options)
            for index in range(num_scenes) for item in make_scene(index, config)[3]]


def build_host(out_dir: str | Path, seed: int = 0, **overrides) -> Path:
    """The untrained built-in architecture (``overrides``: fields of :data:`ARCHITECTURE` to change) with its
    tokenizer, saved to ``out_dir``."""
    unknown = set(overrides) - set(ARCHITECTURE)
    if unknown:
        raise ValueError(f"unknown architecture field(s) {sorted(unknown)}; known: {sorted(ARCHITECTURE)}")
    return build_llava_onevision(out_dir, corpus(), seed=seed, **(ARCHITECTURE | overrides))


def save_stage2(model: CompressedLlavaOnevision, directory: str | Path, adapter: str | Path | None = None) -> None:
    """What stage 2 trains, without the rest of the host: the reducer, the projector, the LLM's LoRA
    adapters (``adapter``: the ``adapter`` folder a LoRA run of ``train`` writes) and the recipe."""
    directory = Path(directory)
    model.reducer.save_pretrained(directory)
    projector = model.host.model.multi_modal_projector.state_dict()
    save_file(_bf16(projector), str(directory / PROJECTOR_NAME))
    if adapter is not None:
        (directory / ADAPTER_FILES[0]).write_text((Path(adapter) / ADAPTER_FILES[0]).read_text())
        save_file(_bf16(load_file(str(Path(adapter) / ADAPTER_FILES[1]))), str(directory / ADAPTER_FILES[1]))
    if model.recipe:
        save_recipe(directory, model.recipe)


def _bf16(state: dict) -> dict:
    return {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in state.items()}


def variants() -> list[str]:
    """The shipped variants: ``"full"`` and ``"token_dynamics-<K>"`` where present."""
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir()) if BUILTIN_DIR.is_dir() else []


def load_builtin(variant: str = "full", compressor: str | None = None, num_tokens: int | None = 8,
                 dtype: torch.dtype = torch.float32, **options) -> CompressedLlavaOnevision:
    """The built-in model: ``variant="full"`` (stage 1) or a stage-2 variant such as ``"token_dynamics-8"``
    (its trained reducer, projector and LLM adapters). ``compressor``: a reducer to use instead of the
    variant's own (training-free on that host), with ``num_tokens`` and options."""
    if variant not in variants():
        raise ValueError(f"unknown built-in variant {variant!r}; shipped: {', '.join(variants()) or 'none'}")
    model = CompressedLlavaOnevision.from_pretrained(BUILTIN_DIR / "full", compressor or "full", num_tokens,
                                                     dtype=dtype, **options)
    return model if variant == "full" else apply_stage2(model, BUILTIN_DIR / variant, keep_reducer=compressor is not None)


def apply_stage2(model: CompressedLlavaOnevision, directory: str | Path,
                 keep_reducer: bool = False) -> CompressedLlavaOnevision:
    """Put what :func:`save_stage2` wrote in ``directory`` into ``model`` (its stage-1 host): the reducer
    (unless ``keep_reducer``), the projector, the LLM's LoRA adapters (merged) and the recipe."""
    directory, dtype = Path(directory), model.dtype
    if not keep_reducer:
        model.reducer = Reducer.from_pretrained(directory).to(dtype)
    projector = load_file(str(directory / PROJECTOR_NAME))
    model.host.model.multi_modal_projector.load_state_dict({k: v.to(dtype) for k, v in projector.items()})
    if (directory / ADAPTER_FILES[0]).is_file():
        _merge_adapter(model, directory, dtype)
    model.recipe = load_recipe(directory)
    return model


def _merge_adapter(model: CompressedLlavaOnevision, directory: Path, dtype: torch.dtype) -> None:
    """Fold the LoRA adapters saved in ``directory`` into the LLM's weights."""
    from peft import PeftModel

    lm = PeftModel.from_pretrained(model.host.model.language_model, str(directory))
    model.host.model.language_model = lm.merge_and_unload().to(dtype)


# ---------------------------------------------------------------- stage 0: the vision tower alone

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
                    position: bool = False) -> list[dict]:
    """Stage 0: train the host's vision tower (in place, saved back to ``host_dir``) to see which colours
    and shapes are on each frame of the MotionQA train split and where each colour's object is; with
    ``dense``, also the colour and shape of the object on every patch (:func:`patch_labels`); with
    ``position``, also every patch's own row and column (so that the tokens the LLM reads say where they
    are). Returns the loss log."""
    import json

    from transformers import LlavaOnevisionForConditionalGeneration

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
            loss = loss + _dense_loss(probe.dense(patches.float()), labels, dev)
        if position:
            loss = loss + _position_loss(probe.where(patches.float()), probe.grid)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps:
            log.append(dict(step=step, loss=float(loss.detach())))
    host.save_pretrained(host_dir)
    return log


def _position_loss(logits: torch.Tensor, grid: int) -> torch.Tensor:
    """Cross-entropy of each patch's row and column logits ``[F, P, 2 grid]`` against its place."""
    cells = torch.arange(grid * grid, device=logits.device)
    rows, cols = (cells // grid).expand(len(logits), -1), (cells % grid).expand(len(logits), -1)
    ce = torch.nn.functional.cross_entropy
    return (ce(logits[..., :grid].flatten(0, 1), rows.flatten())
            + ce(logits[..., grid:].flatten(0, 1), cols.flatten()))


def _dense_loss(logits: torch.Tensor, labels, dev) -> torch.Tensor:
    """Cross-entropy of the per-patch colour and shape logits ``[F, P, C + 1 + S + 1]`` against
    :func:`patch_labels` (a ``(colour, shape)`` pair per video)."""
    colour = torch.cat([c for c, _ in labels]).to(dev)
    shape = torch.cat([s for _, s in labels]).to(dev)
    split = len(COLOURS) + 1
    ce = torch.nn.functional.cross_entropy
    return (ce(logits[..., :split].flatten(0, 1), colour.flatten())
            + ce(logits[..., split:].flatten(0, 1), shape.flatten()))
