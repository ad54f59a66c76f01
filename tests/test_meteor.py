"""Our METEOR (scoring/meteor.py) against NLTK's meteor_score bit for bit, on inputs chosen to break it.

The cases aim at what decides a match in NLTK: repeated words (which position each occurrence takes), words
that match in several stages or through several synonyms (stage order, last-position tie-breaking), the stem
stage feeding stems to the synonym stage, empty and one-word sides (the zero-division paths), punctuation-only
and non-ASCII tokens; and the tokenizer's skipped substitutions (word_tokens.NEEDLES).
"""

from __future__ import annotations

import random
import re
import sys

import nltk
import numpy as np
import pytest
from nltk.translate.meteor_score import single_meteor_score

from scoring import meteor, word_tokens

# Words with many WordNet synonyms among each other, inflections and shared stems.
SYNONYM_RICH = (
    "big large great huge bad badly good well fine right correct proper start begin commence starts started "
    "beginning run running ran runs walk walked walks car cars automobile auto machine house home houses buy "
    "bought purchase happy glad felicitous sad pitiful lamentable quick fast speedy rapid locomote go went gone"
).split()

TOKEN_CASES = [
    ([], []),
    (["a"], []),
    ([], ["a"]),
    (["a"], ["a"]),
    (["A"], ["a"]),
    (["cat"], ["dog"]),
    ([".", ",", "!"], [".", ",", "!"]),
    ([".", "!"], ["?", ";", "..."]),
    (["the", "the", "the", "cat", "the"], ["the", "cat", "the", "the", "mat", "the"]),
    (["big", "large", "big"], ["large", "big", "huge", "great", "large"]),
    (["large", "large"], ["big", "big", "big"]),
    (["running", "ran", "runs", "run"], ["run", "run", "running", "ran"]),
    (["houses", "home", "house"], ["house", "house", "home", "houses"]),
    (["starts", "begin", "commence"], ["beginning", "started", "start", "begin"]),
    (["Café", "東京", "straße", "İstanbul", "ſ", "naïve"],
     ["café", "東京", "strasse", "istanbul", "s", "naive"]),
    (["CAR", "Automobile", "auto"], ["automobile", "car", "machine", "Car"]),
    (["good", "well", "good", "fine"], ["well", "good", "right", "well", "fine"]),
]

TEXT_CASES = [
    ("", ""),
    ("word", ""),
    ("", "word"),
    ("...", "!!!"),
    ("?! ; -- ()", "?! ; -- ()"),
    ("It's the cat's hat. They'll go; we've gone!", "it is the cats hat. they will go, we have gone"),
    ("CANNOT gimme GoNnA gotta Lemme more'n wanna go", "can not give me going to got to let me more than want to go"),
    ("gİmme 'Tis 'twas d'ye whaddya whatcha", "give me it is it was do you what do you what are you"),
    ("«Quoted» “curly” ‘single’ „low“ ``tex'' \"plain\"", "quoted curly single low tex plain"),
    ("Dashes ‒ – — ― and * stars @ # $ % & signs: 1,000.50 e.g. U.S.A. Dr. Smith", "dashes and stars signs"),
    ("Ünïcödé 東京 🙂 straße ÉCOLE naïve café", "unicode tokyo straße école naive cafe"),
]


def random_token_pairs(n: int = 400, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Short pairs over a small synonym-rich vocabulary: each word occurs many times, many ways to match."""
    rng = random.Random(seed)
    words = SYNONYM_RICH + [w.upper() for w in SYNONYM_RICH[:10]] + [".", ",", "'s"]
    def side():
        return [rng.choice(words) for _ in range(rng.randint(0, 30))]

    return [(side(), side()) for _ in range(n)]


def nltk_meteor(reference: list[str], hypothesis: list[str]) -> float:
    return single_meteor_score(reference, hypothesis, alpha=0.9, beta=3, gamma=0.5)


@pytest.mark.parametrize("cold", [True, False])
def test_meteor_on_hand_picked_tokens_equals_nltk_bit_for_bit(cold):
    if cold:
        meteor.clear_caches()
    hypotheses, references = zip(*TOKEN_CASES)
    ours = np.array([meteor.single_meteor(r, h) for h, r in TOKEN_CASES])
    np.testing.assert_array_equal(ours, np.array([nltk_meteor(r, h) for h, r in TOKEN_CASES]))
    assert ours[0] == ours[1] == ours[2] == 0.0 and ours[3] == ours[4] > 0 and len(set(ours.tolist())) > 8


def test_meteor_on_random_synonym_rich_pairs_equals_nltk_bit_for_bit():
    pairs = random_token_pairs()
    ours = np.array([meteor.single_meteor(r, h) for h, r in pairs])
    np.testing.assert_array_equal(ours, np.array([nltk_meteor(r, h) for h, r in pairs]))
    assert len(set(ours.tolist())) > 200


def test_the_synonym_stage_really_matches_stems_and_synonyms():
    """Guards the cases above: they reach the stem and synonym stages (else the test could not fail there)."""
    assert meteor.single_meteor(["auto"], ["car"]) == nltk_meteor(["auto"], ["car"]) > 0  # a synonym
    assert meteor.single_meteor(["automobile"], ["car"]) == 0.0  # NLTK's quirk: "automobil", the stem, is none
    assert meteor.single_meteor(["run"], ["running"]) > 0  # a stem
    assert "auto" in meteor._synonym_set("car") and "_" not in "".join(meteor._synonym_set("car"))


def test_meteor_scores_of_hard_texts_equal_nltk_word_tokenize_and_meteor():
    predictions, references = zip(*TEXT_CASES)
    expected = [nltk_meteor(nltk.word_tokenize(r), nltk.word_tokenize(p)) for p, r in TEXT_CASES]
    np.testing.assert_array_equal(meteor.meteor_scores(predictions, references), np.array(expected))


def test_tokenizer_with_skipped_substitutions_gives_nltks_tokens():
    assert word_tokens.fast_path_usable()
    for text in [t for pair in TEXT_CASES for t in pair]:
        assert word_tokens.word_tokenize(text) == nltk.word_tokenize(text), text


def test_every_tokenizer_pattern_but_whitespace_has_needles():
    steps = [step for step in word_tokens._word_tokenizer_steps() if step is not None]
    assert [pattern.pattern for pattern, _, needles, _ in steps if needles is None] == [r"\s+"]


def test_lowercase_needles_use_only_letters_without_unicode_case_folds():
    """A case-insensitive pattern's needle is looked for in text.lower(): sound only if no character outside
    the needle's ASCII letters matches them under IGNORECASE (as "İ" matches "i" and "ſ" matches "s")."""
    needles = [n for group in word_tokens.LOWERCASE_NEEDLES.values() for n in group]
    letters = sorted({c for needle in needles for c in needle if c.isalpha()})
    every_character = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    for engine in (re, __import__("regex")):
        found = set(engine.findall("(?i)[" + "".join(letters) + "]", every_character))
        assert found == set(letters) | {c.upper() for c in letters}, engine.__name__


def test_meteor_that_disagrees_with_nltk_is_not_used(monkeypatch):
    monkeypatch.setattr(meteor, "single_meteor", lambda reference, hypothesis: 0.5)
    meteor.matches_nltk.cache_clear()
    try:
        assert not meteor.matches_nltk()
        expected = nltk_meteor(nltk.word_tokenize("the cat sat"), nltk.word_tokenize("a cat sat"))
        assert meteor.meteor_scores(["a cat sat"], ["the cat sat"]).tolist() == [expected]
    finally:
        meteor.matches_nltk.cache_clear()


def test_untimed_punkt_splits_sentences_as_sent_tokenize():
    texts = [t for pair in TEXT_CASES for t in pair] + [
        "Dr. J. R. R. Tolkien wrote it in 1954. It sold well... Really? Yes! See p. 3.5 of vol. 2.",
        "He said \"stop.\" Then he left. (It was late.) [Noted.] The U.S. economy grew 3.5% in Q1. OK.",
        "no capital after period. next one starts lower. 12. numbered items. ... and an ellipsis",
    ]
    for text in texts:
        assert word_tokens._untimed_punkt().tokenize(text) == nltk.sent_tokenize(text), text


def test_a_substitution_skipped_for_lack_of_needles_would_not_have_changed_the_text():
    """Each needle rule checked directly: on random texts over every character the patterns care about, a
    pattern's substitution leaves unchanged every text that lacks all of its needles."""
    rng = random.Random(0)
    alphabet = list("abcdeginmorstwyACDGILMNORSTWY0123456789 .,:;!?'\"`*@#$%&()[]{}<>-") + list("«»“”‘’„‒–—―İſ")
    alphabet += ["cannot", "CanNot", "d'ye", "gimme", "gonna", "gotta", "lemme", "more'n", "wanna ", "'t", "'T"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))) for _ in range(3000)]
    steps = [step for step in word_tokens._word_tokenizer_steps() if step is not None and step[2] is not None]
    checked = 0
    for pattern, substitution, needles, lower in steps:
        for text in texts:
            haystack = text.lower() if lower else text
            if not any(needle in haystack for needle in needles):
                assert pattern.sub(substitution, text) == text, (pattern.pattern, text)
                checked += 1
    assert checked > 30_000
