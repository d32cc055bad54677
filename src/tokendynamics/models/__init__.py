"""Host video LLMs behind one seam (:class:`VideoLLM`, :mod:`.host`): LLaVA-OneVision (:mod:`.llava`) with
any reducer between its projector and its LLM, one loader that picks the host from a checkpoint
(:func:`from_pretrained`), small models of the same family built from config, and the built-in model."""

from .builder import build_llava_onevision, build_tokenizer
from .frames import FrameTransform
from .host import VideoLLM
from .llava import CompressedLlavaOnevision
from .load import HOSTS, from_pretrained, load_model
from .prompts import multiple_choice, parse_letter

__all__ = ["HOSTS", "CompressedLlavaOnevision", "FrameTransform", "VideoLLM", "build_llava_onevision",
           "build_tokenizer", "from_pretrained", "load_model", "multiple_choice", "parse_letter"]
