"""Text normalisation shared by indexing and querying: Chinese word segmentation and snippets.

Lexical search indexes a ``tokens`` column of space-separated, lower-cased words: jieba's search-mode
segmentation splits Chinese into words (and their shorter sub-words, so 报销单 also matches 报销), and
keeps ASCII runs whole. The index's own whitespace tokenizer then lower-cases and stems English words.
Indexing and querying go through ``tokenize`` so both sides always split text the same way.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass

import jieba
import wordninja
from pypinyin import lazy_pinyin

from cloud_infer.recall.content_dates import dates_in

jieba.setLogLevel(logging.WARNING)

_init_lock = threading.Lock()
_initialized = False
# Words that carry no meaning in a query; the index keeps them (harmless under BM25).
_QUERY_STOP_WORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "我",
        "你",
        "他",
        "她",
        "它",
        "那个",
        "这个",
        "那",
        "这",
        "哪个",
        "哪",
        "什么",
        "吗",
        "呢",
        "吧",
        "啊",
        "有",
        "看",
        "看过",
        "看到",
        "过",
        "一个",
        "和",
        "与",
        "及",
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "is",
        "are",
        "was",
        "were",
        "be",
        "i",
        "me",
        "my",
        "you",
        "it",
        "this",
        "that",
        "which",
        "what",
        "where",
        "when",
        "did",
        "do",
        "does",
        "saw",
        "see",
        "seen",
        "looked",
        "look",
        "find",
        "show",
        "page",
        "with",
        "for",
        "from",
        "about",
    ]
)
_WORD_RE = re.compile(r"\w", re.UNICODE)
# A Latin run long enough to hold two words, and its pieces at case changes ("ZhangWei", "USDfor").
_RUN_RE = re.compile(r"[A-Za-z]{6,}")
_HAN_RE = re.compile(r"[\u3400-\u9fff]+")
# English words that are no part of a name: "for the", "to Beijing" are not joined.
_GLUE_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "by", "for", "from", "in", "is", "of", "on", "or", "the", "to"}
)
# Two short Latin words in a row (a pinyin name: "Li Na"); overlapping pairs are found by the lookahead.
_SHORT_PAIR_RE = re.compile(r"(?<![A-Za-z0-9-])([A-Za-z]{2,6})\s+(?=([A-Za-z]{2,6})(?![A-Za-z0-9-]))")
_NAME_PAIR_RE = re.compile(r"(?<![A-Za-z0-9-])([A-Z][a-z]{1,5})\s+(?=([A-Z][a-z]{1,5})(?![A-Za-z0-9-]))")
# Case changes that only happen where words were joined: "gW" in ZhangWei, "SDf" in USDfor.
# An id or a number as typed: letters, digits and the separators inside ids (HT-2026-0457, MU5331,
# 12,000, 2.14.3, INV/2026/7), with at least one digit.
_EXACT_RE = re.compile(r"[A-Za-z0-9]+(?:[-_/.,:][A-Za-z0-9]+)*")
_SEPARATORS_RE = re.compile(r"[\W_]+")
_JOINED_RE = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]")
_CAMEL_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_KNOWN = wordninja.DEFAULT_LANGUAGE_MODEL._wordcost  # its word list, by frequency
_SHORT_WORDS = frozenset(
    [
        "a",
        "i",
        "am",
        "an",
        "as",
        "at",
        "be",
        "by",
        "do",
        "go",
        "he",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "no",
        "of",
        "on",
        "or",
        "re",
        "so",
        "to",
        "up",
        "us",
        "we",
    ]
)


def _ensure_initialized() -> None:
    # jieba loads its dictionary lazily and not thread-safely; load it once, up front.
    global _initialized
    with _init_lock:
        if not _initialized:
            jieba.initialize()
            _initialized = True


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` in order (Chinese segmented for search), punctuation dropped."""
    _ensure_initialized()
    normalized = unicodedata.normalize("NFKC", text).lower()
    return [w for w in (t.strip() for t in jieba.cut_for_search(normalized)) if w and _WORD_RE.search(w)]


def tokenize(text: str) -> str:
    """The ``tokens`` column for ``text``: its words, then the words of its run-together Latin text, its
    names across scripts (``transliterations``), then the tokens of the dates it is about
    (``content_dates``), joined by single spaces."""
    found = words(text)
    return " ".join(
        found + unjoined_words(text) + transliterations(found, text, names_only=True) + sorted(dates_in(text))
    )


def transliterations(found: list[str], text: str, *, names_only: bool = False) -> list[str]:
    """The other script's form of names in ``text`` (whose words are ``found``): the pinyin of its
    Chinese words (李娜 "lina", 杭州 "hangzhou", 发票 "fapiao"), and two short Latin words in a row joined
    as pinyin writes a name ("Li Na" "lina", "Liu Yang" "liuyang"); with ``names_only``, only when both
    are capitalised (document text, where a name is; a query is often typed in lower case). So a name
    or a place written in one script is found by the other."""
    pinyin = ["".join(lazy_pinyin(w)) for w in dict.fromkeys(found) if len(w) > 1 and _HAN_RE.fullmatch(w)]
    pair = _NAME_PAIR_RE if names_only else _SHORT_PAIR_RE
    normalized = unicodedata.normalize("NFKC", text)
    joined = [
        (a + b).lower()
        for a, b in pair.findall(normalized)
        if a.lower() not in _GLUE_WORDS and b.lower() not in _GLUE_WORDS
    ]
    return list(dict.fromkeys(pinyin + joined))


def unjoined_words(text: str) -> list[str]:
    """Words inside Latin runs written without spaces, lower-cased: OCR reads screen text at small
    sizes without most spaces ("ApprovedbyZhangWei", "Totaldue1,280.00USD"), and a search for "Zhang
    Wei" or "total due" must still find it. A run is cut by English word frequencies (``wordninja``),
    then at case changes ("LiNa"). A run without a case change inside is left alone when it is a word
    itself, or when the cut has a short piece that is not a common short word ("Kubernetes" is not "ku
    berne tes"). The run itself stays a word too (``words``), so what matched before still does."""
    found: list[str] = []
    for run in _RUN_RE.findall(unicodedata.normalize("NFKC", text)):
        joined = _JOINED_RE.search(run) is not None
        if not joined and run.lower() in _KNOWN:
            continue
        pieces = [p.lower() for w in wordninja.split(run) for p in _CAMEL_RE.findall(w)]
        if len(pieces) > 1 and (joined or all(len(p) > 2 or p in _SHORT_WORDS for p in pieces)):
            found.extend(p for p in pieces if len(p) > 1)
    return found


def query_terms(text: str) -> list[str]:
    """Distinct meaningful words of a query, in order."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in _QUERY_STOP_WORDS:
            seen.setdefault(word)
    return list(seen)


def exact_patterns(query: str) -> list[re.Pattern[str]]:
    """Patterns of the query's ids and numbers (three characters or more, with a digit) that match them
    in lower-cased text whatever separators stand between their parts: OCR drops or changes them
    ("HT-2026-0457" read as "HT2026-0457" or "HT-2026 0457")."""
    patterns: dict[str, re.Pattern[str]] = {}
    for token in _EXACT_RE.findall(unicodedata.normalize("NFKC", query).lower()):
        parts = [part for part in _SEPARATORS_RE.split(token) if part]
        if sum(map(len, parts)) >= 3 and any(c.isdigit() for c in token):
            source = r"[\W_]*".join(map(re.escape, parts))
            patterns.setdefault(source, re.compile(source))
    return list(patterns.values())


@dataclass(frozen=True, slots=True)
class Fragment:
    text: str
    hit: bool


def highlight(text: str, terms: list[str], max_chars: int = 240) -> list[Fragment]:
    """A window of ``text`` around the first hit of any term, split into hit / non-hit fragments."""
    lowered = unicodedata.normalize("NFKC", text).lower()
    if len(lowered) != len(text):  # NFKC changed lengths: offsets would not line up, match raw text
        lowered = text.lower()
    spans = _hit_spans(lowered, terms)
    first = spans[0][0] if spans else 0
    start = max(0, first - max_chars // 3)
    end = min(len(text), start + max_chars)
    fragments: list[Fragment] = []
    cursor = start
    for hit_start, hit_end in spans:
        if hit_end <= start or hit_start >= end:
            continue
        hit_start, hit_end = max(hit_start, cursor), min(hit_end, end)
        if hit_start > cursor:
            fragments.append(Fragment(text[cursor:hit_start], False))
        if hit_end > hit_start:
            fragments.append(Fragment(text[hit_start:hit_end], True))
            cursor = hit_end
    if cursor < end:
        fragments.append(Fragment(text[cursor:end], False))
    if start > 0 and fragments:
        fragments[0] = Fragment("…" + fragments[0].text, fragments[0].hit)
    if end < len(text) and fragments:
        fragments[-1] = Fragment(fragments[-1].text + "…", fragments[-1].hit)
    return fragments


def _hit_spans(lowered: str, terms: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of term occurrences, longest term first at each place."""
    marks: list[tuple[int, int]] = []
    for term in sorted({t for t in terms if t}, key=len, reverse=True):
        for match in re.finditer(re.escape(term), lowered):
            if all(match.end() <= s or match.start() >= e for s, e in marks):
                marks.append((match.start(), match.end()))
    return sorted(marks)


def matches_any(text: str, terms: list[str]) -> bool:
    lowered = text.lower()
    return any(term in lowered for term in terms)
