"""Prompts that fit a model's token budget, shared by training and zero-shot evaluation.

The official templates live in `longlamp_tasks`. The budget is this project's rule, not the benchmark's: the
official code has none and lets the model's input truncation cut the end of the prompt, which is the task input.
Here the task input is never cut; when the prompt does not fit, the retrieved profile items are shortened. The
room left after the task input and the items' template text is shared out by water-filling: an item that fits
in an equal share is kept whole and passes what it does not use on to the longer items, so the whole budget is
used (one long item beside three short ones gets all the room they leave). Within an item the same rule cuts
the longest field first. `prompt_budget` gives training and zero-shot evaluation the same default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from longlamp_errors import PromptBudgetError
from longlamp_tasks import Task

DEFAULT_PROMPT_BUDGET = 1024  # tokens: training's long-standing default, now zero-shot evaluation's too


def context_length(model_config, tokenizer) -> int | None:
    """The longest input a model takes: its position limit and the tokenizer's, whichever is smaller."""
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    limits = [getattr(text_config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    known = [n for n in limits if isinstance(n, int) and 0 < n < 10_000_000]  # unset limits are huge
    return min(known) if known else None


def prompt_budget(given: int | None, context: int | None, new_tokens: int, is_encoder_decoder: bool, *,
                  budget_flag: str = "--max_prompt_length", new_tokens_flag: str = "--max_new_tokens") -> int:
    """The prompt budget of a run, the same rule in training and in zero-shot evaluation, checked before any work.

    `given` (the flag) wins; the default is DEFAULT_PROMPT_BUDGET, lowered to what the model's position limit
    leaves. A decoder's prompt and its `new_tokens` (generated, or the training target) share its context; an
    encoder-decoder's prompt has the encoder's alone. Raises PromptBudgetError when they cannot fit.
    """
    room = context if context is None or is_encoder_decoder else context - new_tokens
    default = DEFAULT_PROMPT_BUDGET if room is None else min(DEFAULT_PROMPT_BUDGET, room)
    budget = given if given is not None else default
    if budget < 1:
        raise PromptBudgetError(f"no room for a prompt: the model takes {context} tokens and {new_tokens_flag} is "
                                f"{new_tokens}; lower {new_tokens_flag}")
    if room is not None and budget > room:
        shared, lower = ("", "") if is_encoder_decoder else (f" + {new_tokens_flag} {new_tokens}",
                                                             f" or {new_tokens_flag}")
        raise PromptBudgetError(f"{budget_flag} {budget}{shared} is more than the model's position limit of "
                                f"{context} tokens; lower {budget_flag}{lower}")
    return budget


def uses_chat_template(tokenizer, given: bool | None) -> bool:
    """Whether prompts are wrapped in the chat template: as given, else when the tokenizer has one."""
    return bool(getattr(tokenizer, "chat_template", None)) if given is None else given


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
    chat_template_kwargs: Mapping | None = None  # e.g. {"enable_thinking": False} for a reasoning model

    def __post_init__(self):
        self.use_chat_template = uses_chat_template(self.tokenizer, self.use_chat_template)

    def __call__(self, items: Sequence[Mapping], task_input: str) -> str:
        """The formatted prompt; items are shortened (longest fields first) until it fits."""
        return self.format(self.fit(items, task_input))

    def fit(self, items: Sequence[Mapping], task_input: str) -> str:
        """The prompt before the chat template (a chat endpoint's user message), shortened until, once
        formatted, it fits the budget."""
        bare = self.format(self.task.build_prompt([], task_input))
        if self.count(bare) > self.max_prompt_tokens:
            raise PromptBudgetError(
                f"the task input alone takes {self.count(bare)} tokens, more than the prompt budget of "
                f"{self.max_prompt_tokens}; raise the budget (the task input is never cut)"
            )
        items = [dict(item) for item in items]
        prompt = self.task.build_prompt(items, task_input)
        if self.count(self.format(prompt)) <= self.max_prompt_tokens:
            return prompt
        return self._shortened(items, task_input)

    def format(self, text: str) -> str:
        """Wrap a prompt in the chat template when one is used."""
        if not self.use_chat_template:
            return text
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
            **(self.chat_template_kwargs or {}),
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
            return self.task.build_prompt([], task_input)
        skeleton = self.count(self.format(self.task.build_prompt(emptied, task_input)))
        field_ids = [{f: self._ids(item.get(f)) for f in text_fields} for item in items]
        room = self.max_prompt_tokens - skeleton
        while True:
            shares = water_fill([sum(map(len, ids.values())) for ids in field_ids], room)
            shortened = [
                {**item, **_cap_fields(item, ids, share, self.tokenizer)}
                for item, ids, share in zip(items, field_ids, shares)
            ]
            prompt = self.task.build_prompt(shortened, task_input)
            excess = self.count(self.format(prompt)) - self.max_prompt_tokens
            if excess <= 0:
                return prompt
            # Token boundaries merge differently once texts are joined: give back the excess and retry.
            room -= excess

    def _ids(self, value) -> list[int]:
        return self.tokenizer(value or "", add_special_tokens=False, verbose=False)["input_ids"]


def water_fill(needs: Sequence[int], room: int) -> list[int]:
    """Shares of `room` for the `needs`: the largest cap c with sum(min(need, c)) <= room, then what is left
    over one token more to each of the first needs that are still cut. Needs under the cap are met in full."""
    shares = [0] * len(needs)
    remaining, open_needs = max(room, 0), sorted(range(len(needs)), key=lambda i: needs[i])
    while open_needs:
        cap = remaining // len(open_needs)
        if needs[open_needs[0]] > cap:  # every remaining need is cut: an equal share, the rest one by one
            for rank, index in enumerate(sorted(open_needs)):
                shares[index] = cap + (rank < remaining - cap * len(open_needs))
            break
        index = open_needs.pop(0)
        shares[index] = needs[index]
        remaining -= needs[index]
    return shares


def _cap_fields(item: Mapping, field_ids: Mapping[str, list[int]], share: int, tokenizer) -> dict[str, str]:
    """Truncate an item's text fields to `share` tokens in total, cutting the longest first (water-filling), so
    that short fields such as a title survive whole and the long body absorbs the cut."""
    names = list(field_ids)
    caps = water_fill([len(field_ids[f]) for f in names], share)
    return {f: tokenizer.decode(field_ids[f][:cap]) if len(field_ids[f]) > cap else item.get(f)
            for f, cap in zip(names, caps)}
