"""What a trained model was trained for, saved beside it (``tokendynamics_recipe.json``): the frames it
samples, the answer it was trained to give and so how to score it, and how it was trained (which weights,
steps, learning rate, data), with the recipe of the model it started from under ``"from"`` (a stage-0
host records its tower's training under ``"stage0"``), so a chain of runs is recorded whole. Evaluation
and training take their defaults from it, so that a model is never scored in a mode or at a frame count
it was not trained for without being asked to."""

from __future__ import annotations

import json
from pathlib import Path

RECIPE_NAME = "tokendynamics_recipe.json"
ANSWER_MODES = {"text": "likelihood", "letter": "letter"}  # training target -> the scoring that reads it
DEFAULT_FRAMES, DEFAULT_TARGET = 32, "letter"  # for a model that records none


def load_recipe(directory: str | Path) -> dict:
    """The recipe saved in ``directory``, or ``{}`` where none was saved (a plain host checkpoint)."""
    path = Path(directory) / RECIPE_NAME
    if not path.is_file():
        return {}
    try:
        recipe = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"recipe {str(path)!r} is not valid JSON ({e.msg})") from None
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {str(path)!r} must hold a JSON object")
    return recipe


def save_recipe(directory: str | Path, recipe: dict) -> None:
    """Write ``recipe`` (JSON-serialisable settings) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RECIPE_NAME).write_text(json.dumps(recipe, indent=2))


def answer_mode(recipe: dict, default: str = DEFAULT_TARGET) -> str:
    """How to score a model with this recipe: ``"likelihood"`` for one trained to answer with the option's
    text, ``"letter"`` for one trained on letters (and for one with no recipe)."""
    return ANSWER_MODES.get(recipe.get("target"), default)


def recipe_frames(recipe: dict, given: int | None = None) -> int:
    """Frames to sample: ``given`` where set, else the recipe's, else :data:`DEFAULT_FRAMES`."""
    return given or recipe.get("frames", DEFAULT_FRAMES)


def recipe_target(recipe: dict, given: str | None = None) -> str:
    """The answer to train for: ``given`` where set, else the recipe's, else :data:`DEFAULT_TARGET`."""
    return given or recipe.get("target", DEFAULT_TARGET)
