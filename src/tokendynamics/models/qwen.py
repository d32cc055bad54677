"""Qwen2.5-VL as a host (:class:`~.host.VideoLLM`): the host's own vision path (its temporal patches of 2
frames, its 2x2 merge, its merger as the projector) gives ``[T', h, w, D]`` tokens per video; the reducer's
rows take the place of the ``<|video_pad|>`` run between ``<|vision_start|>`` and ``<|vision_end|>``.

Positions are the host's 3D multimodal rotary ones (M-RoPE), taken from its own ``get_rope_index`` for the
full video so that every transformers version's rule holds: the text before the video counts as usual, the
video's cells get ``(t, h, w)`` positions from the video's start, and the text after it continues where the
full video would have left it (so the question's positions do not depend on K). A reduced row gets:

- for reducers that build a key map (``token_dynamics``, ``hash_table``): the rounded mean of the
  positions of the cells its key-map entry covers (one per axis);
- for the others: the position of the cell whose token is nearest to the row (a pruned token keeps its
  own; a merged one takes its nearest member's); ``full``: every cell its own.

Generation is a greedy loop of this host's own with a ``DynamicCache``, each new token one position past
the sample's largest, as the host's ``rope_deltas`` make it. Without flash-attention the tower attends all
windows of one length at once (:mod:`.windows`) instead of one window at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from .host import VideoLLM, VideoRows, _groups, cache_keyword
from .patches import PatchTransform
from .prompts import SYSTEM
from .windows import batch_windows

__all__ = ["CompressedQwen2_5_VL"]


class CompressedQwen2_5_VL(VideoLLM):
    """A ``Qwen2_5_VLForConditionalGeneration`` whose video tokens pass through ``reducer``:
    ``CompressedQwen2_5_VL.from_pretrained(path, reducer="token_dynamics", num_tokens=8)``. ``fps``: the
    rate of the frames given (sets ``second_per_grid_ts``, the time between temporal patches; 2.0, the
    official processor's default sampling rate, unless set on the instance)."""

    model_types = ("qwen2_5_vl",)
    host_class = "Qwen2_5_VLForConditionalGeneration"
    fps = 2.0

    def __init__(self, host, tokenizer, transform: PatchTransform, reducer, recipe: dict | None = None):
        super().__init__(host, tokenizer, transform, reducer, recipe)
        batch_windows(host.model.visual)  # without flash-attention, one attention call per window length
        self.video_pad = host.config.video_token_id
        self._offsets: dict[tuple, tuple[torch.Tensor, int]] = {}  # per token grid (and timing): the host's rule
        self._cache_arg = cache_keyword(host)

    @classmethod
    def load_transform(cls, path: str | Path) -> PatchTransform:
        return PatchTransform.from_pretrained(path)

    @property
    def vision_tower(self) -> nn.Module:
        return self.host.model.visual

    @property
    def projector(self) -> nn.Module:
        return self.host.model.visual.merger

    def full_tokens(self, num_frames: int, height: int | None = None, width: int | None = None) -> int:
        if height is None or width is None:
            raise ValueError("Qwen2.5-VL's token count depends on the frame size: give height and width")
        t, h, w = self.transform.token_grid(num_frames, height, width)
        return t * h * w

    def chat_parts(self, text: str) -> tuple[str, str]:
        """Qwen2.5-VL's chat template for one video and a user message."""
        return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n<|vision_start|>",
                f"<|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n")

    # ------------------------------------------------------------------ video tokens

    def video_features(self, videos) -> list[torch.Tensor]:
        """Per video ``[T', h, w, D]``: the merged tokens of the host's vision path (videos of one shape
        batched)."""
        out = [None] * len(videos)
        for idx, shape, features in self._tower(videos):
            for i, f in zip(idx, _per_video(features.pooler_output, len(idx))):
                out[i] = f.view(shape)
        return out

    def _tower(self, videos):
        """The host's vision path over videos of one shape at a time: per group ``(indices, the merged
        grid's view shape (T', h, w, -1), the host's output)``."""
        merge = self.transform.merge_size
        for _, idx in _groups([v.shape for v in videos]).items():
            patches = [self.transform(videos[i].to(self.device), self.dtype) for i in idx]
            grid = patches[0][1]
            out = self.host.model.get_video_features(torch.cat([p for p, _ in patches]),
                                                     torch.tensor([grid] * len(idx), device=self.device))
            if isinstance(out, (torch.Tensor, tuple, list)):  # the tensors themselves, not an output object
                out = SimpleNamespace(pooler_output=out)
            yield idx, (grid[0], grid[1] // merge, grid[2] // merge, -1), out

    def visual_rows(self, rows: torch.Tensor, tokens: torch.Tensor | None = None,
                    key: torch.Tensor | None = None) -> VideoRows:
        """The reducer's valid rows with their positions (:class:`~.host.VideoRows`), by the rule in the
        module docstring: from the key map where the rows came with one, else from the video's tokens."""
        if tokens is None and key is None:
            raise ValueError(f"{type(self).__name__} places its rows by the video's tokens or key map: give one")
        offsets, advance = self.cell_offsets(*(tokens if key is None else key).shape[:3])
        return VideoRows(rows, self.row_cells(rows, tokens, key).gather(offsets.double()).round().long(), (advance,))

    def cell_offsets(self, t: int, h: int, w: int) -> tuple[torch.Tensor, int]:
        """The host's positions for a full video of ``t x h x w`` merged tokens, from its first position:
        ``([3, t * h * w] offsets in raster order, advance)`` (``advance``: where the text after starts)."""
        return self._rope_offsets(t, h, w, self.transform.temporal_patch_size / self.fps)

    def _rope_offsets(self, t: int, h: int, w: int, seconds: float | None = None) -> tuple[torch.Tensor, int]:
        """``([3, t * h * w], advance)`` from the host's own ``get_rope_index`` for ``t x h x w`` merged video
        tokens followed by one text token (``seconds``: the time between temporal patches, for a host that
        positions by it), so that every transformers version's rule holds; kept per grid."""
        key = (t, h, w, seconds)
        if key not in self._offsets:
            n, merge = t * h * w, self.transform.merge_size
            ids = torch.tensor([[self.video_pad] * n + [self.tokenizer.eos_token_id]])
            kinds = torch.tensor([[2] * n + [0]])  # video, then one text token
            timing = {} if seconds is None else dict(second_per_grid_ts=torch.tensor([seconds]))
            positions, _ = self.host.model.get_rope_index(
                ids, kinds, video_grid_thw=torch.tensor([[t, h * merge, w * merge]]),
                attention_mask=torch.ones_like(ids), **timing)
            self._offsets[key] = positions[:, 0, :n].long().cpu(), int(positions[0, 0, n])
        return self._offsets[key]

    def row_cells(self, rows: torch.Tensor, tokens: torch.Tensor | None, key: torch.Tensor | None) -> "RowCells":
        """Which of the video's cells each row stands for (the rule in the module docstring)."""
        if self.reducer.name == "full":
            return RowCells(torch.arange(len(rows)), None)
        if key is not None:
            return RowCells(key.reshape(-1).cpu(), len(rows))
        cells = tokens.reshape(-1, tokens.shape[-1]).float()
        return RowCells(torch.cdist(rows.detach().float()[None], cells[None])[0].argmin(1).cpu(), None)

    # ------------------------------------------------------------------ inputs and generation

    def position_ids(self, pieces, visual, mask: torch.Tensor) -> torch.Tensor:
        """``[3, B, L]``: through each sample's prompt parts, a text part counts on from where the last part
        left off, a span of rows sits at that point plus its rows' offsets and moves it on by the span's
        advance; padding at 0."""
        if not all(isinstance(v, VideoRows) for v in visual):
            raise ValueError(f"{type(self).__name__} needs each video's rows with their positions: pass visual= "
                             "what video_tokens or stream_tokens gave")
        out = torch.zeros(3, *mask.shape, dtype=torch.long)
        for b, ((parts, _), vid) in enumerate(zip(pieces, visual)):
            placed, at, span, first = [], 0, 0, 0
            for part in parts:
                if isinstance(part, int):
                    placed.append(at + vid.offsets[:, first:first + part].cpu())
                    at, span, first = at + vid.advances[span], span + 1, first + part
                else:
                    placed.append(at + torch.arange(len(part)).expand(3, -1))
                    at += len(part)
            seq = torch.cat(placed, 1)
            out[:, b, mask.shape[1] - seq.shape[1]:] = seq
        return out.to(mask.device)

    @torch.no_grad()
    def generate(self, videos, texts, max_new_tokens: int = 32, visual=None, **kwargs) -> list[str]:
        """Greedy answers (text) to user messages about videos (``visual``: see :meth:`build_inputs`)."""
        from transformers import DynamicCache

        if kwargs:
            raise ValueError(f"{type(self).__name__}.generate takes no options beyond max_new_tokens, "
                             f"got {sorted(kwargs)}")
        inputs = self.build_inputs(videos, texts, visual=visual)
        mask, positions = inputs["attention_mask"], inputs["position_ids"]
        step = positions.amax((0, 2)) + 1  # [B] the next token's position
        cache = DynamicCache(config=self.host.config)
        logits = self.run_host(**inputs, use_cache=True, **{self._cache_arg: cache}).logits[:, -1]
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        done = torch.zeros(len(mask), dtype=torch.bool, device=mask.device)
        answer = []
        for _ in range(max_new_tokens):
            token = logits.argmax(-1).masked_fill(done, pad)
            answer.append(token)
            done |= token == eos
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            embeds = self.host.get_input_embeddings()(token[:, None])
            logits = self.host(inputs_embeds=embeds, attention_mask=mask,
                               position_ids=step.view(1, -1, 1).expand(3, -1, 1), use_cache=True,
                               **{self._cache_arg: cache}).logits[:, -1]
            step = step + 1
        return self.tokenizer.batch_decode(torch.stack(answer, 1), skip_special_tokens=True)


def _per_video(features, n: int):
    """A tower output for ``n`` videos of one shape, split per video (newer transformers split it)."""
    return features if isinstance(features, (tuple, list)) else features.split(len(features) // n)


@dataclass
class RowCells:
    """Which cells of a video each of its rows stands for: ``index`` ``[cells]`` the row of every cell (a
    key map, ``rows`` given) or ``[rows]`` the one cell of every row (``rows`` None)."""

    index: torch.Tensor
    rows: int | None

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """Per row, from ``values`` ``[C, cells]``: the mean over its cells, or its cell's -> ``[C, rows]``."""
        if self.rows is None:
            return values[:, self.index]
        sums = torch.zeros(len(values), self.rows, dtype=values.dtype, device=values.device)
        sums.index_add_(1, self.index.to(values.device), values)
        counts = torch.bincount(self.index, minlength=self.rows)[:self.rows].clamp_min(1)
        return sums / counts.to(values.device, values.dtype)
