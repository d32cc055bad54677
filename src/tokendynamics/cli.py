"""The ``tokendynamics`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys

import torch
from rich.console import Console
from rich.table import Table

from . import __version__
from .data.motionqa.spec import BACKGROUNDS
from .models.prompts import SCORING_MODES

def _positive(text: str) -> int:
    """argparse type: an integer >= 1 (the message names what was expected and what came)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each flag's default, unless its help already says it or there is none."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _interval(low: float, high: float) -> str:
    """A 95% interval as printed: ``0.000 to 0.278`` (no minus sign on a rounded zero)."""
    return f"{max(low, 0.0):.3f} to {min(high, 1.0):.3f}"


def _demo(args: argparse.Namespace, console: Console) -> None:
    from .demo import run_demo

    run_demo(args, console)


def _motionqa(args: argparse.Namespace, console: Console) -> None:
    """Generate MotionQA (or ChangeQA) and print its tally per split, or write its lmms-eval tasks."""
    if args.action == "lmms-task":
        from .integrations.lmms_tasks import write_tasks

        for path in write_tasks(args.data_dir, args.task_dir, args.name, args.split):
            console.print(f"wrote {path}")
        return
    if args.command == "changeqa":
        from .data.changeqa import generate_changeqa as generate
        own = {}
    else:
        from .data.motionqa import generate_motionqa as generate
        own = dict(backgrounds=args.backgrounds)
    stats = generate(args.out_dir, args.num_videos, seed=args.seed, num_frames=args.frames, size=args.size,
                     fps=args.fps, arrays=args.arrays or args.no_mp4, mp4=not args.no_mp4, workers=args.workers,
                     **own)
    table = Table(title=f"{'ChangeQA' if args.command == 'changeqa' else 'MotionQA'} in {args.out_dir}")
    for column in ("split", "videos", "questions", "question types", "answer positions (chi2)"):
        table.add_column(column)
    for split, s in stats["splits"].items():
        answers = s["answers"]
        table.add_row(split, str(s["videos"]), str(s["questions"]),
                      ", ".join(f"{k} {v}" for k, v in s["types"].items()),
                      f"{answers['positions']} ({answers['chi2']}{'' if answers['balanced'] else ', UNBALANCED'})")
    console.print(table)


def _generator_args(gen: argparse.ArgumentParser, size: int) -> None:
    """The flags of a QA set's ``generate``."""
    gen.add_argument("out_dir", metavar="OUT_DIR")
    gen.add_argument("--num-videos", type=_positive, default=1000)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--frames", type=_positive, default=32)
    gen.add_argument("--size", type=_positive, default=size, help="frame side in pixels (even)")
    gen.add_argument("--fps", type=_positive, default=8)
    gen.add_argument("--arrays", action="store_true", help="also write each video's frames as a .npz archive")
    gen.add_argument("--no-mp4", action="store_true", help="frame archives only (implies --arrays; no PyAV needed)")
    gen.add_argument("--workers", type=_positive, default=None, help="processes (default: every core)")


def _video_question_args(p: argparse.ArgumentParser, video_help: str) -> None:
    p.add_argument("--video", help=video_help)
    p.add_argument("--question", help="with --video: a question for the model")
    p.add_argument("--options", nargs="+", help="with --question: the answer options")


def _model_args(p: argparse.ArgumentParser, required_compressor: bool, training: bool = False) -> None:
    p.add_argument("--model", required=True, help="a checkpoint of a supported host (LLaVA-OneVision): a "
                   "directory, a hub name, or a built-in model ('builtin', 'builtin:token_dynamics-8')")
    p.add_argument("--data", required=not training, help="QA JSON Lines" + (" (or --rendered-seed)" if training else ""))
    p.add_argument("--video-root", required=not training, help="directory the videos' relative paths start from")
    p.add_argument("--reducer", "--compressor", dest="compressor", metavar="NAME", required=required_compressor,
                   help="a reducer of td.reducers or 'full'" + ("" if required_compressor else
                                                                   " (default: the one saved with the model)"))
    p.add_argument("--num-tokens", type=_positive, default=8 if training else None,
                   help="tokens kept per video (fixed length)" + ("" if training else "; default: the saved "
                                                                   "reducer's own, else 8"))
    p.add_argument("--max-distortion", type=float, help="adaptive length: distortion target (token_dynamics, "
                                                         "hash_table); replaces --num-tokens")
    p.add_argument("--max-tokens", type=_positive, help="adaptive length: most tokens per video")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a reducer option (value read as JSON where it parses), repeatable")
    p.add_argument("--frames", type=_positive, default=None,
                   help="frames sampled per video (default: the model's recipe, else 32)")
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable videos (counted) instead of stopping")
    p.add_argument("--no-arrays", action="store_true", help="decode videos even where .npz frames exist")
    p.add_argument("--frame-cache", metavar="DIR", help="keep every video's sampled frames in one array file in "
                   "DIR (built on first use, shared by runs side by side)")


def _pairs(items: list[str], flag: str, form: str) -> dict[str, str]:
    """``KEY=VALUE`` flag values as a dict of strings; one without a key or an ``=`` names the flag."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} must be {form}, got {item!r}")
        pairs[key] = value
    return pairs


def _reducer_settings(args) -> tuple[int | None, dict]:
    """(num_tokens, compressor options) from the flags."""
    options = {}
    for key, value in _pairs(args.option, "--option", "KEY=VALUE").items():
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if args.max_distortion is None:
        return args.num_tokens, options
    options["max_distortion"] = args.max_distortion
    if args.max_tokens:
        options["max_tokens"] = args.max_tokens
    return None, options


def _config(cls, args: argparse.Namespace, **values):
    """A ``cls`` config from the flags named as its fields, and ``values`` for the fields the command line
    spells another way (``--freeze-projector`` for ``train_projector``, the reducer's settings)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**given | values)


def _live(args, console: Console) -> None:
    from .live import LiveConfig, run_live

    run_live(_config(LiveConfig, args), console)


def _train(args, console: Console) -> None:
    from .train import TrainConfig, train

    num_tokens, options = _reducer_settings(args)
    form = "TYPE=W with a whole number W"
    weights = _pairs(args.type_weight, "--type-weight", form)
    for kind, value in weights.items():
        if not value.isdigit():
            raise ValueError(f"--type-weight must be {form}, got {f'{kind}={value}'!r}")
        weights[kind] = int(value)
    summary = train(_config(TrainConfig, args, num_tokens=num_tokens, compressor_options=options,
                            train_projector=not args.freeze_projector, prefer_arrays=not args.no_arrays,
                            type_weights=weights or None))
    if _is_main():
        console.print(f"trained {summary['steps']} steps, final loss {summary['final_loss']:.4f}; "
                      f"run in {args.output}")


def _eval(args, console: Console) -> None:
    from .evaluate import EvalConfig, evaluate

    num_tokens, options = _reducer_settings(args)
    report = evaluate(_config(EvalConfig, args, num_tokens=num_tokens, compressor_options=options,
                              prefer_arrays=not args.no_arrays))
    if report["processes"] > 1 and not _is_main():
        return
    table = Table(title=f"{report['reducer']['name']}: {report['overall']['n']} questions")
    for column in ("type", "n", "accuracy", "95% CI"):
        table.add_column(column)
    for name, block in [("overall", report["overall"]), *report["per_type"].items()]:
        table.add_row(name, str(block["n"]), f"{block['accuracy']:.3f}", _interval(*block["ci95"]))
    console.print(table)
    tokens = report["visual_tokens"]
    console.print(f"visual tokens per video: {tokens['mean']:.1f} of {tokens['full_mean']:.0f} "
                  f"({tokens['percent_of_full']:.2f}%); {report['questions_per_second']} questions/s")


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    """The ``tokendynamics`` command; returns its exit status. A process of a multi-process run (``torchrun``,
    ``accelerate launch``) ends here, once its output is flushed, without the interpreter's finalization:
    torch.distributed's gloo threads can outlive it there and abort the process (``terminate called without
    an active exception``) after its work is done and written, about once in 20 runs on a loaded machine."""
    code = _command(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def _command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="tokendynamics", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tokendynamics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    helpful = dict(formatter_class=_HelpWithDefaults)
    demo = sub.add_parser("demo", **helpful, help="hash a token video, then answer MotionQA questions with the built-in model, "
                          "full tokens against Token Dynamics; writes key-map and answer pictures")
    demo.add_argument("--frames", type=_positive, default=32)
    demo.add_argument("--dim", type=_positive, default=256, help="token width")
    demo.add_argument("--objects", type=int, default=4, help="moving objects in the generated video")
    demo.add_argument("--noise", type=float, default=0.005, help="noise per feature (unit-norm tokens)")
    demo.add_argument("--num-tokens", type=_positive, default=8, help="K for the fixed-length table")
    demo.add_argument("--max-distortion", type=float, default=0.1, help="target of the adaptive table")
    demo.add_argument("--seed", type=int, default=0)
    _video_question_args(demo, "a video file for the pixel demo (default: a generated MotionQA video)")
    demo.add_argument("--out", default="tokendynamics-demo", help="directory for the key-map pictures")
    live = sub.add_parser("live", **helpful, help="stream a video into a Token Dynamics model frame by frame, "
                          "answering a question along the way from the table so far")
    live.add_argument("--model", default="builtin:token_dynamics-8", help="a model with the token_dynamics reducer")
    _video_question_args(live, "a video file (default: a generated MotionQA video and its motion question)")
    live.add_argument("--every", type=_positive, default=2, help="answer after every N frames pushed")
    live.add_argument("--stride", type=_positive, help="push every N-th decoded frame (default: spread the "
                      "video over the frames the model was trained on)")
    live.add_argument("--seed", type=int, default=0, help="which generated video")
    live.add_argument("--refine", type=int, default=0, metavar="W",
                      help="keep the last W frames and refine the table with them after each answer")
    motionqa = sub.add_parser("motionqa", **helpful, help="the MotionQA benchmark")
    mq = motionqa.add_subparsers(dest="action", required=True)
    generate = mq.add_parser("generate", **helpful, help="generate MotionQA videos, questions and splits into "
                             "OUT_DIR")
    _generator_args(generate, 384)
    generate.add_argument("--backgrounds", choices=BACKGROUNDS, default="muted",
                          help="muted textures (the benchmark's) or wide: any level, plain ones too")
    task = mq.add_parser("lmms-task", **helpful, help="write lmms-eval tasks (likelihood and letter) for a QA "
                         "folder into TASK_DIR (use with lmms-eval's --include_path)")
    task.add_argument("data_dir", metavar="DATA_DIR", help="a folder holding SPLIT.jsonl and its videos")
    task.add_argument("task_dir", metavar="TASK_DIR")
    task.add_argument("--split", default="test")
    task.add_argument("--name", default="motionqa", help="task names: NAME_mc and NAME_letter")
    changeqa = sub.add_parser("changeqa", **helpful, help="ChangeQA, a second QA set: objects that change "
                              "where they stand (size, disappearing, colour) in other scenes")
    _generator_args(changeqa.add_subparsers(dest="action", required=True).add_parser(
        "generate", **helpful, help="generate ChangeQA videos, questions and splits into OUT_DIR"), 112)
    train = sub.add_parser("train", **helpful, help="fine-tune a host video LLM with a reducer on QA JSONL")
    _model_args(train, required_compressor=True, training=True)
    train.add_argument("--rendered-seed", type=int, metavar="SEED",
                       help="instead of --data: MotionQA's train split of SEED, each video rendered as it is "
                            "read, so that no question repeats")
    train.add_argument("--rendered-size", type=_positive, default=112, help="the rendered videos' side in pixels")
    train.add_argument("--rendered-backgrounds", choices=BACKGROUNDS, default="muted",
                       help="the rendered videos' backgrounds: muted textures or wide (any level, plain too)")
    train.add_argument("--types", nargs="+", metavar="TYPE", help="train on questions of these types only")
    train.add_argument("--type-weight", action="append", default=[], metavar="TYPE=W",
                       help="with --rendered-seed: questions of TYPE W times as often (a whole number), repeatable")
    train.add_argument("--output", required=True, help="run directory: checkpoint, logs, final model/")
    train.add_argument("--batch-size", type=_positive, default=8, help="global batch (split across processes)")
    train.add_argument("--grad-accum", type=_positive, default=1)
    train.add_argument("--steps", type=_positive, default=1000, help="optimiser steps")
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--warmup", type=int, default=50)
    llm = train.add_mutually_exclusive_group()
    llm.add_argument("--lora", dest="llm", action="store_const", const="lora",
                     help="train LoRA adapters on the LLM with the reducer and the projector (the default)")
    llm.add_argument("--full-finetune", dest="llm", action="store_const", const="full",
                     help="train every weight: vision tower, projector, reducer and LLM")
    llm.add_argument("--freeze-llm", dest="llm", action="store_const", const="frozen",
                     help="train the reducer and the projector alone (an ablation; older releases' default)")
    train.set_defaults(llm="lora")
    train.add_argument("--lora-rank", type=_positive, default=16)
    train.add_argument("--vision-lr-scale", type=float, default=1.0,
                       help="with --full-finetune: the vision tower's learning rate as a share of --lr (0 freezes it)")
    train.add_argument("--freeze-projector", action="store_true")
    train.add_argument("--augment", choices=["hflip", "flip"], default=None,
                       help="mirror training videos at random (left-right; flip: also top-bottom), swapping "
                            "left/right (up/down, top/bottom) in their questions and options")
    train.add_argument("--target", choices=["letter", "text"], default=None,
                       help="train to answer with the option letter, or with the option text (score with "
                            "eval --mode likelihood); default: the starting model's recipe, else letter")
    train.add_argument("--save-every", type=_positive, default=100, help="checkpoint interval (steps)")
    train.add_argument("--log-every", type=_positive, default=10)
    train.add_argument("--stop-after", type=_positive, help="run at most N steps now, then checkpoint and exit")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", dest="existing", action="store_const", const="resume",
                       help="continue the run in --output even where its saved settings differ from these")
    again.add_argument("--overwrite", dest="existing", action="store_const", const="overwrite",
                       help="delete the run in --output and start over")
    train.set_defaults(existing="check")
    train.add_argument("--seed", type=int, default=0)
    evaluate = sub.add_parser("eval", **helpful, help="evaluate a model with a reducer on QA JSONL")
    _model_args(evaluate, required_compressor=False)
    evaluate.add_argument("--batch-size", type=_positive, default=8)
    evaluate.add_argument("--mode", choices=SCORING_MODES, default=None,
                          help="how answers are scored (default: what the model was trained for, else letter)")
    evaluate.add_argument("--output", help="JSON report path")
    evaluate.add_argument("--limit", type=_positive, help="first N questions only")
    evaluate.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo" and bool(args.question) != bool(args.options):
        parser.error("--question and --options go together")
    console = Console()
    torch.manual_seed(getattr(args, "seed", 0))  # every command that draws takes --seed
    try:
        commands = {"demo": _demo, "live": _live, "motionqa": _motionqa, "changeqa": _motionqa, "train": _train,
                    "eval": _eval}
        commands[args.command](args, console)
    except (ValueError, TypeError, FileNotFoundError) as err:  # one line naming what is wrong
        console.print(f"[red]error:[/red] {_one_line(err, args.command)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt as err:
        console.print(f"[yellow]{err or 'interrupted'}[/yellow]", highlight=False, soft_wrap=True)
        return 130
    return 0


def _one_line(err: Exception, command: str) -> str:
    """The error's own message, without the worker traceback a data-loader process wraps it in, and the
    flag that gets past an unreadable video where there is one."""
    from .data.video import VideoError

    lines = [line for line in str(err).splitlines() if line.strip()]
    text = lines[-1] if lines else type(err).__name__
    text = re.sub(r"^[\w.]*(Error|Exception): ", "", text)  # "pkg.module.VideoError: ..." as re-raised
    if isinstance(err, VideoError) and command in ("train", "eval"):
        text += " (--skip-bad skips unreadable videos)"
    return text


if __name__ == "__main__":
    sys.exit(main())
