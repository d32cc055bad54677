"""Inputs: real video decoding (PyAV), the QA dataset format, the MotionQA and ChangeQA generators, and
token videos with planted structure for tests and benchmarks."""

from .qa import QADataset, QAItem, collate_qa, load_qa, write_qa
from .synthetic import PlantedVideo, planted_token_video
from .video import VideoError, count_frames, read_video, write_video

__all__ = ["PlantedVideo", "QADataset", "QAItem", "VideoError", "collate_qa", "count_frames", "load_qa",
           "planted_token_video", "read_video", "write_qa", "write_video"]
