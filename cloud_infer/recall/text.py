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
    """The ``tokens`` column for ``text``: its words joined by single spaces."""
    return " ".join(words(text))


def query_terms(text: str) -> list[str]:
    """Distinct meaningful words of a query, in order."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in _QUERY_STOP_WORDS:
            seen.setdefault(word)
    return list(seen)


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
