"""The k-means loop against its memory floor: time per Lloyd iteration through the Triton kernels
(``kernels.lloyd_steps``) and through PyTorch operations, in one process.

    python benchmarks/bench_lloyd.py [--repeats 10] [--cases 7b batch ...] [--set STEPS=1 ...] [--sweep] [--profile]

Cases: one 64 x 196 x 3584 video of Gaussian bf16 tokens at K = 8 and 32 (LLaVA-OneVision-7B's pooled tokens,
as the reducer gets them), one at the 0.5B's width of 896, and a batch of 16 planted 64 x 196 x 1152 videos at
K = 32 (the hashing benchmark's batch) in bf16 and in float32 (float32 points take the PyTorch path either
way). Per case: the loop's time per pass as hashing runs it (see :func:`per_iteration`) and the steady-state
cost of one more iteration. Floor: one read of the tokens in their own dtype at the copy bandwidth measured
here. ``--sweep`` times the kernels' tile sizes, programs per SM, warps and pipeline stages; ``--profile``
prints the host calls and kernels of a Triton loop on the first case, each kernel's time per iteration.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
from triton.runtime.errors import OutOfResources

from tokendynamics.cluster import cudagraphs, kernels
from tokendynamics.cluster.backend import Backend
from tokendynamics.cluster.kmeans import kmeans_plusplus, lloyd, prepare
from tokendynamics.bench import copy_bandwidth, machine, median_time, write_results

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import token_video  # noqa: E402

CASES = [dict(name="7b", batch=1, dim=3584, k=8, data="gaussian", dtype="bfloat16"),
         dict(name="7b K=32", batch=1, dim=3584, k=32, data="gaussian", dtype="bfloat16"),
         dict(name="0.5b", batch=1, dim=896, k=8, data="gaussian", dtype="bfloat16"),
         dict(name="batch", batch=16, dim=1152, k=32, data="planted", dtype="bfloat16"),
         dict(name="batch f32", batch=16, dim=1152, k=32, data="planted", dtype="float32")]
SWEEP = dict(BLOCK_N=(64, 128), BLOCK_D=(128, 256), PROGRAMS_PER_SM=(1, 2), NUM_WARPS=(4, 8), NUM_STAGES=(2, 4))
TUNABLES = (*SWEEP, "SUMS_M", "SUMS_D", "STEPS")  # the kernels' settings a run reports and ``--set`` may change


def tokens(case, device) -> torch.Tensor:
    """``[B, 64 * 196, D]`` tokens of the case."""
    videos = [token_video(case["data"], 64, case["dim"], seed=s).reshape(-1, case["dim"]) for s in range(case["batch"])]
    return torch.stack(videos).to(device, getattr(torch, case["dtype"]))


def problem(x, k, triton: bool):
    """The prepared points of ``x`` for cosine k-means (Triton or not), their k-means++ seeds and ``K = k``
    per video."""
    feats = prepare(x, "cosine", backend=Backend.choose(x.device, triton=triton))
    return feats, kmeans_plusplus(feats, k), torch.full((x.shape[0],), k, device=x.device)


def per_iteration(x, k, triton: bool, repeats: int) -> tuple[float, int, float, float]:
    """(seconds per pass of the Lloyd loop, iterations, mean inertia, seconds per iteration of a long loop)
    for ``x``, from the same seeds. The first runs the loop as hashing does (``tol=1e-4``), fixed costs of a
    call included; the last is the slope between loops of 5 and 25 iterations run to ``tol=0`` (steady
    state, without the fixed costs)."""
    cudagraphs.clear()
    feats, init, ks = problem(x, k, triton)

    def run(cap, tol):
        return median_time(lambda: lloyd(feats, init, ks, metric="cosine", max_iters=cap, tol=tol),
                           x.device, repeats)

    seconds, res = run(100, 1e-4)
    (short, res_short), (long, res_long) = run(5, 0.0), run(25, 0.0)
    extra = int(res_long.iterations.max() - res_short.iterations.max())
    return (seconds / (int(res.iterations.max()) + 1), int(res.iterations.max()), float(res.inertia.mean()),
            (long - short) / max(extra, 1))


def sweep(cases, xs, repeats) -> list[dict]:
    """Every combination of :data:`SWEEP` on every bf16 case; the defaults are restored afterwards."""
    default = {name: getattr(kernels, name) for name in SWEEP}
    rows = []
    for values in itertools.product(*SWEEP.values()):
        config = dict(zip(SWEEP, values))
        for name, value in config.items():
            setattr(kernels, name, value)
        row = dict(config)
        for case, x in zip(cases, xs):
            if x.dtype == torch.bfloat16:
                try:
                    row[case["name"]] = per_iteration(x, case["k"], True, repeats)[3] * 1e3
                except OutOfResources:  # the tiles need more shared memory than the GPU has
                    row[case["name"]] = float("nan")
        print(row, flush=True)
        rows.append(row)
    for name, value in default.items():
        setattr(kernels, name, value)
    return rows


def profile(x, k, iterations=25):
    """Print the host calls and kernels of the Triton Lloyd loop on ``x`` as it runs (graphs on), over
    ``iterations`` iterations at ``tol=0``, then each kernel's device time per pass."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    feats, init, ks = problem(x, k, True)

    def loop():
        return lloyd(feats, init, ks, metric="cosine", max_iters=iterations, tol=0.0)

    loop()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        passes = int(loop().iterations.max()) + 1
        torch.cuda.synchronize()
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    print(f"device time per pass over {passes} passes (us):")
    for e in sorted(events, key=lambda e: -e.self_device_time_total):
        if e.self_device_time_total > 0:
            print(f"  {e.self_device_time_total / passes:8.1f}  {e.count:5d}x  {e.key[:90]}")
    timeline(lambda: lloyd(feats, init, ks, metric="cosine", max_iters=100, tol=1e-4))


def timeline(call):
    """Print where one ``call``'s wall time goes on the device: busy in kernels and copies, idle before
    the first, between them, and after the last. The profiler slows the host, so the idle times are upper
    bounds; the busy time is the device's own."""
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile as torch_profile

    call()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with torch.profiler.record_function("call"):
            call()
            torch.cuda.synchronize()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        prof.export_chrome_trace(f.name)
        trace = json.loads(Path(f.name).read_text())["traceEvents"]
    start, end = next((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "call" and "dur" in e)
    device_work = ("kernel", "gpu_memcpy", "gpu_memset")
    work = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("cat") in device_work)
    busy = gaps = 0.0
    last = work[0][0]
    for a, b in work:
        gaps += max(a - last, 0.0)
        busy += b - max(a, last) if b > last else 0.0
        last = max(last, b)
    print(f"one call: wall {end - start:.0f} us; device busy {busy:.0f} us in {len(work)} kernels and copies; idle "
          f"{work[0][0] - start:.0f} us before the first, {gaps:.0f} us between, {end - last:.0f} us after the last")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--cases", nargs="+", choices=[c["name"] for c in CASES], default=[c["name"] for c in CASES],
                   help="the cases to run (default: all)")
    p.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                   help=f"integer kernel settings for this run, of {', '.join(TUNABLES)}")
    p.add_argument("--profile", action="store_true", help="print the Triton loop's kernels on the first case")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args()
    for setting in a.set:
        name, _, value = setting.partition("=")
        if name not in TUNABLES or not value.isdigit():
            p.error(f"--set takes NAME=INTEGER with NAME one of {', '.join(TUNABLES)}; got {setting!r}")
        setattr(kernels, name, int(value))
    dev = torch.device("cuda")
    if not (Backend.choose(dev).triton and kernels.lloyd_available(32, 12544)):
        raise SystemExit("needs CUDA and Triton")
    bw = copy_bandwidth(dev)  # bytes moved per second
    cases = [case for case in CASES if case["name"] in a.cases]
    xs = [tokens(case, dev) for case in cases]
    rows = []
    for case, x in zip(cases, xs):
        (t_tri, it_tri, in_tri, m_tri), (t_torch, it_torch, in_torch, m_torch) = (
            per_iteration(x, case["k"], t, a.repeats) for t in (True, False))
        floor = x.numel() * x.element_size() / bw
        rows.append(dict(case, triton_ms=t_tri * 1e3, pytorch_ms=t_torch * 1e3, iterations=[it_tri, it_torch],
                         inertia=[in_tri, in_torch], speedup=t_torch / t_tri, floor_ms=floor * 1e3,
                         steady_ms=[m_tri * 1e3, m_torch * 1e3], steady_vs_floor=m_tri / floor,
                         triton_vs_floor=t_tri / floor, pytorch_vs_floor=t_torch / floor))
    result = dict(machine=machine(dev), torch=torch.__version__, copy_GBps=bw / 1e9, rows=rows,
                  kernels={name: getattr(kernels, name) for name in TUNABLES})
    if a.sweep:
        result["sweep"] = sweep(cases, xs, a.repeats)
    if a.profile:
        profile(xs[0], cases[0]["k"])
    write_results(a.out, "lloyd-cuda", result, to_markdown(result))


def to_markdown(result) -> str:
    lines = [f"{result['machine']}, torch {result['torch']}; copy bandwidth (read + write) "
             f"{result['copy_GBps']:.0f} GB/s; kernels {result['kernels']}.", "",
             "| case | B x N x D, dtype | K | iterations (Triton, PyTorch) | Triton (ms/iter) | PyTorch (ms/iter) | "
             "speed-up | floor (ms) | Triton / floor | PyTorch / floor | steady ms/iter (Triton, PyTorch) | "
             "Triton steady / floor | mean inertia (Triton, PyTorch) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {r['batch']} x 12544 x {r['dim']}, {r['dtype']} | {r['k']} | "
                     f"{r['iterations'][0]}, {r['iterations'][1]} | {r['triton_ms']:.3f} | {r['pytorch_ms']:.3f} | "
                     f"{r['speedup']:.2f}x | {r['floor_ms']:.3f} | {r['triton_vs_floor']:.2f}x | "
                     f"{r['pytorch_vs_floor']:.2f}x | {r['steady_ms'][0]:.3f}, {r['steady_ms'][1]:.3f} | "
                     f"{r['steady_vs_floor']:.2f}x | {r['inertia'][0]:.6g}, {r['inertia'][1]:.6g} |")
    if "sweep" in result:
        names = [r["name"] for r in result["rows"] if r["dtype"] == "bfloat16"]
        lines += ["", "Sweep (Triton, steady-state ms per iteration):", "",
                  "| " + " | ".join([*SWEEP, *names]) + " |", "|" + "---|" * (len(SWEEP) + len(names))]
        for row in result["sweep"]:
            lines.append("| " + " | ".join(str(row[n]) for n in SWEEP) + " | " +
                         " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
