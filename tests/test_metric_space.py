"""The evaluate metric's card declares a Gradio Space (`sdk: gradio`, `app_file: app.py`) as `evaluate-cli create`
makes one: the files it names exist, and app.py runs evaluate's own widget on this module, loaded from the folder
offline. Only the widget's launch is left out (it starts a web server and needs gradio)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import evaluate
import yaml

from scoring import metrics

FOLDER = Path(__file__).resolve().parents[1] / "evaluation" / "longlamp_metric"


def front_matter() -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", (FOLDER / "README.md").read_text(encoding="utf-8"), re.S)
    return yaml.safe_load(match.group(1))


def test_the_cards_space_names_files_that_exist():
    card = front_matter()
    assert card["sdk"] == "gradio" and isinstance(card["sdk_version"], str)
    assert (FOLDER / card["app_file"]).is_file()
    requirements = (FOLDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("evaluate") for line in requirements)  # what a Space installs


def test_the_app_launches_evaluates_widget_on_this_module(monkeypatch):
    launched = []
    monkeypatch.setattr(evaluate.utils, "launch_gradio_widget", launched.append)  # the web server is not started
    app = runpy.run_path(str(FOLDER / "app.py"), run_name="__main__")
    (module,) = launched
    assert type(module).__name__ == "LongLaMPMetric" and app["MODULE"].parent == FOLDER
    predictions, references = ["the cat sat", "a dog ran home"], ["the cat sat down", "the dog ran"]
    assert module.compute(predictions=predictions, references=references, bootstrap=0, num_workers=1) == \
        metrics.score(predictions, references, bootstrap=0, num_workers=1)
