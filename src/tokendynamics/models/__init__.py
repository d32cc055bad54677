"""Host video LLMs: LLaVA-OneVision with any reducer between its projector and its LLM, and small models of
the same family built from config."""

from .builder import build_llava_onevision, build_tokenizer
from .frames import FrameTransform
from .llava import CompressedLlavaOnevision
from .prompts import multiple_choice, parse_letter

__all__ = ["CompressedLlavaOnevision", "FrameTransform", "build_llava_onevision", "build_tokenizer",
           "multiple_choice", "parse_letter"]
