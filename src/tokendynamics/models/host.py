"""What every host video LLM shares, behind one seam: a Hugging Face video LLM whose video tokens pass
through a reducer before its LLM reads them, without patching transformers' code.

A host (one file each: :mod:`.llava` for LLaVA-OneVision, :mod:`.qwen` for Qwen2.5-VL, :mod:`.qwen3` for
Qwen3-VL) says how a video becomes tokens ``[T, h, w, D]`` (:meth:`VideoLLM.video_features`), what follows
the reducer's rows (:meth:`VideoLLM.visual_rows`), where its parts are (:attr:`language_model`,
:attr:`vision_tower`, :attr:`projector`: what training adapts), how it loads, and where it differs from
the defaults here: its chat prompt (:meth:`VideoLLM.chat_parts`, :meth:`VideoLLM.prompt_parts`), its
positions (:meth:`VideoLLM.position_ids`; a host with 3D positions gives :class:`VideoRows`) and its
forward (:meth:`VideoLLM.run_host`). Everything else is here: the prompt's text embeddings and the visual
rows are laid out left-padded and passed as ``inputs_embeds`` with the attention mask and position ids
(counted from each sample's first real token, so a sample's result does not depend on its batch), for a
forward with labels, for ``generate()``, for scoring multiple-choice options, and for the answer's
attention over the visual rows.
"""

from __future__ import annotations

import abc
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._checks import check_choice
from ..reducers import Reducer
from ..reducers.module import given_length, named_length
from .prompts import LETTERS, SCORING_MODES, chat_parts, check_options, multiple_choice, parse_letter, training_pairs
from .recipe import answer_mode, load_recipe, save_recipe

IGNORE = -100


@dataclass
class Choices:
    """Multiple-choice results: ``picks`` (option index per question, -1 where none could be read),
    ``scores`` ``[B, max options]``, ``visual_tokens`` (tokens the LLM read per video, a host's added rows
    included), ``texts`` (the generated answers, in ``"generate"`` mode; else None)."""

    picks: list[int]
    scores: torch.Tensor
    visual_tokens: list[int]
    texts: list[str] | None = None


class VideoLLM(nn.Module, metaclass=abc.ABCMeta):
    """A host video LLM (``host``: its Hugging Face model) whose video tokens pass through ``reducer``.
    Subclasses name the checkpoints they load (``model_types``), the host's class (``host_class``, imported
    from transformers by name) and implement :meth:`video_features`. ``recipe``: how the model was trained
    (see :mod:`.recipe`), ``{}`` for a plain checkpoint. Videos are ``uint8 [T, H, W, 3]`` tensors."""

    model_types: tuple[str, ...] = ()
    host_class: str = ""
    added_rows = 0  # rows :meth:`visual_rows` puts after the reducer's
    grid: tuple[int, int]  # the host's token grid per frame, set by each host

    def __init__(self, host, tokenizer, transform, reducer: Reducer, recipe: dict | None = None):
        super().__init__()
        self.host, self.tokenizer, self.transform, self.reducer = host, tokenizer, transform, reducer
        self.recipe = dict(recipe or {})
        self.tokenizer.padding_side = "left"
        self.letter_ids = [self._single_token(c) for c in LETTERS]

    # ------------------------------------------------------------------ what a host provides

    @classmethod
    @abc.abstractmethod
    def load_transform(cls, path: str | Path):
        """The host's frame transform (``uint8 [T, H, W, 3]`` -> its pixel input), saved beside it."""

    @abc.abstractmethod
    def video_features(self, videos) -> list[torch.Tensor]:
        """Per video ``[T, h, w, D]``: the tokens the LLM would read, on the host's grid, at the LLM's width."""

    def full_tokens(self, num_frames: int, height: int | None = None, width: int | None = None) -> int:
        """Visual tokens the LLM would read for ``num_frames`` frames (of ``height x width`` pixels, where
        the host's grid depends on them) without a reducer (``grid``: the host's token grid per frame)."""
        return num_frames * self.grid[0] * self.grid[1] + self.added_rows

    def chat_parts(self, text: str) -> tuple[str, str]:
        """The prompt around the video's rows for a user message (ChatML, as LLaVA-OneVision's Qwen2 LM)."""
        return chat_parts(text)

    def visual_rows(self, rows: torch.Tensor, tokens: torch.Tensor | None = None, key: torch.Tensor | None = None):
        """What the LLM reads of a video, given the reducer's valid rows ``[n, D]`` (by default, those), the
        video's tokens ``[T, h, w, D]`` (None for a stream) and the key map ``[T, h, w]`` the rows came with
        (None for reducers that build none): what a host that places its rows needs."""
        return rows

    @property
    def language_model(self) -> nn.Module:
        return self.host.model.language_model

    def set_language_model(self, module: nn.Module) -> None:
        """Put ``module`` in the LLM's place (LoRA wraps it, merging unwraps it). A method, not a property
        setter: ``nn.Module`` files an assigned module as a submodule of its own instead."""
        self.host.model.language_model = module

    @property
    @abc.abstractmethod
    def vision_tower(self) -> nn.Module:
        """The host's vision encoder."""

    @property
    @abc.abstractmethod
    def projector(self) -> nn.Module:
        """The host's vision-to-language projection (trained with the reducer)."""

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, path: str | Path, reducer: str | None = None, num_tokens: int | None = None,
                        dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                        compressor: str | None = None, **options) -> "VideoLLM":
        """Load a checkpoint (local or hub) of this host with a reducer: ``reducer`` (a name of
        ``td.reducers`` or ``"full"``; ``compressor`` is its old name) with ``num_tokens`` (default 8) and
        options; where neither is given, the reducer saved with the checkpoint by :meth:`save_pretrained` (its
        own K unless ``num_tokens`` is given; ``num_tokens`` and options then change only what no trained
        weight depends on: :meth:`Reducer.with_options`), else ``"full"``."""
        import transformers
        from transformers import AutoTokenizer

        name = reducer if reducer is not None else compressor
        host = getattr(transformers, cls.host_class).from_pretrained(path, dtype=dtype or torch.float32)
        dim = host.config.text_config.hidden_size
        if name is not None:
            chosen = Reducer(name, dim, named_length(num_tokens, options), **options)
        elif Path(path).is_dir() and Reducer.saved_in(path):
            chosen = Reducer.from_pretrained(path).with_options(**options, **given_length(num_tokens))
        else:
            chosen = Reducer("full", dim, None).with_options(**options, **given_length(num_tokens))
        if chosen.dim != dim:
            raise ValueError(f"the reducer's width ({chosen.dim}) differs from the LLM's ({dim})")
        recipe = load_recipe(path) if Path(path).is_dir() else {}
        model = cls(host, AutoTokenizer.from_pretrained(path), cls.load_transform(path), chosen.to(host.dtype), recipe)
        return model.to(device) if device is not None else model

    def save_pretrained(self, directory: str | Path) -> None:
        """Host (config and weights), tokenizer, frame transform, reducer (settings and weights) and the
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

    def video_tokens(self, videos) -> list[torch.Tensor]:
        """Per video ``[n', D]`` (:class:`VideoRows` on a host that places its rows): the reducer's ``n`` valid
        tokens as the LLM reads them (:meth:`visual_rows`)."""
        out = [None] * len(videos)
        for i, rows, tokens, key in self._reduced(self.video_features(videos)):
            out[i] = self.visual_rows(rows, tokens, key)
        return out

    def _reduced(self, feats):
        """The reducer over videos' tokens ``[T, h, w, D]`` (equal shapes batched): per video ``(index,
        valid rows [n, D], its tokens, its key map [T, h, w] or None for reducers that build none)``."""
        for _, idx in _groups([f.shape for f in feats]).items():
            compact = self.reducer(torch.stack([feats[i] for i in idx]))
            keys = [None] * len(idx) if compact.hash is None else compact.hash.key_map.unbind(0)
            for i, rows, keep, key in zip(idx, compact.tokens.unbind(0), compact.mask.cpu(), keys):  # one sync
                yield i, _valid(rows, keep), feats[i], key

    def new_stream(self, **options):
        """A :class:`~tokendynamics.stream.HashStream` for this model's Token Dynamics reducer (its K or its
        adaptive settings, width, metric and seed; ``options`` override them), to feed with :meth:`push` as
        frames arrive."""
        from ..stream import HashStream

        config = self._token_dynamics().config
        settings = dict(num_tokens=config.num_tokens, dim=config.dim, metric=config.metric, seed=config.seed,
                        max_distortion=config.max_distortion, min_tokens=config.min_tokens,
                        max_tokens=config.max_tokens)
        return HashStream(**(settings | options), device=self.device)

    @torch.no_grad()
    def push(self, stream, frames: torch.Tensor) -> None:
        """Run the vision path on newly arrived frames ``uint8 [t, H, W, 3]`` and add them to ``stream``."""
        stream.push(self.video_features([frames])[0])

    def stream_tokens(self, stream) -> torch.Tensor:
        """What the LLM reads of the video streamed so far, ``[n', D]`` (pass it as ``visual=[...]`` to
        :meth:`choose` or :meth:`generate`): only the reducer's learned half runs, on the stream's table."""
        table = stream.table()
        compact = self._token_dynamics().from_table(table)
        return self.visual_rows(compact.tokens[0][compact.mask[0]], key=table.key_map[0])

    def _token_dynamics(self):
        if self.reducer.model is None:
            raise ValueError(f"streaming needs the token_dynamics reducer; this model's is {self.reducer.name!r}")
        return self.reducer.model

    def count_tokens(self, videos) -> list[int]:
        """Visual tokens the LLM reads per video (the reduced tokens and any rows the host adds)."""
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
        pieces = []  # per sample: the prompt's parts (the answer ids end the last), the answer ids
        for i, (vid, text) in enumerate(zip(visual, texts)):
            target = [] if targets is None else self._ids(targets[i] + self.tokenizer.eos_token)
            parts = self.prompt_parts(text, vid)
            pieces.append((parts[:-1] + [parts[-1] + target], target))
        plan = _layout(pieces)
        ids, is_visual, mask, labels = (t.to(self.device, non_blocking=True) for t in plan)
        embeds = self.host.get_input_embeddings()(ids)
        rows = torch.cat([rows_of(v) for v in visual], 0).to(embeds.dtype)
        embeds = embeds.masked_scatter(is_visual[..., None], rows).masked_fill(~mask.bool()[..., None], 0)
        out = dict(inputs_embeds=embeds, attention_mask=mask, position_ids=self.position_ids(pieces, visual, mask))
        if targets is not None:
            out["labels"] = labels
        return out, is_visual

    def prompt_parts(self, text: str, visual) -> list:
        """One sample's prompt in order: text ids (lists) and counts of visual rows (ints), the video's rows
        taken in order; it ends with text. By default the chat prompt around one run of all the rows."""
        before, after = self.chat_parts(text)
        return [self._ids(before), len(visual), self._ids(after)]

    def run_host(self, **inputs):
        """The host's forward on what :meth:`build_inputs` gave (and any further host arguments)."""
        return self.host(**inputs)

    def position_ids(self, pieces, visual, mask: torch.Tensor) -> torch.Tensor:
        """The LLM's positions of the left-padded layout (``pieces``: per sample its prompt parts and
        answer ids, ``visual`` as :meth:`_inputs` has them): ``[B, L]``, counted from each sample's first
        token."""
        return (mask.cumsum(1) - 1).clamp_min(0)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    # ------------------------------------------------------------------ uses

    def forward(self, videos, texts, targets=None):
        """The host's output (``logits``; ``loss`` where ``targets`` are given) for videos and user texts."""
        return self.run_host(**self.build_inputs(videos, texts, targets))

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
        logits = self.run_host(**inputs).logits[:, :-1].float()
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
        """Which visual tokens an answer leaned on: per sample ``[n]`` (the reducer's rows; the rows the
        host adds, :attr:`added_rows`, left out), the attention the LLM pays to each while reading ``answer``
        after ``text``, averaged over layers, heads and the answer's tokens, as shares summing to 1 (on the
        CPU). Runs the host with eager attention for this call (fused kernels do not return the weights)."""
        inputs, is_visual = self._inputs(videos, texts, answers, visual)
        labels = inputs.pop("labels")
        previous = self.host.config._attn_implementation
        self.host.set_attn_implementation("eager")
        try:
            attentions = self.run_host(**inputs, output_attentions=True).attentions
        finally:
            self.host.set_attn_implementation(previous)
        mean = torch.stack(attentions).float().mean((0, 2))  # [B, L, L] over layers and heads
        reading = torch.zeros_like(is_visual)
        reading[:, :-1] = labels[:, 1:] != IGNORE  # the positions that predict the answer's tokens
        shares = []
        for att, rows, cols in zip(mean, reading, is_visual):
            weight = att[rows][:, cols].mean(0)
            weight = weight[: len(weight) - self.added_rows]
            shares.append((weight / weight.sum().clamp_min(1e-12)).cpu())
        return shares

    @torch.no_grad()
    def choose(self, videos, questions, options, mode: str | None = None, visual=None) -> Choices:
        """Multiple choice as NextQA-MC is scored, ``mode``:

        ``"letter"``: the next-token logits of the option letters after the multiple-choice prompt
        (padding options score -inf); ``"generate"``: the letter named in a greedy answer (-1 where none);
        ``"likelihood"``: the summed log-probability of each option's text as the answer to the question;
        ``None``: the scoring the model was trained for (its recipe's target: ``"likelihood"`` for the
        built-in models, ``"letter"`` for a checkpoint without a recipe).
        ``visual``: the videos' tokens where already computed (see :meth:`build_inputs`; videos unused).
        """
        mode = answer_mode(self.recipe) if mode is None else mode
        options = [check_options(o) for o in options]
        texts = [multiple_choice(q, o) for q, o in zip(questions, options)]
        width = max(len(o) for o in options)
        scores = torch.full((len(options), width), float("-inf"))
        check_choice(mode, "mode", SCORING_MODES)
        visual = self.video_tokens(videos) if visual is None else visual  # once per video, any mode
        counts = [len(v) for v in visual]
        if mode == "letter":
            logits = self.run_host(**self.build_inputs(None, texts, visual=visual)).logits[:, -1].float().cpu()
            for i, o in enumerate(options):
                scores[i, :len(o)] = logits[i, self.letter_ids[:len(o)]]
            return Choices(scores.argmax(1).tolist(), scores, counts)
        if mode == "generate":
            answers = self.generate(None, texts, max_new_tokens=8, visual=visual)
            picks = [parse_letter(a, len(o)) for a, o in zip(answers, options)]
            for i, p in enumerate(picks):
                if p is not None:
                    scores[i, p] = 0.0
            return Choices([-1 if p is None else p for p in picks], scores, counts, answers)
        owner = [i for i, o in enumerate(options) for _ in o]  # likelihood: every option after its question
        flat = self.loglikelihood(None, [questions[i] for i in owner], [opt for o in options for opt in o],
                                  visual=[visual[i] for i in owner])
        column = [j for o in options for j in range(len(o))]
        for (logp, _), i, j in zip(flat, owner, column):
            scores[i, j] = logp
        return Choices(scores.argmax(1).tolist(), scores, counts)


@dataclass
class VideoRows:
    """What the LLM reads of a video on a host with multimodal rotary positions: ``rows`` ``[n, D]`` in one
    or more spans (``spans``: rows per span, in order; one span of every row by default), ``offsets``
    ``[3, n]`` (each row's temporal, height and width position, counted from its span's first position) and
    ``advances`` (per span, how far the positions move on past it: where what follows starts). A host may
    add per span the seconds it stands at (``times``) and per extra feature level the rows' features
    (``deepstack``: ``[n, D]`` each). ``len()`` is the row count, as for a plain ``[n, D]`` tensor."""

    rows: torch.Tensor
    offsets: torch.Tensor
    advances: tuple[int, ...]
    spans: tuple[int, ...] = ()
    times: tuple[float, ...] = ()
    deepstack: tuple[torch.Tensor, ...] = ()

    def __post_init__(self):
        self.spans = tuple(self.spans) or (len(self.rows),)
        self.advances = tuple(self.advances)
        if sum(self.spans) != len(self.rows) or len(self.advances) != len(self.spans):
            raise ValueError(f"spans {self.spans} and advances {self.advances} must cover the {len(self.rows)} rows")

    def __len__(self) -> int:
        return len(self.rows)


def rows_of(visual) -> torch.Tensor:
    """The ``[n, D]`` rows of a video's visual input (a tensor, or :class:`VideoRows`)."""
    return visual.rows if isinstance(visual, VideoRows) else visual


def cache_keyword(model: nn.Module) -> str:
    """What transformers calls a model's KV cache, as a ``forward`` argument and an output field:
    ``"cache"`` in its newer releases, ``"past_key_values"`` before."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def model_type(path: str | Path) -> str:
    """The ``model_type`` of a checkpoint's ``config.json`` (a local directory, else through transformers)."""
    config = Path(path) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type", "")
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path).model_type


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
    per-sample pieces. pieces: per sample ``(parts, answer ids)``, ``parts`` the prompt in order, text ids
    (lists) and counts of visual rows (ints), the answer ids ending the last. -> ``ids [B, L]`` (0 at
    visual and padding positions), ``is_visual [B, L]``, ``attention_mask [B, L]``, ``labels [B, L]`` (the
    answer ids, ``IGNORE`` elsewhere)."""
    lengths = [sum(p if isinstance(p, int) else len(p) for p in parts) for parts, _ in pieces]
    b, length = len(pieces), max(lengths)
    ids = torch.zeros(b, length, dtype=torch.long)
    is_visual = torch.zeros(b, length, dtype=torch.bool)
    mask = torch.zeros(b, length, dtype=torch.long)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    for i, ((parts, target), size) in enumerate(zip(pieces, lengths)):
        at = length - size
        mask[i, at:] = 1
        for part in parts:
            if isinstance(part, int):
                is_visual[i, at:at + part] = True
                at += part
            else:
                ids[i, at:at + len(part)] = torch.tensor(part, dtype=torch.long)
                at += len(part)
        labels[i, length - len(target):] = torch.tensor(target, dtype=torch.long)
    return tuple(t.pin_memory() if torch.cuda.is_available() else t for t in (ids, is_visual, mask, labels))
