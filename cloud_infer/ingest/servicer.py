"""grpc.aio adapter of the Ingest service: auth metadata, raw-bytes parsing, status codes.

The Stream method is registered without a request deserializer, so this module parses each
AgentMessage itself and answers malformed bytes with INVALID_ARGUMENT and a message naming the
problem, where grpc's own deserializer would end the call with a vague INTERNAL.

A stream must send Hello within ``hello_timeout_s``, and a batch sent after the stream's token expired
or was revoked (``cloud_infer.revocation``) ends it (UNAUTHENTICATED), so nobody keeps streaming on a
dead token.

After Welcome the stream carries two kinds of replies: acks, in the order of the batches, and the
session's pending commands (``cloud_infer.commands``), sent whenever there are any. Both go through
``interleave``, so the stream's write side has one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import grpc

from cloud_infer.auth import TokenAuthority, TokenClaims, bearer_token
from cloud_infer.commands.registry import Downlink
from cloud_infer.commands.service import CommandService
from cloud_infer.errors import ERRORS, CloudInferError, InvalidMessageError, TokenExpiredError, error_code
from cloud_infer.ingest.duplex import interleave
from cloud_infer.ingest.protocol import ack, parse_agent_message, welcome
from cloud_infer.ingest.service import IngestService, IngestSession
from cloud_infer.revocation import Revocations
from protos.shadowdesk.v1 import ingest_pb2 as pb

SERVICE_NAME = "shadowdesk.v1.Ingest"

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[bytes, pb.CloudMessage]


class IngestServicer:
    def __init__(
        self,
        service: IngestService,
        tokens: TokenAuthority,
        revocations: Revocations,
        hello_timeout_s: float,
        commands: CommandService | None = None,
    ) -> None:
        self._service = service
        self._tokens = tokens
        self._revocations = revocations
        self._hello_timeout_s = hello_timeout_s
        self._commands = commands

    def rpc_handler(self) -> grpc.GenericRpcHandler[bytes, pb.CloudMessage]:
        stream = grpc.stream_stream_rpc_method_handler(
            self.stream,
            request_deserializer=None,
            response_serializer=pb.CloudMessage.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Stream": stream})

    async def stream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.CloudMessage]:
        try:
            # Read Hello before judging the token: answering before the agent's first write is consumed
            # races that write, and grpc's asyncio client then reports INTERNAL instead of our status
            # (grpc/grpc#36066). The wait is bounded, so a silent client holds nothing for long.
            try:
                async with asyncio.timeout(self._hello_timeout_s):
                    first = await anext(aiter(requests), None)
            except TimeoutError:
                raise InvalidMessageError(f"no Hello within {self._hello_timeout_s:g} s") from None
            metadata = dict(context.invocation_metadata() or ())
            authorization = metadata.get("authorization")
            token = bearer_token(authorization if isinstance(authorization, str) else None)
            claims = self._tokens.verify(token, "ingest")
            await self._revocations.check(claims)
            if first is None:
                raise InvalidMessageError("the stream ended before Hello")
            hello = parse_agent_message(first)
            if hello.WhichOneof("body") != "hello":
                raise InvalidMessageError("the first message of a stream must be Hello")
            async with (
                self._service.open_session(claims, hello.hello) as session,
                self._downlink(session, hello.hello) as downlink,
            ):
                acked = await session.acked_seq()
                logger.info(
                    "session %s opened by %s; resuming after seq %d",
                    session.session_id,
                    context.peer(),
                    acked,
                )
                yield welcome(acked, self._service.limits)
                replies = self._acks(session, claims, requests)
                if downlink is not None:
                    replies = interleave(replies, downlink.commands())
                async for reply in replies:
                    yield reply
        except CloudInferError as exc:
            code = ERRORS[error_code(exc)].grpc  # the agent retries the table's retryable statuses
            self._service.metrics.rejected.add(1, {"reason": code.name.lower()})
            logger.info("ingest stream from %s ended: %s %s", context.peer(), code.name, exc)
            await context.abort(code, str(exc))

    def _downlink(
        self, session: IngestSession, hello: pb.Hello
    ) -> AbstractAsyncContextManager[Downlink | None]:
        if self._commands is None:
            return contextlib.nullcontext()
        return self._commands.connect(session.user_id, session.session_id, hello.capabilities)

    async def _acks(
        self, session: IngestSession, claims: TokenClaims, requests: AsyncIterator[bytes]
    ) -> AsyncIterator[pb.CloudMessage]:
        """Store each batch and answer it with its ack, in order."""
        async for raw in requests:
            if time.time() >= claims.expires_at:
                raise TokenExpiredError("token has expired; the agent needs a new one")
            await self._revocations.check(claims)  # cached: a store read at most every cache_s per user
            message = parse_agent_message(raw)
            if message.WhichOneof("body") != "batch":
                raise InvalidMessageError("Hello may be sent only once per stream")
            yield ack(await session.ingest(message.batch))
