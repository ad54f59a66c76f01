"""Per-sample parity: our ROUGE and METEOR against rouge_score and NLTK called directly as evaluate calls them."""

from __future__ import annotations

import random

import numpy as np
import pytest
from nltk import word_tokenize
from nltk.translate.meteor_score import single_meteor_score
from rouge_score import rouge_scorer, scoring

from scoring import metrics, rouge, word_tokens

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

# Words with stems, synonyms and inflections in common (so METEOR's three stages all match something),
# contractions, quotes, numbers, dashes, brackets and non-ASCII text.
WORDS = (
    "the a of and to in is was it for on with as by that this big large huge great small little tiny walk walked "
    "walking walks run running ran quick fast rapid swift happy glad joyful sad unhappy car automobile cars house "
    "home houses buy bought purchase purchased begin start started starting commence end finish finished good "
    "nice fine excellent bad poor terrible review product quality price battery screen paper abstract method "
    "results model data learning Reddit post user"
).split() + [
    "don't", "it's", "can't", "I'm", "they're", "we'll", "O'Neil", '"quoted"', "'single'", "(brackets)", "[1]",
    "3.5", "$20", "10%", "x-ray", "--", "...", "e.g.", "U.S.", "Dr.", "café", "naïve", "Ünïcödé", "東京", "🙂",
    "straße", "ÉCOLE", "«guillemets»", "“curly”", "— dash", "co-operate", "#hashtag", "@user", "a/b",
]


def generated_text(rng: random.Random, words: int) -> str:
    """Sentences of random words with punctuation, capitals, newlines and stray whitespace."""
    out = []
    for i in range(words):
        word = rng.choice(WORDS)
        out.append(word.capitalize() if i == 0 or out[-1][-1:] in ".!?" else word)
        if rng.random() < 0.08:
            out[-1] += rng.choice([".", "!", "?", ",", ";", ":"])
        if rng.random() < 0.03:
            out[-1] += rng.choice(["\n", "\n\n", "\n \n"])
    padding = rng.choice(["", " ", "\n", "  \t"])
    return padding + " ".join(out) + padding


def generated_pairs(n: int = 260, seed: int = 0) -> tuple[list[str], list[str]]:
    """Pairs from empty to long (about 400 words), predictions sharing part of their reference."""
    rng = random.Random(seed)
    predictions, references = [], []
    for i in range(n):
        reference = generated_text(rng, rng.choice([0, 5, 40, 120, 250, 400]) if i % 13 else 0)
        kept = [w for w in reference.split(" ") if rng.random() < 0.6]
        prediction = " ".join(kept + generated_text(rng, rng.randint(0, 150)).split(" "))
        if i % 17 == 0:
            prediction = rng.choice(["", "   ", "\n"])
        predictions.append(prediction)
        references.append(reference if reference.strip() else "short gold text")
    return predictions, references


@pytest.fixture(scope="module")
def pairs():
    return generated_pairs()


@pytest.fixture(scope="module")
def reference_rouge(pairs):
    """rouge_score as evaluate calls it: stripped texts, the reference as a one-element list, score_multi."""
    predictions, references = pairs
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=False)
    return [scorer.score_multi([r.strip()], p.strip()) for p, r in zip(predictions, references)]


@pytest.fixture(scope="module")
def reference_meteor(pairs):
    """NLTK as evaluate calls it: word_tokenize on the stripped texts, alpha 0.9, beta 3, gamma 0.5."""
    predictions, references = pairs
    return [
        single_meteor_score(word_tokenize(r.strip()), word_tokenize(p.strip()), alpha=0.9, beta=3, gamma=0.5)
        for p, r in zip(predictions, references)
    ]


def test_generated_pairs_cover_the_hard_cases(pairs):
    predictions, references = pairs
    assert any(not p.strip() for p in predictions) and any(len(r.split()) > 300 for r in references)
    assert any("\n" in r.strip() for r in references) and any("東京" in p for p in predictions)


@pytest.mark.slow
def test_rust_backend_equals_rouge_score_bit_for_bit(pairs, reference_rouge):
    predictions, references = pairs
    found = rouge.rust_scores([p.strip() for p in predictions], [r.strip() for r in references], ROUGE_TYPES)
    for rouge_type in ROUGE_TYPES:
        expected = np.array([tuple(row[rouge_type]) for row in reference_rouge], dtype=np.float64)
        assert np.array_equal(found[rouge_type], expected), rouge_type


@pytest.mark.multiprocess
@pytest.mark.parametrize("backend, n", [("rust", None), ("python", 80)])  # python: rouge_score itself, in workers
def test_per_sample_rouge_equals_rouge_score(pairs, reference_rouge, backend, n):
    predictions, references = pairs[0][:n], pairs[1][:n]
    found = metrics.per_sample_scores(predictions, references, metrics=ROUGE_TYPES, rouge_backend=backend,
                                      num_workers=2)
    for rouge_type in ROUGE_TYPES:
        expected = [row[rouge_type].fmeasure for row in reference_rouge[:n]]
        assert found[rouge_type].tolist() == expected, rouge_type


def test_rust_backend_passes_its_probe_and_is_chosen():
    assert rouge.rust_backend_usable()
    assert rouge.resolve_backend("auto") == "rust"


def test_a_rust_backend_that_disagrees_is_not_used(monkeypatch):
    def off_by_one_ulp(predictions, references, rouge_types, threads=True):
        return {t: np.nextafter(a, 2.0) for t, a in rouge.python_scores(predictions, references, rouge_types).items()}

    monkeypatch.setattr(rouge, "rust_scores", off_by_one_ulp)
    rouge.rust_backend_usable.cache_clear()
    try:
        assert rouge.resolve_backend("auto") == "python"
        with pytest.raises(RuntimeError, match="parity"):
            rouge.resolve_backend("rust")
    finally:
        rouge.rust_backend_usable.cache_clear()


def test_fast_word_tokenize_gives_nltks_tokens(pairs):
    assert word_tokens.fast_path_usable()
    for text in [t.strip() for t in pairs[0] + pairs[1]] + list(word_tokens.PROBES):
        assert word_tokens.word_tokenize(text) == word_tokenize(text), text


def test_a_fast_tokenizer_that_disagrees_is_not_used(monkeypatch):
    monkeypatch.setattr(word_tokens, "_fast_word_tokenize", lambda text: text.split())
    word_tokens.fast_path_usable.cache_clear()
    try:
        assert not word_tokens.fast_path_usable()
        assert word_tokens.word_tokenize("It's late.") == ["It", "'s", "late", "."]
    finally:
        word_tokens.fast_path_usable.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [1, 2])
def test_per_sample_meteor_equals_plain_nltk(pairs, reference_meteor, num_workers):
    found = metrics.per_sample_scores(*pairs, metrics=("meteor",), num_workers=num_workers)
    assert found["meteor"].tolist() == reference_meteor
    assert len(set(reference_meteor)) > 100  # the pairs really differ


def test_meteor_of_evaluates_documented_example():
    prediction = "It is a guide to action which ensures that the military always obeys the commands of the party"
    reference = "It is a guide to action that ensures that the military will forever heed Party commands"
    result = metrics.score([prediction], [reference], metrics=("meteor",), bootstrap=0)
    assert round(result["metrics"]["meteor"], 4) == 0.6944


@pytest.mark.multiprocess
def test_headline_numbers_are_the_mean_that_evaluate_users_compute(pairs, reference_rouge, reference_meteor):
    result = metrics.score(*pairs, bootstrap=0)
    for rouge_type in ROUGE_TYPES:
        assert result["metrics"][rouge_type] == np.mean([row[rouge_type].fmeasure for row in reference_rouge])
    assert result["metrics"]["meteor"] == np.mean(reference_meteor)  # evaluate's meteor: np.mean of these
    assert result["num_empty_predictions"] == sum(not p.strip() for p in pairs[0])


def test_evaluate_compatible_rouge_equals_the_seeded_bootstrap_aggregator(pairs, reference_rouge):
    """evaluate's rouge value is BootstrapAggregator's mid F-measure drawn from numpy's global RNG."""
    saved = np.random.get_state()
    try:
        np.random.seed(1234)
        aggregator = scoring.BootstrapAggregator()
        for row in reference_rouge:
            aggregator.add_scores(row)
        expected = {t: s.mid.fmeasure for t, s in aggregator.aggregate().items()}
    finally:
        np.random.set_state(saved)
    result = metrics.score(*pairs, metrics=ROUGE_TYPES, bootstrap=0, seed=1234)
    assert result["evaluate_compatible"]["metrics"] == expected
    assert result["evaluate_compatible"]["metrics"] != result["metrics"]  # a bootstrap median, not the mean


def test_sacrebleu_equals_a_direct_call(pairs):
    import sacrebleu

    predictions, references = pairs
    expected = sacrebleu.corpus_bleu([p.strip() for p in predictions], [[r.strip() for r in references]]).score
    result = metrics.score(predictions, references, metrics=("rouge1", "sacrebleu"), bootstrap=0)
    assert result["metrics"]["sacrebleu"] == expected
