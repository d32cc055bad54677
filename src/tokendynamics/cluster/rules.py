"""The k-means rules that the PyTorch reference (``kmeans``) and the Triton kernels (``kernels``) share,
written once. Each is an expression of operators only, so that it runs on tensors as it is and inside a
kernel through ``triton.jit`` (the kernels compile these very functions)."""


def keeps_iterating(changed, old_inertia, new_inertia, tol):
    """Whether a video goes on after an iteration: some label ``changed`` (bool) and its inertia fell by
    more than ``tol`` of the old inertia."""
    return changed & (old_inertia - new_inertia > tol * old_inertia)


def reseeds(first_empty, far_distance):
    """Whether a cluster is re-seeded at its video's farthest point: it is the video's ``first_empty``
    cluster in use (bool) and that point lies off its centroid (``far_distance`` > 0)."""
    return first_empty & (far_distance > 0)
