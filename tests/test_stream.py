"""HashStream: the hash table of a video built frame by frame."""

import pytest
import torch

import tokendynamics as td
from tokendynamics.data import planted_token_video


def _stream(tokens, k, **kw):
    stream = td.HashStream(k, tokens.shape[-1], **kw)
    for frame in tokens:
        stream.push(frame)
    return stream


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("k", [4, 8, 16])
def test_a_streamed_table_is_as_good_as_the_offline_one(k, metric):
    tokens = planted_token_video(num_frames=16, noise=0.005, seed=1).tokens  # [16, 14, 14, 64]
    h = _stream(tokens, k, metric=metric).table()  # the default sketch of 2 K rows, grouped into K
    offline = td.hash_video(tokens, num_tokens=k, metric=metric)
    assert h.table.shape == (1, k, 64) and h.key_map.shape == (1, 16, 14, 14) and int(h.num_tokens) == k
    exact = float(h.distortion(tokens))
    assert exact <= 1.10 * float(offline.distortion())  # within 10% (relative) of hash_video's
    assert abs(float(h.distortion()) - exact) <= 0.05 * exact + 1e-6  # the running figure tracks the exact one
    torch.testing.assert_close(h.reconstruct()[0], h.table[0][h.key_map[0]])


def test_rows_come_in_order_of_first_appearance_and_pushes_of_several_frames_agree():
    tokens = planted_token_video(num_frames=6, seed=2).tokens
    one = _stream(tokens, 5).table()
    flat = one.key_map.reshape(-1)
    firsts = [int((flat == r).nonzero()[0]) for r in range(int(one.num_tokens))]
    assert firsts == sorted(firsts)
    many = td.HashStream(5, 64)
    many.push(tokens[:1])
    many.push(tokens[1:])
    assert torch.equal(many.table().key_map, one.key_map) and many.frames == 6
    again = _stream(tokens, 5).table()  # deterministic for a seed
    assert torch.equal(again.key_map, one.key_map) and torch.equal(again.table, one.table)


def test_memory_does_not_grow_with_the_frames_but_the_key_map():
    tokens = planted_token_video(num_frames=12, seed=3).tokens
    stream = _stream(tokens[:2], 6)
    sizes = [t.numel() for t in stream._state]
    for frame in tokens[2:]:
        stream.push(frame)
    assert [t.numel() for t in stream._state] == sizes
    assert stream._keys.numel() <= 2 * 12 * 14 * 14  # the key map's room doubles as it fills


def test_bad_pushes_name_what_is_wrong():
    stream = td.HashStream(4, 8)
    with pytest.raises(ValueError, match="holds no frames"):
        stream.table()
    with pytest.raises(ValueError, match=r"\[H, W, 8\]"):
        stream.push(torch.randn(3, 3, 5))
    with pytest.raises(TypeError, match="floating"):
        stream.push(torch.zeros(3, 3, 8, dtype=torch.long))
    stream.push(torch.randn(3, 3, 8))
    with pytest.raises(ValueError, match="keep the stream's grid"):
        stream.push(torch.randn(4, 4, 8))
    stream.push(torch.full((3, 3, 8), float("nan")))  # values are checked on the device, by table()
    with pytest.raises(ValueError, match="frame 1 pushed to the stream holds NaN"):
        stream.table()
    with pytest.raises(ValueError, match="num_tokens must be >= 1"):
        td.HashStream(0, 8)


def test_something_new_gets_a_row_of_its_own():
    """Frame 0 is background only, so its two rows split it; in frame 1 an object covers half the cells.
    The stream merges the two background rows (relabelling frame 0) and starts a row for the object."""
    g = torch.Generator().manual_seed(0)
    background, thing = torch.eye(8)[0], torch.eye(8)[1]
    frame0 = background + 0.01 * torch.randn(4, 4, 8, generator=g)
    frame1 = frame0.clone()
    frame1[:, :2] = thing + 0.01 * torch.randn(4, 2, 8, generator=g)
    stream = td.HashStream(2, 8)
    stream.push(frame0)
    assert len(stream.table().key_map[0, 0].unique()) == 2  # the background split in two
    stream.push(frame1)
    keys = stream.table().key_map[0]
    assert len(keys[0].unique()) == 1  # merged
    assert (keys[1, :, :2] != keys[1, 0, 3]).all() and len(keys[1, :, :2].unique()) == 1  # the object's own row
    frozen = td.HashStream(2, 8, spawns=0)
    frozen.push(torch.stack([frame0, frame1]))
    assert float(frozen.table().distortion()) > float(stream.table().distortion())


def _drifting_video(seed: int, frames: int = 12) -> torch.Tensor:
    """``[frames, 8, 8, 16]`` tokens: a background turning from one direction to another, and an object
    crossing it that changes every four frames (new content the first frame's rows never saw)."""
    import math

    g, axes = torch.Generator().manual_seed(seed), torch.eye(16)
    video = []
    for t in range(frames):
        turn = t / (frames - 1) * math.pi / 2
        frame = math.cos(turn) * axes[0] + math.sin(turn) * axes[1] + 0.05 * torch.randn(8, 8, 16, generator=g)
        x = t % 8
        frame[2:5, x:x + 2] = axes[2 + t // 4] + 0.05 * torch.randn(3, min(2, 8 - x), 16, generator=g)
        video.append(frame)
    return torch.stack(video)


def test_the_sketch_rows_are_grouped_into_the_table_with_their_exact_error():
    from tokendynamics.stream import _grouped_rows

    sums = torch.tensor([[[1.0], [3.0], [10.0]]], dtype=torch.float64)  # three rows of one cell each
    counts = torch.ones(1, 3, dtype=torch.float64)
    total, n, joined = _grouped_rows(sums, counts, torch.tensor([[0, 0, 1]]), 2)
    assert total.flatten().tolist() == [4.0, 10.0] and n.flatten().tolist() == [2.0, 1.0]
    assert float(joined) == pytest.approx(2.0)  # 1 and 3 against their mean 2: 1 + 1
    tokens = _drifting_video(seed=1)
    sketched, plain = _stream(tokens, 4), _stream(tokens, 4, sketch=4)  # 8 rows kept (default), or 4
    h = sketched.table()
    assert h.table.shape == (1, 4, 16) and int(h.key_map.max()) < 4 and sketched._state.counts.shape[1] == 8
    torch.testing.assert_close(h.reconstruct()[0], h.table[0][h.key_map[0]])
    offline = float(td.hash_video(tokens, 4).distortion())
    assert float(plain.table().distortion(tokens)) > 1.5 * offline  # rows fitted to the first frames
    assert float(h.distortion(tokens)) < 1.2 * offline
    assert float(h.distortion()) <= float(h.distortion(tokens)) * 1.0001  # as frames came, never above
    for bad, match in ((3, "sketch must be an int >= num_tokens"), (True, "sketch must be an int")):
        with pytest.raises(ValueError, match=match):
            td.HashStream(4, 64, sketch=bad)
    with pytest.raises(ValueError, match="sketch needs a fixed length"):
        td.HashStream(None, 64, max_distortion=0.1, sketch=8)


@pytest.mark.parametrize("target", [0.05, 0.2])
def test_an_adaptive_stream_meets_its_target_with_the_offline_count(target):
    tokens = planted_token_video(num_frames=16, noise=0.005, seed=1).tokens
    h = _stream(tokens, None, max_distortion=target, max_tokens=64).table()
    offline = td.hash_video(tokens, max_distortion=target, max_tokens=64)
    assert abs(int(h.num_tokens) - int(offline.num_tokens)) <= 1
    assert float(h.distortion(tokens)) <= target


def test_an_adaptive_stream_grows_a_row_for_something_new_without_merging():
    g = torch.Generator().manual_seed(0)
    sky, ground, thing = torch.eye(8)[:3]
    frame0 = 0.01 * torch.randn(4, 4, 8, generator=g)
    frame0[:2] += sky
    frame0[2:] += ground
    frame1 = frame0.clone()
    frame1[:, :1] = thing + 0.01 * torch.randn(4, 1, 8, generator=g)
    stream = td.HashStream(None, 8, max_distortion=0.05, max_tokens=8)
    stream.push(frame0)
    assert int(stream.table().num_tokens) == 2  # sky and ground
    stream.push(frame1)
    keys = stream.table().key_map[0]
    assert int(stream.table().num_tokens) == 3 and len(keys[1, :, :1].unique()) == 1  # and the thing
    assert torch.equal(keys[0], stream.table().key_map[0, 0])  # frame 0 keeps its labels
    capped = td.HashStream(None, 8, max_distortion=0.0, max_tokens=2)
    capped.push(torch.stack([frame0, frame1]))
    assert int(capped.table().num_tokens) <= 2
    with pytest.raises(ValueError, match="exactly one of num_tokens"):
        td.HashStream(4, 8, max_distortion=0.1)


def test_live_answers_along_a_generated_video_and_a_file(tmp_path, capsys):
    from rich.console import Console

    from tokendynamics.cli import main
    from tokendynamics.data import write_video
    from tokendynamics.data.motionqa import MotionQAConfig, make_video
    from tokendynamics.live import LiveConfig, run_live

    rows = run_live(LiveConfig(every=3), Console(quiet=True))
    assert [r["frames"] for r in rows] == [3, 6] and all(1 <= r["rows"] <= 8 for r in rows)
    refined = run_live(LiveConfig(every=3, refine=4), Console(quiet=True))  # refined after each answer
    assert [r["frames"] for r in refined] == [3, 6]
    with pytest.raises(ValueError, match="refine must be"):
        LiveConfig(refine=-1)
    frames, _, items = make_video(19, MotionQAConfig(num_frames=32, size=112, arrays=True, mp4=False))
    write_video(tmp_path / "clip.mp4", frames)
    question, options = items[0].question, list(items[0].options)
    assert main(["live", "--video", str(tmp_path / "clip.mp4"), "--question", question, "--options", *options,
                 "--every", "4", "--stride", "4"]) == 0
    assert "answers as the video plays" in capsys.readouterr().out
    assert main(["live", "--video", str(tmp_path / "missing.mp4")]) == 2
    assert main(["live", "--video", str(tmp_path / "clip.mp4")]) == 2
    err = capsys.readouterr()
    assert "is not a file" in err.out + err.err and "--question" in err.out + err.err
    with pytest.raises(ValueError, match="streaming needs the token_dynamics reducer"):
        run_live(LiveConfig(model="builtin"), Console(quiet=True))


def test_streams_in_a_batch_are_each_the_stream_alone():
    videos = [planted_token_video(num_frames=8, noise=0.01, seed=s).tokens for s in (1, 2, 3)]
    batch = td.HashStream(6, 64, batch=3)
    stacked = torch.stack(videos)  # [3, 8, 14, 14, 64]
    batch.push(stacked[:, 0])  # each stream's first frame, then the rest at once
    batch.push(stacked[:, 1:])
    h = batch.table()
    assert h.key_map.shape == (3, 8, 14, 14) and batch.frames == 8
    for b, video in enumerate(videos):
        alone = _stream(video, 6).table()
        assert torch.equal(h.key_map[b], alone.key_map[0]) and torch.equal(h.table[b], alone.table[0])
        torch.testing.assert_close(h.distortion()[b], alone.distortion()[0])
    with pytest.raises(ValueError, match=r"\[3, H, W, 64\]"):
        batch.push(stacked[:2, 0])
    with pytest.raises(ValueError, match="fixed length"):
        td.HashStream(None, 64, max_distortion=0.1, batch=2)
    bad = stacked[:, :2].clone()
    bad[1, 1] = float("nan")
    spoiled = td.HashStream(6, 64, batch=3)
    spoiled.push(bad)
    with pytest.raises(ValueError, match="frame 1 of stream 1"):
        spoiled.table()


def test_refining_the_kept_frames_between_questions():
    tokens = planted_token_video(num_frames=12, noise=0.02, seed=4).tokens
    kept = _stream(tokens, 6, window=12)
    before = float(kept.table().distortion(tokens))
    kept.refine(3)
    h = kept.table()
    exact = float(h.distortion(tokens))
    assert exact <= 1.02 * before
    assert abs(float(h.distortion()) - exact) <= 1e-6 + 1e-6 * exact  # every frame kept: the running figure is exact
    kept.push(tokens[0])  # and it streams on
    assert kept.frames == 13 and len(kept._window) == 12
    batch = td.HashStream(6, 64, batch=2, window=12)
    batch.push(torch.stack([tokens, tokens.flip(0)]))
    batch.refine(3)
    alone = _stream(tokens.flip(0), 6, window=12)
    alone.refine(3)
    assert torch.equal(batch.table().key_map[1], alone.table().key_map[0])
    with pytest.raises(ValueError, match="window=W"):
        _stream(tokens[:2], 6).refine()


@pytest.mark.gpu
def test_gpu_streams_replay_the_eager_update_and_keep_apart(monkeypatch):
    """On CUDA each later frame is one graph replay per stream: the eager result, also for two streams of
    the same shape pushed in turn (each keeps its own graph); a batch's one graph replays the batch's eager
    update; and the graph goes with its stream."""
    import gc
    import weakref

    videos = [planted_token_video(num_frames=8, noise=0.01, seed=s).tokens.cuda() for s in (1, 2)]
    streams = [td.HashStream(6, 64, device="cuda") for _ in videos]
    for t in range(8):  # in turn
        for stream, video in zip(streams, videos):
            stream.push(video[t])
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
    for stream, video in zip(streams, videos):
        eager = _stream(video, 6, device="cuda").table()
        assert torch.equal(stream.table().key_map, eager.key_map) and torch.equal(stream.table().table, eager.table)
    together = td.HashStream(6, 64, device="cuda", batch=2)  # the batch eagerly
    together.push(torch.stack(videos))
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "1")
    graphed = td.HashStream(6, 64, device="cuda", batch=2)  # one graph for both
    graphed.push(torch.stack(videos))
    assert torch.equal(graphed.table().key_map, together.table().key_map)
    for b, stream in enumerate(streams):  # CUDA's batched matmuls round apart from single ones: a sketch row's
        # near-tied cells may go the other way, so a batched stream is as good as alone, not the same
        alone = stream.table().distortion()[0]
        assert abs(together.table().distortion()[b] - alone) <= 0.01 * alone
    gone = weakref.ref(streams[0])
    del stream, streams
    gc.collect()
    assert gone() is None


@pytest.mark.gpu
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_gpu_compiled_update_fits_as_the_graph_one(metric):
    """The update fused by torch.compile (Backend(compiled=True)) runs the same steps: on planted videos its
    table fits the tokens as the uncompiled graph's does (fused float arithmetic may send a near-tied cell the
    other way) and its key map agrees with it on nearly every cell."""
    from tokendynamics.cluster.backend import Backend

    pytest.importorskip("triton")
    for seed in (1, 2):
        video = planted_token_video(num_frames=8, noise=0.01, seed=seed).tokens.cuda()
        plain = _stream(video, 6, device="cuda", metric=metric).table()
        fused = _stream(video, 6, device="cuda", metric=metric,
                        backend=Backend.choose("cuda", compiled=True)).table()
        assert abs(float(fused.distortion(video)) - float(plain.distortion(video))) <= 0.01 * float(
            plain.distortion(video)) + 1e-6
        assert (fused.key_map == plain.key_map).float().mean() >= 0.95
