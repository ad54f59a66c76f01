"""The LongLaMP task table: the one place that says what each task is.

Every module of the toolkit (the dataset builder, retrieval, training, evaluation) reads a task's fields,
user column, corpus text, query and prompt template from here, so that a task is defined exactly once.
The strings reproduce the benchmark's official baselines (see docs/benchmark.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

SETTINGS = ("user", "temporal")
SPLITS = ("train", "validation", "test")
# The benchmark's paper, as the README, the dataset builder, model and dataset cards and the metric cite it.
CITATION = """@misc{kumar2024longlamp,
  title={LongLaMP: A Benchmark for Personalized Long-form Text Generation},
  author={Ishita Kumar and Snigdha Viswanathan and Sushrita Yerra and Alireza Salemi and Ryan A. Rossi and
          Franck Dernoncourt and Hanieh Deilamsalehy and Xiang Chen and Ruiyi Zhang and Shubham Agarwal and
          Nedim Lipka and Chien Van Nguyen and Thien Huu Nguyen and Hamed Zamani},
  year={2024}, eprint={2407.11016}, archivePrefix={arXiv}, primaryClass={cs.CL}
}"""


@dataclass(frozen=True)
class Task:
    """What varies between LongLaMP tasks, as data.

    profile_fields maps each profile item field to its Arrow type name ("string", "float64", "int32").
    corpus_fields are joined with a space to form the text that retrieval indexes.
    query_after cuts the task input after the first occurrence of this marker (None: the whole input).
    item_template renders one retrieved item for the prompt; item_word_limits truncates fields first.
    prompt_joiner and prompt_suffix assemble: joiner.join(items) + suffix + input.
    output_field is the profile field that holds the kind of text the task asks for (what a
    copy-the-best-item baseline predicts).
    date_field orders recency retrieval when the task has one; otherwise profile order is time order.
    """

    name: str
    title: str  # what the task is, in words (cards, tables)
    user_column: str
    profile_fields: Mapping[str, str]
    corpus_fields: tuple[str, ...]
    query_after: str | None
    item_template: str
    prompt_suffix: str
    input_template: str
    item_word_limits: Mapping[str, int]
    output_field: str
    date_field: str | None = None
    public: bool = True
    prompt_joiner: str = ", and "

    def corpus_text(self, item: Mapping) -> str:
        """The text retrieval indexes for one profile item (missing fields count as empty)."""
        return " ".join(field_text(item.get(field)) for field in self.corpus_fields)

    def query(self, task_input: str) -> str:
        """The retrieval query for an example's input, as the official baselines cut it."""
        if self.query_after is None:
            return task_input
        _, marker, rest = task_input.partition(self.query_after)
        return rest.strip() if marker else task_input

    def render_item(self, item: Mapping) -> str:
        """One profile item as the official prompt shows it (long fields cut to their word limit)."""
        values = {field: field_text(item.get(field)) for field in self.profile_fields}
        for field, limit in self.item_word_limits.items():
            values[field] = " ".join(values[field].split()[:limit])
        return self.item_template.format(**values)

    def build_prompt(self, items: Sequence[Mapping], task_input: str) -> str:
        """The official prompt: rendered items joined, then the suffix and the task input.

        Without items the prompt is the task input alone (the non-personalised baseline).
        """
        if not items:
            return task_input
        return self.prompt_joiner.join(self.render_item(item) for item in items) + self.prompt_suffix + task_input


def field_text(value) -> str:
    """A field as the official code would print it: None as empty, numbers with Python's str()."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="abstract_generation",
            title="personalized abstract generation",
            user_column="name",
            profile_fields={"id": "string", "title": "string", "abstract": "string", "year": "int32"},
            corpus_fields=("title", "abstract"),
            query_after="items:",
            item_template='"{abstract}" is the abstract for the title "{title}"',
            item_word_limits={"abstract": 750},
            prompt_suffix=". Use the above abstracts as context to understand the style and language of the user and, ",
            input_template='Generate an abstract for the title "{title}" using the following items: {items}',
            output_field="abstract",
            date_field="year",
        ),
        Task(
            name="product_review",
            title="personalized product review writing",
            user_column="reviewerId",
            profile_fields={"overall": "float64", "summary": "string", "description": "string", "reviewText": "string"},
            corpus_fields=("overall", "summary", "description", "reviewText"),
            query_after=None,
            item_template=(
                '"{overall}" is a rating for the product with description "{description}". '
                '"{summary}" is summary for "{reviewText}" '
            ),
            item_word_limits={},
            prompt_suffix=". Following the given patterns ",
            input_template=(
                'Generate the review text written by a reviewer who has a given an overall rating of "{overall}" '
                'for a product with description "{description}". The summary of the review text is "{summary}".'
            ),
            output_field="reviewText",
        ),
        Task(
            name="topic_writing",
            title="personalized Reddit topic writing",
            user_column="author",
            profile_fields={"id": "string", "author": "string", "summary": "string", "content": "string"},
            corpus_fields=("summary", "content"),
            query_after=None,
            item_template='"{summary}" is a summary for "{content}" ',
            item_word_limits={},
            prompt_suffix=". Following the given patterns, ",
            input_template="Generate the content for a reddit post {summary}",
            output_field="content",
        ),
        Task(
            name="email_generation",
            title="personalized email completion",
            user_column="user_id",
            profile_fields={"id": "string", "title": "string", "text": "string"},
            corpus_fields=("text",),
            query_after=":",
            item_template='"{title}" is the title for "{text}" ',
            item_word_limits={},
            prompt_suffix=". ",
            input_template="Complete the text of the following email. title: {subject}. text: {text}",
            output_field="text",
            public=False,
        ),
    )
}

_CONFIG_RE = re.compile(r"^(?P<task>[a-z_]+?)(?:_(?P<setting>user|temporal))?$")


def parse_config_name(name: str) -> tuple[Task, str]:
    """Split a config name such as "product_review_temporal" into its task and setting.

    A bare task name ("product_review") means the user setting, as on the benchmark's site.
    """
    match = _CONFIG_RE.match(name)
    task_name = match.group("task") if match else None
    if task_name not in TASKS:
        raise ValueError(f"unknown LongLaMP config {name!r}; expected one of: {', '.join(config_names())}")
    return TASKS[task_name], match.group("setting") or "user"


def config_names(with_aliases: bool = True) -> list[str]:
    """Every config name: task_setting for each task and setting, then the bare-task aliases."""
    names = [f"{task}_{setting}" for task in TASKS for setting in SETTINGS]
    return names + list(TASKS) if with_aliases else names


def scorer_task_name(task: Task, setting: str) -> str:
    """The task name written in prediction and gold files, e.g. "LongLaMP_product_review_user"."""
    return f"LongLaMP_{task.name}_{setting}"
