import pytest
import torch

from tokendynamics.models import CompressedLlavaOnevision, build_llava_onevision, multiple_choice, parse_letter
from tokendynamics.models.prompts import chat_parts

QUESTION, OPTIONS = "What colour is the circle?", ["red", "blue", "green", "white", "cyan"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random LLaVA-OneVision saved to disk: 56 px frames, 4 x 4 patches pooled to 2 x 2."""
    corpus = [multiple_choice(QUESTION, OPTIONS), "Which object moves? red circle blue square"] * 4
    return build_llava_onevision(tmp_path_factory.mktemp("tiny") / "host", corpus, seed=0)


def _videos(*frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (t, 60, 64, 3), generator=g, dtype=torch.uint8) for t in frames]


def _load(path, **kw):
    torch.manual_seed(0)
    return CompressedLlavaOnevision.from_pretrained(path, **kw).eval()


def test_keeping_every_token_gives_the_unwrapped_models_logits(tiny):
    text = multiple_choice(QUESTION, OPTIONS)
    (video,) = _videos(4)
    full = _load(tiny, compressor="full")
    pooled = _load(tiny, compressor="uniform_pool", num_tokens=4 * 2 * 2)  # the full grid: every token
    before, after = chat_parts(text)
    ids = full._ids(before) + [full.host.config.video_token_id] * (4 * 2 * 2 + 1) + full._ids(after)
    with torch.no_grad():
        ref = full.host(input_ids=torch.tensor([ids]), pixel_values_videos=full.transform(video)[None]).logits
        for model in (full, pooled):
            torch.testing.assert_close(model([video], [text]).logits, ref, rtol=1e-5, atol=1e-5)


def test_compressed_input_length_is_text_plus_k(tiny):
    model = _load(tiny, compressor="token_dynamics", num_tokens=3)
    text = multiple_choice(QUESTION, OPTIONS)
    inputs = model.build_inputs(_videos(4), [text])
    before, after = chat_parts(text)
    assert inputs["inputs_embeds"].shape[1] == len(model._ids(before)) + len(model._ids(after)) + 3 + 1
    assert model.count_tokens(_videos(4, 6)) == [4, 4]


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="unknown reducer 'zip'"):
        _load(tiny, compressor="zip")
    model = _load(tiny, compressor="full")
    with pytest.raises(ValueError, match="must pair up"):
        model(_videos(4), ["a", "b"])
    with pytest.raises(ValueError, match="options must be a list"):
        model.choose(_videos(4), [QUESTION], [["only one"]])
    with pytest.raises(ValueError, match="frames must be uint8"):
        model(_videos(4)[0].float()[None], ["a"])


@pytest.mark.parametrize("text, n, expected", [("B", 5, 1), ("B.", 5, 1), ("(C) green", 5, 2),
                                               ("The answer is D", 5, 3), ("E", 3, None), ("maybe", 5, None)])
def test_parse_letter(text, n, expected):
    assert parse_letter(text, n) == expected


def test_frame_transform_of_a_batch_equals_each_video():
    from tokendynamics.models import FrameTransform

    g = torch.Generator().manual_seed(0)
    videos = torch.randint(0, 256, (3, 2, 20, 24, 3), dtype=torch.uint8, generator=g)
    transform = FrameTransform(height=16, width=16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    batch = transform(videos)
    assert batch.shape == (3, 2, 3, 16, 16)
    for b in range(3):
        torch.testing.assert_close(batch[b], transform(videos[b]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="frames must be uint8"):
        transform(videos[0, 0])


def test_valid_rows_take_a_view_when_they_lead_and_select_otherwise():
    from tokendynamics.models.host import _valid

    rows = torch.arange(12.0).view(4, 3)
    lead = _valid(rows, torch.tensor([True, True, False, False]))
    assert lead.data_ptr() == rows.data_ptr() and torch.equal(lead, rows[:2])
    torch.testing.assert_close(_valid(rows, torch.tensor([True, False, True, False])), rows[[0, 2]])
    assert _valid(rows, torch.zeros(4, dtype=torch.bool)).shape == (0, 3)


def test_block_mean_pooling_equals_the_hosts_bilinear_pooling_and_its_gradient(tiny):
    from transformers import LlavaOnevisionForConditionalGeneration

    host = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny).model
    patched = _load(tiny, compressor="full").host.model
    assert "apply_pooling" not in vars(host) and "apply_pooling" in vars(patched)
    feats = torch.randn(3, 4 * 4, host.config.text_config.hidden_size, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 2 * 2, feats.shape[-1], dtype=torch.float64)
    outs, grads = [], []
    for model in (host, patched):
        out = model.apply_pooling(feats)
        (grad,) = torch.autograd.grad((out * weights).sum(), feats)
        outs.append(out)
        grads.append(grad)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)


def test_one_loader_picks_the_host_from_the_checkpoint(tiny, tmp_path):
    import json
    import shutil

    from tokendynamics.models import HOSTS, VideoLLM, from_pretrained

    model = from_pretrained(tiny, reducer="tome", num_tokens=3)
    assert type(model) is HOSTS["llava_onevision"] and isinstance(model, VideoLLM)
    assert (model.reducer.name, model.reducer.num_tokens) == ("tome", 3)
    assert from_pretrained(tiny, compressor="uniform_pool", num_tokens=4).reducer.name == "uniform_pool"  # old name
    assert model.language_model is model.host.model.language_model
    assert model.projector is model.host.model.multi_modal_projector
    other = tmp_path / "other"
    shutil.copytree(tiny, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config | {"model_type": "blip_2"}))
    with pytest.raises(ValueError, match="is a 'blip_2'.*supported hosts: llava_onevision"):
        from_pretrained(other)


def test_options_without_a_reducer_name_change_the_saved_reducers_clustering(tiny, tmp_path):
    """A checkpoint's own reducer takes options that no trained weight depends on (``--option`` of eval),
    its K too (``--num-tokens``); the shipped variant too; one that shapes its weights raises instead of
    being dropped."""
    from tokendynamics.models import from_pretrained, load_model

    from_pretrained(tiny, reducer="token_dynamics", num_tokens=3).save_pretrained(tmp_path / "ft")
    assert from_pretrained(tmp_path / "ft", max_iters=1).reducer.model.config.max_iters == 1
    with pytest.raises(ValueError, match="attend shape the trained"):
        from_pretrained(tmp_path / "ft", attend="all")
    assert load_model("builtin:token_dynamics-8", metric="l2").reducer.model.config.metric == "l2"
    with pytest.raises(ValueError, match="full tokens take no options"):
        load_model("builtin", seed=1)
    assert from_pretrained(tmp_path / "ft").reducer.num_tokens == 3  # its own K, unless one is given
    assert from_pretrained(tmp_path / "ft", num_tokens=5).reducer.model.config.num_tokens == 5
    assert load_model("builtin:token_dynamics-8", num_tokens=16).reducer.num_tokens == 16
    assert from_pretrained(tiny, reducer="tome").reducer.num_tokens == 8  # named without a K: 8
    with pytest.raises(ValueError, match="full tokens take no options, got num_tokens"):
        load_model("builtin", num_tokens=8)


def test_video_files_become_compact_tokens_in_one_call(tiny, tmp_path):
    import tokendynamics as td
    from tokendynamics.data import write_video

    folder = tmp_path / "clips"
    folder.mkdir()
    for i, video in enumerate(_videos(8, 8, seed=3)):
        write_video(folder / f"{i}.mp4", video.numpy()[:, :48, :48])
    (folder / "notes.txt").write_text("not a video")
    out = td.encode_videos(folder, model=str(tiny), reducer="token_dynamics", num_tokens=3, frames=4)
    assert list(out) == [str(folder / "0.mp4"), str(folder / "1.mp4")]
    dim = td.models.from_pretrained(tiny).host.config.text_config.hidden_size
    for compact in out.values():
        assert compact.tokens.shape == (1, 3, dim) and compact.hash.key_map.shape == (1, 4, 2, 2)
    single = td.encode_videos(folder / "1.mp4", model=str(tiny), reducer="token_dynamics", num_tokens=3, frames=4)
    torch.testing.assert_close(single[str(folder / "1.mp4")].tokens, out[str(folder / "1.mp4")].tokens)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        td.encode_videos(tmp_path / "missing.mp4", model=str(tiny))
    assert td.data.read_video is not None and td.models.VideoLLM is not None  # subpackages as attributes


def test_a_host_answers_from_a_stream_as_from_the_whole_video_table(tiny):
    model = _load(tiny, reducer="token_dynamics", num_tokens=3)
    video = _videos(4)[0]
    stream = model.new_stream()
    for t in range(4):
        model.push(stream, video[t:t + 1])
    rows = model.stream_tokens(stream)
    assert rows.shape == (3 + 1, model.host.config.text_config.hidden_size)  # K rows and the newline
    answer = model.choose(None, [QUESTION], [OPTIONS], mode="likelihood", visual=[rows])
    assert 0 <= answer.picks[0] < len(OPTIONS) and answer.visual_tokens == [4]
    adaptive = _load(tiny, reducer="token_dynamics", num_tokens=None, max_distortion=0.05, max_tokens=5)
    stream = adaptive.new_stream()
    assert stream.num_tokens is None and stream.max_distortion == 0.05 and stream.max_tokens == 5
    adaptive.push(stream, video)
    assert 1 <= len(adaptive.stream_tokens(stream)) - 1 <= 5
    with pytest.raises(ValueError, match="streaming needs the token_dynamics reducer"):
        _load(tiny, reducer="tome", num_tokens=3).new_stream()


@pytest.fixture(scope="module", params=["full", "token_dynamics-8"])
def shipped(request):
    """Each shipped built-in model with the reducer it was saved with."""
    from tokendynamics.models import load_model

    return load_model(f"builtin:{request.param}").eval()


@pytest.mark.parametrize("background", ["white", "black"])
@pytest.mark.parametrize("motion", ["left", "right", "up", "down", "it does not move"])
def test_the_builtin_models_tell_the_direction_of_a_plain_video(shipped, tmp_path, motion, background):
    """A red square moving across a plain white or black frame, written as an mp4 and read back as
    ``demo --video`` reads it: each shipped model (full tokens, and Token Dynamics from its 9 tokens) names
    its direction among the five options."""
    from tokendynamics.data import write_video
    from tokendynamics.data.motionqa import direction_question, plain_clip
    from tokendynamics.data.video import read_video, uniform_indices
    from tokendynamics.models.builtin import FRAMES

    write_video(tmp_path / "clip.mp4", plain_clip("square", "red", motion, background))
    clip = read_video(tmp_path / "clip.mp4", 32)
    options = ["up", "it does not move", "right", "down", "left"]
    with torch.no_grad():
        pick = shipped.choose([clip[uniform_indices(len(clip), FRAMES)]], [direction_question("red square")],
                              [options]).picks[0]  # scored as the model was trained, as a user calls it
    assert options[pick] == motion
