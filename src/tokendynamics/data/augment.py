"""Training-time augmentation that keeps a question true of its video: mirroring.

A mirrored video with its question and options rewritten (``left`` <-> ``right`` for a left-right mirror;
``up`` <-> ``down`` and ``top`` <-> ``bottom`` for a top-bottom one) is a new, correctly labelled sample.
It stops a model from answering a direction question by remembering the video: the same clip comes back
with the other answer. Words are swapped whole and case-kept; anything else that depends on orientation
(a triangle that points down once mirrored top-bottom, "clockwise") is left as it is, so use ``"hflip"``
where the top-bottom mirror would change what an answer means.
"""

from __future__ import annotations

import functools
import re

import torch

HORIZONTAL = {"left": "right", "right": "left", "leftward": "rightward", "rightward": "leftward",
              "leftwards": "rightwards", "rightwards": "leftwards"}
VERTICAL = {"up": "down", "down": "up", "top": "bottom", "bottom": "top", "above": "below", "below": "above",
            "upward": "downward", "downward": "upward", "upwards": "downwards", "downwards": "upwards"}
AUGMENTATIONS = ("hflip", "flip")  # left-right mirror; left-right and top-bottom mirrors, each at random


@functools.lru_cache(maxsize=16)
def _whole_words(words: tuple[str, ...]) -> re.Pattern:
    """One pattern for the whole words ``words`` (any case), compiled once per table."""
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)


def swap_words(text: str, swaps: dict[str, str]) -> str:
    """``text`` with every whole word of ``swaps`` replaced by its partner (case kept: Left -> Right)."""
    pattern = _whole_words(tuple(swaps))

    def partner(match: re.Match) -> str:
        word = match.group(0)
        other = swaps[word.lower()]
        return other.capitalize() if word[0].isupper() else other
    return pattern.sub(partner, text)


class Mirror:
    """Mirror a sample left-right (and, with ``vertical``, top-bottom), each with probability ``p``, drawn
    from torch's generator (so a seeded data loader draws the same mirrors)."""

    def __init__(self, vertical: bool = False, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be within [0, 1], got {p!r}")
        self.vertical, self.p = vertical, p

    @classmethod
    def named(cls, name: str) -> "Mirror":
        """The augmentation ``"hflip"`` or ``"flip"``."""
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
        return cls(vertical=name == "flip")

    def __call__(self, frames: torch.Tensor, question: str, options: list[str]):
        """frames ``[T, H, W, 3]`` -> (frames, question, options), mirrored where drawn."""
        for axis, swaps, on in ((2, HORIZONTAL, True), (1, VERTICAL, self.vertical)):
            if on and float(torch.rand(())) < self.p:
                frames = frames.flip(axis)
                question, options = swap_words(question, swaps), [swap_words(o, swaps) for o in options]
        return frames, question, options
