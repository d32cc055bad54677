"""``Reducer``: any entry of ``reducers`` (or ``"full"``: every token) as an ``nn.Module`` with a fixed
budget and options, saved and loaded with its settings, ready to sit inside a host model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from .._checks import check_length_mode, check_video_tokens, read_safetensors
from ..compact import CompactVideo
from ..token_dynamics import TokenDynamics
from .registry import reducers

CONFIG_NAME = "tokendynamics_reducer.json"
LEGACY_WEIGHTS_NAME = "tokendynamics_reducer.safetensors"  # Token Dynamics' weights as 0.2 saved them
FULL = "full"
DEFAULT_TOKENS = 8  # K of a reducer named without one
# Token Dynamics' options that change no trained weight: the clustering's, and its length (fixed with
# num_tokens, adaptive with max_distortion; the attention takes any number of rows)
CLUSTERING = ("metric", "max_iters", "tol", "seed", "num_tokens", "max_distortion", "min_tokens", "max_tokens")


def named_length(num_tokens: int | None, options: dict) -> int | None:
    """K for a reducer built by name: ``num_tokens``, else :data:`DEFAULT_TOKENS`, or None (adaptive) where
    ``options`` hold ``max_distortion``."""
    return DEFAULT_TOKENS if num_tokens is None and "max_distortion" not in options else num_tokens


def given_length(num_tokens: int | None) -> dict:
    """``num_tokens`` as a :meth:`Reducer.with_options` option where it was given (None: keep the reducer's)."""
    return {} if num_tokens is None else {"num_tokens": num_tokens}


class Reducer(nn.Module):
    """``Reducer(name, dim, num_tokens=8, **options)(tokens [B, T, H, W, D]) -> CompactVideo``.

    name: a key of ``td.reducers``, or ``"full"`` (every token, in video order: the uncompressed
    baseline). ``token_dynamics`` builds a trainable :class:`TokenDynamics` of width ``dim`` (options are
    its config fields, e.g. ``max_distortion`` with ``num_tokens=None`` for adaptive length); the other
    reducers have no weights and take their own options (``seed``, ``merging_ratio``, ...).
    """

    def __init__(self, name: str, dim: int, num_tokens: int | None = 8, **options):
        super().__init__()
        if name != FULL:
            reducers[name]  # an unknown name raises, listing the known ones
        self.name, self.dim, self.num_tokens, self.options = name, dim, num_tokens, dict(options)
        self.model = TokenDynamics(dim=dim, num_tokens=num_tokens, **options) if name == "token_dynamics" else None

    @property
    def config(self) -> dict:
        return dict(name=self.name, dim=self.dim, num_tokens=self.num_tokens, options=self.options)

    def forward(self, tokens: torch.Tensor) -> CompactVideo:
        x = check_video_tokens(tokens)
        if self.name == FULL:
            flat = x.reshape(x.shape[0], -1, x.shape[-1])
            return CompactVideo(flat, torch.ones(flat.shape[:2], dtype=torch.bool, device=x.device))
        if self.model is not None:
            return self.model(x)
        return reducers[self.name](x, num_tokens=self.num_tokens, **self.options)

    def with_options(self, **options) -> "Reducer":
        """This reducer with ``options`` changed where no trained weight depends on them (a loaded reducer
        at inference): any option of a reducer without weights; for Token Dynamics, its clustering's and
        its length (:data:`CLUSTERING`; ``num_tokens`` makes it fixed-length, ``max_distortion``
        adaptive). Other options raise, naming them. Returns the reducer itself."""
        if options and self.name == FULL:
            raise ValueError(f"full tokens take no options, got {', '.join(sorted(options))} (name a reducer "
                             f"to reduce the video)")
        length = {}
        if "num_tokens" in options or "max_distortion" in options:  # a new length: fixed or adaptive, not both
            length = {"num_tokens": options.pop("num_tokens", None),
                      "max_distortion": options.pop("max_distortion", None)}
            check_length_mode(**length)
        if self.model is not None:
            fixed = sorted(set(options) - set(CLUSTERING))
            if fixed:
                raise ValueError(f"option(s) {', '.join(fixed)} shape the trained Token Dynamics' weights: only its "
                                 f"clustering ({', '.join(CLUSTERING)}) can change once it is trained (name the "
                                 f"reducer to build a new, untrained one)")
            self.model.config = dataclasses.replace(self.model.config, **options, **length)
        self.options.update(options)
        if length:
            self.num_tokens = length["num_tokens"]
            self.options.pop("max_distortion", None)
            if length["max_distortion"] is not None:
                self.options["max_distortion"] = length["max_distortion"]
        return self

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the settings (JSON) to ``directory``, and a Token Dynamics module in its own format
        (:meth:`TokenDynamics.save_pretrained`: ``TokenDynamics.from_pretrained`` loads it from there)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config, indent=2))
        (directory / LEGACY_WEIGHTS_NAME).unlink(missing_ok=True)  # never beside a newer module
        if self.model is not None:
            self.model.save_pretrained(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "Reducer":
        """Load a reducer written by :meth:`save_pretrained` (on the CPU, in the saved dtype); 0.2's
        format (the module's weights in ``tokendynamics_reducer.safetensors``) still loads."""
        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"directory {str(directory)!r} has no {CONFIG_NAME}")
        cfg = json.loads((directory / CONFIG_NAME).read_text())
        reducer = cls(cfg["name"], cfg["dim"], cfg["num_tokens"], **cfg["options"])
        if reducer.model is not None and (directory / LEGACY_WEIGHTS_NAME).is_file():
            state = read_safetensors(directory / LEGACY_WEIGHTS_NAME)[0]
            reducer.to(next(iter(state.values())).dtype).load_state_dict(state)
        elif reducer.model is not None:
            reducer.model = TokenDynamics.from_pretrained(directory)
        return reducer

    @staticmethod
    def saved_in(directory: str | Path) -> bool:
        return (Path(directory) / CONFIG_NAME).is_file()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}, num_tokens={self.num_tokens}, options={self.options}"
