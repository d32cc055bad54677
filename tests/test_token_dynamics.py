import pytest
import torch

import tokendynamics as td
from tokendynamics.data import planted_token_video


def _video(frames=8, dim=32, objects=2, seed=0):
    return planted_token_video(num_frames=frames, height=6, width=6, dim=dim, num_objects=objects,
                               object_size=2, noise=0.01, seed=seed).tokens


def _crossing(reverse_direction: bool, dim=32, frames=6, width=8):
    """One object (prototype 1) crossing a background (prototype 0) left to right, or right to left."""
    g = torch.Generator().manual_seed(0)
    protos = torch.nn.functional.normalize(torch.randn(2, dim, generator=g), dim=-1)
    key = torch.zeros(frames, 4, width, dtype=torch.long)
    for t in range(frames):
        col = t if not reverse_direction else width - 1 - t
        key[t, 1:3, col] = 1
    return protos[key]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return td.TokenDynamics(dim=32, num_tokens=4, heads=4, identity_init=False).eval()


@pytest.mark.parametrize("shape", [(4, 6, 6), (9, 5, 7), (32, 3, 3)])
def test_output_length_is_k_whatever_the_grid(model, shape):
    tokens = torch.randn(2, *shape, 32)
    out = model(tokens)
    assert out.tokens.shape == (2, 4, 32) and out.mask.shape == (2, 4)
    assert isinstance(out.hash, td.TokenHashTable)


def test_single_video_and_out_dim():
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=3, heads=2, out_dim=48, layers=2, identity_init=False)
    out = model(_video())
    assert out.tokens.shape == (1, 3, 48)


@pytest.mark.parametrize("trajectory", [False, True])
def test_adaptive_padding_rows_stay_masked_and_zero(trajectory):
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=None, max_distortion=0.05, max_tokens=12, heads=4,
                             identity_init=False, trajectory=trajectory)
    batch = torch.stack([_video(objects=1, seed=1), _video(objects=4, seed=2)])
    out = model(batch)
    n = out.hash.num_tokens
    assert n[0] < n[1] and out.tokens.shape[1] == int(n.max())
    assert torch.equal(out.mask, out.hash.mask)
    assert torch.all(out.tokens[0, int(n[0]):] == 0)
    assert torch.all(out.tokens.norm(dim=-1)[out.mask] > 0)
    alone = model(batch[0:1])  # padding does not leak into real rows
    torch.testing.assert_close(alone.tokens[0], out.tokens[0, : int(n[0])], rtol=1e-5, atol=1e-5)


def test_gradients_reach_weights_and_input_tokens(model):
    tokens = _video().requires_grad_(True)
    model.train()
    out = model(tokens)
    with torch.no_grad():  # the differentiable rows are the hash table's means
        torch.testing.assert_close(model(tokens.detach()).tokens, out.tokens, rtol=1e-4, atol=1e-5)
    out.tokens.square().sum().backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0
    for name in ["attention.layers.0.q.weight", "attention.layers.0.kv.weight", "motion.row_proj.weight",
                 "motion.axis_proj.0.weight", "motion.axis_proj.2.weight"]:
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("attend,trajectory", [("own", False), ("all", False), ("own", True)])
def test_relabelling_rows_permutes_output_rows(attend, trajectory):
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=4, heads=4, attend=attend, identity_init=False,
                             trajectory=trajectory).eval()
    tokens = _video(objects=3).unsqueeze(0)
    h = td.hash_video(tokens, num_tokens=4)
    perm = torch.tensor([2, 0, 3, 1])  # new row j holds old row perm[j]
    inverse = torch.argsort(perm)
    with torch.no_grad():
        out = model.fuse(h.table, h.key_map, h.mask)
        permuted = model.fuse(h.table[:, perm], inverse[h.key_map], h.mask[:, perm])
    torch.testing.assert_close(permuted, out[:, perm], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attend", ["own", "all"])
def test_motion_matters_same_table_different_output(attend):
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=2, heads=4, attend=attend, identity_init=False).eval()
    videos = {"left_to_right": _crossing(False), "right_to_left": _crossing(True),
              "reversed_frames": _crossing(False).flip(0)}
    outs = {name: model(v) for name, v in videos.items()}
    base = outs["left_to_right"]
    for name in ["right_to_left", "reversed_frames"]:
        torch.testing.assert_close(outs[name].hash.table, base.hash.table)  # same content
        assert not torch.equal(outs[name].hash.key_map, base.hash.key_map)  # different motion
        assert (outs[name].tokens - base.tokens).abs().max() > 1e-3, name  # and the output sees it


@pytest.mark.parametrize("trajectory", [False, True])
def test_save_load_round_trip(tmp_path, trajectory):
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=4, heads=4, identity_init=False, trajectory=trajectory).eval()
    tokens = _video()
    model.save_pretrained(tmp_path / "m")
    back = td.TokenDynamics.from_pretrained(tmp_path / "m").eval()
    assert back.config == model.config
    with torch.no_grad():
        assert torch.equal(back(tokens).tokens, model(tokens).tokens)


def test_bfloat16_runs(model):
    out = model.to(torch.bfloat16)(_video().bfloat16())
    assert out.tokens.dtype == torch.bfloat16 and torch.isfinite(out.tokens.float()).all()


def test_position_code_any_length_and_interpolates():
    a, b = td.axis_code(32, 32), td.axis_code(63, 32)
    assert a.shape == (32, 32) and b.shape == (63, 32)
    torch.testing.assert_close(a, b[::2])  # same normalised times, same codes: frame k of 32 = frame 2k of 63
    assert not torch.equal(a[0], a[1])
    model = td.TokenDynamics(dim=32, num_tokens=3, heads=4)
    assert model(torch.randn(64, 4, 4, 32)).tokens.shape == (1, 3, 32)


@pytest.mark.parametrize("tokens, match", [
    (torch.randn(4, 6, 6, 16), "width 32"),
    (torch.randn(6, 6, 32), "tokens must have shape"),
    (torch.full((2, 3, 3, 32), float("nan")), "finite"),
])
def test_bad_input(model, tokens, match):
    with pytest.raises(ValueError, match=match):
        model(tokens)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=30, heads=4), "divisible"),
    (dict(dim=32, attend="some"), "attend"),
    (dict(dim=32, position="rope"), "position"),
    (dict(dim=32, num_tokens=None), "exactly one"),
    (dict(dim=0), "dim"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        td.TokenDynamics(**kwargs)


def test_from_pretrained_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory"):
        td.TokenDynamics.from_pretrained(tmp_path)


@pytest.mark.parametrize("attend", ["own", "all"])
@pytest.mark.parametrize("position", ["sincos", "none"])
def test_factorized_attention_equals_dense_sdpa(attend, position):
    torch.manual_seed(0)
    cfg = dict(dim=32, num_tokens=None, max_distortion=0.05, max_tokens=8, heads=4, layers=2, attend=attend,
               position=position, identity_init=False)
    fact = td.TokenDynamics(**cfg, impl="factorized").eval()
    dense = td.TokenDynamics(**cfg, impl="dense").eval()
    dense.load_state_dict(fact.state_dict())
    batch = torch.stack([_video(objects=1, seed=1), _video(objects=4, seed=2)])  # padding rows included
    with torch.no_grad():
        torch.testing.assert_close(fact(batch).tokens, dense(batch).tokens, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_cpu_and_gpu_agree():
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=3, heads=4, identity_init=False).eval()  # K = planted prototypes: one clustering
    tokens = _video()
    with torch.no_grad():
        cpu = model(tokens).tokens
        gpu = model.cuda()(tokens.cuda()).tokens.cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("trajectory", [False, True])
def test_gpu_inference_graph_gives_the_eager_attention(monkeypatch, trajectory):
    """Without gradients the attention (and the trajectory code) is a CUDA graph: the eager result, and
    in-place weight updates and new weights are followed."""
    from tokendynamics.cluster import cudagraphs

    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=None, max_distortion=0.05, max_tokens=8, heads=4,
                             identity_init=False, trajectory=trajectory).cuda().eval()
    batch = torch.stack([_video(objects=1, seed=1), _video(objects=4, seed=2)]).cuda()  # padding rows

    def both():
        with torch.no_grad():
            graphed = [model(batch).tokens for _ in range(2)]  # capture, then replay
            monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
            eager = model(batch).tokens
            monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "1")
        return graphed, eager

    graphed, eager = both()
    assert torch.equal(graphed[0], eager) and torch.equal(graphed[1], eager)
    with torch.no_grad():
        model.attention.layers[0].out.bias.add_(1.0)  # in place: the captured graph reads it
    graphed, eager_after = both()
    assert torch.equal(graphed[1], eager_after) and not torch.equal(eager_after, eager)
    model.half()  # new storage: a new graph
    graphed, eager = both()
    assert graphed[1].dtype == torch.float16 and torch.equal(graphed[1], eager)
    import gc
    import weakref

    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None  # its graphs are kept with it, not in a cache that would keep it alive
    cudagraphs.clear()


def test_identity_init_returns_the_table_and_still_trains():
    model = td.TokenDynamics(dim=32, num_tokens=3, heads=4)  # identity_init=True by default
    tokens = _video().requires_grad_(True)
    out = model(tokens)
    torch.testing.assert_close(out.tokens, out.hash.table.float(), rtol=1e-5, atol=1e-5)
    out.tokens.square().sum().backward()
    assert model.attention.layers[0].out.weight.grad.abs().sum() > 0


def test_row_trajectories_by_hand():
    from tokendynamics.dynamics import row_trajectories

    key = torch.zeros(1, 3, 2, 3, dtype=torch.long)  # row 1: one cell moving right, then two cells
    key[0, 0, 0, 0] = key[0, 1, 0, 1] = 1
    key[0, 2, :, 2] = 1
    traj = row_trajectories(key, 3)
    assert traj.shape == (1, 3, 3, 4)
    expected = torch.tensor([[1, 1 / 6, 0.0, 0.0], [1, 1 / 6, 0.0, 0.5], [1, 2 / 6, 0.5, 1.0]])
    torch.testing.assert_close(traj[0, 1], expected)
    torch.testing.assert_close(traj[0, 0, :, :2], torch.tensor([[1, 5 / 6], [1, 5 / 6], [1, 4 / 6]]))
    assert torch.all(traj[0, 2] == 0)  # a row without cells is absent in every frame


def test_trajectory_code_starts_at_zero_and_trains():
    torch.manual_seed(0)
    plain = td.TokenDynamics(dim=32, num_tokens=3, heads=4, attend="own")
    model = td.TokenDynamics(dim=32, num_tokens=3, heads=4, attend="own", trajectory=True)
    model.load_state_dict(plain.state_dict(), strict=False)
    tokens = _video().requires_grad_(True)
    out = model(tokens)
    torch.testing.assert_close(out.tokens, plain(tokens).tokens)  # an untrained code adds nothing
    out.tokens.square().sum().backward()
    assert model.trajectory.out[-1].weight.grad.abs().sum() > 0


def test_trajectory_code_reads_direction_of_any_length():
    """The code of a row crossing left to right differs from the same row crossing right to left (the
    table is the same), and a video of another length gets a code of the same width."""
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=32, num_tokens=2, heads=4, trajectory=True, identity_init=False).eval()
    with torch.no_grad():
        codes = {d: model.trajectory(model(_crossing(d)).hash.key_map, 2, torch.float32) for d in (False, True)}
        longer = model.trajectory(model(_crossing(False, frames=8)).hash.key_map, 2, torch.float32)
    assert (codes[False] - codes[True]).abs().max() > 1e-3 and longer.shape == codes[False].shape


def test_narrow_attention_width():
    torch.manual_seed(0)
    cfg = dict(dim=32, num_tokens=None, max_distortion=0.05, max_tokens=8, heads=4, layers=2, width=16,
               identity_init=False)
    fact = td.TokenDynamics(**cfg, impl="factorized").eval()
    dense = td.TokenDynamics(**cfg, impl="dense").eval()
    dense.load_state_dict(fact.state_dict())
    batch = torch.stack([_video(objects=1, seed=1), _video(objects=4, seed=2)])
    with torch.no_grad():
        a, b = fact(batch), dense(batch)
    assert a.tokens.shape[-1] == 32
    torch.testing.assert_close(a.tokens, b.tokens, rtol=1e-4, atol=1e-5)
    full = td.TokenDynamics(dim=32, num_tokens=4, heads=4, layers=2)  # same layers, full width
    assert sum(p.numel() for p in fact.parameters()) < 0.6 * sum(p.numel() for p in full.parameters())
    with pytest.raises(ValueError, match="attention width .18. must be divisible by heads .4."):
        td.TokenDynamics(dim=32, heads=4, width=18)



def test_a_corrupted_module_names_its_file(tmp_path, model):
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "tokendynamics.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="tokendynamics.safetensors.*not a readable safetensors"):
        td.TokenDynamics.from_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "tokendynamics_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokendynamics_config.json.*not a TokenDynamics config"):
        td.TokenDynamics.from_pretrained(tmp_path / "m")
    other = td.TokenDynamics(dim=model.config.dim * 2, num_tokens=4)
    other.save_pretrained(tmp_path / "o")
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "tokendynamics.safetensors").write_bytes((tmp_path / "o" / "tokendynamics.safetensors").read_bytes())
    with pytest.raises(ValueError, match="does not hold this config's weights"):
        td.TokenDynamics.from_pretrained(tmp_path / "m")


def test_from_table_is_the_learned_half_of_forward(model):
    x = torch.randn(2, 5, 4, 4, model.config.dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        whole = model(x)
        half = model.from_table(td.hash_video(x, **model.config.hash_kwargs))
    torch.testing.assert_close(half.tokens, whole.tokens)
    with pytest.raises(ValueError, match="must have width"):
        model.from_table(td.hash_video(torch.randn(3, 2, 2, 4), num_tokens=2))
