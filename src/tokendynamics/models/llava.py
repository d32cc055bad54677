"""LLaVA-OneVision with a token reducer between its projector and its LLM, without patching transformers'
code (on an even patch grid, the host instance's 2x2 pooling is swapped for an exact, faster equivalent).

The host's public pieces do the work: ``get_video_features`` (vision tower, projector, 2x2 pooling) gives
``[T, h, w, D]`` tokens per video; the reducer turns them into K tokens; the host's ``image_newline`` row
follows them, as in the host's own video path; the prompt's text embeddings and these tokens are
concatenated and passed to the host as ``inputs_embeds`` (with the attention mask and position ids), for a
forward with labels, for ``generate()``, or for scoring multiple-choice options.

Batches are left-padded, with position ids counted from each sample's first real token, so a sample's
result does not depend on the rest of its batch; videos of different frame counts and reducers of
different output lengths (adaptive) mix freely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..reducers import Reducer
from .frames import FrameTransform
from .prompts import LETTERS, SCORING_MODES, chat_parts, check_options, multiple_choice, parse_letter, training_pairs
from .recipe import load_recipe, save_recipe

IGNORE = -100


@dataclass
class Choices:
    """Multiple-choice results: ``picks`` (option index per question, -1 where none could be read),
    ``scores`` ``[B, max options]``, ``visual_tokens`` (tokens the LLM read per video, newline included)."""

    picks: list[int]
    scores: torch.Tensor
    visual_tokens: list[int]


class CompressedLlavaOnevision(nn.Module):
    """A ``LlavaOnevisionForConditionalGeneration`` whose video tokens pass through ``reducer``.

    ``CompressedLlavaOnevision.from_pretrained(path, compressor="token_dynamics", num_tokens=8)``; videos are
    ``uint8 [T, H, W, 3]`` tensors (one per question). ``recipe``: how the model was trained (frames,
    target, ...; see :mod:`.recipe`), ``{}`` for a plain checkpoint.
    """

    def __init__(self, host, tokenizer, transform: FrameTransform, reducer: Reducer, recipe: dict | None = None):
        super().__init__()
        self.host, self.tokenizer, self.transform, self.reducer = host, tokenizer, transform, reducer
        self.recipe = dict(recipe or {})
        self.tokenizer.padding_side = "left"
        cfg = host.config.vision_config
        patches = cfg.image_size // cfg.patch_size  # per side, before the host's 2x2 bilinear pooling
        self.grid = (math.ceil(patches / 2),) * 2
        if patches % 2 == 0:
            host.model.apply_pooling = _block_mean_pooling(patches)
        self.letter_ids = [self._single_token(c) for c in LETTERS]

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, path: str | Path, compressor: str | None = None, num_tokens: int | None = 8,
                        dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                        **options) -> "CompressedLlavaOnevision":
        """Load a LLaVA-OneVision checkpoint (local or hub) with a reducer: ``compressor`` (a name of
        ``td.reducers`` or ``"full"``) with ``num_tokens`` and options; where ``compressor`` is None, the
        reducer saved with the checkpoint by :meth:`save_pretrained`, else ``"full"``."""
        from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration

        host = LlavaOnevisionForConditionalGeneration.from_pretrained(path, dtype=dtype or torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
        transform = FrameTransform.from_pretrained(path)
        dim = host.config.text_config.hidden_size
        if compressor is not None:
            reducer = Reducer(compressor, dim, num_tokens, **options)
        elif Path(path).is_dir() and Reducer.saved_in(path):
            reducer = Reducer.from_pretrained(path)
        else:
            reducer = Reducer("full", dim, None)
        if reducer.dim != dim:
            raise ValueError(f"the reducer's width ({reducer.dim}) differs from the LLM's ({dim})")
        recipe = load_recipe(path) if Path(path).is_dir() else {}
        model = cls(host, tokenizer, transform, reducer.to(host.dtype), recipe)
        return model.to(device) if device is not None else model

    def save_pretrained(self, directory: str | Path) -> None:
        """Host (config and weights), tokenizer, processor settings, reducer (settings and weights) and the
        recipe where there is one."""
        directory = Path(directory)
        self.host.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.transform.save_pretrained(directory)
        self.reducer.save_pretrained(directory)
        if self.recipe:
            save_recipe(directory, self.recipe)

    @property
    def device(self) -> torch.device:
        return self.host.device

    @property
    def dtype(self) -> torch.dtype:
        return self.host.dtype

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return ids[0]

    # ------------------------------------------------------------------ video tokens

    def video_features(self, videos) -> list[torch.Tensor]:
        """Per video ``[T, h, w, D]``: the host's pooled, projected tokens (frames of equal count batched)."""
        out = [None] * len(videos)
        cfg = self.host.config
        for shape, idx in _groups([v.shape for v in videos]).items():
            pixels = self.transform(torch.stack([videos[i] for i in idx]).to(self.device), self.dtype)
            feats = self.host.model.get_video_features(
                pixels, vision_feature_layer=cfg.vision_feature_layer,
                vision_feature_select_strategy=cfg.vision_feature_select_strategy).pooler_output
            cells = shape[0] * self.grid[0] * self.grid[1]
            if feats.shape[1] == cells + 1:  # newer transformers append the newline row themselves
                feats = feats[:, :cells]
            feats = feats.reshape(len(idx), shape[0], *self.grid, -1)
            for i, f in zip(idx, feats.unbind(0)):  # one backward op (indexing each would zero-fill B copies)
                out[i] = f
        return out

    def video_tokens(self, videos) -> list[torch.Tensor]:
        """Per video ``[n + 1, D]``: the reducer's ``n`` valid tokens, then the host's newline row."""
        feats = self.video_features(videos)
        out = [None] * len(videos)
        newline = self.host.model.image_newline
        for _, idx in _groups([f.shape for f in feats]).items():
            compact = self.reducer(torch.stack([feats[i] for i in idx]))
            for i, rows, keep in zip(idx, compact.tokens.unbind(0), compact.mask.cpu()):  # one sync
                out[i] = torch.cat([_valid(rows, keep).to(newline.dtype), newline[None]], 0)
        return out

    def count_tokens(self, videos) -> list[int]:
        """Visual tokens the LLM reads per video (reduced tokens + newline)."""
        with torch.no_grad():
            return [len(t) for t in self.video_tokens(videos)]

    # ------------------------------------------------------------------ inputs

    def build_inputs(self, videos, texts, targets=None, visual=None) -> dict:
        """Left-padded ``inputs_embeds``, ``attention_mask``, ``position_ids`` (and ``labels`` where
        ``targets``, the answer texts, are given) for the host. texts: user messages (one per video).
        visual: the videos' tokens from :meth:`video_tokens` where already computed (videos unused)."""
        inputs, _ = self._inputs(videos, texts, targets, visual)
        return inputs

    def _inputs(self, videos, texts, targets, visual) -> tuple[dict, torch.Tensor]:
        """:meth:`build_inputs` and where the visual rows sit (``[B, L]``, on the device)."""
        visual = self.video_tokens(videos) if visual is None else visual
        if len(visual) != len(texts) or (targets is not None and len(targets) != len(texts)):
            raise ValueError(f"videos ({len(visual)}), texts ({len(texts)}) and targets must pair up")
        pieces = []  # per sample: text ids before the video, visual row count, ids after, answer ids
        for i, (vid, text) in enumerate(zip(visual, texts)):
            before, after = chat_parts(text)
            target = [] if targets is None else self._ids(targets[i] + self.tokenizer.eos_token)
            pieces.append((self._ids(before), len(vid), self._ids(after) + target, target))
        plan = _layout(pieces)
        ids, is_visual, mask, labels = (t.to(self.device, non_blocking=True) for t in plan)
        embeds = self.host.get_input_embeddings()(ids)
        rows = torch.cat(list(visual), 0).to(embeds.dtype)
        embeds = embeds.masked_scatter(is_visual[..., None], rows).masked_fill(~mask.bool()[..., None], 0)
        out = dict(inputs_embeds=embeds, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp_min(0))
        if targets is not None:
            out["labels"] = labels
        return out, is_visual

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    # ------------------------------------------------------------------ uses

    def forward(self, videos, texts, targets=None):
        """The host's output (``logits``; ``loss`` where ``targets`` are given) for videos and user texts."""
        return self.host(**self.build_inputs(videos, texts, targets))

    def training_loss(self, videos, questions, options, answers, target: str = "letter") -> torch.Tensor:
        """Loss of answering each multiple-choice question (see :func:`~.prompts.training_pairs`)."""
        return self(videos, *training_pairs(questions, options, answers, target)).loss

    @torch.no_grad()
    def generate(self, videos, texts, max_new_tokens: int = 32, visual=None, **kwargs) -> list[str]:
        """Greedy answers (text) to user messages about videos (``visual``: see :meth:`build_inputs`)."""
        inputs = self.build_inputs(videos, texts, visual=visual)
        inputs.pop("position_ids")  # generate() derives them from the attention mask
        ids = self.host.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=self.tokenizer.eos_token_id,
                                 pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    @torch.no_grad()
    def loglikelihood(self, videos, texts, continuations, visual=None) -> list[tuple[float, bool]]:
        """Per sample: the summed log-probability of ``continuation`` as the answer to ``text`` about the
        video, and whether greedy decoding would produce it (``visual``: see :meth:`build_inputs`)."""
        inputs = self.build_inputs(videos, texts, continuations, visual)
        labels = inputs.pop("labels")
        logits = self.host(**inputs).logits[:, :-1].float()
        target = labels[:, 1:]
        keep = target != IGNORE
        eos = torch.zeros_like(keep)  # the end-of-turn token closes every target; score the answer alone
        eos[:, -1] = True
        keep &= ~eos
        logp = logits.log_softmax(-1).gather(2, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        greedy = (logits.argmax(-1) == target) | ~keep
        return [(float((logp[i] * keep[i]).sum()), bool(greedy[i].all())) for i in range(len(texts))]

    @torch.no_grad()
    def answer_attention(self, videos, texts, answers, visual=None) -> list[torch.Tensor]:
        """Which visual tokens an answer leaned on: per sample ``[n]`` (the reducer's rows, the newline row
        left out), the attention the LLM pays to each while reading ``answer`` after ``text``, averaged over
        layers, heads and the answer's tokens, as shares summing to 1 (on the CPU). Runs the host with eager
        attention for this call (fused kernels do not return the weights)."""
        inputs, is_visual = self._inputs(videos, texts, answers, visual)
        labels = inputs.pop("labels")
        previous = self.host.config._attn_implementation
        self.host.set_attn_implementation("eager")
        try:
            attentions = self.host(**inputs, output_attentions=True).attentions
        finally:
            self.host.set_attn_implementation(previous)
        mean = torch.stack(attentions).float().mean((0, 2))  # [B, L, L] over layers and heads
        reading = torch.zeros_like(is_visual)
        reading[:, :-1] = labels[:, 1:] != IGNORE  # the positions that predict the answer's tokens
        shares = []
        for att, rows, cols in zip(mean, reading, is_visual):
            weight = att[rows][:, cols].mean(0)[:-1]
            shares.append((weight / weight.sum().clamp_min(1e-12)).cpu())
        return shares

    @torch.no_grad()
    def choose(self, videos, questions, options, mode: str = "letter", visual=None) -> Choices:
        """Multiple choice as NextQA-MC is scored, ``mode``:

        ``"letter"``: the next-token logits of the option letters after the multiple-choice prompt
        (padding options score -inf); ``"generate"``: the letter named in a greedy answer (-1 where none);
        ``"likelihood"``: the summed log-probability of each option's text as the answer to the question.
        ``visual``: the videos' tokens where already computed (see :meth:`build_inputs`; videos unused).
        """
        options = [check_options(o) for o in options]
        texts = [multiple_choice(q, o) for q, o in zip(questions, options)]
        width = max(len(o) for o in options)
        scores = torch.full((len(options), width), float("-inf"))
        if mode not in SCORING_MODES:
            raise ValueError(f"mode must be one of {list(SCORING_MODES)}, got {mode!r}")
        visual = self.video_tokens(videos) if visual is None else visual  # once per video, any mode
        counts = [len(v) for v in visual]
        if mode == "letter":
            logits = self.host(**self.build_inputs(None, texts, visual=visual)).logits[:, -1].float().cpu()
            for i, o in enumerate(options):
                scores[i, :len(o)] = logits[i, self.letter_ids[:len(o)]]
            return Choices(scores.argmax(1).tolist(), scores, counts)
        if mode == "generate":
            answers = self.generate(None, texts, max_new_tokens=8, visual=visual)
            picks = [parse_letter(a, len(o)) for a, o in zip(answers, options)]
            for i, p in enumerate(picks):
                if p is not None:
                    scores[i, p] = 0.0
            return Choices([-1 if p is None else p for p in picks], scores, counts)
        owner = [i for i, o in enumerate(options) for _ in o]  # likelihood: every option after its question
        flat = self.loglikelihood(None, [questions[i] for i in owner], [opt for o in options for opt in o],
                                  visual=[visual[i] for i in owner])
        column = [j for o in options for j in range(len(o))]
        for (logp, _), i, j in zip(flat, owner, column):
            scores[i, j] = logp
        return Choices(scores.argmax(1).tolist(), scores, counts)


def _block_mean_pooling(side: int):
    """The host's video pooling for an even patch grid of ``side x side``, as a 2x2 block mean: bilinear
    interpolation to exactly half the size (``align_corners=False``) samples each output at the centre of a
    2x2 block with weights 1/4, so ``avg_pool2d`` gives the same tokens (tested), and its backward is a plain
    scatter of 1/4 instead of the atomic adds of ``upsample_bilinear2d``'s backward (slow in bf16 and not
    bit-reproducible on a GPU). ``[frames, side * side, D]`` -> ``[frames, side * side / 4, D]``."""

    def apply_pooling(features: torch.Tensor) -> torch.Tensor:
        frames, _, dim = features.shape
        grid = features.view(frames, side, side, dim).permute(0, 3, 1, 2)
        return F.avg_pool2d(grid, 2).permute(0, 2, 3, 1).reshape(frames, -1, dim)

    return apply_pooling


def _groups(shapes) -> dict[tuple, list[int]]:
    """Indices grouped by equal shape, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(tuple(s), []).append(i)
    return groups


def _valid(rows: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows ``[K, D]`` whose mask ``keep`` (``[K]``, on the CPU) is set: a view where they lead, as the
    reducers pad at the end."""
    n = int(keep.sum())
    return rows[:n] if bool(keep[:n].all()) else rows[keep.to(rows.device)]


def _layout(pieces) -> tuple[torch.Tensor, ...]:
    """Left-padded layout of a batch on the CPU, built once so that the device gets four copies instead of
    per-sample pieces. pieces: per sample ``(pre ids, n visual rows, post ids, answer ids)`` (the answer ids
    end ``post``). -> ``ids [B, L]`` (0 at visual and padding positions), ``is_visual [B, L]``,
    ``attention_mask [B, L]``, ``labels [B, L]`` (the answer ids, ``IGNORE`` elsewhere)."""
    lengths = [len(pre) + n + len(post) for pre, n, post, _ in pieces]
    b, length = len(pieces), max(lengths)
    ids = torch.zeros(b, length, dtype=torch.long)
    is_visual = torch.zeros(b, length, dtype=torch.bool)
    mask = torch.zeros(b, length, dtype=torch.long)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    for i, ((pre, n, post, target), size) in enumerate(zip(pieces, lengths)):
        start = length - size
        ids[i, start:start + len(pre)] = torch.tensor(pre, dtype=torch.long)
        is_visual[i, start + len(pre):start + len(pre) + n] = True
        ids[i, length - len(post):] = torch.tensor(post, dtype=torch.long)
        mask[i, start:] = 1
        labels[i, length - len(target):] = torch.tensor(target, dtype=torch.long)
    return tuple(t.pin_memory() if torch.cuda.is_available() else t for t in (ids, is_visual, mask, labels))
