"""What a live stream costs on a GPU at LLaVA-OneVision-7B's width: each frame's update of a ``HashStream``,
and the time from a question's arrival to its first token after the frames have streamed in, against full
tokens (every frame's tokens prefilled when the question comes) and offline Token Dynamics (``hash_video``
over the whole video, then the prefill), as ratios measured in the same process.

    python benchmarks/bench_stream.py [--frames 64 --k 8 --dim 3584] [--device cuda] [--compile]

The tokens are random ``[14, 14, D]`` frames (the vision tower runs as each frame arrives in every case, so
it is left out); the LLM is Qwen2-7B's shape with random bf16 weights (``--layers`` fewer for a CPU check
of the code path). Times are medians over repeats after a warm-up, synchronised. The per-frame update is
measured with its CUDA graphs (the default) and eagerly, in the same run; ``--compile`` runs every prefill
through ``torch.compile`` (CUDA graphs), as ``bench_prefill.py --compile`` does (``--freeze`` as its
``--freeze``); ``--compile-update`` also times the update compiled, ``--steps``/``--spawns`` a cheaper one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics.bench import machine, median_time, sync, write_results
from tokendynamics.cluster.backend import Backend

from bench_prefill import QWEN2, TEXT_TOKENS, _compiled_prefill, _random_bf16


def build_lm(dim: int, layers: int | None, device):
    """Qwen2-7B's LM shape (``dim`` wide; ``layers`` of them where given) with random bf16 weights."""
    import transformers

    shape = dict(QWEN2["7b"], hidden_size=dim, num_hidden_layers=layers or QWEN2["7b"]["num_hidden_layers"])
    if dim != QWEN2["7b"]["hidden_size"]:  # a narrower check: keep the head width
        shape.update(num_attention_heads=dim // 128, num_key_value_heads=1, intermediate_size=4 * dim)
    config = transformers.Qwen2Config(max_position_embeddings=32768, rope_theta=1e6, **shape)
    return _random_bf16(lambda: transformers.Qwen2Model(config), device)


def per_frame_update(frames: torch.Tensor, k: int, dev, graphs: bool = True, batch: int = 1,
                     sketch: int | None = None, compiled: bool = False,
                     settings: dict | None = None) -> tuple[list[float], td.HashStream]:
    """Seconds of each frame's ``push`` into a fresh stream (its updates replayed as CUDA graphs or eager,
    ``compiled``: fused by torch.compile first), and the stream; with ``batch`` B, ``frames`` are
    ``[T, B, H, W, D]`` and B streams take each step; ``sketch``: the rows kept (default the stream's, 2 K);
    ``settings``: the stream's ``steps`` and ``spawns`` (default its own)."""
    backend = Backend.choose(dev, graphs=graphs, compiled=compiled)
    stream = td.HashStream(k, frames.shape[-1], device=dev, backend=backend, batch=batch, sketch=sketch,
                           **(settings or {}))
    times = []
    for frame in frames:
        sync(dev)
        start = time.perf_counter()
        stream.push(frame)
        sync(dev)
        times.append(time.perf_counter() - start)
    return times, stream


VARIANTS = {"graphs": (True, False, False), "eager": (False, False, False),  # name: (CUDA graphs, K rows
            "graphs, no sketch": (True, True, False), "compiled": (True, False, True)}  # alone, compiled update


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--dim", type=int, default=QWEN2["7b"]["hidden_size"])
    p.add_argument("--layers", type=int, help="LM layers (default: Qwen2-7B's 28)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda")
    p.add_argument("--compile", action="store_true", help="every prefill through torch.compile (CUDA graphs)")
    p.add_argument("--freeze", action="store_true", help="with --compile: the LM's weights frozen into the "
                   "compiled prefill (bench_prefill.py --freeze)")
    p.add_argument("--compile-update", action="store_true",
                   help="also time the update fused by torch.compile (Backend(compiled=True)); the batches use it")
    p.add_argument("--steps", type=int, help="the streams' Lloyd steps per frame (default: HashStream's)")
    p.add_argument("--spawns", type=int, help="the streams' merge-and-spawn tries per frame (default: HashStream's)")
    p.add_argument("--batches", type=int, nargs="*", default=[8, 32],
                   help="also time the update of this many streams at once (16 frames each)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args()
    if a.freeze and not a.compile:
        p.error("--freeze needs --compile (it freezes the compiled prefill's weights)")
    dev = torch.device(a.device)
    settings = {k: v for k, v in (("steps", a.steps), ("spawns", a.spawns)) if v is not None}  # others: HashStream's
    torch.manual_seed(0)
    frames = torch.randn(a.frames, 14, 14, a.dim, device=dev, dtype=torch.bfloat16)
    lm = build_lm(a.dim, a.layers, dev)
    reducer = td.TokenDynamics(dim=a.dim, num_tokens=a.k).to(dev, torch.bfloat16).eval()
    text = torch.randn(1, TEXT_TOKENS, a.dim, device=dev, dtype=torch.bfloat16)

    def eager_lm(embeds):
        return lm(inputs_embeds=embeds, use_cache=True)
    run_lm = _compiled_prefill(lm, freeze=a.freeze) if a.compile else eager_lm

    def prefill(visual, through=None):
        return (through or run_lm)(torch.cat([text[:, :TEXT_TOKENS // 2], visual, text[:, TEXT_TOKENS // 2:]], 1))

    with torch.no_grad():
        updates, streams = {}, {}
        for name in (n for n in VARIANTS if a.compile_update or n != "compiled"):
            graphs, k_rows, fused = VARIANTS[name]
            kw = dict(sketch=a.k if k_rows else None, compiled=fused, settings=settings)
            per_frame_update(frames[:4], a.k, dev, graphs, **kw)  # warm-up (kernels, compilation)
            updates[name], streams[name] = per_frame_update(frames, a.k, dev, graphs, **kw)
        cases = {"full tokens": lambda: prefill(frames.reshape(1, -1, a.dim)),
                 **({"full tokens, eager prefill": lambda: prefill(frames.reshape(1, -1, a.dim), eager_lm)}
                    if a.compile else {}),
                 "offline Token Dynamics": lambda: prefill(reducer(frames).tokens),
                 "streamed Token Dynamics": lambda: prefill(reducer.from_table(streams["graphs"].table()).tokens),
                 "streamed Token Dynamics, no sketch":  # graph streams both
                     lambda: prefill(reducer.from_table(streams["graphs, no sketch"].table()).tokens)}
        ttft = {}
        for name, run in cases.items():
            run()  # compiles (with --compile) outside the timing
            ttft[name] = median_time(run, dev, a.repeats)[0]
    base = min(t for name, t in ttft.items() if name.startswith("full tokens"))  # the faster full-token prefill
    rows = [dict(case=name, ttft_ms=1e3 * s, faster_than_full=base / s) for name, s in ttft.items()]

    def summary(times):  # frame 0 is clustered; frame 1 captures the stream's graph (with graphs)
        return dict(first=1e3 * times[0], second=1e3 * times[1], median=1e3 * statistics.median(times[2:]),
                    max=1e3 * max(times[2:]))
    update = {name: summary(times) for name, times in updates.items()}
    if a.compile_update:  # the fused stream's table against the plain graph stream's, on the same frames
        plain, fused = streams["graphs"].table(), streams["compiled"].table()
        update["compiled"].update(distortion_ratio=float(fused.distortion(frames) / plain.distortion(frames)),
                                  key_map_agreement=float((fused.key_map == plain.key_map).float().mean()))
    batched = []
    with torch.no_grad():
        for b in a.batches:
            many = torch.randn(16, b, 14, 14, a.dim, device=dev, dtype=torch.bfloat16)
            per_frame_update(many[:4], a.k, dev, True, b, compiled=a.compile_update, settings=settings)  # warm-up
            times = per_frame_update(many, a.k, dev, True, b, compiled=a.compile_update, settings=settings)[0]
            median = 1e3 * statistics.median(times[2:])
            batched.append(dict(streams=b, update_ms=median, per_stream_ms=median / b))
    steps, spawns = streams["graphs"].steps, streams["graphs"].spawns  # what the streams ran
    result = dict(machine=machine(dev), torch=torch.__version__, frames=a.frames, k=a.k, dim=a.dim,
                  lm_layers=a.layers or QWEN2["7b"]["num_hidden_layers"], compiled=a.compile, steps=steps,
                  spawns=spawns, rows=rows,
                  update_ms=update, batched=batched)
    g, e, n = update["graphs"], update["eager"], update["graphs, no sketch"]
    c = update.get("compiled")
    lines = [f"Machine: {result['machine']}; torch {result['torch']}; {a.frames} frames of 14 x 14 x {a.dim}, "
             f"K = {a.k}, {steps} Lloyd steps and {spawns} spawns a frame, LM: Qwen2-7B shape, "
             f"{result['lm_layers']} layers, bf16, random weights"
             f"{', prefill compiled' if a.compile else ''}.", "",
             "| per-frame update (ms) | first frame (clustered) | second frame | median of the rest | max of the rest |",
             "|---|---|---|---|---|",
             f"| CUDA graph per stream | {g['first']:.2f} | {g['second']:.2f} (captures) | {g['median']:.3f} | {g['max']:.3f} |",
             f"| eager | {e['first']:.2f} | {e['second']:.2f} | {e['median']:.3f} | {e['max']:.3f} |",
             f"| CUDA graph, no sketch ({a.k} rows) | {n['first']:.2f} | {n['second']:.2f} (captures) "
             f"| {n['median']:.3f} | {n['max']:.3f} |",
             *([f"| CUDA graph, update compiled | {c['first']:.2f} | {c['second']:.2f} (captures; compiled in "
                f"the warm-up) | {c['median']:.3f} | {c['max']:.3f} |", "",
                f"The compiled update is {g['median'] / c['median']:.1f}x faster than the graph's; its table's "
                f"distortion {c['distortion_ratio']:.4f}x the graph stream's, key maps agreeing on "
                f"{100 * c['key_map_agreement']:.1f}% of cells."] if c else []), "",
             f"The graph's update is {e['median'] / g['median']:.1f}x faster than the eager one (medians).", "",
             "| streams updated together (one graph) | update of a frame (ms, median) | per stream (ms) |",
             "|---|---|---|", f"| 1 | {(c or g)['median']:.3f} | {(c or g)['median']:.3f} |",
             *(f"| {r['streams']} | {r['update_ms']:.3f} | {r['per_stream_ms']:.4f} |" for r in batched), "",
             "| case | question to first token (ms) | x faster than full tokens (the faster prefill of them) |",
             "|---|---|---|"]
    lines += [f"| {r['case']} | {r['ttft_ms']:.1f} | {r['faster_than_full']:.1f} |" for r in rows]
    write_results(a.out, f"stream-{dev.type}" + ("-compiled" if a.compile else "")
                  + ("-frozen" if a.freeze else "") + ("-update" if a.compile_update else "")
                  + "".join(f"-{k}{v}" for k, v in settings.items()),
                  result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
