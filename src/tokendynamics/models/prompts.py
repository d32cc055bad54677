"""Multiple-choice prompts as NextQA-MC is asked in lmms-eval, and reading the answer back."""

from __future__ import annotations

import re

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the option's letter from the given choices directly."
SYSTEM = "You are a helpful assistant."
SCORING_MODES = ("letter", "generate", "likelihood")  # how an answer is read: the letter's likelihood, a
# generated letter, or each option's text as the answer (CompressedLlavaOnevision.choose)


def check_options(options) -> list[str]:
    """Options as a list of 2 to 10 non-empty strings."""
    if isinstance(options, str) or not 2 <= len(options) <= len(LETTERS) or not all(
            isinstance(o, str) and o for o in options):
        raise ValueError(f"options must be a list of 2 to {len(LETTERS)} non-empty strings, got {options!r}")
    return list(options)


def multiple_choice(question: str, options) -> str:
    """``question``, then ``A. option`` lines, then the instruction to answer with a letter."""
    lines = [f"{LETTERS[i]}. {o}" for i, o in enumerate(check_options(options))]
    return "\n".join([question, *lines, INSTRUCTION])


def chat_parts(text: str) -> tuple[str, str]:
    """The ChatML prompt of LLaVA-OneVision (Qwen2) around the video: ``(before, after)``; the video's
    tokens go between them."""
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n",
            f"\n{text}<|im_end|>\n<|im_start|>assistant\n")


def answer_text(index: int) -> str:
    """The target a model is trained to produce for option ``index``."""
    return LETTERS[index]


def training_pairs(questions, options, answers, target: str = "letter") -> tuple[list[str], list[str]]:
    """(user texts, answer texts) to train on: ``"letter"``: the multiple-choice prompt answered with the
    option's letter; ``"text"``: the question alone answered with the option's text (what likelihood
    scoring reads)."""
    if target == "text":
        return list(questions), [o[a] for o, a in zip(options, answers)]
    return [multiple_choice(q, o) for q, o in zip(questions, options)], [answer_text(a) for a in answers]


def parse_letter(text: str, num_options: int) -> int | None:
    """The option a generated answer names (``"B"``, ``"B."``, ``"(B) ..."``, ``"The answer is B"``), or None."""
    valid = LETTERS[:num_options]
    match = re.match(rf"\s*\(?([{valid}])\b", text) or re.search(rf"\b([{valid}])[.)]?\s*$", text.strip())
    return valid.index(match.group(1)) if match else None
