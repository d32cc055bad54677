"""Every Python block of the README runs as written on a CPU, in order, as a reader would run them (one
session, one working folder); the first two print what their comments say."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_ten_line_example_runs_and_prints_its_comments():
    code = _block_after("## Ten lines, on a CPU")
    assert len(code.strip().splitlines()) <= 10
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    promised = [c.split(":")[0].strip() for c in re.findall(r"# (\(.*)", code)]
    assert printed[0] == promised[0] and printed[1] == promised[1]  # the table's and the tokens' shapes
    import tokendynamics as td
    assert [line.split()[0] for line in printed[2:]] == list(td.reducers)
    assert all(line.endswith("(1, 8, 256)") for line in printed[2:])


def test_the_video_file_example_runs_and_prints_its_comment(tmp_path, monkeypatch):
    code = _block_after("### From video files to compact tokens")
    monkeypatch.chdir(tmp_path)  # it writes clip.mp4 where it runs
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    promised = re.findall(r"# (\(.*)", code)[-1].strip()
    assert out.getvalue().strip().splitlines()[-1] == promised


def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 7
    session: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for number, code in enumerate(blocks):
            exec(compile(code, f"README.md, Python block {number}", "exec"), session)
