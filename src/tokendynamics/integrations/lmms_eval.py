"""An lmms-eval model entry: a LLaVA-OneVision checkpoint with a reducer, as the ``tokendynamics`` model.

lmms-eval is optional (``pip install lmms-eval``). Register the entry either way:

    LMMS_EVAL_PLUGINS=tokendynamics.integrations python -m lmms_eval --model tokendynamics \\
        --model_args pretrained=PATH,compressor=token_dynamics,num_tokens=8,max_frames_num=32 --tasks nextqa_mc_test

(lmms-eval's plugin hook reads ``tokendynamics.integrations.models``), or import this module in a script
that calls lmms-eval's API (importing it registers ``tokendynamics`` with ``register_model``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.video import read_video
from ..models import from_pretrained

try:  # the base class and registry exist only where lmms-eval is installed
    from lmms_eval.api.model import lmms as _Base
    from lmms_eval.api.registry import register_model
except ImportError:
    _Base, register_model = object, None


class TokenDynamicsLMM(_Base):
    """lmms-eval's model interface over any supported host (:func:`tokendynamics.models.from_pretrained`).

    Model args: ``pretrained`` (checkpoint), ``compressor`` (a name of ``td.reducers``, ``"full"``, or
    unset for the one saved with the checkpoint), ``num_tokens``, ``max_distortion`` (adaptive),
    ``max_frames_num`` (frames sampled per video), ``device``, ``dtype`` (``bfloat16``/``float32``).
    """

    def __init__(self, pretrained: str, compressor: str | None = None, num_tokens: int | None = 8,
                 max_distortion: float | None = None, max_frames_num: int = 32, batch_size: int = 1,
                 device: str | None = None, dtype: str | None = None, **options):
        if _Base is not object:
            super().__init__()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        if max_distortion is not None:
            num_tokens, options = None, options | dict(max_distortion=float(max_distortion))
        self.model = from_pretrained(
            pretrained, compressor, None if num_tokens is None else int(num_tokens), dtype=dtype, **options
        ).to(device).eval()
        self.frames, self.batch_size_per_gpu = int(max_frames_num), int(batch_size)

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
            for stop in gen_kwargs.get("until", []) or []:
                text = text.split(stop)[0] if stop else text
            answers.append(text)
        return answers

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        results = []
        for request in requests:
            context, target, doc_to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            continuation = target if isinstance(target, str) else target(doc)
            video = self._video(doc_to_visual(doc))
            results += self.model.loglikelihood([video], [context], [continuation])
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("multi-round generation is not supported by the tokendynamics model")


if register_model is not None:
    TokenDynamicsLMM = register_model("tokendynamics")(TokenDynamicsLMM)
