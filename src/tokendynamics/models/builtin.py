"""The built-in model: a small LLaVA-OneVision (SigLIP-style tower, Qwen2-style LM, BPE tokenizer) trained
by this project on MotionQA, shipped with the package so that the demo runs without downloads.

Layout of the shipped files (``tokendynamics/models/builtin/``): ``full/`` is the stage-1 model, trained
on full video tokens; ``token_dynamics-<K>/`` holds what stage 2 trained with Token Dynamics at K tokens
(the reducer and the projector), applied on top of ``full/``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..baselines import Reducer
from ..data.motionqa import MotionQAConfig, make_scene
from .builder import build_llava_onevision
from .llava import CompressedLlavaOnevision
from .prompts import multiple_choice

BUILTIN_DIR = Path(__file__).parent / "builtin"
ARCHITECTURE = dict(image_size=112, patch_size=8, vision_width=192, vision_layers=4, vision_heads=4,
                    text_width=256, text_layers=6, text_heads=4, kv_heads=2, vocab_size=512)
DATA = dict(num_frames=32, size=112, seed=0)  # the MotionQA it is trained on
PROJECTOR_NAME = "projector.safetensors"


def corpus(num_scenes: int = 3000) -> list[str]:
    """The multiple-choice prompts of the first MotionQA scenes: what the tokenizer is trained on."""
    config = MotionQAConfig(**DATA)
    return [multiple_choice(item.question, item.options)
            for index in range(num_scenes) for item in make_scene(index, config)[3]]


def build_host(out_dir: str | Path, seed: int = 0) -> Path:
    """The untrained built-in architecture with its tokenizer, saved to ``out_dir``."""
    return build_llava_onevision(out_dir, corpus(), seed=seed, **ARCHITECTURE)


def save_stage2(model: CompressedLlavaOnevision, directory: str | Path) -> None:
    """What stage 2 trains (the reducer and the projector), without the rest of the host."""
    directory = Path(directory)
    model.reducer.save_pretrained(directory)
    projector = model.host.model.multi_modal_projector.state_dict()
    save_file({k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in projector.items()},
              str(directory / PROJECTOR_NAME))


def variants() -> list[str]:
    """The shipped variants: ``"full"`` and ``"token_dynamics-<K>"`` where present."""
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir()) if BUILTIN_DIR.is_dir() else []


def load_builtin(variant: str = "full", compressor: str | None = None, num_tokens: int | None = 8,
                 dtype: torch.dtype = torch.float32, **options) -> CompressedLlavaOnevision:
    """The built-in model: ``variant="full"`` (stage 1; with ``compressor`` a training-free reducer on it)
    or a stage-2 variant such as ``"token_dynamics-8"`` (its trained reducer and projector)."""
    if variant not in variants():
        raise ValueError(f"unknown built-in variant {variant!r}; shipped: {variants() or 'none'}")
    if variant == "full":
        return CompressedLlavaOnevision.from_pretrained(BUILTIN_DIR / "full", compressor or "full", num_tokens,
                                                        dtype=dtype, **options)
    model = CompressedLlavaOnevision.from_pretrained(BUILTIN_DIR / "full", "full", None, dtype=dtype)
    stage2 = BUILTIN_DIR / variant
    model.reducer = Reducer.from_pretrained(stage2).to(dtype)
    projector = load_file(str(stage2 / PROJECTOR_NAME))
    model.host.model.multi_modal_projector.load_state_dict({k: v.to(dtype) for k, v in projector.items()})
    return model
