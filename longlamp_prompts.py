"""Prompts that fit a model's token budget, shared by training and zero-shot evaluation.

The official templates live in `longlamp_tasks`; this module adds the one rule the benchmark states for
long profiles: when the prompt does not fit, the retrieved profile items are shortened, never the task input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from longlamp_tasks import Task


class PromptBudgetError(ValueError):
    """The task input alone does not fit the prompt budget (nothing in the profile can be cut to help)."""


@dataclass
class PromptBuilder:
    """Builds the text a model sees for one example, within `max_prompt_tokens` tokens.

    With a chat tokenizer (one that has a chat template) the prompt becomes one user turn followed by the
    generation prompt, unless `use_chat_template=False`. Token counts include that wrapping and the
    tokenizer's special tokens, so the returned text always tokenizes to at most `max_prompt_tokens` ids.
    """

    task: Task
    tokenizer: object
    max_prompt_tokens: int
    use_chat_template: bool | None = None

    def __post_init__(self):
        if self.use_chat_template is None:
            self.use_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def __call__(self, items: Sequence[Mapping], task_input: str) -> str:
        """The formatted prompt; items are shortened (longest fields first) until it fits."""
        bare = self.format(self.task.build_prompt([], task_input))
        if self.count(bare) > self.max_prompt_tokens:
            raise PromptBudgetError(
                f"the task input alone takes {self.count(bare)} tokens, more than the prompt budget of "
                f"{self.max_prompt_tokens}; raise the budget (the task input is never cut)"
            )
        items = [dict(item) for item in items]
        prompt = self.format(self.task.build_prompt(items, task_input))
        if self.count(prompt) <= self.max_prompt_tokens:
            return prompt
        return self._shortened(items, task_input)

    def format(self, text: str) -> str:
        """Wrap a prompt in the chat template when one is used."""
        if not self.use_chat_template:
            return text
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )

    def count(self, text: str) -> int:
        """Tokens of a formatted prompt as the model will receive it."""
        # A chat template writes its own special tokens; plain prompts get the tokenizer's (e.g. BOS).
        # verbose=False: measuring an over-long prompt is the point here, not a mistake worth a warning.
        ids = self.tokenizer(text, add_special_tokens=not self.use_chat_template, verbose=False)["input_ids"]
        return len(ids)

    def _shortened(self, items: list[dict], task_input: str) -> str:
        """Drop the least relevant items whose empty skeletons alone overflow, then cap every item's fields."""
        text_fields = [f for f, dtype in self.task.profile_fields.items() if dtype == "string"]
        emptied = [{**item, **{f: "" for f in text_fields}} for item in items]
        while emptied and self.count(self.format(self.task.build_prompt(emptied, task_input))) > self.max_prompt_tokens:
            emptied.pop()
        items = items[: len(emptied)]
        if not items:
            return self.format(self.task.build_prompt([], task_input))
        skeleton = self.count(self.format(self.task.build_prompt(emptied, task_input)))
        field_ids = [{f: self._ids(item.get(f)) for f in text_fields} for item in items]
        share = (self.max_prompt_tokens - skeleton) // len(items)
        while True:
            shortened = [
                {**item, **_cap_fields(item, ids, share, self.tokenizer)} for item, ids in zip(items, field_ids)
            ]
            prompt = self.format(self.task.build_prompt(shortened, task_input))
            excess = self.count(prompt) - self.max_prompt_tokens
            if excess <= 0:
                return prompt
            # Token boundaries merge differently once texts are joined: give back the excess and retry.
            share -= max(1, -(-excess // len(items)))

    def _ids(self, value) -> list[int]:
        return self.tokenizer(value or "", add_special_tokens=False, verbose=False)["input_ids"]


def _cap_fields(item: Mapping, field_ids: Mapping[str, list[int]], share: int, tokenizer) -> dict[str, str]:
    """Truncate an item's text fields to `share` tokens in total, cutting the longest first.

    Water-filling: find the largest per-field cap c with sum(min(len, c)) <= share, so short fields such as
    a title survive whole and the long body absorbs the cut.
    """
    lengths = sorted(len(ids) for ids in field_ids.values())
    cap, remaining, fields_left = 0, max(share, 0), len(lengths)
    for length in lengths:
        if length * fields_left <= remaining:
            remaining -= length
            fields_left -= 1
            cap = length
        else:
            cap = remaining // fields_left
            break
    else:
        cap = lengths[-1] if lengths else 0
    return {f: tokenizer.decode(ids[:cap]) if len(ids) > cap else item.get(f) for f, ids in field_ids.items()}
