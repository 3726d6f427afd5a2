"""Text to index terms: normalisation, script-aware tokenisation, stopwords and stemming.

Every document token goes through the pipeline of its script:

- Han, Hiragana, Katakana and Hangul runs become overlapping character bigrams (a run of one
  character stays a unigram); no stopwords, no stemming.
- Arabic-script words: diacritics and tatweel stripped, alef / yeh / teh marbuta forms folded,
  Arabic stopwords dropped, Snowball Arabic stemmer.
- Latin words: stopwords and Snowball stemmer of the document's language when it is written
  in Latin script, else of English (the fallback for Latin words inside, say, an Arabic book).
- Cyrillic words: Russian; Greek words: the Greek stemmer.
- Any other script (Hebrew, Devanagari, Thai, ...): the casefolded word as it is.

A query is analysed with every language of the workspace (`analyze_query`), so each word
meets the documents of every language in the form that language's pipeline gave them.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import Stemmer

from .stopwords import STOPWORDS

CJK = "cjk"  # language of Chinese, Japanese and Korean text: bigrams, no stemming
OTHER = "other"  # language of text in a script without a pipeline: words as they are

LATIN, CYRILLIC, GREEK, ARABIC, HAN, OTHER_SCRIPT = "latin", "cyrillic", "greek", "arabic", "han", "other"

# Languages detect_language() can choose among for Latin text: those with a stopword list.
DETECTABLE_LATIN = ("english", "german", "french", "spanish", "italian", "portuguese", "dutch",
                    "swedish", "norwegian", "danish", "finnish")
# Snowball stemmers usable when the caller names the language; no stopword list for these.
_OTHER_LATIN = ("catalan", "basque", "czech", "esperanto", "estonian", "hungarian", "indonesian",
                "irish", "lithuanian", "polish", "romanian", "turkish")
_AVAILABLE = set(Stemmer.algorithms())
LANGUAGE_SCRIPTS: dict[str, str] = {
    **{lang: LATIN for lang in DETECTABLE_LATIN + _OTHER_LATIN if lang in _AVAILABLE},
    "russian": CYRILLIC, "greek": GREEK, "arabic": ARABIC, CJK: HAN, OTHER: OTHER_SCRIPT,
}
SUPPORTED_LANGUAGES = tuple(LANGUAGE_SCRIPTS)
# The language whose pipeline a script's words take in a document of another script.
_SCRIPT_DEFAULTS = {LATIN: "english", CYRILLIC: "russian", GREEK: "greek", ARABIC: "arabic"}

_CJK_RANGES = (
    "\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u309f"
    "\u30a1-\u30fa\u30fc-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31bf\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\U00020000-\U0003134f"
)
# Arabic letters (harakat and tatweel are stripped before tokenising).
_ARABIC_RANGES = "\u0621-\u063f\u0641-\u064a\u066e-\u066f\u0671-\u06d3\u06d5\u06ee-\u06ef\u06fa-\u06fc\u06ff\u0750-\u077f\u08a0-\u08c9"


def _mark_ranges() -> str:
    """Combining marks (Mn, Mc, Me) as a character class body: Python's `\\w` leaves them out,
    which would cut Devanagari, Thai or decomposed Latin words apart."""
    spans, start, previous = [], None, None
    for code in (*range(0x0300, 0x20000), *range(0xE0100, 0xE01F0)):
        if unicodedata.category(chr(code))[0] == "M":
            if start is None:
                start = code
            elif code != previous + 1:
                spans.append((start, previous))
                start = code
            previous = code
    if start is not None:
        spans.append((start, previous))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in spans)


@lru_cache(maxsize=1)
def _token_pattern() -> re.Pattern[str]:
    """Words (with their combining marks), Arabic words and CJK runs; compiled on first use."""
    word = f"[^\\W_{_CJK_RANGES}{_ARABIC_RANGES}]"
    return re.compile(f"[{_CJK_RANGES}]+|[{_ARABIC_RANGES}]+|{word}(?:{word}|[{_mark_ranges()}])*")


# Text whose word characters are all below U+0370 (Latin, digits, combining diacritics) is
# tokenised by a much faster expression; underscores are turned into spaces first.
_BEYOND_LATIN = re.compile(r"[^\W\x00-\u036f]")
_LATIN_TOKEN = re.compile(r"[\w\u0300-\u036f]+")
_HAN_RE = re.compile(f"[{_CJK_RANGES}]")
_ARABIC_RE = re.compile(f"[{_ARABIC_RANGES}]")

# Arabic folding: harakat U+064B-U+065F, superscript alef U+0670, tatweel U+0640 and the
# Quranic annotation marks go; alef forms become bare alef, alef maqsura yeh, teh marbuta heh.
_ARABIC_FOLD = {code: None for code in (*range(0x064B, 0x0660), 0x0670, 0x0640, *range(0x0610, 0x061B), *range(0x06D6, 0x06EE))}
_ARABIC_FOLD.update({ord(c): "\u0627" for c in "\u0623\u0625\u0622\u0671"})
_ARABIC_FOLD.update({0x0649: "\u064a", 0x0629: "\u0647"})
_ARABIC_BLOCK = re.compile(r"[\u0610-\u06ff]")


def normalize(text: str) -> str:
    """NFKC, casefold, Arabic folding: what every token and stopword goes through first."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if _ARABIC_BLOCK.search(text):
            text = text.translate(_ARABIC_FOLD)
    return text


def tokenize(text: str) -> list[str]:
    """The raw tokens of normalised text: words, Arabic words and whole CJK runs."""
    return _tokenize(text)[0]


def _tokenize(text: str) -> tuple[list[str], bool]:
    """The tokens, and whether they are all Latin (the fast path was taken)."""
    if _BEYOND_LATIN.search(text) is None:
        return _LATIN_TOKEN.findall(text.replace("_", " ")), True
    return _token_pattern().findall(text), False


@lru_cache(maxsize=4096)
def _script(char: str) -> str:
    if char < "\u0370":
        return LATIN
    if _HAN_RE.match(char):
        return HAN
    if _ARABIC_RE.match(char):
        return ARABIC
    name = unicodedata.name(char, "")
    for script in ("LATIN", "CYRILLIC", "GREEK"):
        if name.startswith(script):
            return script.lower()
    return LATIN if unicodedata.category(char) == "Nd" else OTHER_SCRIPT


def _script_of(token: str) -> str:
    first = token[0]
    return LATIN if first < "\u0370" else _script(first)


def bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of a CJK run; a single character stays itself."""
    if len(run) < 2:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


_STOPWORDS: dict[str, frozenset[str]] = {
    language: frozenset(normalize(word) for word in words.split()) for language, words in STOPWORDS.items()
}
_STOPWORD_LANGUAGES: dict[str, list[str]] = {}
for _language in DETECTABLE_LATIN:
    for _word in _STOPWORDS[_language]:
        _STOPWORD_LANGUAGES.setdefault(_word, []).append(_language)
_local = threading.local()  # PyStemmer stemmers are not thread-safe: one set per thread
_STEMS: dict[str, dict[str, str]] = {language: {} for language in LANGUAGE_SCRIPTS}
_STEM_CACHE_MAX = 500_000  # words per language; the cache starts over when it is full


def _stemmer(language: str) -> Stemmer.Stemmer | None:
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    if language not in stemmers:
        stemmers[language] = Stemmer.Stemmer(language) if language in _AVAILABLE else None
    return stemmers[language]


def _check(language: str) -> str:
    if language not in LANGUAGE_SCRIPTS:
        raise ValueError(f"unsupported language {language!r}; supported: {', '.join(SUPPORTED_LANGUAGES)}")
    return language


def _term(word: str, language: str) -> str:
    """`word`'s term in `language`: its stem, or "" for a stopword."""
    if word in _STOPWORDS.get(language, ()):
        return ""
    stemmer = _stemmer(language)
    return stemmer.stemWord(word) if stemmer is not None else word


def _pipeline(words: list[str], language: str) -> list[str]:
    """Drop `language`'s stopwords from `words`, stem the rest (memoised per language)."""
    cache = _STEMS[language]
    if len(cache) > _STEM_CACHE_MAX:
        cache.clear()
    terms = list(map(cache.get, words))
    if None in terms:
        for i, term in enumerate(terms):
            if term is None:
                term = cache.get(words[i])  # an earlier repeat of the word may have filled it
                terms[i] = term if term is not None else cache.setdefault(words[i], _term(words[i], language))
    return list(filter(None, terms))


def _split_by_script(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """The words of normalised text grouped by script, and its CJK bigrams."""
    tokens, all_latin = _tokenize(text)
    if all_latin:
        return {LATIN: tokens}, []
    groups: dict[str, list[str]] = {}
    grams: list[str] = []
    for token in tokens:
        script = _script_of(token)
        if script == HAN:
            grams.extend(bigrams(token))
        else:
            groups.setdefault(script, []).append(token)
    return groups, grams


def analyze(text: str, language: str | None = None) -> list[str]:
    """Index terms of a document's text (or one chunk of it), in order, repeats kept.

    `language` is the document's language (`detect_language` of the whole document, so that
    every chunk of it is analysed alike); detected from `text` when not given.
    """
    text = normalize(text)
    language = _check(language) if language else _detect(text)
    home = LANGUAGE_SCRIPTS[language]
    groups, terms = _split_by_script(text)
    for script, words in groups.items():
        if script == OTHER_SCRIPT:
            terms.extend(words)
        else:
            terms.extend(_pipeline(words, language if script == home else _SCRIPT_DEFAULTS[script]))
    return terms


def query_languages(languages: Iterable[str]) -> dict[str, list[str]]:
    """For each script, the languages whose pipelines produced that script's terms in an index
    holding documents of `languages`."""
    languages = [_check(language) for language in dict.fromkeys(languages)]
    by_script: dict[str, list[str]] = {}
    for script, default in _SCRIPT_DEFAULTS.items():
        own = [language for language in languages if LANGUAGE_SCRIPTS[language] == script]
        foreign = not languages or any(LANGUAGE_SCRIPTS[language] != script for language in languages)
        by_script[script] = own + [default] if foreign and default not in own else own
    return by_script


def analyze_query(text: str, languages: Iterable[str] = ()) -> list[str]:
    """Query terms for an index of documents in `languages`, without repeats.

    Each word is analysed by every pipeline documents of its script went through (e.g. a
    Latin word by the German and the English one in a German-English workspace): a word
    gives a term for each language it is not a stopword of. No languages: script defaults.
    """
    by_script = query_languages(languages)
    groups, terms = _split_by_script(normalize(text))
    for script, words in groups.items():
        if script == OTHER_SCRIPT:
            terms.extend(words)
        else:
            for language in by_script[script]:
                terms.extend(_pipeline(words, language))
    return list(dict.fromkeys(terms))


# Language detection: script first, then stopword coverage for Latin text.
_SAMPLE_CHARS = 20_000
_CJK_WEIGHT = 3  # a CJK character carries about as much as three Latin letters


def _sample(text: str) -> str:
    """At most _SAMPLE_CHARS characters: the whole text, or four evenly spaced windows."""
    if len(text) <= _SAMPLE_CHARS:
        return text
    window = _SAMPLE_CHARS // 4
    step = (len(text) - window) // 3
    return " ".join(text[i * step : i * step + window] for i in range(4))


def detect_language(text: str) -> str:
    """The language of a document: by script (Arabic → "arabic", CJK → "cjk", Cyrillic →
    "russian", Greek → "greek", another script → "other"), and for Latin text the language
    whose stopwords cover the most words ("english" when none do). Deterministic and cheap:
    at most 20,000 characters are looked at."""
    return _detect(normalize(_sample(text)))


def _detect(normalized: str) -> str:
    groups, grams = _split_by_script(_sample(normalized))
    weights = {script: sum(map(len, words)) for script, words in groups.items()}
    latin = [word for word in groups.get(LATIN, ()) if not word.isdigit()]
    weights[LATIN] = sum(map(len, latin))
    weights[HAN] = len(grams) * _CJK_WEIGHT
    script = max(weights, key=lambda s: (weights[s], s == LATIN))
    if weights[script] == 0:
        return "english"
    if script != LATIN:
        return {HAN: CJK, OTHER_SCRIPT: OTHER}.get(script) or _SCRIPT_DEFAULTS[script]
    votes = dict.fromkeys(DETECTABLE_LATIN, 0)
    for word, count in Counter(latin).items():
        for language in _STOPWORD_LANGUAGES.get(word, ()):
            votes[language] += count
    best = max(votes.values())  # ties keep the earlier language; no stopword at all: English
    return next(language for language, count in votes.items() if count == best)
