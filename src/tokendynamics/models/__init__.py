"""Host video LLMs: LLaVA-OneVision with any reducer between its projector and its LLM, and small models of
the same family built from config."""

from .builder import build_llava_onevision, build_tokenizer
from .frames import FrameTransform
from .llava import CompressedLlavaOnevision
from .load import load_model
from .prompts import multiple_choice, parse_letter

__all__ = ["CompressedLlavaOnevision", "FrameTransform", "build_llava_onevision", "build_tokenizer", "load_model",
           "multiple_choice", "parse_letter"]
