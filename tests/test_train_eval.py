"""End to end: train and eval on a generated MotionQA split with a tiny LLaVA-OneVision, on CPU, in one
process and in two (torchrun, gloo)."""

import json
import subprocess
import sys

import pytest
import torch

import tokendynamics as td

from tokendynamics.cli import main
from tokendynamics.data import load_qa
from tokendynamics.data.motionqa import generate_motionqa
from tokendynamics.evaluate import EvalConfig, evaluate, wilson
from tokendynamics.models import CompressedLlavaOnevision, build_llava_onevision, multiple_choice
from tokendynamics.train import TrainConfig, train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    generate_motionqa(root / "mqa", num_videos=20, seed=0, num_frames=16, size=64, arrays=True, workers=1,
                      progress=False)
    items = load_qa(root / "mqa" / "train.jsonl")
    host = build_llava_onevision(root / "host", [multiple_choice(i.question, i.options) for i in items])
    return root, host


def _train_cfg(root, host, output, **kw):
    base = dict(model=str(host), data=str(root / "mqa/train.jsonl"), video_root=str(root / "mqa"),
                output=str(output), compressor="token_dynamics", num_tokens=4, frames=8, batch_size=4,
                steps=6, lr=1e-2, warmup=0, save_every=2, log_every=1, workers=0)
    return TrainConfig(**(base | kw))


def _losses(output):
    return [entry["loss"] for entry in json.loads((output / "train_summary.json").read_text())["log"]]


def _torchrun(args, cwd):
    # --standalone: torchrun picks its own free rendezvous port (no race with a port chosen here)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tokendynamics.cli", *args]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"


def test_train_saves_a_model_that_loads_and_evaluates(setup):
    root, host = setup
    summary = train(_train_cfg(root, host, root / "run"))
    assert summary["steps"] == 6 and len(summary["log"]) == 6 and summary["skipped_videos"] == 0
    model = CompressedLlavaOnevision.from_pretrained(root / "run" / "model")
    assert model.reducer.name == "token_dynamics" and model.reducer.num_tokens == 4
    alone = td.TokenDynamics.from_pretrained(root / "run" / "model")  # one save format: the module loads alone
    assert all(torch.equal(v, model.reducer.model.state_dict()[k]) for k, v in alone.state_dict().items())
    report = evaluate(EvalConfig(model=str(root / "run" / "model"), data=str(root / "mqa/test.jsonl"),
                                 video_root=str(root / "mqa"), frames=8, batch_size=3, workers=0,
                                 output=str(root / "report.json")))
    assert report["overall"]["n"] == 4 and report["visual_tokens"]["mean"] == 5  # 4 tokens + newline
    assert report["visual_tokens"]["full_mean"] == 8 * 2 * 2 + 1
    assert set(report["per_type"]) == {i.type for i in load_qa(root / "mqa/test.jsonl")}
    assert json.loads((root / "report.json").read_text())["overall"] == report["overall"]
    generated = evaluate(EvalConfig(model=str(root / "run" / "model"), data=str(root / "mqa/test.jsonl"),
                                    video_root=str(root / "mqa"), frames=8, workers=0, mode="generate"))
    assert all(isinstance(r["text"], str) for r in generated["records"])  # what was generated, beside the pick


def test_a_stopped_run_resumes_to_the_uninterrupted_result(setup):
    root, host = setup
    train(_train_cfg(root, host, root / "whole"))
    train(_train_cfg(root, host, root / "parts", stop_after=3))
    assert len(_losses(root / "parts")) == 3 and not (root / "parts" / "model").exists()
    saved = root / "parts" / "checkpoint"
    assert json.loads((saved / "loop_state.json").read_text())["step"] == 3
    from accelerate.utils.other import load  # torch.load with weights_only and numpy's arrays allowed
    for pickled in [p for p in saved.iterdir() if p.suffix in (".pkl", ".bin", ".pt")]:
        load(pickled, weights_only=True)  # every pickle of a checkpoint loads without running code
    assert not list(saved.glob("custom_checkpoint_*"))
    train(_train_cfg(root, host, root / "parts"))
    assert _losses(root / "parts") == _losses(root / "whole")
    a = CompressedLlavaOnevision.from_pretrained(root / "whole" / "model").reducer.state_dict()
    b = CompressedLlavaOnevision.from_pretrained(root / "parts" / "model").reducer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_with_other_settings_is_not_resumed_unless_asked(setup, tmp_path):
    root, host = setup
    out = tmp_path / "run"
    train(_train_cfg(root, host, out, steps=2))
    with pytest.raises(ValueError, match=r"other settings \(num_tokens 4 -> 6; lr 0.01 -> 0.001\).*--resume.*--overwrite"):
        train(_train_cfg(root, host, out, steps=2, num_tokens=6, lr=1e-3))
    train(_train_cfg(root, host, out, steps=2, workers=0, log_every=2))  # how it runs may change
    train(_train_cfg(root, host, out, steps=3, existing="resume"))  # one more step, with these settings
    assert len(_losses(out)) == 3
    train(_train_cfg(root, host, out, steps=2, num_tokens=6, existing="overwrite"))
    assert len(_losses(out)) == 2 and json.loads((out / "train_config.json").read_text())["num_tokens"] == 6
    assert main(["train", "--model", str(host), "--data", str(root / "mqa/train.jsonl"), "--video-root",
                 str(root / "mqa"), "--reducer", "token_dynamics", "--num-tokens", "5", "--frames", "8",
                 "--workers", "0", "--output", str(out)]) == 2  # one line naming the settings


def test_two_processes_match_one(setup, tmp_path):
    root, host = setup
    common = ["--model", str(host), "--video-root", str(root / "mqa"), "--frames", "8", "--workers", "0"]
    train(_train_cfg(root, host, tmp_path / "one", steps=4))
    _torchrun(["train", *common, "--data", str(root / "mqa/train.jsonl"), "--compressor", "token_dynamics",
               "--num-tokens", "4", "--output", str(tmp_path / "two"), "--steps", "4", "--batch-size", "4",
               "--lr", "1e-2", "--warmup", "0", "--log-every", "1"], tmp_path)
    assert json.loads((tmp_path / "two" / "train_summary.json").read_text())["processes"] == 2
    torch.testing.assert_close(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-3, atol=1e-3)
    args = ["eval", *common, "--model", str(tmp_path / "one" / "model"), "--data", str(root / "mqa/train.jsonl"),
            "--batch-size", "3"]
    assert main(args[:1] + args[1:] + ["--output", str(tmp_path / "r1.json")]) == 0
    _torchrun(args + ["--output", str(tmp_path / "r2.json")], tmp_path)
    one, two = (json.loads((tmp_path / f"r{n}.json").read_text()) for n in (1, 2))
    assert two["processes"] == 2 and one["overall"] == two["overall"] and one["per_type"] == two["per_type"]
    assert [r["pick"] for r in one["records"]] == [r["pick"] for r in two["records"]]


def test_bad_settings_are_refused(setup, tmp_path):
    root, host = setup
    with pytest.raises(ValueError, match="nothing to train"):
        train(_train_cfg(root, host, tmp_path / "x", compressor="uniform_pool", train_projector=False,
                         llm="frozen"))
    with pytest.raises(ValueError, match="larger than the dataset"):
        train(_train_cfg(root, host, tmp_path / "y", batch_size=64))
    with pytest.raises(ValueError, match="mode must be one of"):
        EvalConfig(model="m", data="d", video_root="v", mode="vote")
    assert main(["train", "--model", str(host), "--data", "d", "--video-root", "v", "--compressor", "tome",
                 "--output", str(tmp_path / "z"), "--option", "novalue"]) == 2


def test_wilson_interval():
    assert wilson(0, 0) == [0.0, 0.0]
    low, high = wilson(50, 100)
    assert low < 0.5 < high and abs((0.5 - low) - (high - 0.5)) < 1e-3


def test_lora_adapters_are_trained_and_merged_into_the_saved_model(setup, tmp_path):
    root, host = setup
    train(_train_cfg(root, host, tmp_path / "lora", compressor="uniform_pool", steps=2, llm="lora", lora_rank=4,
                     train_projector=False))
    tuned = CompressedLlavaOnevision.from_pretrained(tmp_path / "lora" / "model", compressor="full")
    base = CompressedLlavaOnevision.from_pretrained(host, compressor="full")
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    tuned_q, base_q = tuned.host.state_dict()[q], base.host.state_dict()[q]
    assert not torch.equal(tuned_q, base_q)  # the adapters moved and were folded in
    proj = "model.multi_modal_projector.linear_1.weight"
    assert torch.equal(tuned.host.state_dict()[proj], base.host.state_dict()[proj])  # frozen stayed frozen
    assert not any("lora" in k for k in tuned.host.state_dict())


def test_text_target_trains_for_likelihood_scoring(setup, tmp_path):
    root, host = setup
    summary = train(_train_cfg(root, host, tmp_path / "text", steps=2, target="text", llm="full"))
    assert summary["steps"] == 2
    report = evaluate(EvalConfig(model=str(tmp_path / "text" / "model"), data=str(root / "mqa/test.jsonl"),
                                 video_root=str(root / "mqa"), frames=8, workers=0, mode="likelihood"))
    assert report["overall"]["n"] == 4
    with pytest.raises(ValueError, match="target must be"):
        _train_cfg(root, host, tmp_path / "bad", target="word")


def test_stage0_targets_and_a_vision_pretraining_step(setup, tmp_path):
    import shutil

    from tokendynamics.data.motionqa import COLOURS
    from tokendynamics.pretrain import frame_targets, pretrain_vision

    root, host = setup
    scene = json.loads((root / "mqa" / "train_scenes.jsonl").read_text().splitlines()[0])
    present, centre = frame_targets(scene, 16)
    colours = list(COLOURS)
    for obj in scene["objects"]:
        c = colours.index(obj["colour"])
        visible = [all(-obj["radius"] < v < 64 + obj["radius"] for v in xy) for xy in obj["track"]]
        assert present[:, c].tolist() == [float(v) for v in visible]
        assert torch.all((centre[:, c] >= 0) & (centre[:, c] <= 1))
    copy = shutil.copytree(host, tmp_path / "host")  # pretraining saves the tower back in place
    log = pretrain_vision(copy, root / "mqa", steps=2, videos_per_step=2, log_every=1)
    assert len(log) == 2 and all(entry["loss"] > 0 for entry in log)


@pytest.mark.gpu
def test_gpu_training_attention_gives_finite_gradients_at_the_cudnn_nan_length():
    """cuDNN's SDPA backward gave NaN query gradients at sequence lengths 64 mod 128 with a mask whose rows
    are all very negative (left-padding rows; torch 2.11, H100); the kernels training uses agree with the
    reference (math, float32) there."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tokendynamics.train import TRAINING_ATTENTION

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    g = torch.Generator(device="cuda").manual_seed(0)
    qkv = [torch.randn(2, 4, 704, 64, device="cuda", generator=g) for _ in range(3)]
    mask = torch.zeros(704, 704, device="cuda").masked_fill(torch.ones(704, 704, device="cuda").triu(1).bool(), -1e4)
    mask[:10] = -1e4  # padding rows: every key masked

    def grads(backends, dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in qkv]
        with sdpa_kernel(backends):
            out = torch.nn.functional.scaled_dot_product_attention(*leaves, attn_mask=mask.to(dtype))
        out.float()[:, :, 10:].sum().backward()
        return [t.grad.float() for t in leaves]

    reference = grads([SDPBackend.MATH], torch.float32)
    for got, want in zip(grads(TRAINING_ATTENTION, torch.bfloat16), reference):
        assert torch.isfinite(got).all()
        assert torch.allclose(got[:, :, 10:], want[:, :, 10:], atol=0.05, rtol=0.05)


def test_the_llm_trains_by_default_and_the_recipe_is_saved(setup, tmp_path):
    from tokendynamics.models.builtin import apply_stage2, save_stage2
    from tokendynamics.models.recipe import load_recipe

    root, host = setup
    train(_train_cfg(root, host, tmp_path / "run", steps=2, lora_rank=4, target="text"))
    saved = tmp_path / "run" / "model"
    recipe = load_recipe(saved)
    assert recipe["llm"] == "lora" and recipe["frames"] == 8 and recipe["answer_mode"] == "likelihood"
    assert recipe["data"] == str(root / "mqa/train.jsonl") and "from" not in recipe  # the host has no recipe
    train(_train_cfg(root, str(saved), tmp_path / "again", steps=1, lora_rank=4))  # a run from that model
    assert load_recipe(tmp_path / "again" / "model")["from"] == recipe  # records the chain
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    merged = CompressedLlavaOnevision.from_pretrained(saved).eval()
    base = CompressedLlavaOnevision.from_pretrained(host, compressor="full")
    q = "model.language_model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(merged.host.state_dict()[q], base.host.state_dict()[q])  # MLP adapters too
    # what ships (reducer, projector, adapters, recipe) rebuilds the merged model on its stage-1 host
    save_stage2(merged, tmp_path / "stage2", tmp_path / "run" / "adapter")
    rebuilt = apply_stage2(base, tmp_path / "stage2").eval()
    assert rebuilt.recipe == recipe
    video = torch.randint(0, 255, (8, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        want = merged([video], ["What moves?"]).logits
        got = rebuilt([video], ["What moves?"]).logits
    torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)  # adapters shipped in bfloat16
    # evaluation takes the frames and the scoring from the recipe
    report = evaluate(EvalConfig(model=str(saved), data=str(root / "mqa/test.jsonl"), video_root=str(root / "mqa"),
                                 workers=0))
    assert report["config"]["frames"] == 8 and report["config"]["mode"] == "likelihood"


def test_frozen_llm_is_the_ablation(setup, tmp_path):
    root, host = setup
    train(_train_cfg(root, host, tmp_path / "frozen", steps=2, llm="frozen"))
    tuned = CompressedLlavaOnevision.from_pretrained(tmp_path / "frozen" / "model")
    base = CompressedLlavaOnevision.from_pretrained(host, compressor="full")
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(tuned.host.state_dict()[q], base.host.state_dict()[q])
    assert not (tmp_path / "frozen" / "adapter").exists()
    with pytest.raises(ValueError, match="llm must be one of"):
        _train_cfg(root, host, tmp_path / "bad", llm="half")


def test_a_frozen_tower_stays_and_mirrored_videos_train(setup, tmp_path):
    root, host = setup
    train(_train_cfg(root, host, tmp_path / "tower", steps=2, llm="full", vision_lr_scale=0, augment="flip",
                     compressor="full", num_tokens=None))
    tuned = CompressedLlavaOnevision.from_pretrained(tmp_path / "tower" / "model").host.state_dict()
    base = CompressedLlavaOnevision.from_pretrained(host, compressor="full").host.state_dict()
    tower = [k for k in base if ".vision_tower." in k]
    assert tower and all(torch.equal(tuned[k], base[k]) for k in tower)
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tuned[q], base[q])
    recipe = json.loads((tmp_path / "tower" / "model" / "tokendynamics_recipe.json").read_text())
    assert recipe["augment"] == "flip" and recipe["vision_lr_scale"] == 0
    with pytest.raises(ValueError, match="augment must be one of"):
        _train_cfg(root, host, tmp_path / "bad", augment="rotate")


def test_cli_llm_flags(setup, tmp_path):
    root, host = setup
    common = ["train", "--model", str(host), "--data", str(root / "mqa/train.jsonl"), "--video-root",
              str(root / "mqa"), "--reducer", "uniform_pool", "--frames", "8", "--workers", "0", "--steps", "1",
              "--batch-size", "2", "--warmup", "0"]
    assert main(common + ["--freeze-llm", "--augment", "hflip", "--lr", "0.003", "--output", str(tmp_path / "a")]) == 0
    recipe = json.loads((tmp_path / "a" / "model" / "tokendynamics_recipe.json").read_text())
    assert (recipe["llm"], recipe["augment"], recipe["lr"], recipe["frames"]) == ("frozen", "hflip", 0.003, 8)
    assert recipe["compressor"] == "uniform_pool" and recipe["num_tokens"] == 8
    with pytest.raises(SystemExit):
        main(common + ["--freeze-llm", "--full-finetune", "--output", str(tmp_path / "b")])


def test_frame_cache_gives_the_frames_of_the_files(setup, tmp_path):
    from tokendynamics.data import QADataset

    root, _ = setup
    plain = QADataset(root / "mqa/train.jsonl", root / "mqa", 8, prefer_arrays=True)
    cached = QADataset(root / "mqa/train.jsonl", root / "mqa", 8, prefer_arrays=True, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("frames-*.npy"))) == 2  # the frames and the rows
    for i in range(len(plain)):
        assert torch.equal(plain[i]["frames"], cached[i]["frames"])
    again = QADataset(root / "mqa/train.jsonl", root / "mqa", 8, prefer_arrays=True, cache_dir=tmp_path)
    assert again.cache[0] == cached.cache[0]  # built once, then mapped
    other = QADataset(root / "mqa/train.jsonl", root / "mqa", 4, prefer_arrays=True, cache_dir=tmp_path)
    assert other.cache[0] != cached.cache[0] and other[0]["frames"].shape[0] == 4


def test_models_load_by_name(tmp_path):
    from tokendynamics.models import load_model

    with pytest.raises(FileNotFoundError, match="is not a directory, a hub name"):
        load_model(str(tmp_path / "missing" / "model"))
    with pytest.raises(ValueError, match="unknown built-in variant 'nope'; shipped: full, token_dynamics-8"):
        load_model("builtin:nope")
    model = load_model("builtin:token_dynamics-8")
    assert model.reducer.name == "token_dynamics" and model.recipe["llm"] == "lora"
    assert load_model("builtin", "tome", 4).reducer.name == "tome"


def test_dense_patch_labels_and_the_position_and_dense_stage0(setup, tmp_path):
    import shutil

    from tokendynamics.data.motionqa import COLOURS, SHAPES
    from tokendynamics.models.builtin import build_host
    from tokendynamics.models.recipe import load_recipe
    from tokendynamics.pretrain import patch_labels, pretrain_vision

    root, host = setup
    scene = dict(size=64, objects=[dict(shape="square", colour="red", size="large", radius=16.0, kind="static",
                                        track=[[16.0, 16.0]] * 3)])
    colour, shape = patch_labels(scene, 3, 4)  # 16 px patches: the square covers the top-left 2 x 2 of 4 x 4
    grid = colour.reshape(3, 4, 4)
    assert (grid[:, :2, :2] == list(COLOURS).index("red")).all() and (grid[:, 2:] == len(COLOURS)).all()
    assert (shape.reshape(3, 4, 4)[:, :2, :2] == list(SHAPES).index("square")).all()
    copy = shutil.copytree(host, tmp_path / "host")
    log = pretrain_vision(copy, root / "mqa", steps=2, videos_per_step=2, log_every=1, dense=True, position=True,
                          balanced=True)
    assert len(log) == 2 and all(entry["loss"] > 0 and 0 <= entry["object_shape_accuracy"] <= 1 for entry in log)
    assert load_recipe(copy)["stage0"] == dict(steps=2, videos_per_step=2, lr=1e-3, seed=0, dense=True,
                                               balanced=True, position=True, data=str(root / "mqa"))
    with pytest.raises(ValueError, match="give dense=True"):
        pretrain_vision(copy, root / "mqa", steps=1, balanced=True)
    with pytest.raises(ValueError, match="unknown architecture field"):
        build_host(tmp_path / "bad", image_sise=224)


def test_balanced_dense_loss_weighs_object_patches_as_much_as_the_background():
    import math

    from tokendynamics.data.motionqa import COLOURS, SHAPES
    from tokendynamics.pretrain import _dense_loss, _shape_accuracy

    colours, shapes = len(COLOURS) + 1, len(SHAPES) + 1
    colour = torch.full((1, 8), len(COLOURS))  # 8 patches: 2 on a red square, 6 background
    shape = torch.full((1, 8), len(SHAPES))
    colour[0, :2], shape[0, :2] = 0, 1
    logits = torch.zeros(1, 8, colours + shapes)  # uniform on the object patches ...
    logits[0, 2:, colours - 1] = logits[0, 2:, -1] = 100.0  # ... and sure of the background elsewhere
    uniform = math.log(colours) + math.log(shapes)
    assert _dense_loss(logits, colour, shape, False) == pytest.approx(uniform * 2 / 8, rel=1e-5)
    assert _dense_loss(logits, colour, shape, True) == pytest.approx(uniform / 2, rel=1e-5)
    logits[0, 0, colours + 1] = 5.0  # the first object patch's shape now right, the second's not
    assert _shape_accuracy(logits, shape) == 0.5


def test_errors_are_one_line_even_from_worker_processes(setup, tmp_path, capsys):
    root, host = setup
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    row = dict(video="broken.mp4", question="What moves?", options=["a", "b"], answer=0)
    (tmp_path / "qa.jsonl").write_text(json.dumps(row) + "\n")
    common = ["--model", str(host), "--data", str(tmp_path / "qa.jsonl"), "--video-root", str(tmp_path),
              "--frames", "8", "--workers", "2"]
    assert main(["eval", *common, "--reducer", "full", "--batch-size", "1"]) == 2
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0] and errors[0].endswith("(--skip-bad skips unreadable videos)")
    assert main(["eval", *common[:2], "--data", str(tmp_path / "none.jsonl"), *common[4:]]) == 2
    assert "none.jsonl" in capsys.readouterr().out
    assert main(["eval", "--model", str(tmp_path / "nowhere"), *common[2:]]) == 2
    assert "nowhere" in capsys.readouterr().out


def test_ctrl_c_says_where_the_checkpoint_is(setup, tmp_path, monkeypatch, capsys):
    import tokendynamics.train as training

    root, host = setup
    train(_train_cfg(root, host, tmp_path / "run", steps=2, save_every=2))
    calls = []

    def interrupt(*args):
        calls.append(1)
        if len(calls) > 1:  # the second step of the resumed run
            raise KeyboardInterrupt
        return original(*args)
    original = training._loss
    monkeypatch.setattr(training, "_loss", interrupt)
    args = ["train", "--model", str(host), "--data", str(root / "mqa/train.jsonl"), "--video-root", str(root / "mqa"),
            "--reducer", "token_dynamics", "--num-tokens", "4", "--frames", "8", "--workers", "0", "--batch-size", "4",
            "--lr", "1e-2", "--warmup", "0", "--save-every", "2", "--log-every", "1", "--steps", "6",
            "--output", str(tmp_path / "run"), "--resume"]
    assert main(args) == 130
    out = capsys.readouterr().out
    assert "interrupted at step 3" in out and "holds step 2" in out and "run the same command again" in out, out


def test_an_unreadable_checkpoint_falls_back_to_the_previous_one(setup, tmp_path, capsys):
    root, host = setup
    out = tmp_path / "run"
    train(_train_cfg(root, host, out, steps=6, stop_after=4, save_every=2))  # checkpoints at steps 2 and 4
    assert (out / "checkpoint.previous").is_dir()
    weights = out / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])  # truncated
    train(_train_cfg(root, host, out, steps=6, save_every=2))
    printed = capsys.readouterr().out
    assert "cannot be read" in printed and "resumed at step 2" in printed, printed
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 6
    for name in ("checkpoint", "checkpoint.previous"):
        (out / name / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"checkpoint .*previous .* cannot be read; --overwrite starts over"):
        train(_train_cfg(root, host, out, steps=8, save_every=2, existing="resume"))


def test_training_on_rendered_videos_and_on_some_types_only(setup, tmp_path, capsys):
    root, host = setup
    summary = train(_train_cfg(root, host, tmp_path / "rendered", data=None, video_root=None, rendered_seed=5,
                               rendered_size=64, types=["direction", "count"], steps=2, compressor="full",
                               num_tokens=None))
    assert summary["steps"] == 2
    config = json.loads((tmp_path / "rendered" / "train_config.json").read_text())
    assert config["rendered_seed"] == 5 and config["types"] == ["direction", "count"]
    from tokendynamics.train import training_data
    cached = training_data(_train_cfg(root, host, tmp_path / "x", types=["direction"]))
    assert len(cached) and {cached[i]["type"] for i in range(len(cached))} == {"direction"}
    with pytest.raises(ValueError, match="not both"):
        _train_cfg(root, host, tmp_path / "y", rendered_seed=5)
    with pytest.raises(ValueError, match="holds no question of types"):
        training_data(_train_cfg(root, host, tmp_path / "z", types=["nothing"]))
    assert main(["train", "--model", str(host), "--reducer", "full", "--output", str(tmp_path / "w")]) == 2
    assert "--rendered-seed" in "".join(capsys.readouterr())
    weighted = ["train", "--model", str(host), "--reducer", "full", "--output", str(tmp_path / "v"), "--frames", "8",
                "--rendered-seed", "5", "--rendered-size", "64", "--type-weight", "direction=3", "--steps", "1",
                "--batch-size", "2", "--workers", "0"]
    assert main(weighted) == 0
    assert json.loads((tmp_path / "v" / "train_config.json").read_text())["type_weights"] == {"direction": 3}
    assert main(weighted[:-6] + ["--type-weight", "direction=x"]) == 2
    with pytest.raises(ValueError, match="needs rendered_seed"):
        _train_cfg(root, host, tmp_path / "u", type_weights={"direction": 3})
