"""The suite every host passes (tiny random models of each, built from config, saved and loaded from
disk), then what is particular to the Qwen hosts: their vision path, their 3D positions, their own greedy
loop, and Qwen3-VL's timestamps and DeepStack features."""

import pytest
import torch

from tokendynamics.models import (HOSTS, CompressedQwen3VL, VideoRows, build_llava_onevision,
                                  build_qwen2_5_vl, build_qwen3_vl, from_pretrained, multiple_choice)
from tokendynamics.models.qwen import RowCells

QUESTION, OPTIONS = "What colour is the circle?", ["red", "blue", "green", "white", "cyan"]
CORPUS = [multiple_choice(QUESTION, OPTIONS), "Which object moves? red circle blue square"] * 4
BUILDERS = {"llava_onevision": build_llava_onevision, "qwen2_5_vl": build_qwen2_5_vl, "qwen3_vl": build_qwen3_vl}
QWEN = ("qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each host's tiny model, built once for the module and loaded afresh by every test."""
    paths = {}

    def host(name):
        if name not in paths:
            paths[name] = BUILDERS[name](tmp_path_factory.mktemp(name) / "host", CORPUS, seed=0)
        return paths[name]
    return host


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny(request, built):
    return built(request.param)


@pytest.fixture(scope="module", params=QWEN)
def qwen(request, built):
    return built(request.param)


@pytest.fixture(scope="module")
def qwen25(built):
    return built("qwen2_5_vl")


@pytest.fixture(scope="module")
def qwen3(built):
    return built("qwen3_vl")


def _videos(*frames, seed=0, size=(56, 84)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (t, *size, 3), generator=g, dtype=torch.uint8) for t in frames]


def _load(path, **kw):
    torch.manual_seed(0)
    return from_pretrained(path, **kw).eval()


def test_the_loader_picks_each_host(tiny):
    from tokendynamics.models.host import model_type

    assert type(_load(tiny, reducer="full")) is HOSTS[model_type(tiny)]
    assert {host.__name__ for host in HOSTS.values()} >= {"CompressedQwen2_5_VL", "CompressedQwen3VL"}


def test_generate_returns_text_and_choices_are_valid(tiny):
    model = _load(tiny, reducer="tome", num_tokens=4)
    videos = _videos(4, 4)
    answers = model.generate(videos, ["Describe the video."] * 2, max_new_tokens=4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    opts = [OPTIONS, OPTIONS[:3]]
    for mode in ("letter", "likelihood", "generate"):
        result = model.choose(videos, [QUESTION] * 2, opts, mode=mode)
        assert result.scores.shape == (2, 5) and result.picks[1] < 3
        assert result.visual_tokens == [4 + model.added_rows] * 2


@pytest.mark.parametrize("reducer, kw", [
    ("token_dynamics", dict(num_tokens=None, max_distortion=0.02, max_tokens=6, identity_init=False)),  # adaptive
    ("visionzip", dict(num_tokens=5)),
])
def test_result_does_not_depend_on_the_batch(tiny, reducer, kw):
    model = _load(tiny, reducer=reducer, **kw)
    videos = _videos(4, 6, 3, seed=1)  # different frame counts
    texts = [multiple_choice(QUESTION, OPTIONS), "A much longer question about what the objects do?", "Hi"]
    with torch.no_grad():
        batch = model(videos, texts).logits
        for i in range(3):
            alone = model(videos[i:i + 1], texts[i:i + 1]).logits[0]
            torch.testing.assert_close(batch[i, batch.shape[1] - alone.shape[0]:], alone, rtol=1e-4, atol=1e-4)
    picks = model.choose(videos, [QUESTION] * 3, [OPTIONS] * 3).picks
    assert picks == [model.choose([v], [QUESTION], [OPTIONS]).picks[0] for v in videos]
    gen = model.generate(videos, texts, max_new_tokens=3)
    assert gen == [model.generate([v], [t], max_new_tokens=3)[0] for v, t in zip(videos, texts)]


def test_a_training_step_lowers_the_loss(tiny):
    model = _load(tiny, reducer="token_dynamics", num_tokens=3)
    model.train()
    params = list(model.reducer.parameters()) + list(model.projector.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    videos = _videos(4, 4)
    losses = []
    for _ in range(5):
        loss = model.training_loss(videos, [QUESTION] * 2, [OPTIONS] * 2, [1, 3])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert model.reducer.model.attention.layers[0].out.weight.abs().sum() > 0  # the reducer learned


def test_save_and_load_give_identical_logits(tiny, tmp_path):
    model = _load(tiny, reducer="token_dynamics", num_tokens=3, identity_init=False)
    with torch.no_grad():
        next(model.projector.parameters()).mul_(1.5)  # a "fine-tuned" host
    model.save_pretrained(tmp_path / "ft")
    again = from_pretrained(tmp_path / "ft").eval()
    assert type(again) is type(model) and again.reducer.name == "token_dynamics" and again.reducer.num_tokens == 3
    videos, text = _videos(4), [multiple_choice(QUESTION, OPTIONS)]
    with torch.no_grad():
        torch.testing.assert_close(again(videos, text).logits, model(videos, text).logits)


def test_choose_with_precomputed_visual_tokens_equals_choose_from_videos(tiny):
    model = _load(tiny, reducer="tome", num_tokens=4)
    videos = _videos(4, 6)
    opts = [OPTIONS, OPTIONS[:3]]
    direct = model.choose(videos, [QUESTION] * 2, opts, mode="likelihood")
    reused = model.choose(None, [QUESTION] * 2, opts, mode="likelihood", visual=model.video_tokens(videos))
    assert direct.picks == reused.picks and torch.equal(direct.scores, reused.scores)


def test_choose_scores_as_the_model_was_trained_unless_told(tiny):
    """``mode=None``: the recipe's answer (option text -> likelihood); no recipe -> the letters."""
    model = _load(tiny, reducer="tome", num_tokens=4)
    visual = model.video_tokens(_videos(4, 6))
    for recipe, mode in (({}, "letter"), ({"target": "text"}, "likelihood"), ({"target": "letter"}, "letter")):
        model.recipe = recipe
        default = model.choose(None, [QUESTION], [OPTIONS], visual=visual[:1])
        told = model.choose(None, [QUESTION], [OPTIONS], mode=mode, visual=visual[:1])
        assert torch.equal(default.scores, told.scores)
    assert not torch.equal(default.scores, model.choose(None, [QUESTION], [OPTIONS], mode="likelihood",
                                                        visual=visual[:1]).scores)


def test_answer_attention_gives_shares_over_the_reduced_rows(tiny):
    model = _load(tiny, reducer="token_dynamics", num_tokens=None, max_distortion=0.02, max_tokens=6,
                  identity_init=False)
    videos = _videos(4, 6, seed=1)
    texts, answers = ["What moves?", "A much longer question about which colour it is?"], ["the red square", "blue"]
    before = model.host.config._attn_implementation
    shares = model.answer_attention(videos, texts, answers)
    assert model.host.config._attn_implementation == before  # eager for that call only
    assert [len(s) for s in shares] == [n - model.added_rows for n in model.count_tokens(videos)]
    for i, s in enumerate(shares):
        assert torch.isclose(s.sum(), torch.tensor(1.0)) and (s >= 0).all()
        alone = model.answer_attention(videos[i:i + 1], texts[i:i + 1], answers[i:i + 1])[0]
        torch.testing.assert_close(s, alone, rtol=1e-4, atol=1e-5)  # padding does not change it


def test_lmms_eval_entry_answers_requests(tiny, tmp_path):
    from types import SimpleNamespace

    from tokendynamics.data import write_video
    from tokendynamics.integrations.lmms_eval import TokenDynamicsLMM
    from tokendynamics.integrations.models import AVAILABLE_MODELS
    from tokendynamics.integrations.models.tokendynamics import TokenDynamicsLMM as via_plugin

    assert via_plugin is TokenDynamicsLMM and AVAILABLE_MODELS == {"tokendynamics": "TokenDynamicsLMM"}
    write_video(tmp_path / "v.mp4", _videos(6)[0].numpy()[:, :56, :56])
    lmm = TokenDynamicsLMM(str(tiny), reducer="token_dynamics", num_tokens=3, max_frames_num=4, device="cpu")
    lmm.task_dict = {"task": {"test": {0: {"video": str(tmp_path / "v.mp4")}}}}
    to_visual = lambda doc: [doc["video"]]  # noqa: E731
    text = multiple_choice(QUESTION, OPTIONS)
    (answer,) = lmm.generate_until([SimpleNamespace(args=(text, {"max_new_tokens": 3, "until": ["\n"]},
                                                          to_visual, 0, "task", "test"))])
    assert isinstance(answer, str) and "\n" not in answer
    (result,) = lmm.loglikelihood([SimpleNamespace(args=(text, "B", to_visual, 0, "task", "test"))])
    logp, greedy = getattr(result, "text", result)  # wrapped for lmms-eval 0.7.3, which would unwrap a bare pair
    video = lmm._video([str(tmp_path / "v.mp4")])
    with torch.no_grad():  # the same as the letter's log-probability after the prompt
        logits = lmm.model([video], [text]).logits[0, -1].log_softmax(-1)
    assert abs(-logp - float(logits[lmm.model.letter_ids[1]])) < 1e-4  # lmms-eval takes the NLL's argmin
    assert greedy == (int(logits.argmax()) == lmm.model.letter_ids[1])


# ---------------------------------------------------------------------- Qwen2.5-VL


def _processor_prompt(model, text, grid, frames):
    """The prompt the official processor makes for a video of ``frames`` frames, ``grid`` patches: one
    ``<|video_pad|>`` run (Qwen2.5-VL), or a timestamped run per temporal patch (Qwen3-VL)."""
    before, after = model.chat_parts(text)
    if isinstance(model, CompressedQwen3VL):
        per_patch = "<|video_pad|>" * (grid[1] * grid[2] // 4)
        return before + "".join(f"<{t:.1f} seconds><|vision_start|>{per_patch}<|vision_end|>"
                                for t in model.times(frames)) + after
    return before + "<|video_pad|>" * (grid[0] * grid[1] * grid[2] // 4) + after


def _kinds(model, ids):
    """``mm_token_type_ids`` of prompt ids: 2 at the video's, 0 elsewhere."""
    return (ids == model.host.config.video_token_id).int() * 2


def _reference_logits(model, videos, texts):
    """The unwrapped host on the processor's inputs: the ``<|video_pad|>`` run, flat patches, grids."""
    patches = [model.transform(v) for v in videos]
    prompts = [_processor_prompt(model, text, grid, len(v)) for text, (_, grid), v in zip(texts, patches, videos)]
    enc = model.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    kinds = _kinds(model, enc.input_ids)
    logits = model.host(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                        pixel_values_videos=torch.cat([p for p, _ in patches]),
                        video_grid_thw=torch.tensor([g for _, g in patches]), mm_token_type_ids=kinds).logits
    return logits, enc.attention_mask.bool()


def test_qwen_full_tokens_give_the_unwrapped_models_logits(qwen):
    model = _load(qwen, reducer="full")
    videos, texts = _videos(4, 4, seed=2), [QUESTION, "Which object moves?"]
    with torch.no_grad():
        ref, real = _reference_logits(model, videos, texts)
        torch.testing.assert_close(model(videos, texts).logits[real], ref[real], rtol=1e-5, atol=1e-5)


def test_qwen_k_rows_replace_the_video_pad_run(qwen):
    model = _load(qwen, reducer="token_dynamics", num_tokens=3)
    (video,) = _videos(5, size=(64, 96))  # an odd count: the last frame repeats to fill the temporal patch
    inputs = model.build_inputs([video], [QUESTION])
    (rows,) = model.video_tokens([video])
    parts = model.prompt_parts(QUESTION, rows)
    assert sum(p for p in parts if isinstance(p, int)) == 3  # the K rows, in one span or one per patch
    assert inputs["inputs_embeds"].shape[1] == sum(p if isinstance(p, int) else len(p) for p in parts)
    assert inputs["position_ids"].shape == (3, 1, inputs["inputs_embeds"].shape[1])
    t, h, w = model.transform.token_grid(5, 64, 96)
    assert t == 3 and model.full_tokens(5, 64, 96) == t * h * w
    assert model.video_features([video])[0].shape == (t, h, w, model.host.config.text_config.hidden_size)


def test_qwen_row_positions_follow_the_stated_rule(qwen25):
    model = _load(qwen25, reducer="full")
    offsets, advance = model.cell_offsets(2, 2, 3)
    interval = model.host.config.vision_config.tokens_per_second * model.transform.temporal_patch_size / model.fps
    cells = torch.tensor([(t * interval, h, w) for t in range(2) for h in range(2) for w in range(3)]).T
    assert torch.equal(offsets, cells.long()) and advance == 3  # the host's rule: max(h, w) past the start
    key = torch.tensor([0, 0, 1, 1, 1, 2] * 2).view(2, 2, 3)  # row 0: two cells a frame, ...
    assert RowCells(key.reshape(-1), 3).gather(offsets.double()).round().long()[:, 0].tolist() == [round(interval / 2), 0, 0]
    pruned = _load(qwen25, reducer="random_prune", num_tokens=4)
    (video,) = _videos(4)
    tokens = pruned.video_features([video])[0].reshape(-1, 64)
    (rows,) = pruned.video_tokens([video])
    own = [int((tokens - r).abs().sum(1).argmin()) for r in rows.rows]  # a pruned token keeps its own place
    assert torch.equal(rows.offsets, offsets[:, own]) and isinstance(rows, VideoRows)


def test_qwen_generate_matches_the_hosts_greedy_decoding_with_full_tokens(qwen):
    model = _load(qwen, reducer="full")
    (video,) = _videos(4, seed=3)
    patches, grid = model.transform(video)
    ids = torch.tensor([model._ids(_processor_prompt(model, QUESTION, grid, len(video)))])
    kinds = _kinds(model, ids)
    ref = model.host.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values_videos=patches,
                              video_grid_thw=torch.tensor([grid]), mm_token_type_ids=kinds, max_new_tokens=6,
                              do_sample=False, eos_token_id=model.tokenizer.eos_token_id,
                              pad_token_id=model.tokenizer.pad_token_id)
    expected = model.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
    assert model.generate([video], [QUESTION], max_new_tokens=6) == [expected]


def test_qwen_answers_from_a_stream(qwen25):
    model = _load(qwen25, reducer="token_dynamics", num_tokens=3)
    (video,) = _videos(6, seed=4)
    stream = model.new_stream()
    for start in range(0, 6, 2):
        model.push(stream, video[start:start + 2])
    rows = model.stream_tokens(stream)
    assert isinstance(rows, VideoRows) and rows.offsets.shape == (3, len(rows))
    assert model.choose(None, [QUESTION], [OPTIONS], mode="likelihood", visual=[rows]).picks[0] in range(5)
    with pytest.raises(ValueError, match="with their positions"):
        model.choose(None, [QUESTION], [OPTIONS], visual=[rows.rows])


def test_qwen_trains_and_evaluates_end_to_end(qwen, tmp_path):
    from tokendynamics.data.motionqa import generate_motionqa
    from tokendynamics.evaluate import EvalConfig, evaluate
    from tokendynamics.train import TrainConfig, train, trainable

    generate_motionqa(tmp_path / "mqa", num_videos=20, seed=0, num_frames=16, size=64, arrays=True, workers=1,
                      progress=False)
    cfg = TrainConfig(model=str(qwen), data=str(tmp_path / "mqa/train.jsonl"), video_root=str(tmp_path / "mqa"),
                      output=str(tmp_path / "run"), compressor="token_dynamics", num_tokens=4, frames=4,
                      batch_size=4, steps=3, lr=1e-2, warmup=0, workers=0, llm="full", vision_lr_scale=0)
    model = _load(qwen, reducer="token_dynamics", num_tokens=4)
    groups = trainable(model, cfg)
    merger = {id(p) for p in model.projector.parameters()}
    assert all(g["lr"] == cfg.lr for g in groups if merger & {id(p) for p in g["params"]})  # not the tower's 0
    summary = train(cfg)
    assert summary["steps"] == 3
    report = evaluate(EvalConfig(model=str(tmp_path / "run" / "model"), data=str(tmp_path / "mqa/test.jsonl"),
                                 video_root=str(tmp_path / "mqa"), frames=4, batch_size=2, workers=0))
    assert report["overall"]["n"] == 4 and report["visual_tokens"]["mean"] == 4
    assert report["visual_tokens"]["full_mean"] == 2 * 2 * 2  # 4 frames of 64 px: 2 temporal patches of 2 x 2


def test_qwen_patches_equal_the_official_video_processor(qwen):
    pytest.importorskip("torchvision")  # the official processor needs it (installed on the GPU machine)
    from transformers import AutoVideoProcessor

    from tokendynamics.data.motionqa import MotionQAConfig, make_video

    model = _load(qwen, reducer="full")
    official = AutoVideoProcessor.from_pretrained(qwen)
    level = 1 / 255 / min(model.transform.std)  # one grey level, normalised
    for frames, index in ((4, 3), (5, 7)):  # 112 px frames resized (bicubic, antialiased)
        video = torch.from_numpy(make_video(index, MotionQAConfig(num_frames=16, size=112, arrays=True,
                                                                  mp4=False))[0][:frames])
        got = official(videos=[video.permute(0, 3, 1, 2)], return_tensors="pt", do_sample_frames=False,
                       cap_pixels_per_frame=False)
        patches, grid = model.transform(video)
        assert got["video_grid_thw"][0].tolist() == list(grid)
        # torchvision's 8-bit kernel rounds otherwise than its float one (which this transform equals):
        # some grey levels at a handful of pixels
        diff = (patches - got["pixel_values_videos"]).abs()
        assert diff.max() <= 12 * level and (diff > 1.01 * level).float().mean() < 1e-3

# ---------------------------------------------------------------------- Qwen3-VL


def test_qwen3_rows_sit_in_their_temporal_patches_spans_with_their_deepstack_features(qwen3):
    model = _load(qwen3, reducer="token_dynamics", num_tokens=4)
    (video,) = _videos(6, size=(64, 96), seed=5)
    (rows,) = model.video_tokens([video])
    assert sum(rows.spans) == 4 and len(rows.spans) == len(rows.times) == len(rows.advances)
    assert list(rows.times) == sorted(rows.times) and set(rows.times) <= set(model.times(6))
    assert model.times(6) == [0.25, 1.25, 2.25] and model.times(5)[-1] == 2.0  # the last frame fills its patch
    levels = len(model.host.config.vision_config.deepstack_visual_indexes)
    assert len(rows.deepstack) == levels and all(d.shape == rows.rows.shape for d in rows.deepstack)
    text = model.tokenizer.decode([i for p in model.prompt_parts(QUESTION, rows) if not isinstance(p, int)
                                   for i in p])
    assert text.count("seconds><|vision_start|>") == len(rows.spans) and text.count("<|vision_end|>") == len(rows.spans) + 1
    full = _load(qwen3, reducer="full")
    (cells,) = full.video_tokens([video])  # full tokens: every patch its span, the host's own features
    feats, deep = full._vision([video])
    assert cells.spans == (6, 6, 6) and torch.equal(cells.deepstack[0], deep[0][0].reshape(-1, deep[0][0].shape[-1]))


def test_qwen3_without_its_deepstack_features_is_another_model(qwen3):
    """The host's DeepStack features reach the LLM (else the full-token logits would not equal the host's)."""
    model = _load(qwen3, reducer="full")
    videos = _videos(4, seed=2)
    with torch.no_grad():
        inputs = model.build_inputs(videos, [QUESTION])
        with_deep = model.run_host(**inputs).logits
        inputs.pop("deepstack")
        assert not torch.allclose(model.run_host(**inputs).logits, with_deep)


def test_qwen3_refuses_to_stream(qwen3):
    model = _load(qwen3, reducer="token_dynamics", num_tokens=3)
    with pytest.raises(ValueError, match="streaming is not offered"):
        model.new_stream()


@pytest.mark.parametrize("size", [(56, 84), (84, 140)])
def test_qwen_towers_batched_windows_give_the_hosts_own_features(qwen, size):
    """Without flash-attention each vision attention attends the windows of one length in one call
    (``models.windows``): the features equal those of the host's own loop over windows (its forward put
    back), on frames whose windows differ in length at the edges."""
    model = _load(qwen, reducer="full")
    videos = _videos(4, seed=3, size=size)
    assert all(type(b.attn).forward is not b.attn.forward.__func__ for b in model.vision_tower.blocks)
    with torch.no_grad():
        batched = model.video_features(videos)[0]
        for block in model.vision_tower.blocks:
            del block.attn.forward  # the class's forward: transformers' loop over windows
        own = model.video_features(videos)[0]
    torch.testing.assert_close(batched, own, rtol=1e-5, atol=1e-5)
