import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokendynamics as td
from tokendynamics.reducers import pool_grid, tome, visionzip
from tokendynamics.reducers.dycoke import reference_frames, temporal_redundancy
from tokendynamics.data import planted_token_video

NAMES = list(td.reducers)
HASHED = {"hash_table", "token_dynamics"}  # may keep fewer rows where a video has fewer distinct tokens


def _videos(batch=2, frames=8, dim=16, seed=0):
    return torch.stack([planted_token_video(num_frames=frames, height=6, width=6, dim=dim, num_objects=2,
                                            object_size=2, noise=0.05, seed=seed + i).tokens
                        for i in range(batch)])


def test_registry_lists_every_reducer_and_rejects_unknown_names():
    assert set(NAMES) == {"token_dynamics", "hash_table", "uniform_pool", "random_prune", "tome", "visionzip",
                          "dycoke"}
    with pytest.raises(ValueError, match="unknown reducer 'nope'.*tome"):
        td.reducers["nope"]
    with pytest.raises(KeyError):
        td.reducers["nope"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [1, 4, 8])
def test_output_count_mask_dtype_device(name, k):
    x = _videos()
    out = td.reducers[name](x, num_tokens=k)
    assert out.tokens.shape == (2, k, 16) and out.mask.shape == (2, k) and out.mask.dtype == torch.bool
    assert out.tokens.dtype == x.dtype and out.tokens.device == x.device
    if name not in HASHED:
        assert out.mask.all()
    else:  # the planted videos have more distinct tokens than k
        assert out.mask.all() and torch.equal(out.hash.num_tokens, torch.full((2,), k))


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_kept_and_single_video_accepted(name):
    out = td.reducers[name](_videos(batch=1)[0].bfloat16(), num_tokens=4)
    assert out.tokens.shape == (1, 4, 16) and out.tokens.dtype == torch.bfloat16


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_batch_equals_per_video(name):
    x = _videos(batch=3)
    reduce = td.reducers[name]
    batch = reduce(x, num_tokens=6)
    assert torch.equal(batch.tokens, reduce(x, num_tokens=6).tokens)
    for i in range(3):
        alone = reduce(x[i], num_tokens=6)
        torch.testing.assert_close(alone.tokens[0], batch.tokens[i], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_constant_video_reduces_to_its_value(name):
    value = torch.linspace(-1, 2, 16)
    x = value.expand(2, 8, 6, 6, 16).clone()
    out = td.reducers[name](x, num_tokens=4)
    rows = out.tokens[out.mask]
    assert rows.shape[0] >= 2  # at least one row per video
    expected = value.expand_as(rows).clone()
    if name == "visionzip":  # VisionZip's contextual token (the last of 4) is its target plus the joined mean
        expected.view(2, 4, 16)[:, 3] *= 2
    torch.testing.assert_close(rows, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad, error, match", [
    (dict(tokens=torch.randn(6, 6, 16)), ValueError, "tokens must have shape"),
    (dict(num_tokens=0), ValueError, "num_tokens must be >= 1"),
    (dict(num_tokens=2.5), TypeError, "num_tokens must be an int"),
    (dict(tokens=torch.full((4, 3, 3, 8), float("nan"))), ValueError, "finite"),
    (dict(tokens=torch.randint(0, 5, (4, 3, 3, 8))), TypeError, "floating"),
])
def test_bad_input_names_the_argument(name, bad, error, match):
    args = dict(tokens=torch.randn(4, 3, 3, 8), num_tokens=4) | bad
    with pytest.raises(error, match=match):
        td.reducers[name](args["tokens"], num_tokens=args["num_tokens"])


@pytest.mark.parametrize("name", sorted(set(NAMES) - HASHED))
def test_budget_above_token_count_is_refused(name):
    with pytest.raises(ValueError, match="num_tokens .37. must be at most .* 36"):
        td.reducers[name](torch.randn(4, 3, 3, 8), num_tokens=37)


def test_uniform_pool_of_a_ramp_gives_the_window_means():
    t, h, w = 4, 6, 6
    ramp = torch.arange(t * h * w, dtype=torch.float32).view(t, h, w, 1).expand(t, h, w, 2)
    out = td.reducers["uniform_pool"](ramp, num_tokens=8, grid=(2, 2, 2))
    expected = torch.stack([ramp[i * 2:(i + 1) * 2, j * 3:(j + 1) * 3, k * 3:(k + 1) * 3, 0].mean()
                            for i in range(2) for j in range(2) for k in range(2)])
    torch.testing.assert_close(out.tokens[0, :, 0], expected)
    full = td.reducers["uniform_pool"](ramp, num_tokens=t * h * w)  # full size keeps every token
    torch.testing.assert_close(full.tokens[0], ramp.reshape(-1, 2))


@pytest.mark.parametrize("k, grid, expected", [(8, (32, 14, 14), (2, 2, 2)), (16, (32, 14, 14), (4, 2, 2)),
                                               (4, (32, 14, 14), (4, 1, 1)), (32, (32, 14, 14), (8, 2, 2)),
                                               (12, (3, 4, 8), (2, 2, 3)), (7, (8, 2, 2), (7, 1, 1))])
def test_pool_grid(k, grid, expected):
    assert pool_grid(k, grid) == expected


def test_pool_grid_impossible_budget_is_explained():
    with pytest.raises(ValueError, match="cannot be laid out"):
        td.reducers["uniform_pool"](torch.randn(4, 3, 3, 8), num_tokens=7)
    with pytest.raises(ValueError, match="grid must be"):
        td.reducers["uniform_pool"](torch.randn(4, 3, 3, 8), num_tokens=4, grid=(2, 2, 2))


def test_random_prune_keeps_input_tokens_in_order_and_follows_the_seed():
    x = torch.arange(4 * 3 * 3, dtype=torch.float32).view(4, 3, 3, 1)
    a = td.reducers["random_prune"](x, num_tokens=10, seed=1).tokens[0, :, 0]
    b = td.reducers["random_prune"](x, num_tokens=10, seed=2).tokens[0, :, 0]
    assert torch.all(a[1:] > a[:-1]) and len(set(a.tolist())) == 10 and not torch.equal(a, b)


def test_tome_merges_the_two_most_similar_tokens_first():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 2, 4, 32, generator=g)  # 16 tokens; set A = even positions, B = odd
    flat = x.view(16, 32)
    flat[9] = flat[4] + 0.01 * torch.randn(32, generator=g)  # A token 4 and B token 9: near-identical
    out = tome(x, num_tokens=15).tokens[0]
    expected = torch.cat([flat[:4], ((flat[4] + flat[9]) / 2).unsqueeze(0), flat[5:9], flat[10:]])
    torch.testing.assert_close(out, expected)  # merged token sits at the earlier position


def test_tome_averages_by_size():
    x = torch.tensor([1.0, 1.0, 1.0, 5.0]).view(1, 1, 4, 1).expand(1, 1, 4, 2).contiguous()
    x[..., 1] = 1  # all tokens point the same way: cosine ties; sizes decide the final mean
    out = tome(x, num_tokens=1).tokens
    torch.testing.assert_close(out[0, 0], torch.tensor([2.0, 1.0]))


def test_tome_orders_tokens_between_rounds_as_the_reference_does():
    """Six 2-D tokens at the angles below (positions 0-5: A0 B0 A1 B1 A2 B2), reduced to 2, worked by hand.
    Round 1 (r = 3): A0 -> B2, A1 -> B0, A2 -> B1, giving B0' (2.5 deg, cells 1, 2), B1' (92.5, cells 3, 4),
    B2' (177.5, cells 0, 5). ToMe keeps them in B's order, so round 2 splits A = [B0', B2'], B = [B1']: B2'
    (85 deg from B1') merges, leaving {0, 3, 4, 5} and {1, 2}. Put back in video order first
    ([B2', B0', B1']), round 2 is A = [B2', B1'], B = [B0'] and B1' merges: {0, 5} and {1, 2, 3, 4}."""
    angles = torch.tensor([175.0, 0.0, 5.0, 90.0, 95.0, 180.0]).deg2rad()
    flat = torch.stack([angles.cos(), angles.sin()], -1)
    x = flat.view(1, 1, 1, 6, 2)

    def mean(cells):
        return flat[cells].mean(0)
    reference = tome(x, num_tokens=2).tokens[0]
    torch.testing.assert_close(reference, torch.stack([mean([0, 3, 4, 5]), mean([1, 2])]))
    video = tome(x, num_tokens=2, order="video").tokens[0]
    torch.testing.assert_close(video, torch.stack([mean([0, 5]), mean([1, 2, 3, 4])]))
    with pytest.raises(ValueError, match="order must be one of"):
        tome(x, num_tokens=2, order="random")


def test_tome_merges_at_most_half_the_tokens_a_round():
    """Seven tokens to one: ToMe's cap, floor(m / 2), gives rounds of 3, 2, 1 (7 -> 4 -> 2 -> 1); sizes
    weight the means, so the one token left is the mean of all seven."""
    x = torch.randn(1, 1, 1, 7, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(tome(x, num_tokens=1).tokens[0, 0], x.view(7, 4).mean(0))
    from tokendynamics.reducers.tome import bipartite_round

    sums, sizes, pos = x.view(1, 7, 4), torch.ones(1, 7), torch.arange(7)[None]
    sums, sizes, pos = bipartite_round(sums, sizes, pos, 7 // 2)
    assert sizes.shape[1] == 4 and sizes.sum() == 7


def test_visionzip_keeps_the_most_attended_tokens_and_merges_the_rest():
    x = torch.randn(1, 2, 4, 4, 8, generator=torch.Generator().manual_seed(0))
    attention = torch.zeros(1, 2, 4, 4)
    attention[0, 1, 2, 3], attention[0, 0, 0, 1], attention[0, 1, 0, 0] = 3.0, 2.0, 1.0
    out = visionzip(x, num_tokens=4, attention=attention).tokens[0]  # 3 dominant + 1 contextual
    torch.testing.assert_close(out[:3], torch.stack([x[0, 0, 0, 1], x[0, 1, 0, 0], x[0, 1, 2, 3]]))
    flat = x.view(32, 8)
    rest = [i for i in range(32) if i not in (1, 16, 27)]
    # one contextual token: the first remaining token (the target) plus the mean of the others
    torch.testing.assert_close(out[3], flat[rest[0]] + flat[rest[1:]].mean(0))
    mean = visionzip(x, num_tokens=4, attention=attention, contextual="mean").tokens[0]
    torch.testing.assert_close(mean[3], flat[rest].mean(0))  # the project's variant: the mean of all of them
    with pytest.raises(ValueError, match="attention must have shape"):
        visionzip(x, num_tokens=4, attention=torch.zeros(1, 2, 4, 5))


def test_dycoke_drops_cells_that_repeat_their_reference_frame():
    assert reference_frames(8).tolist() == [-1, 0, 0, 2, -1, 4, 4, 6]
    # the last window, whole or not, is compared like every other (the reference code slips here)
    assert reference_frames(7).tolist() == [-1, 0, 0, 2, -1, 4, 4] and reference_frames(5).tolist()[-1] == -1
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 3, 3, 8, generator=g).expand(1, 4, 3, 3, 8).clone()  # static video ...
    x[0, 1, 1, 1] = torch.randn(8, generator=g)  # ... but for one cell of frame 1
    survives, _ = temporal_redundancy(x, merging_ratio=0.8)  # compared frames keep 1 cell of 9
    assert survives[0, 0].all() and survives[0, 1, 1, 1] and survives[0, 1].sum() == 1
    out = td.reducers["dycoke"](x, num_tokens=12, merging_ratio=0.8).tokens[0]  # every survivor
    assert any(torch.equal(row, x[0, 1, 1, 1]) for row in out)  # the changed cell is kept
    with pytest.raises(ValueError, match="merging_ratio"):
        td.reducers["dycoke"](x, num_tokens=4, merging_ratio=1.0)


def test_token_dynamics_reducer_uses_a_given_model():
    x = _videos(batch=1)
    torch.manual_seed(0)
    model = td.TokenDynamics(dim=16, num_tokens=4, heads=4, identity_init=False).eval()
    out = td.reducers["token_dynamics"](x, model=model)
    torch.testing.assert_close(out.tokens, model(x).tokens)
    untrained = td.reducers["token_dynamics"](x, num_tokens=4)  # identity-initialised: the table
    torch.testing.assert_close(untrained.tokens, td.reducers["hash_table"](x, num_tokens=4).tokens)
    with pytest.raises(ValueError, match="come from the model's config"):
        td.reducers["token_dynamics"](x, num_tokens=8, model=model)


def test_hash_table_adaptive_length_masks_padding():
    x = torch.stack([_videos(batch=1)[0], torch.ones(8, 6, 6, 16)])
    out = td.reducers["hash_table"](x, max_distortion=0.05, max_tokens=8)
    assert out.mask[1].sum() == 1 and out.mask[0].sum() > 1


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cpu_and_gpu_agree(name):
    x = _videos(batch=2)
    cpu = td.reducers[name](x, num_tokens=6)
    gpu = td.reducers[name](x.cuda(), num_tokens=6)
    assert gpu.tokens.is_cuda
    torch.testing.assert_close(gpu.tokens.cpu(), cpu.tokens, rtol=1e-4, atol=1e-4)


def test_uniform_pool_uneven_windows_follow_adaptive_pooling():
    x = torch.randn(2, 5, 6, 7, 8)
    out = td.reducers["uniform_pool"](x, num_tokens=8, grid=(2, 2, 2)).tokens
    expected = torch.nn.functional.adaptive_avg_pool3d(x.permute(0, 4, 1, 2, 3), (2, 2, 2))
    torch.testing.assert_close(out, expected.flatten(2).transpose(1, 2))


def test_old_names_and_import_paths_still_work_with_a_warning():
    import importlib
    import sys

    with pytest.warns(DeprecationWarning, match="now tokendynamics.reducers"):
        assert td.compressors is td.reducers
    moves = {"tokendynamics.kmeans": "tokendynamics.cluster.kmeans",
             "tokendynamics.compressor": "tokendynamics.token_dynamics",
             "tokendynamics.baselines": "tokendynamics.reducers",
             "tokendynamics.baselines.tome": "tokendynamics.reducers.tome",
             "tokendynamics.baselines.hashed": "tokendynamics.reducers.method"}
    for old, new in moves.items():
        for name in ("tokendynamics.baselines", old):  # imported afresh, as a user's first import would be
            sys.modules.pop(name, None)
        with pytest.warns(DeprecationWarning, match="moved to"):
            assert importlib.import_module(old) is importlib.import_module(new)
    from tokendynamics.reducers import Compressors, Reducers
    assert Compressors is Reducers


def test_a_reducer_saved_in_the_older_format_still_loads(tmp_path):
    from safetensors.torch import save_file

    from tokendynamics.reducers import Reducer

    reducer = Reducer("token_dynamics", 16, num_tokens=4)
    with torch.no_grad():
        for weight in reducer.parameters():  # not the zero initialisation: the check must see each weight
            weight.normal_()
    reducer.save_pretrained(tmp_path)
    (tmp_path / "tokendynamics.safetensors").unlink()  # 0.2 wrote the whole reducer's weights in one file
    save_file({k: v.contiguous() for k, v in reducer.state_dict().items()},
              str(tmp_path / "tokendynamics_reducer.safetensors"))
    loaded = Reducer.from_pretrained(tmp_path)
    assert all(torch.equal(v, reducer.state_dict()[k]) for k, v in loaded.state_dict().items())
    loaded.save_pretrained(tmp_path)  # saved again: the new format only
    assert not (tmp_path / "tokendynamics_reducer.safetensors").exists()
    assert td.TokenDynamics.from_pretrained(tmp_path).config.num_tokens == 4


def test_a_loaded_reducer_changes_only_what_no_weight_depends_on(tmp_path):
    """``with_options`` (what loading a model with options but no reducer name does): Token Dynamics'
    clustering changes, its key map then the one ``hash_video`` gives with that setting; an option that
    shapes its weights, or any option for full tokens, raises naming it."""
    from tokendynamics.reducers import Reducer

    Reducer("token_dynamics", 16, num_tokens=4).save_pretrained(tmp_path)
    tokens = planted_token_video(num_frames=3, dim=16, seed=2).tokens[None]
    loaded = Reducer.from_pretrained(tmp_path).with_options(metric="l2", max_iters=2)
    assert loaded.options["metric"] == "l2" and loaded.model.config.max_iters == 2
    expected = td.hash_video(tokens, num_tokens=4, metric="l2", max_iters=2).key_map
    assert torch.equal(loaded(tokens).hash.key_map, expected)
    with pytest.raises(ValueError, match="option\\(s\\) heads shape the trained"):
        Reducer.from_pretrained(tmp_path).with_options(heads=2)
    with pytest.raises(ValueError, match="full tokens take no options, got seed"):
        Reducer("full", 16, None).with_options(seed=1)
    assert Reducer("tome", 16, 4).with_options(seed=3).options == {"seed": 3}
    adaptive = Reducer.from_pretrained(tmp_path).with_options(max_distortion=0.05, max_tokens=6)
    assert adaptive.num_tokens is None and adaptive.model.config.max_distortion == 0.05
    expected = td.hash_video(tokens, max_distortion=0.05, max_tokens=6)
    assert torch.equal(adaptive(tokens).hash.key_map, expected.key_map)



@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(NAMES), shape=st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 4),
                                                     st.integers(1, 4), st.integers(1, 6)),
       k=st.integers(-1, 40), dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float64]),
       scale=st.sampled_from([0.0, 1e-30, 1.0, 1e30]))
def test_every_reducer_gives_k_finite_rows_or_an_error_naming_the_argument(name, shape, k, dtype, scale):
    """Random shapes, budgets, dtypes and scales (constant, tiny and huge tokens included): exactly K valid
    finite rows of the input's width (fewer for the hashed ones where there are fewer distinct tokens), or
    a ValueError naming the argument: num_tokens (uniform pooling: also a K that no grid of the video's
    axes gives), or (untrained Token Dynamics) a width its 8 heads do not divide."""
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(k + 2)) * scale).to(dtype)
    n = shape[1] * shape[2] * shape[3]
    try:
        out = td.reducers[name](x, num_tokens=k)
    except ValueError as e:
        heads = name == "token_dynamics" and shape[-1] % 8 and "divisible by heads" in str(e)
        grid = name == "uniform_pool" and "cannot be laid out" in str(e)  # K must factor over the axes
        assert heads or "num_tokens" in str(e) and (k < 1 or k > n or grid), (name, shape, k, str(e))
        return
    assert 1 <= k and (k <= n or name in HASHED)
    assert out.tokens.shape[0] == shape[0] and out.tokens.shape[-1] == shape[-1] and out.tokens.dtype == dtype
    kept = out.mask.sum(1)
    assert bool((kept <= k).all()) and bool((kept >= 1).all()) and (name in HASHED or bool((kept == k).all()))
    assert bool(torch.isfinite(out.tokens[out.mask].float()).all()) or scale == 1e30 and dtype != torch.float64


def test_a_loaded_token_dynamics_takes_another_k_and_a_named_reducer_defaults_to_8(tmp_path):
    """``num_tokens`` given to a saved Token Dynamics (``with_options``, ``load_model(..., num_tokens=K)``,
    ``eval --num-tokens K``) sets its fixed length, adaptive or not before (no weight depends on K): its key
    map is then ``hash_video``'s at that K; left out, the saved K stays; a reducer named without one gets 8."""
    from tokendynamics.reducers import Reducer
    from tokendynamics.reducers.module import named_length

    Reducer("token_dynamics", 16, num_tokens=None, max_distortion=0.1).save_pretrained(tmp_path)
    tokens = planted_token_video(num_frames=3, dim=16, seed=2).tokens[None]
    fixed = Reducer.from_pretrained(tmp_path).with_options(num_tokens=5)
    assert fixed.num_tokens == 5 and fixed.model.config.max_distortion is None
    assert "max_distortion" not in fixed.options and fixed.config["num_tokens"] == 5
    assert torch.equal(fixed(tokens).hash.key_map, td.hash_video(tokens, num_tokens=5).key_map)
    assert Reducer("tome", 16, 4).with_options(num_tokens=6).num_tokens == 6
    assert Reducer.from_pretrained(tmp_path).with_options().num_tokens is None  # the saved length stays
    with pytest.raises(ValueError, match="full tokens take no options, got num_tokens"):
        Reducer("full", 16, None).with_options(num_tokens=8)
    with pytest.raises(ValueError, match="exactly one of num_tokens .* or max_distortion"):
        Reducer.from_pretrained(tmp_path).with_options(num_tokens=5, max_distortion=0.1)
    assert named_length(None, {}) == 8 and named_length(None, {"max_distortion": 0.1}) is None
    assert named_length(16, {}) == 16
