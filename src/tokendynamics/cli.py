"""The ``tokendynamics`` command."""

from __future__ import annotations

import argparse
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

from . import __version__
from .data import planted_token_video
from .hashing import hash_video

_SYMBOLS = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _demo(args: argparse.Namespace, console: Console) -> None:
    """Hash a generated token video at fixed and adaptive length; print what was kept and the key maps."""
    with console.status("generating a token video with planted moving objects"):
        video = planted_token_video(num_frames=args.frames, height=14, width=14, dim=args.dim,
                                    num_objects=args.objects, noise=args.noise, seed=args.seed)
    total = video.key_map.numel()
    console.print(f"video: {args.frames} frames x 14 x 14 tokens of width {args.dim} = {total} tokens, "
                  f"{args.objects} moving objects over a background ({args.objects + 1} prototypes)")
    table = Table(title="token hash table")
    for col in ["mode", "tokens kept", "% of full", "distortion", "time (ms)"]:
        table.add_column(col, justify="right")
    runs = [("fixed K=%d" % args.num_tokens, dict(num_tokens=args.num_tokens)),
            ("adaptive <=%.2f" % args.max_distortion, dict(max_distortion=args.max_distortion, max_tokens=64))]
    results = {}
    for name, kwargs in runs:
        with console.status(f"hashing ({name})"):
            start = time.perf_counter()
            h = hash_video(video.tokens, seed=args.seed, **kwargs)
            ms = (time.perf_counter() - start) * 1e3
        k = int(h.num_tokens[0])
        table.add_row(name, str(k), f"{100 * k / total:.3f}", f"{h.distortion().item():.4f}", f"{ms:.1f}")
        results[name] = h
    console.print(table)
    adaptive = results[runs[1][0]]
    frames = sorted({0, args.frames // 2, args.frames - 1})
    console.print(f"key map of the adaptive table (one symbol per table row; '.' is row 0) "
                  f"at frames {frames}, planted objects below:")
    for key_map in (adaptive.key_map[0], video.key_map):
        for row in range(key_map.shape[1]):
            console.print("   ".join("".join(_SYMBOLS[int(v) % len(_SYMBOLS)] for v in key_map[t, row])
                                     for t in frames), highlight=False)
        console.print()


def _motionqa(args: argparse.Namespace, console: Console) -> None:
    """Generate MotionQA and print its tally per split."""
    from .data.motionqa import generate_motionqa

    stats = generate_motionqa(args.out_dir, args.num_videos, seed=args.seed, num_frames=args.frames,
                              size=args.size, fps=args.fps, arrays=args.arrays, workers=args.workers)
    table = Table(title=f"MotionQA in {args.out_dir}")
    for column in ("split", "videos", "questions", "question types", "answer positions (chi2)"):
        table.add_column(column)
    for split, s in stats["splits"].items():
        answers = s["answers"]
        table.add_row(split, str(s["videos"]), str(s["questions"]),
                      ", ".join(f"{k} {v}" for k, v in s["types"].items()),
                      f"{answers['positions']} ({answers['chi2']}{'' if answers['balanced'] else ', UNBALANCED'})")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tokendynamics", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tokendynamics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="hash a generated token video and show what the table kept")
    demo.add_argument("--frames", type=_positive, default=32)
    demo.add_argument("--dim", type=_positive, default=256, help="token width")
    demo.add_argument("--objects", type=int, default=4, help="moving objects in the generated video")
    demo.add_argument("--noise", type=float, default=0.005, help="noise per feature (unit-norm tokens)")
    demo.add_argument("--num-tokens", type=_positive, default=8, help="K for the fixed-length table")
    demo.add_argument("--max-distortion", type=float, default=0.1, help="target of the adaptive table")
    demo.add_argument("--seed", type=int, default=0)
    motionqa = sub.add_parser("motionqa", help="the MotionQA benchmark")
    mq = motionqa.add_subparsers(dest="action", required=True)
    gen = mq.add_parser("generate", help="generate MotionQA videos, questions and splits into OUT_DIR")
    gen.add_argument("out_dir", metavar="OUT_DIR")
    gen.add_argument("--num-videos", type=_positive, default=1000)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--frames", type=_positive, default=32)
    gen.add_argument("--size", type=_positive, default=384, help="frame side in pixels (even)")
    gen.add_argument("--fps", type=_positive, default=8)
    gen.add_argument("--arrays", action="store_true", help="also write each video's frames as a .npz archive")
    gen.add_argument("--workers", type=_positive, default=None, help="processes (default: every core)")
    args = parser.parse_args(argv)
    console = Console()
    torch.manual_seed(args.seed)
    try:
        {"demo": _demo, "motionqa": _motionqa}[args.command](args, console)
    except (ValueError, TypeError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
