"""The ``tokendynamics`` model for lmms-eval (0.7.x): any supported host checkpoint with any reducer.

Installing tokendynamics registers it through the entry point lmms-eval's model registry reads (group
``lmms_eval.models``, :func:`manifest`), so with lmms-eval installed (``pip install "tokendynamics[lmms-eval]"``):

    python -m lmms_eval --model tokendynamics \\
        --model_args pretrained=PATH,reducer=token_dynamics,num_tokens=8,max_frames_num=32 --tasks nextqa_mc_test

Model args: ``pretrained`` (a checkpoint of a supported host), ``reducer`` (a name of ``td.reducers``,
``full``, or unset for the one saved with the checkpoint; ``compressor`` is its old name), ``num_tokens``,
``max_distortion`` (adaptive length), ``max_frames_num`` (frames sampled per video), ``device``, ``dtype``
(``bfloat16``/``float32``), and any other ``key=value`` as the reducer's options (``attend=all``).

``loglikelihood`` returns what lmms-eval's own models return, the negative log-likelihood of the
continuation (summed over its tokens), so that lmms-eval's multiple-choice scoring, an argmin, picks the
likeliest option. The older plugin route (``LMMS_EVAL_PLUGINS=tokendynamics.integrations``) still works.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.video import read_video
from ..models import from_pretrained

MODEL_ID = "tokendynamics"

try:  # the base class exists only where lmms-eval is installed
    from lmms_eval.api.model import lmms as _Base
except ImportError:
    _Base = object
try:
    from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
except ImportError:
    GenerationResult = None
# lmms-eval 0.7.3 passes every model output through ``unwrap_generation_output``, which turns a
# ``(float, bool)`` pair into its string (so that its own multiple-choice scoring fails on it); a
# ``GenerationResult`` around the pair comes through intact. Whether this lmms-eval does so, found once.
_WRAP_PAIRS = GenerationResult is not None and unwrap_generation_output((0.0, True))[0] != (0.0, True)


def _pair_for_lmms_eval(pair: tuple[float, bool]):
    """``pair`` as lmms-eval's evaluator keeps it (see ``_WRAP_PAIRS``)."""
    return GenerationResult(text=pair) if _WRAP_PAIRS else pair


def manifest():
    """lmms-eval's registry entry for the ``tokendynamics`` model (the ``lmms_eval.models`` entry point)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.TokenDynamicsLMM")


def stop_strings(until) -> list[str]:
    """``until`` of lmms-eval's generation settings as a list: a string is one stop string, not its
    characters; None is none."""
    if until is None:
        return []
    return [until] if isinstance(until, str) else [s for s in until if s]


class TokenDynamicsLMM(_Base):
    """lmms-eval's model interface over any supported host (:func:`tokendynamics.models.from_pretrained`);
    the model args are in the module's docstring."""

    def __init__(self, pretrained: str, reducer: str | None = None, num_tokens: int | None = None,
                 max_distortion: float | None = None, max_frames_num: int = 32, batch_size: int = 1,
                 device: str | None = None, dtype: str | None = None, compressor: str | None = None, **options):
        if _Base is not object:
            super().__init__()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        if max_distortion is not None:
            num_tokens, options = None, options | dict(max_distortion=float(max_distortion))
        self.model = from_pretrained(pretrained, reducer if reducer is not None else compressor,
                                     None if num_tokens is None else int(num_tokens), dtype=dtype,
                                     **options).to(device).eval()
        self.frames, self.batch_size_per_gpu = int(max_frames_num), int(batch_size)
        self.task_dict = {}  # lmms-eval fills it with each task's dataset

    def _video(self, visuals) -> torch.Tensor:
        """The first video among a request's visuals (a path), decoded to ``uint8 [T, H, W, 3]``."""
        for visual in visuals if isinstance(visuals, (list, tuple)) else [visuals]:
            if isinstance(visual, (str, Path)):
                return read_video(visual, self.frames)
        raise ValueError(f"the tokendynamics model answers about videos given as file paths; got {visuals!r}")

    def _doc(self, task, split, doc_id):
        return self.task_dict[task][split][doc_id]

    def generate_until(self, requests) -> list[str]:
        answers = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            video = self._video(doc_to_visual(self._doc(task, split, doc_id)))
            text = self.model.generate([video], [context], max_new_tokens=int(gen_kwargs.get("max_new_tokens", 32)))[0]
            for stop in stop_strings(gen_kwargs.get("until")):
                text = text.split(stop)[0]
            answers.append(text)
        return answers

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """Per request: (negative log-likelihood of the continuation after the context, whether greedy
        decoding gives it)."""
        results = []
        for request in requests:
            context, target, doc_to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            continuation = target if isinstance(target, str) else target(doc)
            video = self._video(doc_to_visual(doc))
            (logp, greedy), = self.model.loglikelihood([video], [context], [continuation])
            results.append(_pair_for_lmms_eval((-logp, greedy)))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("multi-round generation is not supported by the tokendynamics model")
