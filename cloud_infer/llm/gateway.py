"""The one way every feature reaches a language model: limits, order, deadlines, accounting, traces.

A chat request is admitted by the user's rate limit (refused at once when over it), waits in the priority
queue for a backend slot (interactive before background, at most ``user_concurrency`` per user), then
streams from the backend. Its deadline counts from arrival, queue included. Closing the stream (the
sidebar went away, the task was cancelled) closes the backend's stream, which stops the generation.

Each request is one OpenTelemetry span (``chat <backend>``, GenAI semantic-convention attributes) with
queue time, time to first token and output tokens per second, and the same figures go to metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, TypeVar

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError

from cloud_infer.llm.accounting import TokenLedger, UsageReport
from cloud_infer.llm.backend import ChatBackend, ChatMessage, EmbeddingBackend, GenerationRequest, Usage
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.errors import (
    LLMError,
    LLMOutputError,
    LLMRateLimitedError,
    LLMTimeoutError,
    LLMUnavailableError,
)
from cloud_infer.llm.scheduler import Priority, Scheduler

M = TypeVar("M", bound=BaseModel)

_tracer = trace.get_tracer(__name__)


class _Instruments:
    def __init__(self) -> None:
        meter = metrics.get_meter(__name__)
        self.requests = meter.create_counter(
            "shadowdesk.llm.requests", unit="{request}", description="LLM requests by outcome"
        )
        self.tokens = meter.create_counter(
            "shadowdesk.llm.tokens", unit="{token}", description="Tokens by user, feature and kind"
        )
        self.queue = meter.create_histogram(
            "shadowdesk.llm.queue_time", unit="s", description="Wait for a backend slot"
        )
        self.ttft = meter.create_histogram(
            "shadowdesk.llm.time_to_first_token", unit="s", description="Arrival to the first token"
        )
        self.speed = meter.create_histogram(
            "shadowdesk.llm.output_speed",
            unit="{token}/s",
            description="Output tokens per second of decoding",
        )


class LLMGateway:
    def __init__(
        self,
        settings: LLMSettings,
        chat: ChatBackend | None,
        embeddings: EmbeddingBackend | None = None,
    ) -> None:
        self._settings = settings
        self._chat = chat
        self._embeddings = embeddings
        self._scheduler = Scheduler(
            slots=chat.max_concurrency if chat else 1,
            per_user=settings.user_concurrency,
            queue_limit=settings.queue_limit,
        )
        self._rate = RateLimitItemPerMinute(settings.user_requests_per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._ledger = TokenLedger()
        self._instruments = _Instruments()

    @property
    def chat_available(self) -> bool:
        return self._chat is not None

    @property
    def capable(self) -> bool:
        """Whether the chat model may answer from a user's history and rewrite searches (see settings)."""
        return self._settings.chat_capable

    @property
    def embeddings_available(self) -> bool:
        return self._embeddings is not None

    @property
    def chat_backend(self) -> ChatBackend | None:
        return self._chat

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    def usage(self, user_id: str) -> UsageReport:
        return self._ledger.report(user_id)

    async def stream_chat(
        self,
        user_id: str,
        messages: Sequence[ChatMessage],
        *,
        feature: str,
        priority: Priority = Priority.INTERACTIVE,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        deadline_s: float | None = None,
        json_schema: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[str, None]:
        """Text deltas of the model's answer; every failure is an ``LLMError``."""
        backend = self._chat
        if backend is None:
            raise LLMUnavailableError("no language model is configured")
        arrived = time.monotonic()
        deadline = asyncio.get_running_loop().time() + (
            self._settings.timeout_s if deadline_s is None else deadline_s
        )
        await self._admit(user_id)
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            messages=tuple(messages),
            max_tokens=min(max_tokens or self._settings.max_output_tokens, self._settings.max_output_tokens),
            temperature=temperature,
            json_schema=json_schema,
            affinity_key=user_id,
        )
        attributes = {"shadowdesk.llm.feature": feature, "shadowdesk.llm.priority": priority.name.lower()}
        span = _tracer.start_span(
            f"chat {backend.name}",
            kind=SpanKind.CLIENT,
            attributes={
                **attributes,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": backend.name,
                "gen_ai.request.max_tokens": request.max_tokens,
                "gen_ai.request.temperature": temperature,
                "enduser.id": user_id,
                "shadowdesk.llm.structured": json_schema is not None,
            },
        )
        outcome = "error"
        granted = first = None
        usage: Usage | None = None
        deltas = 0
        try:
            async with self._scheduler.slot(user_id, priority, deadline):
                granted = time.monotonic()
                span.add_event("slot_granted")
                async with contextlib.aclosing(backend.generate(request, deadline)) as stream:
                    async for item in stream:
                        if isinstance(item, Usage):
                            usage = item
                            continue
                        if first is None:
                            first = time.monotonic()
                            span.add_event("first_token")
                        deltas += 1
                        yield item
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"
            raise
        except LLMTimeoutError:
            outcome = "timeout"
            raise
        except LLMError as error:
            span.record_exception(error)
            raise
        finally:
            self._finish(span, user_id, attributes, outcome, arrived, granted, first, usage, deltas)

    async def complete(self, user_id: str, messages: Sequence[ChatMessage], **options: Any) -> str:
        """The whole answer of ``stream_chat`` as one string (same options)."""
        async with contextlib.aclosing(self.stream_chat(user_id, messages, **options)) as stream:
            return "".join([delta async for delta in stream])

    async def generate_object(
        self,
        user_id: str,
        messages: Sequence[ChatMessage],
        output: type[M],
        *,
        feature: str,
        priority: Priority = Priority.INTERACTIVE,
        max_tokens: int | None = None,
        deadline_s: float | None = None,
    ) -> M:
        """An instance of ``output`` generated under its JSON schema (a grammar or guided decoding)."""
        text = await self.complete(
            user_id,
            messages,
            feature=feature,
            priority=priority,
            max_tokens=max_tokens,
            deadline_s=deadline_s,
            json_schema=output.model_json_schema(),
        )
        try:
            return output.model_validate_json(text)
        except ValidationError as error:
            raise LLMOutputError(f"the model's output is not a valid {output.__name__}: {error}") from error

    async def embed(
        self, user_id: str, texts: Sequence[str], *, feature: str, deadline_s: float | None = None
    ) -> list[list[float]]:
        """One vector per text. They skip the chat queue: the encoder takes turns between users itself."""
        backend = self._embeddings
        if backend is None:
            raise LLMUnavailableError("no embedding model is configured")
        deadline = asyncio.get_running_loop().time() + (
            self._settings.timeout_s if deadline_s is None else deadline_s
        )
        with _tracer.start_as_current_span(
            f"embeddings {backend.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": backend.name,
                "shadowdesk.llm.feature": feature,
                "shadowdesk.llm.texts": len(texts),
                "enduser.id": user_id,
            },
        ):
            vectors = await backend.embed(user_id, texts, deadline)
        self._ledger.record_embedding(user_id, feature, len(texts))
        return vectors

    async def check_admission(self, user_id: str) -> None:
        """Raise LLMRateLimitedError now if ``user_id`` could not start a chat: lets a feature refuse
        before it does work of its own (ask searches first) that would be wasted."""
        if not await self._limiter.test(self._rate, user_id):
            await self._refuse(user_id)

    async def _admit(self, user_id: str) -> None:
        if not await self._limiter.hit(self._rate, user_id):
            await self._refuse(user_id)

    async def _refuse(self, user_id: str) -> None:
        stats = await self._limiter.get_window_stats(self._rate, user_id)
        retry_after_s = max(0.0, stats.reset_time - time.time())
        self._instruments.requests.add(1, {"shadowdesk.llm.outcome": "rate_limited"})
        raise LLMRateLimitedError(
            f"more than {self._settings.user_requests_per_minute} requests a minute; "
            f"retry in {retry_after_s:.0f} s",
            retry_after_s,
        )

    def _finish(
        self,
        span: trace.Span,
        user_id: str,
        attributes: dict[str, str],
        outcome: str,
        arrived: float,
        granted: float | None,
        first: float | None,
        usage: Usage | None,
        deltas: int,
    ) -> None:
        # A stream closed early never reached the backend's usage: count what was delivered.
        usage = usage or Usage(prompt_tokens=0, completion_tokens=deltas)
        tags = {**attributes, "shadowdesk.llm.outcome": outcome}
        self._instruments.requests.add(1, tags)
        if granted is not None:
            self._instruments.queue.record(granted - arrived, attributes)
            span.set_attribute("shadowdesk.llm.queue_ms", round((granted - arrived) * 1000, 1))
        if first is not None:
            ttft = first - arrived
            self._instruments.ttft.record(ttft, attributes)
            span.set_attribute("shadowdesk.llm.ttft_ms", round(ttft * 1000, 1))
            decoding = time.monotonic() - first
            if usage.completion_tokens > 1 and decoding > 0:
                speed = (usage.completion_tokens - 1) / decoding
                self._instruments.speed.record(speed, attributes)
                span.set_attribute("shadowdesk.llm.output_tokens_per_s", round(speed, 1))
        self._ledger.record_chat(
            user_id, attributes["shadowdesk.llm.feature"], usage.prompt_tokens, usage.completion_tokens
        )
        for kind, count in (("input", usage.prompt_tokens), ("output", usage.completion_tokens)):
            self._instruments.tokens.add(
                count, {**attributes, "gen_ai.token.type": kind, "enduser.id": user_id}
            )
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("shadowdesk.llm.outcome", outcome)
        if outcome in ("error", "timeout"):
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()

    def start(self) -> None:
        """Nothing runs before the first request (a backend loads its model or connects then, and a fleet
        starts its health checks); here so that the gateway has every runtime's lifecycle
        (``cloud_infer.runtime``)."""

    async def close(self) -> None:
        if self._chat is not None:
            await self._chat.close()
        if self._embeddings is not None:
            await self._embeddings.close()
