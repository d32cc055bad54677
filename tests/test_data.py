import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from tokendynamics.data import motionqa as mq
from tokendynamics.data.qa import QADataset, collate_qa, load_qa
from tokendynamics.data.video import VideoError, count_frames, read_video, uniform_indices, write_video

FRAMES, SIZE = 16, 96


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("motionqa")
    stats = mq.generate_motionqa(out, num_videos=20, seed=5, num_frames=FRAMES, size=SIZE, arrays=True,
                                 workers=2, progress=False)
    return out, stats


def _scenes(out):
    return {s["video"]: s for split in mq.SPLITS
            for s in map(json.loads, (out / f"{split}_scenes.jsonl").read_text().splitlines())}


def _objects(scene):
    return {f"{o['colour']} {o['shape']}": mq.SceneObject(**o) for o in scene["objects"]}


def _answer_from_tracks(item, scene):
    """The answer to ``item`` worked out from the recorded objects alone."""
    objs, side = _objects(scene), scene["size"]
    named = next((o for name, o in objs.items() if f"the {name} " in item.question), None)
    steps = {name: np.abs(np.diff(np.asarray(o.track), axis=0)).sum(1) for name, o in objs.items()}
    if item.type == "direction":
        d = np.asarray(named.track[-1]) - np.asarray(named.track[0])
        if np.abs(d).max() < 1:
            return "it does not move"
        return ("right" if d[0] > 0 else "left") if abs(d[0]) > abs(d[1]) else ("down" if d[1] > 0 else "up")
    if item.type == "moved":
        (mover,) = [name for name, s in steps.items() if s.max() > 0]
        return mover
    if item.type == "entered_first":
        enter = {name: int(np.argmax(o.visible(side))) for name, o in objs.items() if not o.visible(side)[0]}
        return min(enter, key=enter.get)
    if item.type == "faster":
        return max(objs, key=lambda name: np.median(steps[name]))
    if item.type == "end_quadrant":
        return mq.end_quadrant(named, side)
    if item.type == "stops":
        s = steps[named.colour + " " + named.shape]
        if s.max() == 0:
            return "it never moves"
        if not named.visible(side)[-1]:
            return "it moves out of the frame"
        still = s == 0
        if still[-1]:
            return "it stops and stays still"
        return "it stops, then moves again" if still.any() else "it keeps moving"
    if item.type == "colour":
        return next(o.colour for o in objs.values() if f"the {o.shape}?" in item.question)
    if item.type == "shape":
        return next(o.shape for o in objs.values() if f"the {o.colour} object" in item.question)
    if item.type == "count":
        return str(len(objs))
    raise AssertionError(item.type)


def test_round_trip_videos_decode_with_the_right_frames(generated):
    out, stats = generated
    items = [i for split in mq.SPLITS for i in load_qa(out / f"{split}.jsonl")]
    assert len(items) == 40 and sum(s["videos"] for s in stats["splits"].values()) == 20
    videos = sorted({i.video for i in items})
    for video in videos[:4]:
        frames = read_video(out / video, FRAMES)
        assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == torch.uint8
        assert count_frames(out / video) == FRAMES
        with np.load((out / video).with_suffix(".npz")) as archive:
            exact = torch.from_numpy(archive["frames"])
        assert (frames.float() - exact.float()).abs().mean() < 4  # H.264 at crf 18: close to the source


def test_every_answer_follows_from_the_recorded_tracks(generated):
    out, _ = generated
    scenes = _scenes(out)
    for split in mq.SPLITS:
        for item in load_qa(out / f"{split}.jsonl"):
            assert scenes[item.video]["split"] == split
            assert len(item.options) == 5 and len(set(item.options)) == 5
            assert item.options[item.answer] == _answer_from_tracks(item, scenes[item.video]), item


def test_answers_check_out_over_many_scenes_and_are_balanced():
    config = mq.MotionQAConfig(num_frames=FRAMES, size=SIZE, seed=1)
    labels, positions = Counter(), Counter()
    for index in range(360):
        _, scene, items = mq.make_video(index, config)
        for item in items:
            assert item.options[item.answer] == _answer_from_tracks(item, scene), (index, item)
            positions[item.answer] += 1
            if item.type in ("direction", "end_quadrant", "stops"):
                labels[item.type, item.options[item.answer]] += 1
    assert mq.answer_balance(positions.elements())["balanced"]
    for qtype in ("direction", "end_quadrant", "stops"):  # 60 each: every label present, none dominant
        counts = [n for (t, _), n in labels.items() if t == qtype]
        assert len(counts) == 5 and max(counts) <= 24, (qtype, counts)


def test_types_cycle_within_every_split():
    per_split = {s: Counter() for s in mq.SPLITS}
    for index in range(600):
        decade, place = divmod(index, 10)
        per_split[mq.split_of(index)][mq.MOTION_TYPES[(decade + place) % 6]] += 1
    for split, counts in per_split.items():
        assert set(counts) == set(mq.MOTION_TYPES) and max(counts.values()) - min(counts.values()) <= 1, split


def test_generation_is_deterministic_from_the_seed(tmp_path, generated):
    out, _ = generated
    again = tmp_path / "again"
    mq.generate_motionqa(again, num_videos=20, seed=5, num_frames=FRAMES, size=SIZE, arrays=True, workers=1,
                         progress=False)
    for name in ("train.jsonl", "test_scenes.jsonl", "stats.json"):
        assert (again / name).read_text() == (out / name).read_text()
    with np.load(again / "videos/train/000000.npz") as a, np.load(out / "videos/train/000000.npz") as b:
        assert np.array_equal(a["frames"], b["frames"])
    other = mq.make_video(0, mq.MotionQAConfig(num_frames=FRAMES, size=SIZE, seed=6))
    assert not np.array_equal(other[0], mq.make_video(0, mq.MotionQAConfig(num_frames=FRAMES, size=SIZE,
                                                                           seed=5))[0])


def test_dataset_yields_frames_with_questions(generated):
    out, _ = generated
    ds = QADataset(out / "train.jsonl", out, num_frames=8, size=(32, 32))
    item = ds[0]
    assert item["frames"].shape == (8, 32, 32, 3) and item["options"][item["answer"]]
    arrays = QADataset(out / "train.jsonl", out, num_frames=8, prefer_arrays=True)
    assert arrays.video_path(arrays.items[0]).suffix == ".npz" and arrays[0]["frames"].shape == (8, SIZE, SIZE, 3)
    batch = collate_qa([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 8, 32, 32, 3) and batch["skipped"] == 0


@pytest.mark.parametrize("line, match", [
    ("{not json", "not valid JSON"),
    ('{"video": "a.mp4", "question": "q?", "options": ["a", "b"]}', "missing key"),
    ('{"video": "a.mp4", "question": "q?", "options": ["a", "b"], "answer": 2}', "'answer' must be an index"),
    ('{"video": "a.mp4", "question": "q?", "options": ["a"], "answer": 0}', "at least 2"),
    ('{"video": "", "question": "q?", "options": ["a", "b"], "answer": 0}', "'video' must be"),
    ('{"video": "a.mp4", "question": "q?", "options": ["a", "b"], "answer": 0, "extra": 1}', "unknown key"),
])
def test_bad_qa_lines_name_the_line(tmp_path, line, match):
    good = '{"video": "a.mp4", "question": "q?", "options": ["a", "b"], "answer": 1, "type": "t"}'
    path = tmp_path / "qa.jsonl"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"qa.jsonl:3: .*{match}"):
        load_qa(path)


def test_bad_video_files_are_named_and_can_be_skipped(tmp_path):
    write_video(tmp_path / "good.mp4", np.zeros((4, 32, 32, 3), np.uint8))
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00garbage" * 64)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    cases = {"corrupt.mp4": "cannot be opened", "empty.mp4": "is empty", "missing.mp4": "does not exist",
             "clip.gif": "unsupported extension"}
    for name, match in cases.items():
        with pytest.raises(VideoError, match=rf"{name}.*{match}"):
            read_video(tmp_path / name, 4)
    rows = [dict(video=v, question="q?", options=["a", "b"], answer=0) for v in ["good.mp4", *cases]]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(VideoError, match="corrupt.mp4"):
        QADataset(tmp_path / "qa.jsonl", tmp_path, num_frames=4)[1]
    ds = QADataset(tmp_path / "qa.jsonl", tmp_path, num_frames=4, skip_bad=True)
    batch = collate_qa([ds[i] for i in range(len(ds))])
    assert batch["skipped"] == 4 and len(batch["question"]) == 1 and len(ds.skipped) == 4


def test_uniform_sampling_and_times(tmp_path):
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    frames[..., 0] = (np.arange(20) * 12)[:, None, None]
    write_video(tmp_path / "ramp.mp4", frames, fps=10)
    assert uniform_indices(20, 5) == [2, 6, 10, 14, 18]
    red = read_video(tmp_path / "ramp.mp4", 5)[:, 16, 16, 0].int()
    assert torch.all((red - torch.tensor([24, 72, 120, 168, 216])).abs() <= 6)
    at = read_video(tmp_path / "ramp.mp4", times=[0.0, 0.55, 1.95])[:, 16, 16, 0].int()  # 1.95 s: the last frame
    assert torch.all((at - torch.tensor([0, 60, 228])).abs() <= 6)
    with pytest.raises(ValueError, match=r"times go to 5 s, past the end of .*ramp.mp4.*\(2 s\)"):
        read_video(tmp_path / "ramp.mp4", times=[0.0, 5.0])
    with pytest.warns(UserWarning, match="has 20 frames and 40 were asked for: some are repeated"):
        assert read_video(tmp_path / "ramp.mp4", 40).shape[0] == 40


def test_config_errors():
    with pytest.raises(ValueError, match="size must be an even"):
        mq.MotionQAConfig(size=101)
    with pytest.raises(ValueError, match="num_frames must be >= 16"):
        mq.MotionQAConfig(num_frames=8)
    with pytest.raises(ValueError, match="num_videos must be >= 1"):
        mq.generate_motionqa("unused", num_videos=0)


def test_archives_only_serve_the_dataset(tmp_path):
    mq.generate_motionqa(tmp_path, num_videos=3, seed=0, num_frames=FRAMES, size=64, arrays=True, mp4=False,
                         workers=1, progress=False)
    assert not list(tmp_path.glob("videos/*/*.mp4")) and list(tmp_path.glob("videos/*/*.npz"))
    ds = QADataset(tmp_path / "train.jsonl", tmp_path, num_frames=4)  # the mp4 is missing: the archive serves
    assert ds[0]["frames"].shape == (4, 64, 64, 3)
    with pytest.raises(ValueError, match="write mp4 files"):
        mq.MotionQAConfig(arrays=False, mp4=False)


def test_keymap_pictures(tmp_path):
    from PIL import Image

    from tokendynamics.viz import GREY, TILE, keymap_overlay, moving_rows, row_colours, save_keymap_gif, save_keymap_png

    frames = torch.zeros(4, 32, 48, 3, dtype=torch.uint8)
    frames[:, :8] = (torch.arange(4) * 60).view(4, 1, 1, 1).to(torch.uint8)  # frames differ (GIFs merge repeats)
    key_map = torch.zeros(4, 2, 3, dtype=torch.long)
    key_map[:, 0, 2] = 2  # a row that stays put
    for t in range(4):  # and one that moves along the bottom row of cells
        key_map[t, 1, min(t, 2)] = 1
    assert moving_rows(key_map) == [1]
    colours = row_colours(key_map)
    assert (colours[0] == GREY).all() and (colours[2] == GREY).all() and not (colours[1] == GREY).all()
    over = keymap_overlay(frames, key_map)
    assert over.shape == (4, 32, 48, 3)
    assert (over[0, 20, 0] != over[0, 20, 40]).any() and (over[0, 20, 40] == over[0, 30, 20]).all()  # cells tinted
    png = Image.open(save_keymap_png(tmp_path / "k.png", frames, key_map, num_frames=2))
    assert png.width > 2 * TILE and png.height > 2 * TILE * 32 / 48  # two labelled rows of readable tiles
    gif = Image.open(save_keymap_gif(tmp_path / "k.gif", frames, key_map))
    assert gif.size == (2 * TILE + 4, round(TILE * 32 / 48) + 20) and gif.n_frames == 4
    with pytest.raises(ValueError, match="key_map must be"):
        keymap_overlay(frames, key_map[:2])


def test_weight_pictures_light_the_heaviest_row(tmp_path):
    from PIL import Image

    from tokendynamics.viz import TILE, save_weights_png, weight_overlay

    frames = torch.full((2, 16, 16, 3), 100, dtype=torch.uint8)
    key_map = torch.zeros(2, 2, 2, dtype=torch.long)
    key_map[:, 0, 0] = 1
    over = weight_overlay(frames, key_map, torch.tensor([0.1, 0.9]))
    assert over[0, 0, 0, 0] > over[0, 15, 15, 0] and over[0, 15, 15, 0] > over[0, 15, 15, 1]  # row 1 brightest
    png = Image.open(save_weights_png(tmp_path / "w.png", frames, key_map, [0.1, 0.9], num_frames=2))
    assert png.width > 2 * TILE and png.height > 2 * TILE
    with pytest.raises(ValueError, match="weights must be"):
        weight_overlay(frames, key_map, torch.tensor([1.0]))


def test_mirror_swaps_direction_words_with_the_pixels():
    from tokendynamics.data.augment import Mirror, swap_words

    assert swap_words("Left of the top-left box, moving right", {"left": "right", "right": "left"}) == \
        "Right of the top-right box, moving left"
    assert swap_words("the leftover bright spot", {"left": "right", "right": "left"}) == "the leftover bright spot"
    video = torch.zeros(2, 4, 6, 3, dtype=torch.uint8)
    video[0, 1, 0], video[1, 1, 5] = 255, 255  # a dot moving right along row 1
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        frames, question, options = Mirror(vertical=True)(video, "Does it go up or right?", ["right", "down"])
        moved_right = bool(frames[0, :, 0].any() and frames[1, :, 5].any())
        top_bottom = bool(frames[0, 2].any())  # row 1 of 4 mirrored is row 2
        assert ("right" in options) == moved_right and ("up" in question) == (not top_bottom)
        assert ("down" in options) == (not top_bottom)
        seen.add((moved_right, top_bottom))
    assert len(seen) == 4  # every combination drawn
    with pytest.raises(ValueError, match="unknown augmentation"):
        Mirror.named("rotate")



@pytest.mark.parametrize("frames, match", [
    (np.zeros((2, 8, 8, 3), np.float32), "must hold uint8 frames"),
    (np.zeros((8, 8, 3), np.uint8), "must hold uint8 frames"),
    (np.zeros((0, 8, 8, 3), np.uint8), "T >= 1"),
])
def test_frame_archives_of_the_wrong_kind_name_the_file(tmp_path, frames, match):
    from tokendynamics.data.qa import read_frames

    np.savez_compressed(tmp_path / "v.npz", frames=frames)
    with pytest.raises(VideoError, match=rf"v.npz.*{match}"):
        read_frames(tmp_path / "v.npz", 2)
    np.savez_compressed(tmp_path / "w.npz", pixels=np.zeros((2, 8, 8, 3), np.uint8))  # another key
    with pytest.raises(VideoError, match="w.npz"):
        read_frames(tmp_path / "w.npz", 2)
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(VideoError, match="x.npz"):
        read_frames(tmp_path / "x.npz", 2)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=200))
def test_qa_files_of_random_bytes_name_the_file_and_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("qa") / "q.jsonl"
    path.write_bytes(data)
    try:
        items = load_qa(path)
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert all(isinstance(i.question, str) for i in items)


@pytest.mark.parametrize("motion", list(mq.DIRECTION_ANSWERS))
def test_a_plain_clip_moves_its_shape_the_named_way(motion):
    """The shape's pixels (its colour on the plain background) travel the named direction, or stay put."""
    clip = mq.plain_clip("circle", "blue", motion, "grey", size=64, frames=6)
    assert clip.shape == (6, 64, 64, 3) and clip.dtype == np.uint8
    assert (clip[:, 0, 0] == mq.PLAIN_BACKGROUNDS["grey"]).all()
    centres = []
    for frame in clip:
        ys, xs = np.nonzero((frame == mq.COLOURS["blue"]).all(-1))
        centres.append((xs.mean(), ys.mean()))
    moved = np.subtract(centres[-1], centres[0]) / 64  # (dx, dy) as a share of the side
    want = mq.DIRECTIONS.get(motion, (0.0, 0.0))
    np.testing.assert_allclose(moved, np.multiply(want, 0.4), atol=0.02)


def test_a_plain_clip_names_a_wrong_argument():
    with pytest.raises(ValueError, match="motion must be one of"):
        mq.plain_clip("circle", "blue", "sideways", "grey")
    with pytest.raises(ValueError, match="background must be one of"):
        mq.plain_clip("circle", "blue", "left", "pink")
    with pytest.raises(ValueError, match="shape must be one of"):
        mq.plain_clip("blob", "blue", "left", "grey")
    with pytest.raises(ValueError, match="size must be >= 1"):
        mq.plain_clip("circle", "blue", "left", "grey", size=0)


def test_the_direction_question_is_the_generators_own():
    config = mq.MotionQAConfig()
    for index in range(40):
        _, objs, _, items = mq.make_scene(index, config)
        if items[0].type == "direction":
            assert items[0].question == mq.direction_question(objs[0].name)
            assert sorted(items[0].options) == sorted(mq.DIRECTION_ANSWERS)
            return
    raise AssertionError("no direction question in 40 scenes")
