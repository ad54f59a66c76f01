"""`nltk.word_tokenize`, the tokenizer of evaluate's METEOR, with the same tokens in less time.

From NLTK 3.10 every regex NLTK applies runs through `nltk.redos`, which arms a wall-clock timer on each call (a
guard against pathological caller-supplied patterns). word_tokenize applies about thirty of its own fixed
patterns to each sentence, and the timer costs more than the matching. `word_tokenize` here is NLTK's own
composition (Punkt sentences, then NLTKWordTokenizer on each sentence) with the word tokenizer's patterns
compiled again from their source and flags by the same engine (`regex`), without the timer: the same matches,
so the same tokens; only an input pathological for those patterns would run long instead of raising. A
substitution is skipped when the sentence lacks every character its pattern needs (NEEDLES): it would return
the sentence unchanged, and most of the thirty patterns need punctuation that most sentences lack. Punkt, which
splits the sentences, runs with its patterns untimed in the same way (the English parameters sent_tokenize loads).

The equality is checked once per process on PROBES (the fast path is used only if it agrees with
`nltk.word_tokenize`) and on hundreds of generated texts by tests/test_metrics_parity.py. Without nltk.redos
(NLTK before 3.10) there is no timer to remove, and `nltk.word_tokenize` itself is used.
"""

from __future__ import annotations

import functools
import logging

import nltk
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


# Characters without which a pattern of NLTKWordTokenizer cannot match: when none is in the text, its `sub` would
# return the text unchanged and is skipped. Keyed by the pattern's source; a pattern not listed always runs.
# For the case-insensitive contractions the needles are looked for in the lower-cased text and use only letters
# that case-fold to nothing outside ASCII (not "i", "s", "k"; tests/test_meteor.py checks this over Unicode).
NEEDLES = {
    "([«“‘„]|[`]+)": ("«", "“", "‘", "„", "`"),
    '^\\"': ('"',),
    "(``)": ("``",),
    "([ \\(\\[{<])(\\\"|\\'{2})": ('"', "''"),
    "(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)": ("'",),
    "([^\\.])(\\.)([\\]\\)}>\"\\'»”’ ]*+)\\s*$": (".",),
    "([:,])([^\\d])": (":", ","),
    "([:,])$": (":", ","),
    "\\.{2,}": ("..",),
    "[;@#$%&]": (";", "@", "#", "$", "%", "&"),
    "[\\u2012-\\u2015]": ("\u2012", "\u2013", "\u2014", "\u2015"),
    "([^\\.])(\\.)([\\]\\)}>\"\\']*)\\s*$": (".",),
    "[?!]": ("?", "!"),
    "([^'])' ": ("' ",),
    "[*]": ("*",),
    "[\\]\\[\\(\\)\\{\\}\\<\\>]": ("]", "[", "(", ")", "{", "}", "<", ">"),
    "--": ("--",),
    "([»”’])": ("»", "”", "’"),
    "''": ("''",),
    '"': ('"',),
    "([^' ])('[sS]|'[mM]|'[dD]|') ": ("'",),
    "([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ": ("'",),
    "(?i) ('t)(?#X)(is)\\b": ("'",),
    "(?i) ('t)(?#X)(was)\\b": ("'",),
}
LOWERCASE_NEEDLES = {
    "(?i)\\b(can)(?#X)(not)\\b": ("cannot",),
    "(?i)\\b(d)(?#X)('ye)\\b": ("d'ye",),
    "(?i)\\b(gim)(?#X)(me)\\b": ("mme",),
    "(?i)\\b(gon)(?#X)(na)\\b": ("gonna",),
    "(?i)\\b(got)(?#X)(ta)\\b": ("gotta",),
    "(?i)\\b(lem)(?#X)(me)\\b": ("lemme",),
    "(?i)\\b(more)(?#X)('n)\\b": ("more'n",),
    "(?i)\\b(wan)(?#X)(na)(?=\\s)": ("wanna",),
}


def _step(pattern, substitution: str) -> tuple:
    """(untimed pattern, substitution, needles or None, whether the needles are looked for lower-cased)."""
    pattern = _without_timer(pattern)
    if pattern.pattern in LOWERCASE_NEEDLES:
        return pattern, substitution, LOWERCASE_NEEDLES[pattern.pattern], True
    return pattern, substitution, NEEDLES.get(pattern.pattern), False


@functools.lru_cache(maxsize=None)
def _word_tokenizer_steps() -> tuple:
    """NLTKWordTokenizer.tokenize's substitutions in its order (convert_parentheses=False), as _step()s;
    None marks where it pads the text with a space on each side."""
    t = NLTKWordTokenizer
    return (
        *(_step(p, s) for p, s in t.STARTING_QUOTES), *(_step(p, s) for p, s in t.PUNCTUATION),
        _step(*t.PARENS_BRACKETS), _step(*t.DOUBLE_DASHES), None, *(_step(p, s) for p, s in t.ENDING_QUOTES),
        *(_step(p, r" \1 \2 ") for p in t.CONTRACTIONS2), *(_step(p, r" \1 \2 ") for p in t.CONTRACTIONS3),
    )


def _tokenize_sentence(text: str) -> list[str]:
    """NLTKWordTokenizer().tokenize(text), skipping each substitution that cannot match."""
    lowered = None
    for step in _word_tokenizer_steps():
        if step is None:
            text = " " + text + " "
            continue
        pattern, substitution, needles, lower = step
        if needles is not None:
            if lower and lowered is None:
                lowered = text.lower()
            haystack = lowered if lower else text
            for needle in needles:  # a plain loop: any() with a generator costs more than most of these checks
                if needle in haystack:
                    break
            else:
                continue
        text, lowered = pattern.sub(substitution, text), None
    return text.split()


@functools.lru_cache(maxsize=None)
def _untimed_punkt():
    """The PunktTokenizer that sent_tokenize uses (English parameters), its patterns without the timer: the
    language variables' cached patterns and the token class's pattern attributes, compiled again untimed."""
    from nltk.tokenize import punkt

    class LanguageVars(punkt.PunktLanguageVars):
        __slots__ = ()
        re_boundary_realignment = _without_timer(punkt.PunktLanguageVars.re_boundary_realignment)

    non_punct = _without_timer(punkt._re_non_punct)

    class Token(punkt.PunktToken):
        __slots__ = ()
        _RE_ELLIPSIS = _without_timer(punkt.PunktToken._RE_ELLIPSIS)
        _RE_NUMERIC = _without_timer(punkt.PunktToken._RE_NUMERIC)
        _RE_INITIAL = _without_timer(punkt.PunktToken._RE_INITIAL)
        _RE_ALPHA = _without_timer(punkt.PunktToken._RE_ALPHA)

        @property
        def is_non_punct(self):  # the module-level pattern PunktToken reads, untimed
            return non_punct.search(self.type)

    language_vars = LanguageVars()
    language_vars._re_word_tokenizer = _without_timer(language_vars._word_tokenizer_re())  # the caches it reads
    language_vars._re_period_context = _without_timer(language_vars.period_context_re())
    tokenizer = punkt.PunktTokenizer("english")
    tokenizer._lang_vars, tokenizer._Token = language_vars, Token
    return tokenizer


def _fast_word_tokenize(text: str) -> list[str]:
    """word_tokenize's own composition, with the untimed sentence and word tokenizers."""
    return [token for sentence in _untimed_punkt().tokenize(text) for token in _tokenize_sentence(sentence)]


@functools.lru_cache(maxsize=None)
def fast_path_usable() -> bool:
    """Whether this NLTK has the timer and the fast path gives nltk.word_tokenize's tokens on PROBES."""
    try:
        from nltk import redos  # noqa: F401
    except ImportError:
        return False
    try:
        if all(_fast_word_tokenize(text) == nltk.word_tokenize(text) for text in PROBES):
            return True
    except AttributeError as error:  # an NLTK whose Punkt or tokenizer internals moved
        logger.warning("the untimed tokenizer cannot be built on this NLTK (%s): using word_tokenize", error)
        return False
    logger.warning("the untimed word tokenizer disagrees with nltk.word_tokenize on a probe: using word_tokenize")
    return False


def word_tokenize(text: str) -> list[str]:
    """The tokens of nltk.word_tokenize(text)."""
    return _fast_word_tokenize(text) if fast_path_usable() else nltk.word_tokenize(text)
