"""The lmms-eval entry: its pieces here, and lmms-eval itself (0.7.x) on the MotionQA tasks, question by
question against ``tokendynamics eval``, in the environment ``$LMMS_EVAL_PYTHON`` names (``make
test-lmms-eval`` makes one: lmms-eval pulls a CUDA build of torch, so it is kept out of the test extras)."""

import importlib.metadata
import json
import os
import subprocess

import pytest

from tokendynamics.integrations.lmms_eval import stop_strings
from tokendynamics.integrations.lmms_tasks import QATask, write_tasks

LMMS_PYTHON = os.environ.get("LMMS_EVAL_PYTHON")


def test_until_is_a_string_or_a_list_of_stop_strings():
    assert stop_strings("\n\n") == ["\n\n"] and stop_strings(["A", "", "B"]) == ["A", "B"]
    assert stop_strings(None) == []


def test_the_package_declares_its_lmms_eval_entry_point():
    points = importlib.metadata.entry_points(group="lmms_eval.models")
    assert [p.value for p in points if p.name == "tokendynamics"] == ["tokendynamics.integrations.lmms_eval:manifest"]


def test_tasks_are_written_for_a_qa_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    row = dict(video="v/0.mp4", question="Which way?", options=["left", "right"], answer=1, type="direction")
    (data / "test.jsonl").write_text(json.dumps(row) + "\n")
    paths = write_tasks(data, tmp_path / "tasks")
    assert sorted(p.name for p in paths) == ["motionqa_letter.yaml", "motionqa_mc.yaml"]
    mc = (tmp_path / "tasks" / "motionqa_mc.yaml").read_text()
    assert str(data / "test.jsonl") in mc and 'target_delimiter: ""' in mc
    task = QATask(data)
    assert task.doc_to_visual(row) == [str(data / "v/0.mp4")] and task.doc_to_target(row) == 1
    assert task.process_letter(row, ["B."]) == {"acc": 1.0} and task.process_letter(row, ["no idea"]) == {"acc": 0.0}
    from tokendynamics.cli import main

    assert main(["motionqa", "lmms-task", str(data), str(tmp_path / "cli"), "--name", "mine"]) == 0
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["mine_letter.yaml", "mine_mc.yaml", "utils.py"]
    assert main(["motionqa", "lmms-task", str(tmp_path / "nowhere"), str(tmp_path / "cli")]) == 2  # one line, no trace
    (data / "bad.jsonl").write_text('{"video": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: missing key"):
        write_tasks(data, tmp_path / "tasks", split="bad")


LMMS_SCRIPT = """
import json, sys
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.tasks import TaskManager
model_args, tasks, out = sys.argv[1:4]
res = simple_evaluate(model="tokendynamics", model_args=model_args, tasks=["motionqa_mc", "motionqa_letter"],
                      task_manager=TaskManager(include_path=tasks), log_samples=True, batch_size=1)
samples = {t: {s["doc_id"]: dict(acc=s["acc"], resps=s["filtered_resps"]) for s in rows}
           for t, rows in res["samples"].items()}
json.dump(dict(results=res["results"], samples=samples), open(out, "w"), default=str)
"""


@pytest.mark.lmms_eval
@pytest.mark.skipif(not LMMS_PYTHON, reason="set LMMS_EVAL_PYTHON to an environment with lmms-eval (make test-lmms-eval)")
def test_lmms_eval_scores_each_question_as_tokendynamics_eval_does(tmp_path):
    from tokendynamics.data.motionqa import generate_motionqa
    from tokendynamics.data.qa import load_qa
    from tokendynamics.evaluate import EvalConfig, evaluate
    from tokendynamics.models import build_llava_onevision, multiple_choice

    generate_motionqa(tmp_path / "mqa", 40, seed=3, num_frames=16, size=64, workers=1, progress=False)
    items = load_qa(tmp_path / "mqa" / "test.jsonl")
    host = build_llava_onevision(tmp_path / "host", [multiple_choice(i.question, i.options) for i in items]
                                 + [" ".join(i.options) for i in items], seed=0)
    write_tasks(tmp_path / "mqa", tmp_path / "tasks")
    settings = dict(reducer="token_dynamics", num_tokens=3, frames=8)
    ours = {mode: evaluate(EvalConfig(model=str(host), data=str(tmp_path / "mqa" / "test.jsonl"),
                                      video_root=str(tmp_path / "mqa"), compressor=settings["reducer"],
                                      num_tokens=settings["num_tokens"], frames=settings["frames"], mode=mode,
                                      batch_size=1, workers=0, prefer_arrays=False))
            for mode in ("likelihood", "generate")}
    args = f"pretrained={host},reducer=token_dynamics,num_tokens=3,max_frames_num=8,device=cpu,dtype=float32"
    done = subprocess.run([LMMS_PYTHON, "-c", LMMS_SCRIPT, args, str(tmp_path / "tasks"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=900, env=os.environ | {"HF_DATASETS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads((tmp_path / "out.json").read_text())["samples"]
    for mode, task in (("likelihood", "motionqa_mc"), ("generate", "motionqa_letter")):
        records = ours[mode]["records"]
        assert len(records) == len(theirs[task]) == len(items)
        for record in records:  # the same verdict on every question
            assert float(theirs[task][str(record["index"])]["acc"]) == float(record["correct"]), (mode, record)
    for record in ours["generate"]["records"]:  # the same generated answer
        assert theirs["motionqa_letter"][str(record["index"])]["resps"] == [record["text"]]
    for record in ours["likelihood"]["records"]:  # and the same pick: lmms-eval's argmin of the NLLs
        nlls = [nll for nll, _ in theirs["motionqa_mc"][str(record["index"])]["resps"]]
        assert min(range(len(nlls)), key=nlls.__getitem__) == record["pick"]
