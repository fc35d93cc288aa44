"""Recall logic without transport: search, moments, erasure and export of one user's history.

Search: dates and times in the query are read (``query_dates``) both as when something was seen and
as what it is about, and rank rather than filter (``search``); the rest is segmented into words for
BM25, with zh↔en office terms and names across scripts added at a lower weight (``expand``), and
embedded (multilingual, so a query finds pages in either language) for the vector side; LanceDB fuses
both by reciprocal rank; rows are collapsed to their moment, best first. When nothing is found and the
chat model is declared capable, its keywords are added to the query once (``rewrite``).
Every call takes the user id from the caller's token, and the index and store are per user, so no
query can name another user's data.

Erasure is final: each erasure records a tombstone (``recall_store.tombstones``) before it deletes,
while writers of the user's history wait, so nothing in flight or resent later brings it back.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

from cloud_infer.errors import InvalidMessageError, NotFoundError
from cloud_infer.recall.content_dates import dates_in, window_tokens
from cloud_infer.recall.embedder import Embedder, Role
from cloud_infer.recall.expand import EXPANSION_BOOST, names, translations
from cloud_infer.recall.index import Filters, QueryVector, RecallIndex, boxes_from_json
from cloud_infer.recall.pipeline import RecallPipeline
from cloud_infer.recall.protocol import (
    Box,
    DateReading,
    EraseResponse,
    Fragment,
    MomentResponse,
    MomentRow,
    ParsedQuery,
    SearchHit,
    SearchResponse,
)
from cloud_infer.recall.query_dates import ParsedQuery as DatedQuery
from cloud_infer.recall.query_dates import parse_query
from cloud_infer.recall.rewrite import QueryRewriter
from cloud_infer.recall.text import exact_patterns, highlight, matches_any, query_terms
from cloud_infer.tenancy.fair_pool import FairGate, Priority
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore
from recall_store.tombstones import ERASURE_PREFIX, Tombstone, Tombstones

T = TypeVar("T")
logger = logging.getLogger(__name__)
_MAX_QUERY_CHARS = 500
# Reciprocal-rank fusion's constant, and the boosts of a date's two readings in the same units: about
# one place at the top of the list each, the content's own date counting twice as much as the day seen.
_RRF_K = 60
_ABOUT_BOOST = 2.0 / _RRF_K
_SEEN_BOOST = 1.0 / _RRF_K
_NS_PER_MS = 1_000_000
# How long forgetting a moment waits for the index to take in its session's stored events.
_CATCH_UP_S = 10.0


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _exact_first(rows: list[dict[str, Any]], exact: list[re.Pattern[str]]) -> list[dict[str, Any]]:
    """``rows`` with those holding more of the query's ids and numbers first, each group in fused
    order: an exact id names one thing, which a look-alike (another invoice, another contract) that
    only shares words with it must not outrank."""
    if not exact:
        return rows

    def held(row: dict[str, Any]) -> int:
        text = f"{row['title']} {row['url']} {row['text']}".lower()
        return sum(pattern.search(text) is not None for pattern in exact)

    return sorted(rows, key=lambda row: -held(row))  # stable: fused order within each group


def _once(compute: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``compute`` awaited at the first call, its result returned at every later one (calls in turn)."""
    done: list[T] = []

    async def result() -> T:
        if not done:
            done.append(await compute())
        return done[0]

    return result


def _frame_urls(row: dict[str, Any]) -> tuple[str | None, str | None]:
    if not row["frame_key"]:
        return None, None
    url = "/v1/" + row["frame_key"]
    return url, url + "?thumb=true"


def _boxes(row: dict[str, Any], terms: list[str], only_hits: bool) -> list[Box]:
    boxes = [
        Box(x0=x0, y0=y0, x1=x1, y1=y1, text=text, hit=bool(terms) and matches_any(text, terms))
        for x0, y0, x1, y1, text in boxes_from_json(row["boxes"])
    ]
    return [b for b in boxes if b.hit] if only_hits else boxes


def zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidMessageError(f"unknown time zone {name!r}") from exc


class RecallService:
    def __init__(
        self,
        store: ObjectStore,
        index: RecallIndex,
        embedder: Embedder,
        pipeline: RecallPipeline | None,
        tombstones: Tombstones,
        candidates: int,
        default_timezone: str,
        rewriter: QueryRewriter | None = None,
        search_slots: int = 1,
    ) -> None:
        self.store = store
        self.tombstones = tombstones
        # Searches share the CPU: a few run at once, in turns between users (one user's burst waits).
        self._search_gate = FairGate(search_slots)
        self._log = EventLog(store)
        self.index = index
        self._embedder = embedder
        self._pipeline = pipeline
        self._candidates = candidates
        self._default_tz = default_timezone
        self._rewriter = rewriter

    async def search(
        self,
        user_id: str,
        q: str,
        *,
        tz: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        app: str | None = None,
        title: str | None = None,
        url: str | None = None,
        limit: int = 20,
        now: datetime | None = None,
        dates: DateReading = "both",
    ) -> SearchResponse:
        """Hybrid search of ``q`` in the user's history.

        A date in the query has two readings: when the user saw something, and what the thing is about
        (an invoice's own date). ``dates="both"`` searches without the date as a filter and ranks: a row
        whose content has the date gets ``_ABOUT_BOOST``, a moment seen in the window ``_SEEN_BOOST``
        (about two places and one at the top of the list), so the date never empties the results.
        ``"seen"`` filters by the window (and is what a date alone, without words, means), ``"about"``
        only ranks by the content's dates. ``start``/``end`` given by the caller always filter.
        """
        started = time.perf_counter()
        if len(q) > _MAX_QUERY_CHARS:
            raise InvalidMessageError(f"the query is longer than {_MAX_QUERY_CHARS} characters")
        local_now = (now or datetime.now(UTC)).astimezone(zone(tz, self._default_tz))
        parsed = parse_query(q, local_now)
        if parsed.start is not None and parsed.start > local_now:
            # History has no future: "明天天气" is about a forecast seen on screen, not a time filter.
            parsed = DatedQuery(text=" ".join(q.split()), start=None, end=None, phrases=())
        window_start = max(filter(None, (start, parsed.start)), default=None)
        window_end = min(filter(None, (end, parsed.end)), default=None)

        def within(first: datetime | None, stop: datetime | None) -> Filters:
            first = max(filter(None, (start, first)), default=None)
            stop = min(filter(None, (end, stop)), default=None)
            return Filters(
                start_ms=int(first.timestamp() * 1000) if first else None,
                end_ms=int(stop.timestamp() * 1000) if stop else None,
                app_id=app,
                title_contains=title,
                url_contains=url,
            )

        # Every reading of the date ("last Wednesday" on a Friday: two or nine days ago) as a window.
        seen = [within(*window) for window in parsed.windows] or [within(None, None)]
        tokens = set().union(*(window_tokens(*window) for window in parsed.windows))
        reading: DateReading | None = None
        if parsed.start is not None:
            reading = dates if tokens and parsed.text else "seen"
        if reading == "both" and parsed.seen:
            tokens = set()  # "the report I looked at yesterday": ranked by when seen, not by its dates
        if reading in ("both", "about"):
            terms, hits = await self._dated(
                user_id, parsed.text, within(None, None), seen if reading == "both" else [], tokens, limit
            )
        elif len(seen) > 1:
            terms, hits = await self._dated(user_id, parsed.text, None, seen, set(), limit)
        else:
            terms, hits, _ = await self._find(user_id, parsed.text, seen[0], limit)
        rewritten = None
        if not hits and parsed.text and self._rewriter is not None:
            rewritten = await self._rewriter.rewrite(user_id, parsed.text) or None
            if rewritten:  # added to the query, never in its place
                terms, hits, _ = await self._find(user_id, f"{parsed.text} {rewritten}", seen[0], limit)
        return SearchResponse(
            query=ParsedQuery(
                text=parsed.text,
                terms=terms,
                start=window_start,
                end=window_end,
                phrases=list(parsed.phrases),
                dates=reading,
                rewritten=rewritten,
            ),
            hits=hits,
            took_ms=(time.perf_counter() - started) * 1000,
        )

    async def _dated(
        self,
        user_id: str,
        text: str,
        given: Filters | None,
        seen: list[Filters],
        tokens: set[str],
        limit: int,
    ) -> tuple[list[str], list[SearchHit]]:
        """Moments for ``text`` ranked by relevance, by the query's date in their content and by having
        been seen in one of the ``seen`` windows: both readings of a date, never a filter. Without
        ``given`` (the filters of a search over all time) only moments seen in a window are found."""
        # One query vector for every window searched.
        vector = _once(partial(self._query_vector, user_id, text)) if text.strip() else None
        terms, about, dated = (
            await self._find(user_id, text, given, limit, tokens, vector)
            if given
            else (query_terms(text), [], set())
        )
        found = {hit.moment_id: hit for hit in about}
        base = {hit.moment_id: 1.0 / (_RRF_K + rank) for rank, hit in enumerate(about)}
        in_window: set[str] = set()
        for window in seen:
            _, then, _ = await self._find(user_id, text, window, limit, vector=vector)
            for rank, hit in enumerate(then):
                found.setdefault(hit.moment_id, hit)
                base[hit.moment_id] = max(base.get(hit.moment_id, 0.0), 1.0 / (_RRF_K + rank))
                in_window.add(hit.moment_id)
        scores = {
            moment: base[moment] + _ABOUT_BOOST * (moment in dated) + _SEEN_BOOST * (moment in in_window)
            for moment in found
        }
        ranked = sorted(found, key=lambda moment: -scores[moment])[:limit]
        return terms, [found[m].model_copy(update={"score": scores[m]}) for m in ranked]

    async def _find(
        self,
        user_id: str,
        text: str,
        filters: Filters,
        limit: int,
        dates: AbstractSet[str] = frozenset(),
        vector: QueryVector = None,
    ) -> tuple[list[str], list[SearchHit], set[str]]:
        """Hybrid search for ``text`` (and the date tokens ``dates``, lexically) under ``filters``: the
        words searched, the best moments, and those of them whose text has one of ``dates``.
        ``vector``: the query's, where the caller has it (or computes it once for several searches)."""
        terms = query_terms(text)
        if vector is None and text.strip():
            # Embedded on the query lane's core while the lexical side searches on another.
            vector = partial(self._query_vector, user_id, text)
        async with self._search_gate.turn(user_id, Priority.INTERACTIVE):
            rows = await self.index.search(
                user_id,
                " ".join([*terms, *sorted(dates)]),
                vector,
                filters,
                self._candidates,
                expansions=" ".join(translations(text)),
                expansion_boost=EXPANSION_BOOST,
                names=" ".join(names(text)),
            )
        rows = _exact_first(rows, exact_patterns(text))
        hits: list[SearchHit] = []
        dated = {
            row["moment_id"] for row in rows if dates and dates_in(f"{row['title']}\n{row['text']}") & dates
        }
        seen: set[str] = set()
        # The frame shown for a hit: its own, else the best-ranked frame of the same moment.
        frames: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["frame_key"]:
                frames.setdefault(row["moment_id"], row)
        for rank, row in enumerate(rows):
            if row["moment_id"] in seen:
                continue
            seen.add(row["moment_id"])
            hits.append(self._hit(row, frames.get(row["moment_id"], row), terms, rank))
            if len(hits) >= limit:
                break
        return terms, hits, dated

    async def _query_vector(self, user_id: str, text: str) -> NDArray[np.float32]:
        vectors = await self._embedder.encode(user_id, [text], Priority.INTERACTIVE, Role.QUERY)
        vector: NDArray[np.float32] = vectors[0]
        return vector

    def _hit(self, row: dict[str, Any], frame: dict[str, Any], terms: list[str], rank: int) -> SearchHit:
        text = (
            row["text"] if matches_any(row["text"], terms) or not terms else f"{row['title']}\n{row['text']}"
        )
        frame_url, thumb_url = _frame_urls(frame)
        return SearchHit(
            moment_id=row["moment_id"],
            session_id=row["session_id"],
            time=_time(row["time_ms"]),
            start=_time(row["start_ms"]),
            app_id=row["app_id"],
            title=row["title"],
            url=row["url"],
            source=row["source"],
            snippet=[Fragment(text=f.text, hit=f.hit) for f in highlight(text, terms)],
            frame_url=frame_url,
            thumb_url=thumb_url,
            frame_width=frame["frame_w"],
            frame_height=frame["frame_h"],
            boxes=_boxes(frame, terms, only_hits=True),
            score=float(row.get("_relevance_score", row.get("_score", 0.0)) or 1.0 / (60 + rank)),
        )

    async def moment(self, user_id: str, moment_id: str, q: str = "") -> MomentResponse:
        rows = await self.index.rows(user_id, Filters(moment_id=moment_id))
        if not rows:
            raise NotFoundError(f"no moment {moment_id!r}")
        terms = query_terms(q) if q else []
        first, last = rows[0], rows[-1]
        return MomentResponse(
            moment_id=moment_id,
            session_id=first["session_id"],
            app_id=first["app_id"],
            title=first["title"],
            url=next((r["url"] for r in reversed(rows) if r["url"]), ""),
            start=_time(first["start_ms"]),
            end=_time(last["time_ms"]),
            rows=[
                MomentRow(
                    id=r["id"],
                    time=_time(r["time_ms"]),
                    source=r["source"],
                    text=r["text"],
                    frame_url=_frame_urls(r)[0],
                    frame_width=r["frame_w"],
                    frame_height=r["frame_h"],
                    boxes=_boxes(r, terms, only_hits=False),
                )
                for r in rows
            ],
        )

    async def latest_moment(self, user_id: str, within: timedelta) -> MomentResponse | None:
        """The user's most recent moment if it has rows newer than ``within`` ago: what is on screen."""
        since = datetime.now(UTC) - within
        rows = await self.index.rows(user_id, Filters(start_ms=int(since.timestamp() * 1000)))
        if not rows:
            return None
        return await self.moment(user_id, rows[-1]["moment_id"])

    async def forget_moment(self, user_id: str, moment_id: str) -> EraseResponse:
        """Delete a moment: its events and frames from the log, its rows from the index."""
        rows = await self.index.rows(user_id, Filters(moment_id=moment_id))
        if not rows:
            raise NotFoundError(f"no moment {moment_id!r}")
        session_id = rows[0]["session_id"]
        first_seq = int(moment_id.rsplit(".", 1)[1])
        # The moment runs until the next moment of its session starts, or (still open) through what
        # is stored now: later events are new sightings, not part of what the user chose to forget.
        # A next moment is known once indexed: stored events the index has not taken in yet may start
        # one, so they are waited for (briefly; past that the stored events go too: privacy first).
        next_start = await self._next_moment(user_id, rows[0], first_seq)
        if next_start is None and await self._caught_up(user_id, session_id):
            next_start = await self._next_moment(user_id, rows[0], first_seq)
        async with self.tombstones.erasing(user_id) as record:
            stop = next_start or await self._log.last_seq(user_id, session_id) + 1
            tombstone = Tombstone.seq_range(session_id, first_seq, stop)
            await record(tombstone)
            return await self.apply(user_id, tombstone)

    async def _next_moment(self, user_id: str, row: dict[str, Any], first_seq: int) -> int | None:
        """The first seq of the indexed moment that follows ``row``'s in its session, if any."""
        session = Filters(session_id=row["session_id"], start_ms=row["start_ms"])
        later = await self.index.rows(user_id, session)
        starts = [int(r["moment_id"].rsplit(".", 1)[1]) for r in later if r["moment_id"] != row["moment_id"]]
        return min((s for s in starts if s > first_seq), default=None)

    async def _caught_up(self, user_id: str, session_id: str) -> bool:
        """Whether the index takes in, within ``_CATCH_UP_S``, every event of the session stored now."""
        if self._pipeline is None:
            return False
        stored = await self._log.last_seq(user_id, session_id)
        deadline = time.monotonic() + _CATCH_UP_S
        while (taken := await self._pipeline.indexed_seq(user_id, session_id)) < stored:
            if time.monotonic() > deadline:
                logger.warning("forgetting a moment: the index is at %d of %d stored events", taken, stored)
                return False
            await asyncio.sleep(0.05)
        return True

    async def erase_range(self, user_id: str, start: datetime, end: datetime) -> EraseResponse:
        tombstone = Tombstone.time_range(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        async with self.tombstones.erasing(user_id) as record:
            await record(tombstone)
            return await self.apply(user_id, tombstone)

    async def apply(self, user_id: str, tombstone: Tombstone, always_purge: bool = False) -> EraseResponse:
        """Delete what ``tombstone`` covers: events, frames, index rows and moment state.

        Call it holding the user's tombstone gate exclusive (``erasing`` or ``reapplying``). The index
        is purged of old versions when rows were deleted, or always when redoing an interrupted erasure.
        """
        if tombstone.start_ms is not None and tombstone.end_ms is not None:
            filters = Filters(start_ms=tombstone.start_ms, end_ms=tombstone.end_ms)
            deleted = await self._log.erase_time_range(
                user_id, tombstone.start_ms * _NS_PER_MS, tombstone.end_ms * _NS_PER_MS
            )
        else:
            assert tombstone.session_id is not None and tombstone.first_seq is not None
            filters = Filters(
                session_id=tombstone.session_id, first_seq=tombstone.first_seq, stop_seq=tombstone.stop_seq
            )
            deleted = await self._log.erase_seq_range(
                user_id, tombstone.session_id, tombstone.first_seq, tombstone.stop_seq
            )
        rows = await self.index.rows(user_id, filters, limit=10_000_000)
        if rows:
            await self.index.delete(user_id, filters)
        if rows or always_purge:
            await self.index.purge(user_id)
        if self._pipeline is not None:
            await self._pipeline.forget_erased(user_id)
        return EraseResponse(deleted_objects=deleted, deleted_rows=len(rows))

    async def erase_everything(self, user_id: str) -> EraseResponse:
        """Delete the user's whole history: events, frames, index and recall state.

        Kept: the privacy settings (they say what may be captured next) and the tombstones (so a resent
        batch cannot bring back what was erased).
        """
        async with self.tombstones.erasing(user_id) as record:
            await record(Tombstone.time_range(0, int(time.time() * 1000)))
            rows = await self.index.count(user_id)
            await self.index.drop(user_id)
            keys = [
                key
                for key in await self.store.list_keys(user_id)
                if not key.startswith((ERASURE_PREFIX, "privacy/"))
            ]
            await self.store.delete(user_id, keys)
            if self._pipeline is not None:
                self._pipeline.reset_user(user_id)
        return EraseResponse(deleted_objects=len(keys), deleted_rows=rows)

    async def usage(self, user_id: str) -> int:
        return await self.store.usage(user_id)

    async def oldest(self, user_id: str) -> datetime | None:
        """Time of the user's oldest stored event, or None when there is none."""
        first_ns = await self._log.oldest_time_ns(user_id)
        return None if first_ns is None else datetime.fromtimestamp(first_ns / 1e9, UTC)

    async def older_than(self, user_id: str, days: int, now: datetime | None = None) -> EraseResponse:
        """Retention by age: erase everything before ``now - days`` (nothing to do: no tombstone)."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        oldest = await self.oldest(user_id)
        if oldest is None or oldest >= cutoff:
            return EraseResponse(deleted_objects=0, deleted_rows=0)
        return await self.erase_range(user_id, datetime(1970, 1, 1, tzinfo=UTC), cutoff)
