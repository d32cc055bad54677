"""What a generated split holds: answer positions and the blind prior a model could learn without looking."""

from __future__ import annotations

from collections import Counter

from .spec import NUM_OPTIONS


def answer_balance(positions) -> dict:
    """Tally of the correct options' positions; ``chi2`` against uniform (df = 4; above 18.47 is
    p < 0.001, reported as unbalanced)."""
    counts = Counter(positions)
    n = sum(counts.values())
    expected = n / NUM_OPTIONS
    chi2 = sum((counts.get(i, 0) - expected) ** 2 / expected for i in range(NUM_OPTIONS)) if n else 0.0
    return dict(positions=[counts.get(i, 0) for i in range(NUM_OPTIONS)], chi2=round(chi2, 3),
                balanced=bool(chi2 < 18.47))


def majority_answers(items) -> dict[str, str]:
    """The most common correct option text per question type (a blind guesser's best rule)."""
    counts: dict[str, Counter] = {}
    for item in items:
        counts.setdefault(item.type, Counter())[item.options[item.answer]] += 1
    return {t: c.most_common(1)[0][0] for t, c in counts.items()}


def blind_accuracy(items, prior: dict[str, str]) -> dict[str, float]:
    """Accuracy per type of answering every question with the train split's most common answer for its
    type (where it is among the options; else a wrong guess): the prior a model could learn without
    looking. Chance is 0.2."""
    hits: dict[str, list[bool]] = {}
    for item in items:
        hits.setdefault(item.type, []).append(item.options[item.answer] == prior.get(item.type))
    return {t: round(sum(h) / len(h), 3) for t, h in sorted(hits.items())}
