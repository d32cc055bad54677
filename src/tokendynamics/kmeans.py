"""Moved to :mod:`tokendynamics.cluster.kmeans` (the clustering layer); this path works until 0.4."""

from ._deprecated import moved

moved(__name__, "tokendynamics.cluster.kmeans")
