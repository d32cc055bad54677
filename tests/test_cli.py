from tokendynamics.cli import main


def test_demo_runs_and_writes_pictures(tmp_path, capsys):
    assert main(["demo", "--frames", "16", "--dim", "32", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "token hash table" in out and "MotionQA asks" in out
    assert (tmp_path / "keymap.png").stat().st_size > 0 and (tmp_path / "keymap.gif").stat().st_size > 0


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["motionqa", "generate", str(tmp_path), "--num-videos", "1", "--size", "101"]) == 2
    assert "size must be an even number" in capsys.readouterr().out
