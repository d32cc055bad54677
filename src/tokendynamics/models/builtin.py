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

import torch
from safetensors.torch import save_file

from .._checks import read_safetensors
from ..reducers import Reducer
from ..reducers.module import given_length
from ..data.motionqa import MotionQAConfig, make_scene, make_video
from ..data.video import uniform_indices
from .builder import build_llava_onevision
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
    projector = model.projector.state_dict()
    save_file(_bf16(projector), str(directory / PROJECTOR_NAME))
    if adapter is not None:
        (directory / ADAPTER_FILES[0]).write_text((Path(adapter) / ADAPTER_FILES[0]).read_text())
        save_file(_bf16(read_safetensors(Path(adapter) / ADAPTER_FILES[1])[0]), str(directory / ADAPTER_FILES[1]))
    if model.recipe:
        save_recipe(directory, model.recipe)


def _bf16(state: dict) -> dict:
    return {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in state.items()}


def test_clips(num_videos: int, seed: int = 7):
    """The first ``num_videos`` videos of MotionQA's test split of ``seed`` as the built-in model reads them:
    per video ``(uint8 [FRAMES, S, S, 3], its two QAItems)``, one at a time."""
    config = MotionQAConfig(**(DATA | {"seed": seed}))
    for index in range(9, 10 * num_videos, 10):  # the test split is the last place of every decade
        raw, _, items = make_video(index, config)
        yield torch.from_numpy(raw)[uniform_indices(len(raw), FRAMES)], items


def variants() -> list[str]:
    """The shipped variants: ``"full"`` and ``"token_dynamics-<K>"`` where present."""
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir()) if BUILTIN_DIR.is_dir() else []


def load_builtin(variant: str = "full", compressor: str | None = None, num_tokens: int | None = None,
                 dtype: torch.dtype = torch.float32, **options) -> CompressedLlavaOnevision:
    """The built-in model: ``variant="full"`` (stage 1) or a stage-2 variant such as ``"token_dynamics-8"``
    (its trained reducer, projector and LLM adapters). ``compressor``: a reducer to use instead of the
    variant's own (training-free on that host), with ``num_tokens`` (default 8) and options; without it,
    ``num_tokens`` and options change only what no trained weight of the variant's reducer depends on
    (:meth:`Reducer.with_options`)."""
    if variant not in variants():
        raise ValueError(f"unknown built-in variant {variant!r}; shipped: {', '.join(variants()) or 'none'}")
    model = CompressedLlavaOnevision.from_pretrained(BUILTIN_DIR / "full", compressor or "full", num_tokens,
                                                     dtype=dtype, **(options if compressor else {}))
    if variant != "full":
        apply_stage2(model, BUILTIN_DIR / variant, keep_reducer=compressor is not None)
    if compressor is None:  # the variant's own reducer: only what no weight depends on
        model.reducer.with_options(**options, **given_length(num_tokens))
    return model


def apply_stage2(model: CompressedLlavaOnevision, directory: str | Path,
                 keep_reducer: bool = False) -> CompressedLlavaOnevision:
    """Put what :func:`save_stage2` wrote in ``directory`` into ``model`` (its stage-1 host): the reducer
    (unless ``keep_reducer``), the projector, the LLM's LoRA adapters (merged) and the recipe."""
    directory, dtype = Path(directory), model.dtype
    if not keep_reducer:
        model.reducer = Reducer.from_pretrained(directory).to(dtype)
    projector = read_safetensors(directory / PROJECTOR_NAME)[0]
    model.projector.load_state_dict({k: v.to(dtype) for k, v in projector.items()})
    if (directory / ADAPTER_FILES[0]).is_file():
        _merge_adapter(model, directory, dtype)
    model.recipe = load_recipe(directory)
    return model


def _merge_adapter(model: CompressedLlavaOnevision, directory: Path, dtype: torch.dtype) -> None:
    """Fold the LoRA adapters saved in ``directory`` into the LLM's weights."""
    from peft import PeftModel

    lm = PeftModel.from_pretrained(model.language_model, str(directory))
    model.set_language_model(lm.merge_and_unload().to(dtype))
