"""Leak-free per-user methods: a temporal-style split where a later row's profile holds an earlier row's target (and
an item dated after the user's first query). `personalization.users.leak_free` leaves both out of the profile that
per-user training, style vectors, profile summaries and style similarity's author vectors read, and each of them
records how many items were left out."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from longlamp_tasks import TASKS

REVIEW, ABSTRACT = TASKS["product_review"], TASKS["abstract_generation"]
FIRST_GOLD = "The first row's own review: the pan heats evenly and the handle stays cool."


def review(text: str, summary: str = "ok") -> dict:
    return {"overall": 4.0, "summary": summary, "description": "a frying pan", "reviewText": text}


def temporal_rows() -> list[dict]:
    """Two users; ann's later row carries her earlier row's target in its profile (as temporal splits can)."""
    older = [review("An older review of a kettle that boils fast."), review("A mixer review, loud but strong.")]
    return [
        {"id": "r0", "reviewerId": "ann", "input": "Generate a review of the pan.", "output": FIRST_GOLD,
         "profile": older},
        {"id": "r1", "reviewerId": "ann", "input": "Generate a review of the lid.", "output": "The lid fits well.",
         "profile": [*older, review(" " + FIRST_GOLD.replace(" ", "  ") + " ", "leaked")]},
        {"id": "r2", "reviewerId": "bob", "input": "Generate a review of the knife.", "output": "Sharp knife.",
         "profile": [review("Bob's review of scissors that cut paper cleanly.")]},
    ]


def test_a_later_rows_profile_holding_an_earlier_rows_target_is_left_out_and_counted():
    from personalization.users import group_users, profile_examples

    ann, bob = group_users(temporal_rows(), REVIEW)
    assert ann.left_out == 1 and bob.left_out == 0
    assert [item["reviewText"] for item in ann.profile] == ["An older review of a kettle that boils fast.",
                                                            "A mixer review, loud but strong."]
    examples = profile_examples(REVIEW, ann)  # what per-user adapters and style vectors learn from
    texts = [e["output"] for e in examples] + [i["reviewText"] for e in examples for i in e["profile"]]
    assert len(examples) == 2 and not any("first row's own review" in text for text in texts)


def test_an_email_whose_rest_is_an_earlier_rows_target_is_left_out():
    """An email row's answer is the rest of a body: a later row's profile holds that email whole."""
    from personalization.users import group_users

    email = TASKS["email_generation"]
    body = "Hi team, the budget is due on Friday. Please send your numbers to me before noon."
    rows = [{"id": "e0", "user_id": "ann", "input": "Complete ... text: Hi team, the budget",
             "output": "is due on Friday. Please send your numbers to me before noon.", "profile": []},
            {"id": "e1", "user_id": "ann", "input": "Complete ... text: Lunch", "output": "is at one.",
             "profile": [{"id": "m0", "title": "Budget", "text": body},
                         {"id": "m1", "title": "Hello", "text": "Welcome aboard."}]}]
    (ann,) = group_users(rows, email)
    assert [item["id"] for item in ann.profile] == ["m1"] and ann.left_out == 1


def test_items_dated_at_or_after_the_users_first_query_are_left_out_where_dates_exist():
    from personalization.users import group_users

    items = [{"id": str(year), "title": "t", "abstract": f"An abstract of {year}.", "year": year}
             for year in (2015, 2018, 2019, 2021)]
    rows = [{"id": "a", "name": "ann", "input": "x", "output": "gold a", "year": 2019, "profile": items[:2]},
            {"id": "b", "name": "ann", "input": "y", "output": "gold b", "year": 2022, "profile": items}]
    (ann,) = group_users(rows, ABSTRACT)
    assert [item["year"] for item in ann.profile] == [2015, 2018] and ann.left_out == 2
    undated = [{k: v for k, v in row.items() if k != "year"} for row in rows]  # no query date: nothing to compare
    assert group_users(undated, ABSTRACT)[0].left_out == 0


def test_style_similaritys_author_texts_leave_the_leak_out():
    from evaluation.judges.style_similarity import profiles_from_examples

    profiles, left_out = profiles_from_examples(REVIEW, temporal_rows())
    assert left_out == 1 and not any("first row's own review" in t for texts in profiles.values() for t in texts)
    assert profiles["ann"] == ["An older review of a kettle that boils fast.", "A mixer review, loud but strong."]


def test_profile_summaries_never_see_the_leak_and_record_it(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    from personalization.summaries import summaries_for, summary_sets

    asked = []  # a stand-in summary model that answers every request and keeps it

    def ask(messages, what, keep=None):  # CachedGenerator.ask's signature
        asked.extend(messages)
        return [f"summary {i}" for i in range(len(messages))]

    writer = SimpleNamespace(ask=ask)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    args = SimpleNamespace(summary_of="profile", use_chat_template=False)
    rows = temporal_rows()
    summaries, record = summaries_for(args, summary_sets(args, REVIEW, rows, [[]] * len(rows)), REVIEW, tokenizer,
                                      400, tmp_path, writer=writer)
    assert len(summaries) == 3 and summaries[0] == summaries[1] and asked
    assert not any("first row's own review" in message for message in asked)
    assert [(s["user"], s["left_out_as_leaks"], s["summarized"]) for s in record["sets"]] == [
        ("ann", 1, [0, 1]), ("bob", 0, [0])]


@pytest.mark.slow
def test_per_user_training_never_trains_on_the_leak_and_records_it(tiny_llama, tmp_path, fresh_accelerate):
    from personalization.user_adapters import AdapterStore
    from training.train_per_user import main

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in temporal_rows()))
    argv = ["--model_name", str(tiny_llama), "--data", str(data), "--task", "product_review_temporal", "--split",
            "train", "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "run"),
            "--max_prompt_length", "128", "--num_train_epochs", "1"]
    assert main(argv) == 0
    store = AdapterStore(tmp_path / "run")
    assert store.record("ann")["profile_examples"] == 2 and store.record("ann")["profile_items_left_out"] == 1
    report = json.loads((tmp_path / "run" / "per_user_report.json").read_text())
    assert report["profile_items_left_out"] == 1 and report["users_with_adapter"] == 2


def test_a_300_item_profile_is_summarised_whole_within_a_small_budget(tiny_llama):
    """Map-reduce: every item with text reaches a request whole (none an empty template), each request fits the
    budget, and the partial summaries are combined into one."""
    from dataclasses import replace

    from transformers import AutoTokenizer

    from longlamp_prompts import PromptBuilder
    from personalization.summaries import COMBINE_REQUEST, SummarySets, map_reduce, summary_record

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    builder = PromptBuilder(replace(REVIEW, prompt_suffix=". "), tokenizer, 160, False)
    items = [review(f"review {i} of the pan" if i % 7 else "", summary=f"s{i}") for i in range(300)]
    asked = []

    def ask(messages):
        asked.append(list(messages))
        return [f"part {len(asked)}.{i}" for i in range(len(messages))]

    (summary,), (chunks,), (combining,) = map_reduce(REVIEW, builder, [items], ask)
    first_round = asked[0]
    assert all(builder.count(message) <= 160 for round_ in asked for message in round_)
    assert not any('summary for ""' in message for message in first_round)  # no empty template reaches a prompt
    with_text = [i for i, item in enumerate(items) if item["reviewText"]]
    assert [i for chunk in chunks for i in chunk.positions] == with_text
    assert all(sum(f'"review {i} of the pan"' in m for m in first_round) == 1 for i in with_text)
    assert len(first_round) > 1 and all(COMBINE_REQUEST in m for round_ in asked[1:] for m in round_)
    assert summary.startswith("part ") and len(asked[-1]) == 1
    assert combining == sum(len(round_) for round_ in asked[1:])
    record = summary_record(REVIEW, SummarySets("profile", ["u"], [items], [0], [0]), [summary], [chunks],
                            [combining])["sets"][0]
    assert record["summarized"] == with_text and record["without_text"] == [i for i in range(300) if i % 7 == 0]
    assert record["shortened"] == [] and record["requests"] == len(first_round)


def test_an_item_too_long_for_a_request_is_sent_alone_shortened_and_recorded(tiny_llama):
    from dataclasses import replace

    from transformers import AutoTokenizer

    from longlamp_errors import PromptBudgetError
    from longlamp_prompts import PromptBuilder
    from personalization.summaries import chunk_items, summary_requests

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    builder = PromptBuilder(replace(REVIEW, prompt_suffix=". "), tokenizer, 160, False)
    items = [review("short one"), review(" ".join(["pan"] * 2000)), review("short two")]
    chunks = chunk_items(REVIEW, builder, items)
    assert [(c.positions, c.shortened) for c in chunks] == [([0], []), ([1], [1]), ([2], [])]
    (request,) = summary_requests(builder, items, chunks[1:2])
    assert builder.count(request) <= 160 and "pan pan" in request
    with pytest.raises(PromptBudgetError, match="raise the budget"):
        chunk_items(REVIEW, PromptBuilder(replace(REVIEW, prompt_suffix=". "), tokenizer, 60, False), items)
