"""Everything the lm-eval tasks take from the toolkit, imported here and nowhere else in this folder.

The harness path must build, decode and score exactly as `evaluation/evaluate_llm.py` does, so it calls the very
functions that command calls rather than copies of them. Keeping the imports in one module keeps the task code
unchanged when those functions move between packages.
"""

from evaluation.zero_shot.data import make_retriever, rows_to_predict
from evaluation.zero_shot.options import ZeroShotOptions, check_options
from evaluation.zero_shot.run import model_source
from generation.decoding import strip_reasoning
from longlamp_prompts import PromptBuilder, prompt_budget
from longlamp_tasks import Task, parse_config_name
from retrieval import top_k_items
from retrieval.cli import DEFAULT_NUM_RETRIEVED, DEFAULT_RETRIEVER
from scoring.aggregate import mean
from scoring.metrics import per_sample_scores

__all__ = [
    "DEFAULT_NUM_RETRIEVED",
    "DEFAULT_RETRIEVER",
    "PromptBuilder",
    "Task",
    "ZeroShotOptions",
    "check_options",
    "rows_to_predict",
    "make_retriever",
    "mean",
    "model_source",
    "parse_config_name",
    "per_sample_scores",
    "prompt_budget",
    "strip_reasoning",
    "top_k_items",
]
