"""Host video LLMs behind one seam (:class:`VideoLLM`, :mod:`.host`): LLaVA-OneVision (:mod:`.llava`),
Qwen2.5-VL (:mod:`.qwen`) and Qwen3-VL (:mod:`.qwen3`) with any reducer between its projector and its LLM,
one loader that picks the host from a checkpoint (:func:`from_pretrained`), small models of the same
families built from config, and the built-in model."""

from .builder import build_llava_onevision, build_qwen2_5_vl, build_qwen3_vl, build_tokenizer
from .frames import FrameTransform
from .host import VideoLLM, VideoRows
from .llava import CompressedLlavaOnevision
from .load import HOSTS, from_pretrained, load_model
from .patches import PatchTransform
from .prompts import multiple_choice, parse_letter
from .qwen import CompressedQwen2_5_VL
from .qwen3 import CompressedQwen3VL

__all__ = ["HOSTS", "CompressedLlavaOnevision", "CompressedQwen2_5_VL", "CompressedQwen3VL", "FrameTransform",
           "PatchTransform", "VideoLLM", "VideoRows", "build_llava_onevision", "build_qwen2_5_vl", "build_qwen3_vl",
           "build_tokenizer", "from_pretrained", "load_model", "multiple_choice", "parse_letter"]
