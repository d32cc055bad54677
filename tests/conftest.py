import pytest
import torch

from tokendynamics.data import planted_token_video


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def planted():
    """A 12-frame 10x10 token video of 3 objects over a background (4 prototypes), light noise."""
    return planted_token_video(num_frames=12, height=10, width=10, dim=32, num_objects=3,
                               object_size=3, noise=0.01, seed=3)
