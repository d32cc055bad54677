"""The clustering layer: batched k-means (``kmeans``: the API and its PyTorch reference), the Triton
seeding and Lloyd kernels (``kernels``) and CUDA-graph replay (``cudagraphs``)."""

from .kmeans import KMeansResult, kmeans, kmeans_plusplus, lloyd

__all__ = ["KMeansResult", "kmeans", "kmeans_plusplus", "lloyd"]
