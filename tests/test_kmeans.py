import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from tokendynamics.cluster.kmeans import cluster_sums, kmeans


def _inertia(x, labels):
    """Sum of squared distances to cluster means, float64, for ``x`` ``[N, D]``."""
    x = x.double()
    k = int(labels.max()) + 1
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, labels, x)
    means = sums / torch.bincount(labels, minlength=k).clamp_min(1).unsqueeze(1)
    return float(((x - means[labels]) ** 2).sum())


def _blobs(n, d, k, seed, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 3
    return centers[torch.randint(0, k, (n,), generator=g)] + spread * torch.randn(n, d, generator=g)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_inertia_matches_sklearn(seed):
    x = _blobs(600, 8, 6, seed, spread=1.0)
    ours = kmeans(x[None], 6, metric="l2", seed=seed).labels[0]
    theirs = torch.as_tensor(KMeans(6, random_state=seed, n_init=1).fit(x.numpy()).labels_).long()
    assert _inertia(x, ours) <= _inertia(x, theirs) * 1.02


def test_cosine_clusters_directions_not_lengths():
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=-1)
    which = torch.arange(300) % 3
    lengths = torch.rand(300, 1, generator=g) * 10 + 0.1  # lengths vary wildly; directions decide
    res = kmeans((dirs[which] * lengths)[None], 3, metric="cosine")
    labels = res.labels[0]
    for c in range(3):
        assert labels[which == c].unique().numel() == 1
    assert labels.unique().numel() == 3
    assert torch.allclose(res.centroids.norm(dim=-1), torch.ones(1, 3))


def test_reported_inertia_is_the_inertia_of_the_labels():
    x = _blobs(400, 5, 4, 7)
    res = kmeans(x[None], 4, metric="l2", tol=0)
    assert res.inertia.item() == pytest.approx(_inertia(x, res.labels[0]), rel=1e-4)


def test_per_video_k_and_batch_independence():
    xs = torch.stack([_blobs(300, 6, 5, s) for s in range(3)])
    k = torch.tensor([2, 5, 3])
    together = kmeans(xs, k, metric="l2", seed=4)
    for b in range(3):
        alone = kmeans(xs[b : b + 1], int(k[b]), metric="l2", seed=4)
        assert torch.equal(together.labels[b], alone.labels[0])
        assert int(together.labels[b].max()) < int(k[b])


def test_mask_ignores_padding():
    x = _blobs(250, 6, 4, 9)
    padded = torch.cat([x, 100 * torch.randn(50, 6)])[None]
    mask = torch.arange(300)[None] < 250
    with_mask = kmeans(padded, 4, mask=mask, seed=2)
    plain = kmeans(x[None], 4, seed=2)
    assert torch.equal(with_mask.labels[0, :250], plain.labels[0])
    assert torch.all(with_mask.labels[0, 250:] == 0)
    assert with_mask.inertia.item() == pytest.approx(plain.inertia.item(), rel=1e-5)


def test_empty_clusters_are_reseeded_from_distinct_points():
    # 5 distinct points, K = 5: every point must end up in its own cluster even though the seeding
    # sample is forced to cover only part of the data
    x = torch.repeat_interleave(torch.eye(5) * torch.arange(1, 6).unsqueeze(1), 40, dim=0)
    res = kmeans(x[None], 5, metric="l2", sample_size=8)
    assert res.labels[0].unique().numel() == 5
    assert res.inertia.item() == pytest.approx(0, abs=1e-6)


def test_cluster_sums_weights_and_ignored_label():
    x = torch.arange(12, dtype=torch.float32).view(1, 4, 3)
    labels = torch.tensor([[0, 1, 0, 2]])  # label 2 == k: ignored
    sums, counts = cluster_sums(x, labels, 2, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert torch.equal(counts, torch.tensor([[2, 1]]))
    assert torch.allclose(sums[0, 0], x[0, 0] + 3 * x[0, 2])
    assert torch.allclose(sums[0, 1], 2 * x[0, 1])


def test_same_seed_same_result_other_seed_runs():
    x = _blobs(500, 4, 8, 5)[None]
    a, b = kmeans(x, 8, seed=11), kmeans(x, 8, seed=11)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centroids, b.centroids)
    assert np.isfinite(kmeans(x, 8, seed=12).inertia.item())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bfloat16: the Triton loop, its kept state
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_cuda_graphs_give_the_eager_result(monkeypatch, metric, dtype):
    from tokendynamics.cluster import cudagraphs

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 500, 24, generator=g).to("cuda", dtype)
    graphed = [kmeans(x, 7, metric=metric, seed=s) for s in (0, 0, 1)]  # capture, replay, replay
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
    eager = [kmeans(x, 7, metric=metric, seed=s) for s in (0, 0, 1)]
    for a, b in zip(graphed, eager):
        for field in ("centroids", "labels", "inertia", "iterations"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
    y = x.clone()
    y[0] += 1  # a modified input (same shape) is copied again, not served stale
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "1")
    fresh = kmeans(y, 7, metric=metric)
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
    assert torch.equal(fresh.labels, kmeans(y, 7, metric=metric).labels)
    cudagraphs.clear()


def _module():
    """The module ``tokendynamics.cluster.kmeans`` (``from tokendynamics.cluster import kmeans`` gives the
    package's function of that name)."""
    import importlib

    return importlib.import_module("tokendynamics.cluster.kmeans")


def _seed_inputs(b, s, d, k, trials, seed=0):
    """Sample points in the clustering space, squared norms, weights (padding in video 0), draws."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.nn.functional.normalize(torch.randn(b, s, d, generator=g), dim=-1)
    weight = torch.ones(b, s)
    weight[0, s // 2:] = 0
    draws = torch.rand(k, trials, generator=g, dtype=torch.float64)
    return pts, pts.square().sum(-1), weight, draws


def test_triton_seeding_matches_pytorch_in_the_interpreter():
    """The Triton k-means++ kernel, run by Triton's CPU interpreter, picks the PyTorch path's seeds."""
    pytest.importorskip("triton")
    code = """
import torch, sys
sys.path.insert(0, {tests!r})
from test_kmeans import _seed_inputs
import importlib
from tokendynamics.cluster import kernels
kmeans = importlib.import_module("tokendynamics.cluster.kmeans")  # the module: the package's kmeans is the function
for b, s, d, k, trials in [(2, 300, 16, 8, 4), (1, 1024, 32, 32, 5), (3, 77, 8, 5, 3)]:
    args = _seed_inputs(b, s, d, k, trials)
    assert torch.equal(kernels.greedy_seeds(*args), kmeans._greedy_seeds(*args)), (b, s, d, k)
args = _seed_inputs(2, 40, 4, 60, 6)  # more seeds than real points (20 in video 0): never a padding point
for seeds in (kernels.greedy_seeds(*args), kmeans._greedy_seeds(*args)):
    assert seeds[0].max() < 20 and seeds[0, :20].unique().numel() == 20 and seeds[1, :40].unique().numel() == 40
"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", code.format(tests=str(Path(__file__).parent))], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.gpu
def test_gpu_triton_seeding_matches_pytorch(monkeypatch):
    pytest.importorskip("triton")
    from tokendynamics.cluster import kernels
    km = _module()

    for b, s, d, k, trials in [(4, 1024, 64, 32, 5), (2, 2048, 1152, 64, 6), (3, 77, 8, 5, 3)]:
        args = [a.cuda() for a in _seed_inputs(b, s, d, k, trials)]
        assert kernels.available(s, trials)
        assert torch.equal(kernels.greedy_seeds(*args), km._greedy_seeds(*args)), (b, s, d, k)


def _lloyd_pair(x, k, metric, mask=None, num_clusters=None, init=None, max_iters=30):
    """Lloyd's result through the Triton kernels and through PyTorch operations, from the same seeds."""
    from tokendynamics.cluster.backend import Backend

    km = _module()
    ks = torch.as_tensor(num_clusters if num_clusters is not None else k, device=x.device).expand(x.shape[0])
    out = []
    for triton_path in (True, False):  # eager: the interpreter runs on the CPU
        feats = km.prepare(x, metric, mask, backend=Backend(triton=triton_path, graphs=False))
        seeds = km.kmeans_plusplus(feats, k) if init is None else init
        out.append(km.lloyd(feats, seeds, ks, metric=metric, max_iters=max_iters, tol=1e-4))
    return out


def _empty_cluster_case(metric):
    """Four separated blobs; centroids 4 and 5 start away from every point, so both are re-seeded."""
    g = torch.Generator().manual_seed(1)
    centers = 10 * torch.randn(4, 16, generator=g)
    x = centers[torch.randint(0, 4, (2, 200), generator=g)] + torch.randn(2, 200, 16, generator=g)
    init = x[:, :6].clone()
    if metric == "cosine":
        init = torch.nn.functional.normalize(init, dim=-1)
        init[:, 4:] = torch.nn.functional.normalize(-x.mean(1, keepdim=True), dim=-1)
    else:
        init[:, 4:] = 1000.0
    return x, init


def test_triton_lloyd_matches_pytorch_in_the_interpreter():
    """The Triton Lloyd iteration (update, pass, finish), run by Triton's CPU interpreter, gives PyTorch's
    labels and centroids: masks, fewer clusters in one video, bfloat16 points, re-seeded empty clusters, and
    stops where PyTorch does at an iteration cap that ends inside a launch of several iterations."""
    pytest.importorskip("triton")
    code = """
import sys
sys.path.insert(0, {tests!r})
import triton_interpreter  # noqa: F401
import torch
from test_kmeans import _empty_cluster_case, _lloyd_pair
g = torch.Generator().manual_seed(0)
cases = [(torch.randn(2, 300, 40, generator=g), 5, "cosine", torch.rand(2, 300, generator=g) > 0.2, [5, 3]),
         (torch.randn(2, 300, 40, generator=g), 5, "l2", None, None),
         (torch.randn(1, 200, 70, generator=g), 20, "cosine", None, None)]
for x, k, metric, mask, ks in cases:
    a, b = _lloyd_pair(x.bfloat16(), k, metric, mask, ks)
    assert torch.equal(a.labels, b.labels), (k, metric)
    assert torch.allclose(a.centroids, b.centroids, atol=1e-5), (k, metric)
    assert torch.allclose(a.inertia, b.inertia, rtol=1e-5), (k, metric)
    assert (a.iterations - b.iterations).abs().max() <= 1, (a.iterations, b.iterations)
for metric in ("l2", "cosine"):
    x, init = _empty_cluster_case(metric)
    a, b = _lloyd_pair(x.bfloat16(), 6, metric, init=init)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.iterations, b.iterations), metric
    assert all(len(set(l.tolist())) == 6 for l in a.labels), metric  # both empty clusters were re-seeded
for cap in (0, 1, 2):
    a, b = _lloyd_pair(cases[0][0].bfloat16(), 5, "l2", max_iters=cap)
    assert torch.equal(a.labels, b.labels) and a.iterations.tolist() == b.iterations.tolist() == [cap, cap], cap
"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", code.format(tests=str(Path(__file__).parent))], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.gpu
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_gpu_triton_lloyd_matches_pytorch(metric):
    """On the GPU the kernels' products of bfloat16 points and three-piece centroids differ from cuBLAS's
    float32 products only by rounding."""
    dtype = torch.bfloat16
    pytest.importorskip("triton")
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 6000, 384, generator=g) + 2 * torch.randn(4, 12, 384, generator=g).repeat(1, 500, 1))
    mask = torch.rand(4, 6000, generator=g) > 0.1
    a, b = _lloyd_pair(x.to("cuda", dtype), 16, metric, mask.cuda(), [16, 16, 9, 1])
    assert (a.labels == b.labels).float().mean() > 0.999
    assert torch.allclose(a.inertia, b.inertia, rtol=1e-4)
    assert (a.iterations - b.iterations).abs().max() <= 2
    for metric_ in ("l2", "cosine"):
        x, init = _empty_cluster_case(metric_)
        a, b = _lloyd_pair(x.to("cuda", dtype), 6, metric_, init=init.cuda())
        assert torch.equal(a.labels, b.labels) and torch.equal(a.iterations, b.iterations), metric_


def test_stage_keeps_one_buffer_per_signature():
    from tokendynamics.cluster import cudagraphs

    a, b = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    sa = cudagraphs.stage(a)
    assert sa is not a and torch.equal(sa, a)
    assert cudagraphs.stage(sa) is sa and torch.equal(sa, a)  # staging the staged tensor copies nothing
    sb = cudagraphs.stage(b)
    assert sb is sa and torch.equal(sa, b)  # same signature: the same buffer, now holding b
    assert cudagraphs.stage(b.double()) is not sa
    cudagraphs.clear()


@pytest.mark.gpu
def test_gpu_graphs_follow_the_matmul_precision(monkeypatch):
    x = torch.randn(2, 3000, 256, generator=torch.Generator().manual_seed(0)).cuda()
    kmeans(x, 16)  # captured at the highest precision
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        tf32 = kmeans(x, 16)
        monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
        assert torch.equal(tf32.centroids, kmeans(x, 16).centroids)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False


def test_backend_is_chosen_from_the_device_the_arguments_and_the_environment(monkeypatch):
    from tokendynamics.cluster import kernels
    from tokendynamics.cluster.backend import Backend

    installed = kernels.triton is not None
    assert Backend.choose("cpu") == Backend(triton=False, graphs=False)
    assert Backend.choose("cpu", triton=True, graphs=True) == Backend()  # neither runs off CUDA
    assert Backend.choose("cuda") == Backend(triton=installed, graphs=True)
    assert Backend.choose("cuda", graphs=False) == Backend(triton=installed, graphs=False)
    assert Backend.choose("cpu", compiled=True) == Backend()  # the compiled stream update is CUDA's, and asked for
    assert Backend.choose("cuda", compiled=True) == Backend(triton=installed, graphs=True, compiled=installed)
    monkeypatch.setenv("TOKENDYNAMICS_TRITON", "0")
    monkeypatch.setenv("TOKENDYNAMICS_CUDA_GRAPHS", "0")
    assert Backend.choose("cuda") == Backend()
    assert Backend.choose("cuda", triton=True, graphs=True) == Backend(triton=installed, graphs=True)
    assert not kernels.available(kernels.MAX_SAMPLE + 1, 5) and not kernels.available(1024, kernels.MAX_TRIALS + 1)
    assert kernels.available(1024, 5) == installed
    assert not kernels.lloyd_available(kernels.MAX_CLUSTERS + 1, 100) and kernels.lloyd_available(8, 100) == installed


def test_kept_state_is_handed_back_once_and_cleared():
    from tokendynamics.cluster import cudagraphs

    state = (torch.zeros(2), torch.ones(3))
    cudagraphs.keep("loop", state)
    assert cudagraphs.take("loop") is state and cudagraphs.take("loop") is None
    for i in range(cudagraphs.CACHE_SIZE + 1):  # the oldest beyond the cache size is dropped
        cudagraphs.keep(i, state)
    assert cudagraphs.take(0) is None and cudagraphs.take(1) is state
    cudagraphs.clear()
    assert cudagraphs.take(2) is None
