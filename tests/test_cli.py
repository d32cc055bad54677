from tokendynamics.cli import main


def test_demo_runs_and_writes_pictures(tmp_path, capsys):
    assert main(["demo", "--frames", "16", "--dim", "32", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "token hash table" in out and "built-in model" in out and "Token Dynamics: " in out
    assert "9 visual tokens per video" in out and "393 visual tokens per video" in out
    assert (tmp_path / "keymap.png").stat().st_size > 0 and (tmp_path / "keymap.gif").stat().st_size > 0
    page = (tmp_path / "summary.html").read_text()  # one page: the printed tables, then every picture
    assert "token hash table" in page and "visual tokens per video" in page
    assert '<img src="keymap.png"' in page and '<img src="answer_rows_q1.png"' in page


def test_demo_answers_a_given_question_about_a_given_video(tmp_path, capsys):
    from tokendynamics.data import write_video
    from tokendynamics.data.motionqa import MotionQAConfig, make_video

    frames, _, _ = make_video(3, MotionQAConfig(num_frames=16, size=112))
    write_video(tmp_path / "clip.mp4", frames)
    args = ["demo", "--frames", "16", "--dim", "32", "--out", str(tmp_path), "--video", str(tmp_path / "clip.mp4"),
            "--question", "What colour is the circle?", "--options", "red", "blue", "green", "white", "cyan"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "What colour is the circle?" in out and "ms per question" in out


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["motionqa", "generate", str(tmp_path), "--num-videos", "1", "--size", "101"]) == 2
    assert "size must be an even number" in capsys.readouterr().out
    wide = tmp_path / "wide"  # and a good one: MotionQA on wide backgrounds
    assert main(["motionqa", "generate", str(wide), "--num-videos", "2", "--size", "64", "--frames", "16",
                 "--no-mp4", "--workers", "1", "--backgrounds", "wide"]) == 0
    assert len(list((wide / "videos").rglob("*.npz"))) == 2
    assert main(["demo", "--video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "--video" in out and "missing.mp4" in out and "token hash table" not in out  # checked before any work


def test_flags_name_what_they_expect_and_help_shows_defaults(capsys):
    import pytest

    from tokendynamics.cli import _interval

    with pytest.raises(SystemExit):
        main(["eval", "--model", "m", "--data", "d", "--video-root", "v", "--frames", "abc"])
    assert "--frames: expected a whole number >= 1, got 'abc'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "(default: 1000)" in help_text and "(default: None)" not in help_text
    assert _interval(-0.00001, 0.2781) == "0.000 to 0.278"
