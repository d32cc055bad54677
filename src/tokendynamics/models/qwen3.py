"""Qwen3-VL as a host: Qwen2.5-VL's (:mod:`.qwen`) where the two agree (the vision path's temporal patches
of 2 frames and 2x2 merge, the merger as the projector, 3D rotary positions, the greedy loop), and what
Qwen3-VL adds:

- **Timestamps.** Its processor writes each temporal patch as ``<t seconds><|vision_start|>`` + its tokens
  + ``<|vision_end|>`` (``t``: the mean time of the patch's two frames, one decimal), inside the video's
  outer ``<|vision_start|>`` ... ``<|vision_end|>``; each patch's tokens are positioned from where its span
  starts (temporal offset 0, rows and columns from 0). The reduced video keeps that form: a row belongs to
  the temporal patch of its cells (the rounded mean of their patch index, by the rule of :mod:`.qwen`:
  the cells of its key-map entry, or its nearest cell), each patch that has rows gets its span with its own
  timestamp (in time order, the rows of a patch in the reducer's order), and a patch without rows is left
  out. Full tokens give exactly the official prompt and positions.
- **DeepStack.** The tower also gives features of earlier layers at every merged cell, which the LLM adds to
  its hidden states at the visual positions in its first layers. A reduced row takes those of the cells it
  stands for, by the same rule (the mean over its key-map entry's cells, or its nearest cell's), so the
  clustering that made the table makes their rows too. They reach the LLM through a hook on its forward for
  that call (:meth:`CompressedQwen3VL.run_host`).

Streaming (``new_stream``) is not offered on this host: a stream keeps the table, not the DeepStack
features its rows would need.
"""

from __future__ import annotations

import torch

from .host import VideoRows
from .qwen import CompressedQwen2_5_VL, _per_video

__all__ = ["CompressedQwen3VL"]
NO_STREAM = ("Qwen3-VL's rows need the video's DeepStack features, which a stream does not keep: streaming is "
             "not offered on this host")


class CompressedQwen3VL(CompressedQwen2_5_VL):
    """A ``Qwen3VLForConditionalGeneration`` whose video tokens (and DeepStack features) pass through
    ``reducer``: ``CompressedQwen3VL.from_pretrained(path, reducer="token_dynamics", num_tokens=8)``.
    ``fps``: the rate of the frames given (their timestamps; 2.0, the official processor's sampling rate,
    unless set on the instance)."""

    model_types = ("qwen3_vl",)
    host_class = "Qwen3VLForConditionalGeneration"

    def chat_parts(self, text: str) -> tuple[str, str]:
        """Qwen3-VL's chat template for one video and a user message (no default system message)."""
        return "<|im_start|>user\n<|vision_start|>", f"<|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n"

    def prompt_parts(self, text: str, visual: VideoRows) -> list:
        """The chat prompt with one timestamped span per temporal patch that has rows (module docstring)."""
        before, after = self.chat_parts(text)
        parts = [self._ids(before)]
        for n, seconds in zip(visual.spans, visual.times):
            parts[-1] = parts[-1] + self._ids(f"<{seconds:.1f} seconds><|vision_start|>")
            parts += [n, self._ids("<|vision_end|>")]
        parts[-1] = parts[-1] + self._ids(after)
        return parts

    def times(self, num_frames: int) -> list[float]:
        """Each temporal patch's time in seconds for ``num_frames`` frames at :attr:`fps`: the mean of its
        first and last frame's (the last frame repeated to fill the last patch), as the processor has it."""
        tp = self.transform.temporal_patch_size
        frames = list(range(num_frames)) + [num_frames - 1] * (-num_frames % tp)
        return [(frames[i] + frames[i + tp - 1]) / 2 / self.fps for i in range(0, len(frames), tp)]

    # ------------------------------------------------------------------ video tokens

    def _vision(self, videos):
        """Per video: the merged tokens ``[T', h, w, D]`` and the DeepStack levels (each ``[T', h, w, D]``)."""
        feats, levels = [None] * len(videos), [None] * len(videos)
        for idx, shape, out in self._tower(videos):
            deep = [_per_video(level, len(idx)) for level in out.deepstack_features]
            for j, (i, f) in enumerate(zip(idx, _per_video(out.pooler_output, len(idx)))):
                feats[i], levels[i] = f.view(shape), [level[j].view(shape) for level in deep]
        return feats, levels

    def video_features(self, videos) -> list[torch.Tensor]:
        """Per video ``[T', h, w, D]``: the merged tokens of the host's vision path."""
        return self._vision(videos)[0]

    def video_tokens(self, videos) -> list[VideoRows]:
        """Per video its rows in timestamped spans, with their positions and DeepStack features."""
        feats, levels = self._vision(videos)
        out = [None] * len(videos)
        for i, rows, tokens, key in self._reduced(feats):
            out[i] = self._spans(rows, tokens, key, levels[i], len(videos[i]))
        return out

    def visual_rows(self, rows, tokens=None, key=None):
        raise ValueError(NO_STREAM)

    def new_stream(self, **options):
        raise ValueError(NO_STREAM)

    def _spans(self, rows, tokens, key, levels, num_frames) -> VideoRows:
        """The rows grouped into their temporal patches' spans (the module docstring's rule)."""
        t, h, w = tokens.shape[:3]
        cells = self.row_cells(rows, tokens, key)
        offsets, advance = self.cell_offsets(1, h, w)  # one patch's cells, from its span's start
        patch = torch.arange(t).repeat_interleave(h * w)
        within = cells.gather(offsets.repeat(1, t).double()).round().long()
        where = cells.gather(patch[None].double())[0].round().long()
        order = torch.argsort(where, stable=True)
        present, counts = torch.unique_consecutive(where[order], return_counts=True)
        stamps = self.times(num_frames)
        deep = tuple(cells.gather(level.reshape(-1, level.shape[-1]).T.float()).T.to(level.dtype)
                     [order.to(level.device)] for level in levels)
        return VideoRows(rows[order.to(rows.device)], within[:, order], (advance,) * len(present),
                         tuple(counts.tolist()), tuple(stamps[p] for p in present.tolist()), deep)

    def cell_offsets(self, t: int, h: int, w: int) -> tuple[torch.Tensor, int]:
        """The host's positions for one temporal patch's ``h x w`` cells from its span's start (Qwen3-VL
        positions every patch from its own span, so ``t`` must be 1): ``([3, h * w], advance)``."""
        if t != 1:
            raise ValueError(f"Qwen3-VL positions each temporal patch from its own span: t must be 1, got {t}")
        return self._rope_offsets(1, h, w)

    # ------------------------------------------------------------------ the host's forward

    def _inputs(self, videos, texts, targets, visual):
        """As the base's, with the rows' DeepStack features and their positions (``deepstack``)."""
        visual = self.video_tokens(videos) if visual is None else visual
        out, is_visual = super()._inputs(None, texts, targets, visual)
        if visual and visual[0].deepstack:
            dtype = out["inputs_embeds"].dtype
            out["deepstack"] = (is_visual, [torch.cat([v.deepstack[j] for v in visual]).to(dtype)
                                            for j in range(len(visual[0].deepstack))])
        return out, is_visual

    def run_host(self, deepstack=None, **inputs):
        """The host's forward, its LLM given ``deepstack`` (``(visual positions [B, L], per level [rows, D])``
        from :meth:`build_inputs`) through a hook for this call: the host itself passes none when it is
        given embeddings instead of pixels."""
        if deepstack is None:
            return self.host(**inputs)
        mask, levels = deepstack

        def add(module, args, kwargs):
            return args, {**kwargs, "visual_pos_masks": mask, "deepstack_visual_embeds": levels}
        hook = self.language_model.register_forward_pre_hook(add, with_kwargs=True)
        try:
            return self.host(**inputs)
        finally:
            hook.remove()
