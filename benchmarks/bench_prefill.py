"""What compression buys end to end on a GPU: vision tower, reduction, LLM prefill, time to first token,
decoding speed and peak memory of LLaVA-OneVision, Qwen2.5-VL and Qwen3-VL with full video tokens and with
each reducer.

    python benchmarks/bench_prefill.py [--hosts 0.5b 7b qwen2.5-vl-7b qwen3-vl-8b] [--frames 8 32 64] [--ks 8 32]
        [--batch 1] [--compile] [--compile-vision] [--device cpu --layers 2]

The hosts are LLaVA-OneVision's published shapes (SigLIP-so400m tower, 26 layers at 384 px, pooled to
14 x 14 tokens per frame; Qwen2-0.5B or Qwen2-7B), Qwen2.5-VL-7B's (its window-attention ViT on 448 px
frames, temporal patches of 2 frames merged to 16 x 16 tokens; the Qwen2-7B LM) and Qwen3-VL-8B's (its ViT
on 512 px frames, also 16 x 16 merged tokens a temporal patch, DeepStack features from three of its layers;
the Qwen3-8B LM, whose prefill is timed without adding those features, a cost of three additions) with
random bf16 weights: the timings are those of the trained models, and nothing is downloaded. The prompt is 60 text tokens around the video. Times are
medians over repeats after a warm-up, synchronised; each figure is also given as a ratio to full tokens
measured in the same process. Prefill cost is counted by formula in multiply-adds (MACs): ``2 P_lm n``
for the weights (P_lm without embeddings) plus ``2 L n^2 d`` for attention scores and values.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics.bench import machine, median_time, sync, write_results
from tokendynamics.models.host import cache_keyword
from tokendynamics.models.windows import batch_windows

TEXT_TOKENS = 60
QWEN2 = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}


# The Qwen hosts' published shapes (Qwen2.5-VL-7B-Instruct: its ViT with window attention; Qwen3-VL-8B-Instruct:
# DeepStack features from three tower layers, interleaved M-RoPE; both 2x2 merge, temporal patches of 2) and
# the frame side each reads here: 16 x 16 merged tokens a temporal patch for both (Qwen2.5-VL's default
# budget per frame; Qwen3-VL's default budget is over the whole video, which at 64 frames would leave a few
# tokens a frame, so the same 16 x 16 is taken to compare the two).
QWEN_VL = {
    "qwen2.5-vl-7b": dict(
        model="Qwen2_5_VL", side=448,
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                    fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2),
        text=dict(QWEN2["7b"], max_position_embeddings=128000,
                  rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=[16, 24, 24]))),
    "qwen3-vl-8b": dict(
        model="Qwen3VL", side=512,
        vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                    patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                    deepstack_visual_indexes=[8, 16, 24]),
        text=dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                  num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False,
                  max_position_embeddings=262144,
                  rope_parameters=dict(rope_type="default", rope_theta=5e6, mrope_section=[24, 20, 20],
                                       mrope_interleaved=True))),
}
HOSTS = [*QWEN2, *QWEN_VL]


def _random_bf16(make, device):
    torch.manual_seed(0)
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            return make().eval()
        finally:
            torch.set_default_dtype(previous)


def build_host(size: str, device="cuda", layers: int | None = None):
    """A host of the published shapes (LLaVA-OneVision 0.5b / 7b, Qwen2.5-VL-7B, Qwen3-VL-8B) with random
    bf16 weights; ``layers``: at most that many LM and tower layers (a CPU check of the code path)."""
    import transformers

    if size in QWEN_VL:
        shape = QWEN_VL[size]
        vision, text = dict(shape["vision"]), dict(shape["text"])
        if layers:
            vision["depth"], text["num_hidden_layers"] = min(layers, vision["depth"]), min(layers, text["num_hidden_layers"])
            for name in ("fullatt_block_indexes", "deepstack_visual_indexes"):
                if name in vision:
                    vision[name] = [i for i in vision[name] if i < vision["depth"]] or [0]
        config = getattr(transformers, f"{shape['model']}Config")(vision_config=vision, text_config=text)
        return _random_bf16(lambda: getattr(transformers, f"{shape['model']}ForConditionalGeneration")(config), device)
    text = transformers.Qwen2Config(max_position_embeddings=32768, rope_theta=1e6, **QWEN2[size])
    if layers:
        text.num_hidden_layers = min(layers, text.num_hidden_layers)
    config = transformers.LlavaOnevisionConfig(text_config=text, vision_feature_layer=-1,
                                               vision_feature_select_strategy="full")
    if layers:
        config.vision_config.num_hidden_layers = min(layers, config.vision_config.num_hidden_layers)
    return _random_bf16(lambda: transformers.LlavaOnevisionForConditionalGeneration(config), device)


def video_features(host, batch: int, frames: int, device, side: int | None = None):
    """``(callable giving the tokens [B, T', h, w, D] of random pixels, the grid)`` through the host's own
    vision path: LLaVA-OneVision's 384 px frames pooled to 14 x 14; a Qwen host's frames of ``side`` pixels
    in temporal patches of 2, merged 2 x 2."""
    cfg = host.config.vision_config
    if hasattr(cfg, "temporal_patch_size"):  # the Qwen hosts: flat patches and their grid
        t, side = frames // cfg.temporal_patch_size, side // cfg.patch_size
        dim = 3 * cfg.temporal_patch_size * cfg.patch_size ** 2
        patches = torch.randn(batch * t * side * side, dim, device=device, dtype=torch.bfloat16)
        grid = torch.tensor([[t, side, side]] * batch, device=device)
        merged = side // cfg.spatial_merge_size

        def run():
            out = host.model.get_video_features(patches, grid)
            feats = getattr(out, "pooler_output", out)
            return torch.stack(list(feats)).view(batch, t, merged, merged, -1)
        return run
    pixels = torch.randn(batch, frames, 3, 384, 384, device=device, dtype=torch.bfloat16)
    return lambda: host.model.get_video_features(
        pixels, vision_feature_layer=-1, vision_feature_select_strategy="full").pooler_output.view(
        batch, frames, 14, 14, -1)


def prefill_macs(cfg, n: int) -> float:
    """Multiply-adds of a prefill over ``n`` tokens (weights without embeddings, plus attention)."""
    d, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = d // cfg.num_attention_heads * cfg.num_key_value_heads
    per_token = layers * (2 * d * d + 2 * d * kv + 3 * d * f)  # q, o; k, v; MLP
    return n * per_token + layers * 2 * n * n * d


def run_host(size, frames_list, ks, reducers, batch, repeats, decode_tokens, compiled=None, compile_vision=False,
             device="cuda", layers=None, freeze=False, host_windows=False):
    """Rows of every case at each frame count; ``compiled``: the prefill's torch.compile mode (None: eager),
    ``freeze``: with its weights frozen (:func:`_compiled_prefill`); a Qwen tower attends its windows batched
    by length as tokendynamics' hosts have it, or (``host_windows``) one at a time as transformers does
    without flash-attention."""
    dev = torch.device(device)
    host = build_host(size, dev, layers)
    tower = "visual" if size in QWEN_VL else "vision_tower"
    if size in QWEN_VL and not host_windows:
        batch_windows(host.model.visual)
    if compile_vision:  # both the full and the reduced runs read the compiled tower's features
        setattr(host.model, tower, torch.compile(getattr(host.model, tower), dynamic=False))
    cfg = host.config
    lm = host.model.language_model  # positions: each host's default for a text-only sequence (the cost is the same)
    prefill = _compiled_prefill(lm, compiled, freeze) if compiled else (lambda e: lm(inputs_embeds=e, use_cache=True))
    rows = []
    for frames in frames_list:
        _reset_peak(dev)
        with torch.no_grad():
            t_vision, grid = median_time(video_features(host, batch, frames, dev, QWEN_VL.get(size, {}).get("side")),
                                         dev, repeats)
        text = torch.randn(batch, TEXT_TOKENS, cfg.text_config.hidden_size, device=dev, dtype=torch.bfloat16)
        cases = [("full", None)] + [(r, k) for k in ks for r in reducers]
        base = None
        for name, k in cases:
            _reset_peak(dev)
            reduce = (lambda: grid.reshape(batch, -1, grid.shape[-1])) if name == "full" else \
                (lambda: td.reducers[name](grid, num_tokens=k).tokens)
            with torch.no_grad():
                t_reduce, visual = median_time(reduce, dev, repeats)
                embeds = torch.cat([text[:, :TEXT_TOKENS // 2], visual.to(text.dtype), text[:, TEXT_TOKENS // 2:]], 1)
                n = embeds.shape[1]
                if compiled:
                    prefill(embeds)  # compile, then record the CUDA graph; median_time warms up once more
                t_prefill, out = median_time(lambda: prefill(embeds), dev, repeats)
                t_decode = None if compiled else _decode_time(lm, host, out, embeds, decode_tokens, dev)
            peak = torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == "cuda" else float("nan")
            row = dict(host=size, frames=frames, batch=batch, reducer=name, k=k, llm_tokens=n, compiled=compiled,
                       compiled_vision=compile_vision, windows="one at a time" if host_windows else "batched",
                       vision_ms=t_vision * 1e3, reduce_ms=t_reduce * 1e3, prefill_ms=t_prefill * 1e3,
                       ttft_ms=(t_vision + t_reduce + t_prefill) * 1e3,
                       decode_tokens_per_s=batch * decode_tokens / t_decode if t_decode else None, peak_gib=peak,
                       prefill_gmacs=batch * prefill_macs(cfg.text_config, n) / 1e9)
            if name == "full":
                base = row
            for key in ("prefill_ms", "ttft_ms", "peak_gib", "prefill_gmacs"):
                row[f"{key}_vs_full"] = row[key] / base[key]
            row["decode_vs_full"] = (row["decode_tokens_per_s"] / base["decode_tokens_per_s"]
                                     if row["decode_tokens_per_s"] else None)
            row["reduce_share_of_saved_prefill"] = (row["reduce_ms"] / (base["prefill_ms"] - row["prefill_ms"])
                                                    if name != "full" else None)
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _reset_peak(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _compiled_prefill(lm, mode: str = "reduce-overhead", freeze: bool = False):
    """The prefill through ``torch.compile(mode=mode)`` (both modes replay CUDA graphs; "max-autotune" also
    times Triton's matmul templates against cuBLAS for each shape; one compilation per sequence length). It
    computes the first token's hidden state without building a KV cache, so it times the time to first
    token; decoding is not timed in this mode. ``freeze``: inductor takes the weights as constants
    (``freezing``), which lets it join the matmuls that read one input (q, k, v; gate, up) into one each."""
    torch._inductor.config.freezing = freeze
    compiled = torch.compile(lm, mode=mode, dynamic=False)
    return lambda embeds: compiled(inputs_embeds=embeds, use_cache=False).last_hidden_state[:, -1:].clone()


def _decode_time(lm, host, out, embeds, steps, dev) -> float:
    """Seconds for ``steps`` greedy decoding steps after the prefill (KV cache reused)."""
    head, embed = host.lm_head, host.get_input_embeddings()
    keyword = cache_keyword(lm)
    cache = getattr(out, keyword)
    token = head(out.last_hidden_state[:, -1:]).argmax(-1)
    length = embeds.shape[1]
    sync(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step = lm(inputs_embeds=embed(token), use_cache=True, position_ids=torch.full((token.shape[0], 1), length,
                                                                                     device=dev), **{keyword: cache})
        cache, length = getattr(step, keyword), length + 1
        token = head(step.last_hidden_state).argmax(-1)
    sync(dev)
    return time.perf_counter() - start


def to_markdown(result) -> str:
    lines = [f"Machine: {result['machine']}; torch {result['torch']}; bf16; random weights.", ""]
    head = ("| host | frames | batch | reducer | K | LLM tokens | vision (ms) | reduce (ms) | prefill (ms) | "
            "prefill x full | TTFT (ms) | TTFT x full | decode (tok/s) | peak (GiB) | prefill GMACs |")
    lines += [head, "|" + "---|" * 15]
    for r in result["rows"]:
        lines.append(f"| {r['host']} | {r['frames']} | {r['batch']} | {r['reducer']} | {r['k'] or '-'} | "
                     f"{r['llm_tokens']} | {r['vision_ms']:.1f} | {r['reduce_ms']:.2f} | {r['prefill_ms']:.1f} | "
                     f"{1 / r['prefill_ms_vs_full']:.1f}x faster | {r['ttft_ms']:.1f} | "
                     f"{1 / r['ttft_ms_vs_full']:.2f}x faster | {r['decode_tokens_per_s'] or 0:.0f} | "
                     f"{r['peak_gib']:.1f} | {r['prefill_gmacs']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", nargs="+", default=["0.5b", "7b"], choices=HOSTS)
    p.add_argument("--frames", nargs="+", type=int, default=[8, 32, 64])
    p.add_argument("--ks", nargs="+", type=int, default=[8, 32])
    p.add_argument("--reducers", nargs="+", default=list(td.reducers))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--compile", action="store_true", help="prefill through torch.compile (CUDA graphs)")
    p.add_argument("--compile-mode", default="reduce-overhead", choices=["reduce-overhead", "max-autotune"],
                   help="torch.compile's mode for --compile")
    p.add_argument("--freeze", action="store_true", help="with --compile: the LM's weights frozen into the "
                   "compiled graph (its parallel matmuls joined)")
    p.add_argument("--host-windows", action="store_true", help="a Qwen tower attends one window at a time, "
                   "as transformers does without flash-attention (default: batched by length, as the hosts here)")
    p.add_argument("--compile-vision", action="store_true", help="the vision tower through torch.compile too")
    p.add_argument("--device", default="cuda", help="cpu: a check of the code path (no memory figures)")
    p.add_argument("--layers", type=int, help="at most this many LM and tower layers (a check of the code path)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args()
    if a.freeze and not a.compile:
        p.error("--freeze needs --compile (it freezes the compiled prefill's weights)")
    rows = []
    mode = a.compile_mode if a.compile else None
    name = (f"prefill-b{a.batch}" + ("-compiled" if a.compile else "")
            + ("-autotuned" if mode == "max-autotune" else "") + ("-frozen" if a.freeze else "")
            + ("-vision" if a.compile_vision else "") + ("-host-windows" if a.host_windows else ""))
    for size in a.hosts:
        rows += run_host(size, a.frames, a.ks, a.reducers, a.batch, a.repeats, a.decode_tokens, mode,
                         a.compile_vision, a.device, a.layers, a.freeze, a.host_windows)
        result = dict(machine=machine(torch.device(a.device)), torch=torch.__version__, rows=rows)
        write_results(a.out, name, result, to_markdown(result))  # after every host: a time box keeps them
        gc.collect()  # the host goes before the next one is built
        if a.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
