"""`nltk.word_tokenize`, the tokenizer of evaluate's METEOR, with the same tokens in less time.

From NLTK 3.10 every regex NLTK applies runs through `nltk.redos`, which arms a wall-clock timer on each call (a
guard against pathological caller-supplied patterns). word_tokenize applies about thirty of its own fixed
patterns to each sentence, and the timer costs more than the matching. `word_tokenize` here is NLTK's own
composition (Punkt sentences, then NLTKWordTokenizer on each sentence) with the word tokenizer's patterns
compiled again from their source and flags by the same engine (`regex`), without the timer: the same matches,
so the same tokens; only an input pathological for those patterns would run long instead of raising.

The equality is checked once per process on PROBES (the fast path is used only if it agrees with
`nltk.word_tokenize`) and on hundreds of generated texts by tests/test_metrics_parity.py. Without nltk.redos
(NLTK before 3.10) there is no timer to remove, and `nltk.word_tokenize` itself is used.
"""

from __future__ import annotations

import functools
import logging

import nltk
from nltk.tokenize import sent_tokenize
from nltk.tokenize.destructive import NLTKWordTokenizer

logger = logging.getLogger(__name__)

PROBES = (
    "",
    "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.",
    'She said, "I can\'t go -- it\'s late..." (really?) [yes] {no} <maybe>; ok: fine!',
    "«Quoted» “curly” ‘single’ don't won't I'm they'll we've y'all gonna wanna Mr. Smith's 1,000.50 e.g. U.S.A.",
    "Ends with a period. And another one.  Trailing spaces.   ",
    "'Twas cannot gimme lemme more'n d'ye whaddya whatcha — en – dash * star @ # % & ...",
)


def _without_timer(value):
    """NLTK's TimedPattern objects inside `value` (a pattern, or lists and tuples of them) as plain compiled
    patterns of the same engine (`regex`), source and flags: the same matches, without the timer and wrapper."""
    import regex
    from nltk import redos

    if isinstance(value, redos.TimedPattern):
        return regex.compile(value.pattern, value.flags)
    if isinstance(value, (list, tuple)):
        return type(value)(_without_timer(item) for item in value)
    return value


@functools.lru_cache(maxsize=None)
def _untimed_word_tokenizer() -> NLTKWordTokenizer:
    """NLTKWordTokenizer whose pattern tables (its upper-case class attributes) run without the timer."""
    tokenizer = NLTKWordTokenizer()
    for name, value in vars(NLTKWordTokenizer).items():
        if name.isupper():
            setattr(tokenizer, name, _without_timer(value))  # instance attributes shadow the class tables
    return tokenizer


def _fast_word_tokenize(text: str) -> list[str]:
    """word_tokenize's own composition, with the untimed word tokenizer."""
    tokenizer = _untimed_word_tokenizer()
    return [token for sentence in sent_tokenize(text) for token in tokenizer.tokenize(sentence)]


@functools.lru_cache(maxsize=None)
def fast_path_usable() -> bool:
    """Whether this NLTK has the timer and the fast path gives nltk.word_tokenize's tokens on PROBES."""
    try:
        from nltk import redos  # noqa: F401
    except ImportError:
        return False
    if all(_fast_word_tokenize(text) == nltk.word_tokenize(text) for text in PROBES):
        return True
    logger.warning("the untimed word tokenizer disagrees with nltk.word_tokenize on a probe: using word_tokenize")
    return False


def word_tokenize(text: str) -> list[str]:
    """The tokens of nltk.word_tokenize(text)."""
    return _fast_word_tokenize(text) if fast_path_usable() else nltk.word_tokenize(text)
