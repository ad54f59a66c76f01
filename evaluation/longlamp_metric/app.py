"""The Space's widget (README.md: `sdk: gradio`, `app_file: app.py`): evaluate's own widget on this module, as
`evaluate-cli create` makes it. The module is loaded from its script, not from this folder: a Space's folder is not
named after the module, and evaluate would take this folder's `app.py` for it."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

MODULE = Path(__file__).with_name("longlamp_metric.py")

if __name__ == "__main__":  # a Space runs `python app.py`
    launch_gradio_widget(evaluate.load(str(MODULE)))
