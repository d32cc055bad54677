"""ChangeQA: the second generated QA set. Its labels agree with its pixels, it is deterministic and
balanced, and the training and evaluation commands read it as they read MotionQA."""

import json

import numpy as np
import pytest

from tokendynamics.data import load_qa
from tokendynamics.data.changeqa import (BEATS, COLOURS, SIZE_CHANGES, VANISHES, ChangeQAConfig, generate_changeqa,
                                         make_video)

CONFIG = ChangeQAConfig(num_frames=32, size=112, arrays=True, mp4=False)


def _target_pixels(frames, thing, colour):
    """Per frame, the pixels of ``colour`` within the questioned object's largest extent."""
    r = int(1.5 * max(thing["radius"])) + 1
    x, y = int(thing["x"]), int(thing["y"])
    box = frames[:, max(0, y - r):y + r, max(0, x - r):x + r]
    return (box == np.array(COLOURS[colour], dtype=np.uint8)).all(-1).sum((1, 2))


def _answer(items, qtype):
    (item,) = [i for i in items if i.type == qtype]
    return item.options[item.answer]


@pytest.mark.parametrize("index", range(24))
def test_the_labels_agree_with_the_pixels(index):
    frames, scene, items = make_video(index, CONFIG)
    thing = scene["objects"][0]  # the questioned object
    beat = CONFIG.num_frames // BEATS
    middles = [b * beat + beat // 2 for b in range(BEATS)]  # one frame inside every beat
    kind = next(i.type for i in items if i.type != "scene")
    if kind == "size":
        area = _target_pixels(frames, thing, thing["colour"])[[0, CONFIG.num_frames // 2, -1]]
        first, middle, last = area
        expect = {"it grows": first < middle < last, "it shrinks": first > middle > last,
                  "it stays the same size": first == middle == last,
                  "it grows, then shrinks": middle > max(first, last), "it shrinks, then grows": middle < min(first, last)}
        assert expect[_answer(items, "size")], (area, _answer(items, "size"))
    elif kind == "vanishes":
        seen = _target_pixels(frames, thing, thing["colour"])[middles] > 0
        runs = sum(1 for a, b in zip(seen, seen[1:]) if a and not b)  # disappearances among the beats
        label = _answer(items, "vanishes")
        if label == "once, for good":
            assert runs == 1 and not seen[-1]
        else:
            assert runs == VANISHES.index(label) and seen[0] and seen[-1]
    else:
        new = _answer(items, "recolour")
        before, after = (_target_pixels(frames, thing, c)[[0, -1]] for c in (thing["colour"], new))
        assert before[0] > 0 and before[1] == 0 and after[0] == 0 and after[1] > 0
    assert _answer(items, "scene") == scene["background"]


def test_it_is_deterministic_balanced_and_written_as_motionqa(tmp_path):
    a, b = make_video(7, CONFIG), make_video(7, CONFIG)
    assert np.array_equal(a[0], b[0]) and a[2] == b[2]
    other = make_video(7, ChangeQAConfig(num_frames=32, size=112, seed=1, arrays=True, mp4=False))
    assert not np.array_equal(a[0], other[0])
    stats = generate_changeqa(tmp_path / "cq", 300, arrays=True, mp4=False, workers=2, progress=False)
    train = stats["splits"]["train"]
    assert train["answers"]["balanced"] and set(train["types"]) == {"size", "vanishes", "recolour", "scene"}
    answers = [i.options[i.answer] for i in load_qa(tmp_path / "cq" / "train.jsonl") if i.type == "size"]
    assert set(answers) == set(SIZE_CHANGES)  # every choice is an answer somewhere
    assert max(train["blind_accuracy"].values()) < 0.45  # no answer a blind guesser could learn
    assert (tmp_path / "cq" / "videos" / "test" / "000009.npz").is_file()
    scene = json.loads((tmp_path / "cq" / "test_scenes.jsonl").read_text().splitlines()[0])
    assert scene["id"] == "000009" and len(scene["objects"][0]["shown"]) == 32
    with pytest.raises(ValueError, match="multiple of 8"):
        ChangeQAConfig(num_frames=20)


def test_train_and_eval_read_it(tmp_path):
    from tokendynamics.evaluate import EvalConfig, evaluate
    from tokendynamics.models import build_llava_onevision, multiple_choice
    from tokendynamics.train import TrainConfig, train

    generate_changeqa(tmp_path / "cq", 20, num_frames=16, size=64, arrays=True, mp4=False, workers=1, progress=False)
    items = load_qa(tmp_path / "cq" / "train.jsonl")
    host = build_llava_onevision(tmp_path / "host", [multiple_choice(i.question, i.options) for i in items])
    summary = train(TrainConfig(model=str(host), data=str(tmp_path / "cq/train.jsonl"), video_root=str(tmp_path / "cq"),
                                output=str(tmp_path / "run"), compressor="token_dynamics", num_tokens=4, frames=8,
                                batch_size=4, steps=2, lr=1e-2, warmup=0, workers=0))
    assert summary["steps"] == 2
    report = evaluate(EvalConfig(model=str(tmp_path / "run" / "model"), data=str(tmp_path / "cq/test.jsonl"),
                                 video_root=str(tmp_path / "cq"), frames=8, workers=0))
    assert report["overall"]["n"] == 4 and set(report["per_type"]) <= {"size", "vanishes", "recolour", "scene"}
