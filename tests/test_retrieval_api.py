"""get_retriever, top_k_items, recency, random and none: the behaviour training and evaluation rely on."""

from __future__ import annotations

import numpy as np
import pytest

from longlamp_tasks import TASKS
from retrieval import RETRIEVERS, get_retriever, query_and_corpus, top_k_items

ABSTRACT = TASKS["abstract_generation"]
REVIEW = TASKS["product_review"]


def paper(number: int, year: int | None, abstract: str = "") -> dict:
    return {"id": f"p{number}", "title": f"title {number}", "abstract": abstract, "year": year}


def review(text: str) -> dict:
    return {"overall": 4.0, "summary": text, "description": "a kettle", "reviewText": text}


def abstract_example(profile: list[dict], keywords: str = "1. neural 2. ranking") -> dict:
    return {
        "id": "e1",
        "name": "Ada",
        "input": f'Generate an abstract for the title "t" using the following items: {keywords}',
        "profile": profile,
    }


def test_every_name_builds_a_retriever_with_that_name():
    for name in RETRIEVERS:
        assert get_retriever(name).name == name


def test_unknown_retriever_and_unknown_options_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown retriever 'bm42'.*bm25_reference"):
        get_retriever("bm42")
    with pytest.raises(ValueError, match="'random' does not take sed; it takes: seed"):
        get_retriever("random", sed=1)
    with pytest.raises(ValueError, match="'bm25' does not take seed; it takes: no options"):
        get_retriever("bm25", seed=1)


def test_query_and_corpus_come_from_the_task_table():
    example = abstract_example([paper(1, 2001, "graphs and ranking")], keywords="1. neural 2. ranking")
    query, corpus = query_and_corpus(ABSTRACT, example)
    assert query == "1. neural 2. ranking"
    assert corpus == ["title 1 graphs and ranking"]
    assert query_and_corpus(REVIEW, {"input": "whole input", "profile": [review("fine")]}) == (
        "whole input",
        ["4.0 fine a kettle fine"],
    )


def test_top_k_items_returns_the_items_themselves_most_relevant_first():
    profile = [
        paper(1, 2001, "cooking pasta"),
        paper(2, 2002, "neural ranking models"),
        paper(3, 2003, "gardening tips"),
    ]
    items = top_k_items(ABSTRACT, abstract_example(profile), k=1, retriever="bm25")
    assert items == [profile[1]]
    assert items[0] is profile[1]


def test_k_larger_than_the_profile_gives_the_whole_ranked_profile_and_zero_gives_none():
    profile = [paper(1, 2001), paper(2, 2003), paper(3, 2002)]
    assert [item["id"] for item in top_k_items(ABSTRACT, abstract_example(profile), 10, "recency")] == [
        "p2",
        "p3",
        "p1",
    ]
    assert top_k_items(ABSTRACT, abstract_example(profile), 0, "recency") == []


@pytest.mark.parametrize("k", [-1, 1.5, True, "2"])
def test_k_must_be_a_non_negative_integer(k):
    with pytest.raises(ValueError, match="k must be a non-negative integer"):
        top_k_items(ABSTRACT, abstract_example([]), k, "bm25")


@pytest.mark.parametrize("name", list(RETRIEVERS))
def test_empty_profile_gives_no_items_for_every_retriever(name):
    assert top_k_items(ABSTRACT, abstract_example([]), 4, name) == []


def test_missing_and_empty_corpus_fields_count_as_empty_text():
    profile = [
        {"id": "p1", "title": None, "abstract": None, "year": None},
        {"id": "p2"},
        paper(3, 2000, "neural ranking"),
    ]
    assert [item["id"] for item in top_k_items(ABSTRACT, abstract_example(profile), 1, "bm25")] == ["p3"]


def test_is_ranked_takes_the_first_k_without_retrieving():
    profile = [paper(1, 1990), paper(2, 2020)]
    example = {**abstract_example(profile), "ranked_by": "bm25"}
    assert top_k_items(ABSTRACT, example, 1, is_ranked=True) == [profile[0]]
    assert top_k_items(ABSTRACT, example, 1, "bm25", is_ranked=True) == [profile[0]]
    with pytest.raises(ValueError, match="ranked with 'bm25', not with the requested retriever 'contriever'"):
        top_k_items(ABSTRACT, example, 1, "contriever", is_ranked=True)


def test_a_retriever_is_required_unless_the_data_is_ranked():
    with pytest.raises(ValueError, match="needs a retriever"):
        top_k_items(ABSTRACT, abstract_example([paper(1, 2000)]), 1)


def test_none_selects_nothing():
    assert top_k_items(ABSTRACT, abstract_example([paper(1, 2000)]), 3, "none") == []


def test_task_may_be_given_by_task_or_config_name_and_unknown_tasks_are_refused():
    example = abstract_example([paper(1, 2000), paper(2, 2001)])
    assert top_k_items("abstract_generation_temporal", example, 1, "recency") == top_k_items(
        ABSTRACT, example, 1, "recency"
    )
    with pytest.raises(ValueError, match="unknown LongLaMP config 'poetry'"):
        top_k_items("poetry", example, 1, "recency")


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ({"id": "e9", "input": "x", "profile": None}, "example 'e9': 'profile' must be a list of items, got NoneType"),
        (
            {"id": "e9", "input": "x", "profile": ["text"]},
            "example 'e9': profile item 0 must be a mapping of fields, got str",
        ),
        ({"id": "e9", "input": None, "profile": []}, "example 'e9': 'input' must be a string, got NoneType"),
    ],
)
def test_malformed_examples_are_named_in_the_error(example, message):
    with pytest.raises(ValueError, match=message):
        top_k_items(REVIEW, example, 1, "bm25")


def test_recency_sorts_by_year_stably_newest_first_and_undated_items_last():
    profile = [paper(1, 2005), paper(2, None), paper(3, 2010), paper(4, 2005), paper(5, 1999), paper(6, None)]
    ranked = [item["id"] for item in top_k_items(ABSTRACT, abstract_example(profile), 6, "recency")]
    # The official rule sorts oldest first (stable) and reverses: among equal years the later item comes first.
    assert ranked == ["p3", "p4", "p1", "p5", "p6", "p2"]


def test_recency_without_a_date_field_is_the_profile_reversed():
    profile = [review("first"), review("second"), review("third")]
    ranked = top_k_items(REVIEW, {"input": "x", "profile": profile}, 2, "recency")
    assert ranked == [profile[2], profile[1]]


def test_recency_refuses_a_date_that_is_not_an_integer():
    with pytest.raises(ValueError, match="profile item 0 has year='2001'; expected an integer or None"):
        top_k_items(ABSTRACT, abstract_example([paper(1, "2001")]), 1, "recency")


def test_random_is_a_seeded_permutation_per_example():
    profile = [paper(number, 2000) for number in range(30)]
    example = abstract_example(profile)
    first = get_retriever("random", seed=1).rank(ABSTRACT, [example])[0].order
    assert sorted(first.tolist()) == list(range(30))
    again = (
        get_retriever("random", seed=1)
        .rank(ABSTRACT, [{"id": "other", **example, "profile": profile[:5]}, example])[1]
        .order
    )
    assert np.array_equal(first, again)  # independent of the other examples in the batch
    assert not np.array_equal(first, get_retriever("random", seed=2).rank(ABSTRACT, [example])[0].order)
    assert not np.array_equal(first, get_retriever("random", seed=1).rank(ABSTRACT, [{**example, "id": "e2"}])[0].order)
