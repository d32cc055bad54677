"""Inputs for the reducers: synthetic token videos with planted structure (real video decoding and the
MotionQA benchmark come with the data issue)."""

from .synthetic import PlantedVideo, planted_token_video

__all__ = ["PlantedVideo", "planted_token_video"]
