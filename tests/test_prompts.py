"""The official prompt templates, and the budget rule: shorten profile items, never the task input."""

import pytest
from support.tiny_models import make_tokenizer

from longlamp_errors import PromptBudgetError
from longlamp_prompts import PromptBuilder
from longlamp_tasks import TASKS

REVIEW = TASKS["product_review"]
ABSTRACT = TASKS["abstract_generation"]
REVIEW_INPUT = (
    'Generate the review text written by a reviewer who has a given an overall rating of "4.0" for a product '
    'with description "A kettle". The summary of the review text is "Boils fast".'
)
REVIEW_ITEM = {"overall": 5.0, "summary": "Great", "description": "A pan", "reviewText": "Heats evenly. " * 200}


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def test_official_review_prompt_text():
    items = [{"overall": 5.0, "summary": "Great", "description": "A pan", "reviewText": "Heats evenly."}] * 2
    one = '"5.0" is a rating for the product with description "A pan". "Great" is summary for "Heats evenly." '
    assert REVIEW.build_prompt(items, "INPUT") == one + ", and " + one + ". Following the given patterns INPUT"


def test_official_abstract_prompt_cuts_abstract_to_750_words():
    item = {"id": "1", "title": "T", "abstract": "w " * 800, "year": 2001}
    prompt = ABSTRACT.build_prompt([item], "Generate an abstract for the title \"X\" using the following items: 1. a")
    assert prompt.startswith('"' + " ".join(["w"] * 750) + '" is the abstract for the title "T"')
    assert prompt.endswith(". Use the above abstracts as context to understand the style and language of the user "
                           'and, Generate an abstract for the title "X" using the following items: 1. a')


def test_without_items_the_prompt_is_the_input(tokenizer):
    assert PromptBuilder(REVIEW, tokenizer, 10_000)([], REVIEW_INPUT) == REVIEW_INPUT


def test_prompt_that_fits_is_untouched(tokenizer):
    items = [dict(REVIEW_ITEM, reviewText="Short.")] * 3
    assert PromptBuilder(REVIEW, tokenizer, 10_000)(items, REVIEW_INPUT) == REVIEW.build_prompt(items, REVIEW_INPUT)


@pytest.mark.parametrize("budget", [150, 300, 700, 1500])
def test_long_profile_is_shortened_and_input_kept(tokenizer, budget):
    builder = PromptBuilder(REVIEW, tokenizer, budget)
    prompt = builder([REVIEW_ITEM] * 4, REVIEW_INPUT)
    assert builder.count(prompt) <= budget
    assert prompt.endswith(". Following the given patterns " + REVIEW_INPUT)
    # Short fields survive whole; the long review text absorbs the cut.
    assert prompt.startswith('"5.0" is a rating for the product with description "A pan". "Great" is summary for "')
    assert prompt.count("Heats evenly") < 4 * 200


def test_budget_uses_most_of_the_room(tokenizer):
    builder = PromptBuilder(REVIEW, tokenizer, 600)
    assert builder.count(builder([REVIEW_ITEM] * 4, REVIEW_INPUT)) > 600 * 0.9


def test_items_whose_skeleton_overflows_are_dropped_from_the_end(tokenizer):
    bare = PromptBuilder(REVIEW, tokenizer, 10_000).count(REVIEW_INPUT)
    builder = PromptBuilder(REVIEW, tokenizer, bare + 40)
    prompt = builder([REVIEW_ITEM] * 4, REVIEW_INPUT)
    assert builder.count(prompt) <= bare + 40
    assert prompt.endswith(REVIEW_INPUT)


def test_input_larger_than_budget_is_an_error(tokenizer):
    with pytest.raises(PromptBudgetError, match="task input alone takes"):
        PromptBuilder(REVIEW, tokenizer, 10)([REVIEW_ITEM], REVIEW_INPUT)


def test_chat_template_wraps_and_counts(tokenizer):
    chat = make_tokenizer(chat=True)
    builder = PromptBuilder(REVIEW, chat, 400)
    prompt = builder([REVIEW_ITEM] * 3, REVIEW_INPUT)
    assert prompt.startswith("<|user|>\n") and prompt.endswith(REVIEW_INPUT + "</s>\n<|assistant|>\n")
    assert builder.count(prompt) <= 400
    assert not PromptBuilder(REVIEW, chat, 400, use_chat_template=False)([], "x").startswith("<|user|>")


def test_short_items_pass_their_unused_share_to_the_long_one(tokenizer):
    """One long item and three short ones, a budget of 800: an equal share per item used 398 of the 800."""
    short = dict(REVIEW_ITEM, reviewText="Short and fine.")
    items = [REVIEW_ITEM, short, short, short]
    builder = PromptBuilder(REVIEW, tokenizer, 800)
    prompt = builder(items, REVIEW_INPUT)
    assert 795 <= builder.count(prompt) <= 800
    assert prompt.count('"Short and fine."') == 3  # the short items are kept whole
    assert prompt.endswith(". Following the given patterns " + REVIEW_INPUT)


@pytest.mark.parametrize("needs, room, shares", [
    ([500, 10, 10, 10], 400, [370, 10, 10, 10]),
    ([5, 5], 100, [5, 5]),
    ([50, 50, 50], 100, [34, 33, 33]),
    ([0, 7], 3, [0, 3]),
    ([9, 9], -4, [0, 0]),
])
def test_water_fill_meets_small_needs_and_shares_the_rest(needs, room, shares):
    from longlamp_prompts import water_fill

    assert water_fill(needs, room) == shares
