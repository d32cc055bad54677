import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

import tokendynamics as td
from tokendynamics.data import planted_token_video
from tokendynamics.hashing import fraction_unexplained


def _oracle_distortion(video):
    """Distortion of the planted clustering itself (table = per-prototype means of the noisy tokens)."""
    x = video.tokens.reshape(1, -1, video.tokens.shape[-1])
    labels = video.key_map.reshape(1, -1)
    k = int(labels.max()) + 1
    means = torch.zeros(k, x.shape[-1]).index_add_(0, labels[0], x[0]) / torch.bincount(labels[0]).unsqueeze(1)
    return fraction_unexplained(x, means[None], labels).item()


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_planted_key_map_is_recovered(planted, metric):
    h = td.hash_video(planted.tokens, num_tokens=4, metric=metric)
    assert h.table.shape == (1, 4, 32) and h.key_map.shape == (1, 12, 10, 10)
    ari = adjusted_rand_score(planted.key_map.flatten().numpy(), h.key_map.flatten().numpy())
    assert ari >= 0.99
    assert h.distortion().item() <= _oracle_distortion(planted) * 1.001


def test_rows_ordered_by_first_appearance(planted):
    h = td.hash_video(planted.tokens, num_tokens=4)
    flat = h.key_map.flatten()
    firsts = [int((flat == k).nonzero()[0]) for k in range(4)]
    assert firsts == sorted(firsts) and flat[0] == 0


def test_noise_free_reconstruction_is_exact_when_k_covers_distinct_tokens():
    video = planted_token_video(num_frames=6, height=8, width=8, dim=16, num_objects=3, noise=0.0, seed=1)
    distinct = video.key_map.unique().numel()
    for k in [distinct, distinct + 5]:
        h = td.hash_video(video.tokens, num_tokens=k)
        assert h.num_tokens.item() == distinct
        assert h.table.shape[1] == k and torch.all(h.table[0, distinct:] == 0)
        torch.testing.assert_close(h.reconstruct()[0], video.tokens, rtol=1e-6, atol=1e-7)
        assert h.distortion().item() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_reconstruction_is_bit_exact(dtype):
    video = planted_token_video(num_frames=4, height=6, width=6, dim=8, num_objects=2, noise=0.0, seed=2)
    tokens = video.tokens.to(dtype)
    h = td.hash_video(tokens, num_tokens=8)
    assert h.table.dtype == dtype
    assert torch.equal(h.reconstruct()[0], tokens)


def test_compaction_when_fewer_distinct_tokens_than_k():
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    tokens = values[torch.tensor([0, 1, 2, 1, 0, 0, 2, 1]).view(2, 2, 2)]
    h = td.hash_video(tokens, num_tokens=6, metric="l2")
    n = h.num_tokens.item()
    assert n == 3 and int(h.key_map.max()) < n
    used = h.table[0, :n]
    assert torch.cdist(used, used).add(torch.eye(n)).min() > 0  # no duplicate rows
    assert set(h.key_map.flatten().tolist()) == set(range(n))  # no empty rows


def test_constant_video_is_one_token_with_zero_distortion():
    tokens = torch.full((3, 4, 4, 5), 0.7)
    h = td.hash_video(tokens, num_tokens=4)
    assert h.num_tokens.item() == 1 and h.distortion().item() == 0
    assert torch.equal(h.reconstruct()[0], tokens)


def test_adaptive_length_finds_planted_k(planted):
    too_few = td.hash_video(planted.tokens, num_tokens=3).distortion().item()
    target = (_oracle_distortion(planted) + too_few) / 2
    h = td.hash_video(planted.tokens, max_distortion=target, min_tokens=1, max_tokens=16)
    assert h.num_tokens.item() == 4 and h.table.shape[1] == 4
    assert h.distortion().item() <= target


def test_adaptive_length_bounds():
    video = planted_token_video(num_frames=4, height=6, width=6, dim=16, num_objects=4, noise=0.05, seed=0)
    never = td.hash_video(video.tokens, max_distortion=0.0, min_tokens=2, max_tokens=5)
    assert never.num_tokens.item() == 5  # target unreachable: max_tokens
    always = td.hash_video(video.tokens, max_distortion=1.0, min_tokens=2, max_tokens=5)
    assert always.num_tokens.item() == 2  # any K meets it: min_tokens


def test_adaptive_batch_gets_per_video_k():
    simple = planted_token_video(num_frames=6, height=8, width=8, dim=24, num_objects=1, noise=0.01, seed=1)
    busy = planted_token_video(num_frames=6, height=8, width=8, dim=24, num_objects=5, object_size=2,
                               noise=0.01, seed=2)
    both = torch.stack([simple.tokens, busy.tokens])
    h = td.hash_video(both, max_distortion=0.2, max_tokens=12)
    assert h.num_tokens[0] < h.num_tokens[1]
    assert h.table.shape[1] == int(h.num_tokens.max())
    for b in range(2):
        alone = td.hash_video(both[b], max_distortion=0.2, max_tokens=12)
        assert torch.equal(alone.key_map[0], h.key_map[b])
        assert torch.equal(alone.num_tokens[0], h.num_tokens[b])


def test_distortion_does_not_rise_with_k():
    means = []
    for k in range(1, 9):
        d = [td.hash_video(planted_token_video(num_frames=6, height=8, width=8, dim=16, num_objects=4,
                                               noise=0.1, seed=s).tokens, num_tokens=k).distortion().item()
             for s in range(4)]
        means.append(sum(d) / len(d))
    assert means[0] == pytest.approx(1.0)
    assert all(b <= a + 1e-6 for a, b in zip(means, means[1:])), means


def test_batch_equals_per_video():
    videos = [planted_token_video(num_frames=5, height=7, width=7, dim=20, num_objects=o, noise=0.05, seed=o)
              for o in (1, 2, 4)]
    batch = torch.stack([v.tokens for v in videos])
    h = td.hash_video(batch, num_tokens=5, seed=3)
    for b, v in enumerate(videos):
        alone = td.hash_video(v.tokens, num_tokens=5, seed=3)
        assert torch.equal(alone.key_map[0], h.key_map[b])
        torch.testing.assert_close(alone.table[0], h.table[b])
        torch.testing.assert_close(alone.distortion()[0], h.distortion()[b])


def test_deterministic_given_seed(planted):
    a = td.hash_video(planted.tokens, num_tokens=6, seed=5)
    b = td.hash_video(planted.tokens, num_tokens=6, seed=5)
    assert torch.equal(a.key_map, b.key_map) and torch.equal(a.table, b.table)


def test_save_load_round_trip(tmp_path, planted):
    h = td.hash_video(planted.tokens.bfloat16(), num_tokens=5)
    h.save(tmp_path / "h.safetensors")
    back = td.TokenHashTable.load(tmp_path / "h.safetensors")
    assert torch.equal(back.table, h.table) and back.table.dtype == torch.bfloat16
    assert torch.equal(back.key_map, h.key_map) and torch.equal(back.num_tokens, h.num_tokens)
    assert torch.equal(back.distortion(), h.distortion())
    assert torch.equal(back.reconstruct(), h.reconstruct())


def test_distortion_against_given_tokens(planted):
    h = td.hash_video(planted.tokens, num_tokens=4)
    torch.testing.assert_close(h.distortion(planted.tokens), h.distortion())
    assert h.distortion(planted.tokens + 1.0).item() > h.distortion().item()


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a TokenHashTable"):
        td.TokenHashTable.load(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        td.TokenHashTable.load(tmp_path / "missing.safetensors")


@settings(max_examples=60, deadline=None)
@given(cut=st.floats(0, 1), noise=st.binary(min_size=0, max_size=64), where=st.floats(0, 1))
def test_load_of_truncated_or_corrupted_files_names_the_file(tmp_path_factory, cut, noise, where):
    """Truncated, overwritten or random files end in a ValueError naming the file, or load a table that
    passes every check: never a crash, a hang or a library error without the file's name."""
    path = tmp_path_factory.mktemp("t") / "h.safetensors"
    td.hash_video(torch.randn(2, 3, 3, 4), num_tokens=2).save(path)
    data = bytearray(path.read_bytes())
    data = data[: int(cut * len(data))]
    at = int(where * len(data))
    data[at:at + len(noise)] = noise
    path.write_bytes(bytes(data))
    try:
        h = td.TokenHashTable.load(path)
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert h.table.dim() == 3 and int(h.key_map.max()) < int(h.num_tokens.max())
        assert bool(torch.isfinite(h.table).all())


@pytest.mark.parametrize("kwargs, match", [
    (dict(tokens=torch.zeros(4, 4, 4)), "tokens must have shape"),
    (dict(tokens=torch.zeros(1, 2, 4, 4, 4, 4)), "tokens must have shape"),
    (dict(tokens=torch.zeros(2, 0, 4, 4)), "empty dimension"),
    (dict(tokens=torch.full((2, 2, 2, 3), float("nan"))), "finite"),
    (dict(tokens=torch.tensor([[[[1.0, float("inf")]]]])), "finite"),
    (dict(num_tokens=0), "num_tokens must be >= 1"),
    (dict(num_tokens=None), "exactly one of num_tokens"),
    (dict(max_distortion=0.1), "exactly one of num_tokens"),
    (dict(num_tokens=None, max_distortion=-1.0), "max_distortion"),
    (dict(num_tokens=None, max_distortion=0.1, min_tokens=5, max_tokens=2), "min_tokens"),
    (dict(metric="manhattan"), "metric must be one of"),
])
def test_bad_input_names_the_argument(kwargs, match):
    args = dict(tokens=torch.randn(2, 3, 3, 4), num_tokens=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        td.hash_video(**args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tokens=[[1.0]]), "tokens must be a torch.Tensor"),
    (dict(tokens=torch.zeros(2, 2, 2, 2, dtype=torch.long)), "floating"),
    (dict(tokens=torch.zeros(4, 8, 8, 3, dtype=torch.uint8)), "look like video frames: td.encode_videos"),
    (dict(num_tokens=2.5), "num_tokens must be an int"),
])
def test_bad_types_name_the_argument(kwargs, match):
    args = dict(tokens=torch.randn(2, 3, 3, 4), num_tokens=2)
    args.update(kwargs)
    with pytest.raises(TypeError, match=match):
        td.hash_video(**args)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 6)),
    k=st.integers(1, 12),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    metric=st.sampled_from(["cosine", "l2"]),
    seed=st.integers(0, 2**16),
)
def test_properties(shape, k, dtype, metric, seed):
    tokens = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    h = td.hash_video(tokens, num_tokens=k, metric=metric, seed=seed)
    b, t, hh, w, d = shape
    assert h.table.shape == (b, k, d) and h.table.dtype == dtype
    assert h.key_map.shape == (b, t, hh, w) and h.key_map.dtype == torch.long
    assert torch.all(h.num_tokens >= 1) and torch.all(h.num_tokens <= min(k, t * hh * w))
    for i in range(b):
        n = int(h.num_tokens[i])
        assert set(h.key_map[i].flatten().tolist()) == set(range(n))  # every row used, none beyond
        assert torch.all(h.table[i, n:] == 0)
    dist = h.distortion()
    assert torch.all(dist >= 0) and torch.all(torch.isfinite(dist))
    if dtype == torch.float32:  # cluster means never explain less than the global mean; half precision
        assert torch.all(dist <= 1 + 1e-5)  # rounding of the stored table can add a little on top
    rec = h.reconstruct()
    assert rec.shape == tokens.shape and rec.dtype == dtype
    if k >= t * hh * w and metric == "l2":  # every token can have its own row (cosine would merge tokens
        # of one direction): the rebuild is exact up to the table's rounding
        torch.testing.assert_close(rec.float(), tokens.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
def test_cpu_and_gpu_agree(planted):
    cpu = td.hash_video(planted.tokens, num_tokens=4)
    gpu = td.hash_video(planted.tokens.cuda(), num_tokens=4)
    assert gpu.table.is_cuda and gpu.key_map.is_cuda
    assert torch.equal(gpu.key_map.cpu(), cpu.key_map)
    torch.testing.assert_close(gpu.table.cpu(), cpu.table, rtol=1e-5, atol=1e-6)
    moved = cpu.to("cuda")
    assert moved.table.is_cuda and torch.equal(moved.key_map.cpu(), cpu.key_map)


@pytest.mark.gpu
def test_gpu_distortion_is_exact_at_its_ends():
    """Distortion comes from float64 cluster sums on the GPU too: 0 for a rebuilt video, a constant one
    included, and the CPU's value otherwise."""
    constant = torch.full((3, 4, 4, 5), 0.7, device="cuda")
    h = td.hash_video(constant, num_tokens=4)
    assert h.num_tokens.item() == 1 and h.distortion().item() == 0
    video = planted_token_video(num_frames=6, height=8, width=8, dim=16, num_objects=3, noise=0.0, seed=1)
    assert td.hash_video(video.tokens.cuda(), num_tokens=8).distortion().item() < 1e-10
    noisy = planted_token_video(num_frames=6, height=8, width=8, dim=16, num_objects=3, noise=0.1, seed=1).tokens
    torch.testing.assert_close(td.hash_video(noisy.cuda(), num_tokens=3).distortion().cpu(),
                               td.hash_video(noisy, num_tokens=3).distortion(), rtol=1e-6, atol=0)


@pytest.mark.gpu
def test_gpu_adaptive_and_batch(planted):
    batch = torch.stack([planted.tokens, planted.tokens.flip(0)]).cuda()
    h = td.hash_video(batch, max_distortion=0.2, max_tokens=16)
    cpu = td.hash_video(batch.cpu(), max_distortion=0.2, max_tokens=16)
    assert torch.equal(h.num_tokens.cpu(), cpu.num_tokens)
    assert torch.equal(h.key_map.cpu(), cpu.key_map)


@pytest.mark.gpu
def test_gpu_graphs_give_the_eager_table(monkeypatch, planted):
    from tokendynamics.cluster import cudagraphs

    x = torch.stack([planted.tokens, planted.tokens.flip(0)]).cuda()
    graphed = [td.hash_video(x, num_tokens=k) for k in (4, 4, 6)]  # capture, replay, another signature
    adaptive = td.hash_video(x, max_distortion=0.05, max_tokens=8)
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
    eager = [td.hash_video(x, num_tokens=k) for k in (4, 4, 6)]
    for a, b in zip(graphed + [adaptive], eager + [td.hash_video(x, max_distortion=0.05, max_tokens=8)]):
        for field in ("table", "key_map", "num_tokens"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        assert torch.equal(a.distortion(), b.distortion())
    cudagraphs.clear()
