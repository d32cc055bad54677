"""A QA JSONL (what ``tokendynamics motionqa generate`` writes, or any file in the QA format) as lmms-eval
tasks, scored the way ``tokendynamics eval`` scores it:

- ``<name>_mc``: multiple choice by likelihood (``eval --mode likelihood``): the question is the context,
  each option's text the continuation (no delimiter), the option with the lowest negative log-likelihood
  is the pick;
- ``<name>_letter``: generate-until with the multiple-choice prompt (``eval --mode generate``): the letter
  named in a greedy answer of at most 8 tokens is the pick.

``tokendynamics motionqa lmms-task DATA_DIR TASK_DIR`` (or :func:`write_tasks`) writes the two task files and
their ``utils.py`` into ``TASK_DIR``, pointing at ``DATA_DIR/<split>.jsonl`` and its videos; then

    python -m lmms_eval --include_path TASK_DIR --tasks motionqa_mc,motionqa_letter --model tokendynamics ...
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.qa import load_qa
from ..models.prompts import multiple_choice, parse_letter

UTILS = '''"""Written by tokendynamics.integrations.lmms_tasks.write_tasks for the videos under {root!r}."""

from tokendynamics.integrations.lmms_tasks import QATask

_task = QATask({root!r})
doc_to_visual, doc_to_text, doc_to_choice, doc_to_target = (
    _task.doc_to_visual, _task.doc_to_text, _task.doc_to_choice, _task.doc_to_target)
doc_to_letter_prompt, process_letter = _task.doc_to_letter_prompt, _task.process_letter
'''


class QATask:
    """The document functions of both tasks, for videos whose relative paths start at ``video_root``."""

    def __init__(self, video_root: str | Path):
        self.video_root = Path(video_root)

    def doc_to_visual(self, doc: dict) -> list[str]:
        return [str(self.video_root / doc["video"])]

    def doc_to_text(self, doc: dict) -> str:
        return doc["question"]

    def doc_to_choice(self, doc: dict) -> list[str]:
        return list(doc["options"])

    def doc_to_target(self, doc: dict) -> int:
        return int(doc["answer"])

    def doc_to_letter_prompt(self, doc: dict) -> str:
        return multiple_choice(doc["question"], doc["options"])

    def process_letter(self, doc: dict, results: list[str]) -> dict:
        """The ``acc`` of a generated answer: 1 where the letter it names is the answer's."""
        pick = parse_letter(results[0], len(doc["options"]))
        return {"acc": float(pick == int(doc["answer"]))}


def _task(name: str, data_file: Path, split: str, **fields) -> dict:
    return dict(task=name, dataset_path="json", dataset_kwargs=dict(data_files={split: str(data_file)}),
                test_split=split, doc_to_visual="!function utils.doc_to_visual", **fields)


def write_tasks(data_dir: str | Path, task_dir: str | Path, name: str = "motionqa", split: str = "test") -> list[Path]:
    """Write ``<name>_mc.yaml``, ``<name>_letter.yaml`` and ``utils.py`` into ``task_dir`` for the questions
    of ``data_dir/<split>.jsonl`` (checked) and the videos under ``data_dir``. Returns the task files."""
    data_dir, task_dir = Path(data_dir).resolve(), Path(task_dir)
    data_file = data_dir / f"{split}.jsonl"
    load_qa(data_file)  # names the file or the line that is wrong
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "utils.py").write_text(UTILS.format(root=str(data_dir)))
    tasks = {
        f"{name}_mc": _task(f"{name}_mc", data_file, split, output_type="multiple_choice", target_delimiter="",
                            doc_to_text="!function utils.doc_to_text", doc_to_choice="!function utils.doc_to_choice",
                            doc_to_target="!function utils.doc_to_target",
                            metric_list=[dict(metric="acc", aggregation="mean", higher_is_better=True)]),
        f"{name}_letter": _task(f"{name}_letter", data_file, split, output_type="generate_until",
                                doc_to_text="!function utils.doc_to_letter_prompt", doc_to_target="answer",
                                generation_kwargs=dict(max_new_tokens=8, until=[]),
                                process_results="!function utils.process_letter",
                                metric_list=[dict(metric="acc", aggregation="mean", higher_is_better=True)]),
    }
    paths = []
    for task, fields in tasks.items():
        path = task_dir / f"{task}.yaml"
        path.write_text(_yaml(fields))
        paths.append(path)
    return paths


def _yaml(fields: dict) -> str:
    """The task as YAML: JSON values (YAML's subset) with the ``!function`` tags left bare."""
    lines = []
    for key, value in fields.items():
        text = value if isinstance(value, str) and value.startswith("!function ") else json.dumps(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"
