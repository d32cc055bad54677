"""What MotionQA is made of: colours, shapes, sizes, motions, question types, splits."""

from __future__ import annotations

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230), "yellow": (240, 210, 40),
           "purple": (150, 60, 200), "orange": (245, 140, 30), "cyan": (40, 200, 210), "white": (250, 250, 250)}
SHAPES = ("circle", "square", "triangle", "diamond", "star")
SIZES = {"small": 0.05, "medium": 0.07, "large": 0.09}  # radius as a share of the frame side
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
STILL = "it does not move"  # the direction question's answer for an object that stands still
DIRECTION_ANSWERS = (*DIRECTIONS, STILL)  # the direction question's five options

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
MOVES = {"it keeps moving": "straight", "it stops and stays still": "stop", "it stops, then moves again": "stop_go",
         "it never moves": "static", "it moves out of the frame": "leave"}
CONTENT_TYPES = ("colour", "shape", "count")
# "muted": textures whose channels lie in 70-150 (the benchmark's); "wide": any level from black to white,
# plain backgrounds among the textures, each kept far from the scene's object colours
BACKGROUNDS = ("muted", "wide")
SPLITS = ("train", "val", "test")
NUM_OPTIONS = 5


def split_of(index: int) -> str:
    """The fixed split of video ``index``."""
    return {8: "val", 9: "test"}.get(index % 10, "train")


def direction_question(name: str) -> str:
    """The direction question about the object called ``name`` (its colour and shape, "red square")."""
    return f"In which direction does the {name} move?"
