"""``tokendynamics demo``: the token hash table on a planted token video and on a real video's pixels,
pictures of the key map, and the built-in model answering questions with full tokens and with Token
Dynamics."""

from __future__ import annotations

import html
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .data import planted_token_video
from .data.motionqa import MotionQAConfig, make_video
from .data.qa import QAItem
from .data.video import count_frames, read_video, uniform_indices
from .hashing import hash_video
from .models.builtin import DATA, FRAMES, load_builtin, variants
from .viz import save_keymap_gif, save_keymap_png, save_weights_png

_SYMBOLS = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def run_demo(args, console: Console) -> None:
    """Hash a generated token video (planted structure) and a video's pixel patches; print what the tables
    kept and write pictures of the key map; then let the built-in model answer questions about videos with
    full tokens and with Token Dynamics."""
    if args.video and not Path(args.video).is_file():  # before any work, not after the first part
        raise FileNotFoundError(f"--video {args.video!r} is not a file")
    console.record = True  # for the summary page
    _demo_planted(args, console)
    frames, items, about = _demo_source(args, console)
    _demo_video(args, console, frames, about, items)
    _demo_model(args, console, frames, items)
    console.print(f"everything above, with the pictures: {write_summary(Path(args.out), console)}")


def write_summary(out: Path, console: Console) -> Path:
    """``out/summary.html``: what the console printed (the tables of tokens kept and of answers) followed
    by every picture in ``out``, each under its file name."""
    pictures = sorted(p for p in out.iterdir() if p.suffix in (".png", ".gif"))
    body = "".join(f'<h3>{html.escape(p.name)}</h3><img src="{html.escape(p.name)}" style="max-width:100%">'
                   for p in pictures)
    page = console.export_html(inline_styles=True, clear=False)
    path = out / "summary.html"
    path.write_text(page.replace("</body>", f"<h2>Pictures</h2>{body}</body>"), encoding="utf-8")
    return path


def _hash_table_rows(console, tokens, total, runs, seed):
    """Hash ``tokens`` for each ``(name, kwargs)``; print a table; return the hash tables by name."""
    table = Table(title="token hash table")
    for col in ["mode", "tokens kept", "% of full", "distortion", "time (ms)"]:
        table.add_column(col, justify="right")
    results = {}
    for name, kwargs in runs:
        with console.status(f"hashing ({name})"):
            start = time.perf_counter()
            h = hash_video(tokens, seed=seed, **kwargs)
            ms = (time.perf_counter() - start) * 1e3
        k = int(h.num_tokens[0])
        table.add_row(name, str(k), f"{100 * k / total:.3f}", f"{h.distortion().item():.4f}", f"{ms:.1f}")
        results[name] = h
    console.print(table)
    return results


def _demo_planted(args, console) -> None:
    with console.status("generating a token video with planted moving objects"):
        video = planted_token_video(num_frames=args.frames, height=14, width=14, dim=args.dim,
                                    num_objects=args.objects, noise=args.noise, seed=args.seed)
    total = video.key_map.numel()
    console.print(f"[bold]1. Token video[/bold]: {args.frames} frames x 14 x 14 tokens of width {args.dim} = "
                  f"{total} tokens, {args.objects} moving objects over a background ({args.objects + 1} prototypes)")
    runs = [("fixed K=%d" % args.num_tokens, dict(num_tokens=args.num_tokens)),
            ("adaptive <=%.2f" % args.max_distortion, dict(max_distortion=args.max_distortion, max_tokens=64))]
    adaptive = _hash_table_rows(console, video.tokens, total, runs, args.seed)[runs[1][0]]
    frames = sorted({0, args.frames // 2, args.frames - 1})
    console.print(f"key map of the adaptive table (one symbol per table row; '.' is row 0) "
                  f"at frames {frames}, planted objects below:")
    for key_map in (adaptive.key_map[0], video.key_map):
        for row in range(key_map.shape[1]):
            console.print("   ".join("".join(_SYMBOLS[int(v) % len(_SYMBOLS)] for v in key_map[t, row])
                                     for t in frames), highlight=False)
        console.print()


def patch_tokens(frames: torch.Tensor, grid: int = 14, detail: int = 4) -> torch.Tensor:
    """Pixel tokens of a video: ``uint8 [T, H, W, 3]`` -> ``[T, grid, grid, 3 * detail^2]``, each cell of a
    ``grid x grid`` split of the frame average-pooled to ``detail x detail`` colours."""
    x = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float() / 255, size=(grid * detail,) * 2,
                                        mode="area")
    t = x.shape[0]
    cells = x.view(t, 3, grid, detail, grid, detail).permute(0, 2, 4, 1, 3, 5)
    return cells.reshape(t, grid, grid, -1) - 0.5


def _demo_source(args, console):
    """The demo's real video: ``--video`` (with ``--question``/``--options``) or a generated MotionQA video
    at the built-in model's size. Returns ``(frames uint8 [T, H, W, 3], QAItems, description)``."""
    if args.video:
        frames = read_video(args.video, min(32, count_frames(args.video)))  # no repeats for a short clip
        items = [QAItem(args.video, args.question, tuple(args.options), 0)] if args.question else []
        return frames, items, args.video
    with console.status("generating a MotionQA video"):
        raw, _, items = make_video(10 * args.seed + 9, MotionQAConfig(**DATA))  # a test-split video
    return torch.from_numpy(raw), items, "a generated MotionQA video (test split)"


def _demo_video(args, console, frames, about, items) -> None:
    tokens = patch_tokens(frames)
    total = tokens.shape[0] * 14 * 14
    console.print(f"[bold]2. Pixel video[/bold]: {about}, {tokens.shape[0]} frames, 14 x 14 patches "
                  f"(their colours as tokens) = {total} tokens")
    runs = [("fixed K=%d" % args.num_tokens, dict(num_tokens=args.num_tokens)),
            ("adaptive <=%.2f" % args.max_distortion, dict(max_distortion=args.max_distortion, max_tokens=64))]
    h = _hash_table_rows(console, tokens, total, runs, args.seed)[runs[0][0]]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = save_keymap_png(out / "keymap.png", frames, h.key_map[0])
    gif = save_keymap_gif(out / "keymap.gif", frames, h.key_map[0])
    console.print(f"key map of the fixed table over the frames: {png} and {gif}")


def _demo_model(args, console, frames, items) -> None:
    """The built-in model answers with full tokens and with Token Dynamics at 8 tokens."""
    if "token_dynamics-8" not in variants():
        console.print("the built-in model is not installed with this package: skipping the question answering")
        return
    cases = [(frames, items)]
    if not args.video:  # three more test-split videos
        config = MotionQAConfig(**DATA)
        cases += [(torch.from_numpy(v), its) for v, _, its in
                  (make_video(10 * (args.seed + j) + 9, config) for j in range(1, 4))]
    with console.status("loading the built-in model"):
        models = {"full tokens": load_builtin("full").eval(), "Token Dynamics": load_builtin("token_dynamics-8").eval()}
    table = Table(title="3. The built-in model (MotionQA-trained, 8.4 M parameters) answers")
    for column in ("question", "truth", *models):
        table.add_column(column)
    right, seconds, tokens, picks = dict.fromkeys(models, 0), dict.fromkeys(models, 0.0), {}, []
    for video, questions in cases:
        clip = video[uniform_indices(len(video), FRAMES)]
        for item in questions:
            row = [escape(item.question), escape(item.options[item.answer]) if not args.video else "?"]
            for name, model in models.items():
                start = time.perf_counter()
                choice = model.choose([clip], [item.question], [list(item.options)])  # as the model was trained
                seconds[name] += time.perf_counter() - start
                tokens[name] = choice.visual_tokens[0]
                pick = choice.picks[0]
                if name == "Token Dynamics":
                    picks.append(pick)
                right[name] += pick == item.answer
                row.append(escape(item.options[pick]))
            table.add_row(*row)
    console.print(table)
    n = sum(len(q) for _, q in cases)
    for name in models:
        score = "" if args.video else f"{right[name]} of {n} right, "
        console.print(f"  {name}: {score}{tokens.get(name, 0)} visual tokens per video "
                      f"({100 * tokens.get(name, 0) / max(tokens.get('full tokens', 1), 1):.1f}% of full), "
                      f"{1000 * seconds[name] / max(n, 1):.0f} ms per question")
    if not args.video:
        console.print("  (on the full test split: 77.5% with full tokens, 76.4% with Token Dynamics at 8 tokens "
                      "trained with the LLM (80.1% for full tokens trained the same steps), chance 20%; "
                      "direction 80% and 83%: see BENCHMARKS.md)")
    video, questions = cases[0]
    _demo_leaning(args, console, models["Token Dynamics"], video[uniform_indices(len(video), FRAMES)], questions,
                  picks[:len(questions)])


def _demo_leaning(args, console, model, clip, items, picks) -> None:
    """Pictures of which table rows Token Dynamics' answers leaned on: the cells of each row lit by the
    attention the answer paid to that row (``answer_attention``), one PNG per question."""
    with torch.no_grad():
        key_map = model.reducer(model.video_features([clip])[0][None]).hash.key_map[0]
        visual = model.video_tokens([clip])  # reduced once for every question
    for n, (item, pick) in enumerate(zip(items, picks), 1):
        shares = model.answer_attention(None, [item.question], [item.options[pick]], visual=visual)[0]
        path = save_weights_png(Path(args.out) / f"answer_rows_q{n}.png", clip, key_map, shares)
        top = int(shares.argmax())
        console.print(f"  Q{n} answer {escape(item.options[pick])!r} leaned most on table row {top} "
                      f"({100 * float(shares[top]):.0f}% of its attention to the video, "
                      f"{int((key_map == top).sum())} cells): {path}")
