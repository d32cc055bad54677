"""Small LLaVA-OneVision models built from config, without downloading anything: a SigLIP-style vision
tower, a Qwen2-style LM and a byte-level BPE tokenizer trained on a given corpus. Tests build tiny ones;
the built-in model is a larger one trained on MotionQA."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .frames import FrameTransform
from .prompts import INSTRUCTION, LETTERS, SYSTEM

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
QWEN_VL_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]  # Qwen2.5-VL, Qwen3-VL


def build_tokenizer(corpus, vocab_size: int = 512, special_tokens=SPECIAL_TOKENS):
    """A byte-level BPE tokenizer (Qwen2's special tokens, ``<image>``/``<video>`` placeholders, or the
    ``special_tokens`` given) trained on ``corpus`` (strings) plus the prompt scaffolding, as a
    ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    scaffold = [SYSTEM, INSTRUCTION, "system user assistant", *(f"{c}. " for c in LETTERS)]
    tok.train_from_iterator([*scaffold, *corpus], trainer)
    placeholders = {"image_token": "<image>", "video_token": "<video>"} if "<video>" in special_tokens else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   extra_special_tokens=placeholders)


def build_llava_onevision(out_dir: str | Path, corpus, *, image_size: int = 56, patch_size: int = 14,
                          vision_width: int = 32, vision_layers: int = 2, vision_heads: int = 2,
                          text_width: int = 64, text_layers: int = 2, text_heads: int = 4, kv_heads: int = 2,
                          vocab_size: int = 512, seed: int = 0) -> Path:
    """Build a randomly initialised ``LlavaOnevisionForConditionalGeneration`` of the given sizes with its
    tokenizer and processor settings, save it to ``out_dir`` (``from_pretrained``-ready) and return the path.
    Deterministic for a given corpus and seed."""
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config,
                              SiglipVisionConfig)

    out = Path(out_dir)
    tokenizer = build_tokenizer(corpus, vocab_size)
    vision = SiglipVisionConfig(hidden_size=vision_width, intermediate_size=4 * vision_width,
                                num_hidden_layers=vision_layers, num_attention_heads=vision_heads,
                                image_size=image_size, patch_size=patch_size)
    text = Qwen2Config(hidden_size=text_width, intermediate_size=4 * text_width, num_hidden_layers=text_layers,
                       num_attention_heads=text_heads, num_key_value_heads=kv_heads, vocab_size=len(tokenizer),
                       max_position_embeddings=8192, tie_word_embeddings=True,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text,
                                  image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                                  video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
                                  vision_feature_layer=-1, vision_feature_select_strategy="full")
    return _save_random(LlavaOnevisionForConditionalGeneration, config, tokenizer,
                        FrameTransform(height=image_size, width=image_size), out, seed)


def _save_random(model_class, config, tokenizer, transform, out: Path, seed: int) -> Path:
    """A randomly initialised ``model_class(config)`` (seeded), saved to ``out`` with its tokenizer and frame
    transform; returns ``out``."""
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    transform.save_pretrained(out)
    return out


def build_qwen2_5_vl(out_dir: str | Path, corpus, *, patch_size: int = 14, vision_width: int = 32,
                     vision_layers: int = 2, vision_heads: int = 2, text_width: int = 64, text_layers: int = 2,
                     text_heads: int = 4, kv_heads: int = 2, vocab_size: int = 512, min_pixels: int = 56 * 56,
                     max_pixels: int = 112 * 112, seed: int = 0) -> Path:
    """Build a randomly initialised ``Qwen2_5_VLForConditionalGeneration`` of the given sizes (2x2 merge,
    temporal patches of 2 frames, M-RoPE split over the head as the published models split it) with its
    tokenizer and video processor settings, save it to ``out_dir`` and return the path. Deterministic for a
    given corpus and seed."""
    from .patches import PatchTransform

    vision = dict(depth=vision_layers, hidden_size=vision_width, intermediate_size=2 * vision_width,
                  num_heads=vision_heads, out_hidden_size=text_width, patch_size=patch_size, spatial_merge_size=2,
                  temporal_patch_size=2, window_size=4 * patch_size * 2, fullatt_block_indexes=[vision_layers - 1],
                  tokens_per_second=2)
    transform = PatchTransform(patch_size=patch_size, min_pixels=min_pixels, max_pixels=max_pixels)
    return _save_qwen_vl("Qwen2_5_VL", out_dir, corpus, vision, transform, seed, vocab_size=vocab_size,
                         text=dict(hidden_size=text_width, num_hidden_layers=text_layers,
                                   num_attention_heads=text_heads, num_key_value_heads=kv_heads),
                         rope=dict(rope_theta=1e6))


def build_qwen3_vl(out_dir: str | Path, corpus, *, patch_size: int = 16, vision_width: int = 32,
                   vision_layers: int = 2, vision_heads: int = 2, text_width: int = 64, text_layers: int = 2,
                   text_heads: int = 4, kv_heads: int = 2, vocab_size: int = 512, min_pixels: int = 64 * 64,
                   max_pixels: int = 8 * 128 * 128, seed: int = 0) -> Path:
    """Build a randomly initialised ``Qwen3VLForConditionalGeneration`` of the given sizes (2x2 merge,
    temporal patches of 2 frames, DeepStack features from every vision layer but the last, interleaved
    M-RoPE as the published models have it) with its tokenizer and video processor settings (the pixel
    budget over the whole video, ImageNet's 0.5 mean and deviation), save it to ``out_dir`` and return the
    path. Deterministic for a given corpus and seed."""
    from .patches import PatchTransform

    vision = dict(depth=vision_layers, hidden_size=vision_width, intermediate_size=2 * vision_width,
                  num_heads=vision_heads, out_hidden_size=text_width, patch_size=patch_size, spatial_merge_size=2,
                  temporal_patch_size=2, num_position_embeddings=64,
                  deepstack_visual_indexes=list(range(vision_layers - 1)))
    transform = PatchTransform(patch_size=patch_size, min_pixels=min_pixels, max_pixels=max_pixels,
                               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), video_budget=True)
    return _save_qwen_vl("Qwen3VL", out_dir, corpus, vision, transform, seed, vocab_size=vocab_size,
                         text=dict(hidden_size=text_width, num_hidden_layers=text_layers,
                                   num_attention_heads=text_heads, num_key_value_heads=kv_heads,
                                   head_dim=text_width // text_heads),
                         rope=dict(rope_theta=5e6, mrope_interleaved=True))


def _save_qwen_vl(name: str, out_dir: str | Path, corpus, vision: dict, transform, seed: int, *, vocab_size: int,
                  text: dict, rope: dict) -> Path:
    """What both Qwen builders share: the tokenizer with Qwen-VL's vision tokens, the LM's config (``text``:
    its sizes; M-RoPE's sections (t, h, w) over the head's rotary pairs, ``rope`` the rest of its settings),
    the model config naming those tokens, and the seeded random model saved with ``transform``. ``name``:
    transformers' class prefix (``Qwen2_5_VL``, ``Qwen3VL``)."""
    import transformers

    tokenizer = build_tokenizer(corpus, vocab_size, SPECIAL_TOKENS[:3] + QWEN_VL_TOKENS)
    half = text["hidden_size"] // text["num_attention_heads"] // 2
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    text = dict(text, intermediate_size=4 * text["hidden_size"], vocab_size=len(tokenizer),
                max_position_embeddings=8192, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
                rope_parameters=dict(rope_type="default", mrope_section=section, **rope))
    ids = {token: tokenizer.convert_tokens_to_ids(f"<|{token}|>")
           for token in ("image_pad", "video_pad", "vision_start", "vision_end")}
    config = getattr(transformers, f"{name}Config")(
        vision_config=vision, text_config=text, image_token_id=ids["image_pad"], video_token_id=ids["video_pad"],
        vision_start_token_id=ids["vision_start"], vision_end_token_id=ids["vision_end"], tie_word_embeddings=True)
    return _save_random(getattr(transformers, f"{name}ForConditionalGeneration"), config, tokenizer, transform,
                        Path(out_dir), seed)
