"""First queries worth trying, taken from the user's own recent history (the sidebar's "Try this").

A fixed list of examples finds nothing in most histories. Instead the words of the user's recent moments
are counted: a word in a title counts three times what it counts in screen text, newer moments count
more, and a word seen in most moments (an app's menu, a site's header) is no clue. From the best Chinese
and the best English word come a search in each language, a cross-lingual one (the glossary's word in
the other language, ``expand.translations``: "invoice" for a page that says 发票), a document id seen on
screen (INV-2041) and a question for Ask. Each is searched before it is offered, and only those that
find something are: a suggestion never leads to an empty list.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from cloud_infer.recall.expand import translations
from cloud_infer.recall.index import Filters
from cloud_infer.recall.service import RecallService
from cloud_infer.recall.text import query_terms

MAX_SUGGESTIONS = 6
# The recent history the words are taken from: a sample of its rows, enough for a few days of work.
RECENT = timedelta(days=7)
RECENT_ROWS = 5_000
# Fewer indexed rows than this is a history the user has just started: the sidebar opens "Try this".
NEW_HISTORY_ROWS = 500
_TITLE_WEIGHT = 3.0
# A word in more than this share of the moments (with at least this many) says nothing about any.
_COMMON_SHARE = 0.5
_COMMON_MIN_MOMENTS = 4

_HAN = re.compile(r"^[\u3400-\u9fff]{2,8}$")
_LATIN = re.compile(r"^[a-z][a-z-]{3,24}$")
# INV-2041, TR-3318, HT-2026-0457 (whole: its first two parts alone name another contract's year).
DOCUMENT_ID = re.compile(r"\b[A-Z]{2,6}(?:-\d{2,10})+(?![\w-])")
# Words of every desktop: app names, file and web furniture. They find everything and so nothing.
_FURNITURE = frozenset(
    """chromium chrome firefox mousepad xterm terminal gedit libreoffice evince okular thunar nautilus
    file edit view help tools window search history bookmarks settings untitled new open save close
    http https www com org net html index home page tab tabs menu document documents desktop
    文件 编辑 视图 帮助 工具 窗口 搜索 历史 书签 设置 新建 打开 保存 关闭 首页 菜单 文档 桌面""".split()  # noqa: SIM905 (a word list reads better as words)
)

Kind = Literal["search", "ask"]
Reason = Literal["recent", "cross_lingual", "document_id", "question"]


class Suggestion(BaseModel):
    text: str = Field(description="What to search for, or the question to ask (user data: not translated).")
    lang: Literal["zh", "en"] = Field(description="The language of text.")
    kind: Kind = Field(description="search: run it in Search; ask: ask it in Ask.")
    reason: Reason = Field(
        description="recent: a salient word of recent moments; cross_lingual: that word in the other "
        "language; document_id: an id seen on screen; question: a question about a recent word."
    )
    hits: int = Field(description="Moments the search for text found when it was suggested (at least 1).")


class SuggestionsResponse(BaseModel):
    suggestions: list[Suggestion]
    history_new: bool = Field(description="The history has just started (fewer than a few hundred rows).")


def _lang(text: str) -> Literal["zh", "en"]:
    return "zh" if re.search(r"[\u3400-\u9fff]", text) else "en"


def salient_words(rows: list[dict[str, object]]) -> list[str]:
    """Words of ``rows`` (index rows), most telling first: weighted by title and recency, and by how few
    moments have them."""
    if not rows:
        return []
    times = [int(str(row["time_ms"])) for row in rows]
    oldest, span = min(times), max(1, max(times) - min(times))
    score: defaultdict[str, float] = defaultdict(float)
    moments: defaultdict[str, set[str]] = defaultdict(set)
    apps = {str(row["app_id"]).lower() for row in rows}
    for row, time_ms in zip(rows, times, strict=True):
        recency = 1.0 + (time_ms - oldest) / span  # 1 for the oldest row, 2 for the newest
        moment = str(row["moment_id"])
        for source, weight in ((row["title"], _TITLE_WEIGHT), (row["text"], 1.0)):
            for word in set(query_terms(str(source))):
                if word in _FURNITURE or word in apps or not (_HAN.match(word) or _LATIN.match(word)):
                    continue
                score[word] += weight * recency
                moments[word].add(moment)
    total = len({str(row["moment_id"]) for row in rows})

    def telling(word: str) -> float:
        share = len(moments[word]) / total
        if total >= _COMMON_MIN_MOMENTS and share > _COMMON_SHARE:
            return 0.0
        return score[word] / math.sqrt(len(moments[word]))

    ranked = sorted(score, key=lambda word: (-telling(word), word))
    return [word for word in ranked if telling(word) > 0]


def document_ids(rows: list[dict[str, object]]) -> list[str]:
    """Ids like INV-2041 seen in titles and on screen, newest first."""
    found: dict[str, None] = {}
    for row in reversed(rows):
        for match in DOCUMENT_ID.findall(f"{row['title']}\n{row['text']}"):
            found.setdefault(match)
    return list(found)


def candidates(rows: list[dict[str, object]]) -> list[tuple[str, Kind, Reason]]:
    """What may be suggested, best first, before any is searched."""
    words = salient_words(rows)
    chinese = [w for w in words if _lang(w) == "zh"][:3]
    english = [w for w in words if _lang(w) == "en"][:3]
    # One word of each language first, so a bilingual history gets one of each whatever else fails.
    found: list[tuple[str, Kind, Reason]] = [(word, "search", "recent") for word in chinese[:1] + english[:1]]
    # The glossary's words for a word in the other language; the first that finds something is kept.
    for word in [*chinese[:2], *english[:2]]:
        found.extend((other, "search", "cross_lingual") for other in translations(word)[:3])
    found.extend((ident, "search", "document_id") for ident in document_ids(rows)[:1])
    if chinese:
        found.append((f"我看过的{chinese[0]}是什么？", "ask", "question"))  # noqa: RUF001
    if english:
        found.append((f"What did I see about {english[0]}?", "ask", "question"))
    found.extend((word, "search", "recent") for word in [*chinese[1:], *english[1:]])
    unique: dict[str, tuple[str, Kind, Reason]] = {}
    for item in found:
        unique.setdefault(item[0], item)
    return list(unique.values())


async def suggest(
    service: RecallService, user_id: str, *, tz: str | None = None, now: datetime | None = None
) -> SuggestionsResponse:
    """Up to ``MAX_SUGGESTIONS`` first queries for ``user_id``, each found to have hits in their history."""
    since = (now or datetime.now(UTC)) - RECENT
    rows = await service.index.rows(user_id, Filters(start_ms=int(since.timestamp() * 1000)), RECENT_ROWS)
    history_new = await service.index.count(user_id) < NEW_HISTORY_ROWS if rows else True
    chosen: list[Suggestion] = []
    per_reason: Counter[str] = Counter()
    for text, kind, reason in candidates(rows):
        if len(chosen) >= MAX_SUGGESTIONS:
            break
        # At most one cross-lingual suggestion and one question per language: variety over repetition.
        if reason in ("cross_lingual", "question") and per_reason[f"{reason}:{_lang(text)}"]:
            continue
        found = await service.search(user_id, text, tz=tz, limit=5, now=now)
        if not found.hits:
            continue
        per_reason[f"{reason}:{_lang(text)}"] += 1
        chosen.append(Suggestion(text=text, lang=_lang(text), kind=kind, reason=reason, hits=len(found.hits)))
    return SuggestionsResponse(suggestions=chosen, history_new=history_new)
