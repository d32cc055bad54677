"""MotionQA rendered as it is read: the same questions as the generator's, any type filter, and a training
run on it."""

import numpy as np
import pytest
import torch

from tokendynamics.data.motionqa import MotionQAConfig, make_video, split_of
from tokendynamics.data.motionqa.generate import question_types
from tokendynamics.data.motionqa.rendered import RenderedMotionQA
from tokendynamics.data.video import uniform_indices


def test_an_item_is_the_generated_video_and_question():
    data = RenderedMotionQA(seed=3, num_frames=8, size=64, video_frames=16)
    for index in (0, 1, 7, 55):
        video, slot = data.locate(index)
        frames, _, items = make_video(video, MotionQAConfig(num_frames=16, size=64, seed=3, arrays=True, mp4=False))
        item = data[index]
        assert torch.equal(item["frames"], torch.from_numpy(frames[uniform_indices(16, 8)]))
        assert (item["question"], item["options"], item["answer"]) == (items[slot].question,
                                                                      list(items[slot].options), items[slot].answer)


def test_every_question_once_in_its_split_and_of_the_types_asked():
    data = RenderedMotionQA(size=64, video_frames=16, types=("direction", "count"), num_questions=400)
    located = [data.locate(i) for i in range(len(data))]
    assert len(set(located)) == len(located)  # no question twice
    assert all(split_of(v) == "train" for v, _ in located)
    assert {question_types(v)[slot] for v, slot in located} == {"direction", "count"}
    assert data[len(data) - 1]["type"] in ("direction", "count")
    test = RenderedMotionQA(split="test", num_questions=50)
    assert all(split_of(test.locate(i)[0]) == "test" for i in range(50))


def test_bad_settings_name_themselves():
    with pytest.raises(ValueError, match="types"):
        RenderedMotionQA(types=("directions",))
    with pytest.raises(ValueError, match="split"):
        RenderedMotionQA(split="dev")
    with pytest.raises(IndexError):
        RenderedMotionQA(num_questions=3)[3]


def test_deterministic_across_instances():
    a, b = RenderedMotionQA(seed=1, size=64, video_frames=16), RenderedMotionQA(seed=1, size=64, video_frames=16)
    assert np.array_equal(a[11]["frames"], b[11]["frames"]) and a[11]["id"] == b[11]["id"]


def test_weighted_types_come_more_often_from_other_videos():
    from collections import Counter

    data = RenderedMotionQA(size=64, video_frames=16, weights={"direction": 3}, num_questions=3000)
    located = [data.locate(i) for i in range(len(data))]
    assert len(set(located)) == len(located)
    kinds = Counter(question_types(v)[slot] for v, slot in located)
    assert 2.7 < kinds["direction"] / kinds["moved"] < 3.3  # the others keep their shares (a content type: 2)
    assert 1.8 < kinds["colour"] / kinds["moved"] < 2.2
    with pytest.raises(ValueError, match="weights"):
        RenderedMotionQA(weights={"direction": 0})


def test_wide_backgrounds_span_black_to_white_keep_objects_visible_and_leave_the_benchmark_alone():
    from tokendynamics.data.changeqa import ChangeQAConfig
    from tokendynamics.data.motionqa import COLOURS, background
    from tokendynamics.data.motionqa.render import FAR
    from tokendynamics.train import TrainConfig

    white = COLOURS["white"]
    wide = [background(np.random.default_rng(i), 32, "wide", avoid=[white]) for i in range(200)]
    means = np.array([b.reshape(-1, 3).mean(0) for b in wide])
    assert means.min() < 40 and means.max() > 200  # dark to bright (muted: 70-150, give or take 18)
    plain = [b for b in wide if (b == b[0, 0]).all()]
    assert len(plain) > 20 and all(np.linalg.norm(b[0, 0] - np.array(white)) >= FAR for b in plain)
    muted = np.array([background(np.random.default_rng(i), 32).reshape(-1, 3).mean(0) for i in range(50)])
    assert muted.min() >= 70 - 18 and muted.max() <= 150 + 18
    config = MotionQAConfig(size=64)
    a, b = make_video(3, config)[0], make_video(3, MotionQAConfig(size=64, backgrounds="wide"))[0]
    assert not np.array_equal(a, b) and np.array_equal(a, make_video(3, config)[0])
    item = RenderedMotionQA(seed=0, size=64, backgrounds="wide")[0]
    assert torch.equal(item["frames"], RenderedMotionQA(seed=0, size=64, backgrounds="wide")[0]["frames"])
    with pytest.raises(ValueError, match="backgrounds must be one of"):
        MotionQAConfig(backgrounds="loud")
    with pytest.raises(ValueError, match="backgrounds must be one of"):
        background(np.random.default_rng(0), 32, "loud")
    with pytest.raises(ValueError, match="ChangeQA draws its own scenes"):
        ChangeQAConfig(backgrounds="wide")
    with pytest.raises(ValueError, match="rendered_backgrounds must be one of"):
        TrainConfig(model="builtin", data=None, video_root=None, output="x", rendered_seed=0,
                    rendered_backgrounds="loud")
